package persist

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/scuttlebutt"
)

// Errors returned by this package.
var (
	// ErrCorrupt reports a line that is not JSON (a blank line included) in
	// the middle of a file.
	ErrCorrupt = errors.New("persist: corrupt file")
	// ErrTorn reports input that ends inside a line that is not complete
	// JSON: a write cut short by a crash. The lines before it were loaded.
	ErrTorn = errors.New("persist: torn last line")
	// ErrClosed reports a Log used after Close.
	ErrClosed = errors.New("persist: log closed")
)

// syncLine is the marker that ends a persisted stream, with its newline.
const syncLine = "\"SYNC\"\n"

// Save writes the replica in the format of npm scuttlebutt's
// createReadStream({tail: false}): its header (id and clock), every update
// of its history in history order, and "SYNC", one per line.
func Save(w io.Writer, r *scuttlebutt.Replica) error {
	s := r.NewStream(scuttlebutt.Writable(false), scuttlebutt.Tail(false))
	defer s.Close()
	if _, err := s.Drain(w); err != io.EOF {
		if err == nil {
			err = errors.New("read stream did not end")
		}
		return fmt.Errorf("persist: save: %w", err)
	}
	return nil
}

// SaveFile saves the replica to path atomically: it writes a temporary file
// in the same directory, fsyncs it, renames it to path and fsyncs the
// directory. A crash leaves either the old file or the new one.
func SaveFile(path string, r *scuttlebutt.Replica) error {
	return saveFile(vfs.Default, path, r)
}

// saveFile is SaveFile on the file system fsys.
func saveFile(fsys vfs.FS, path string, r *scuttlebutt.Replica) error {
	f, tmp, err := createTemp(fsys, path)
	if err != nil {
		return fmt.Errorf("persist: save: %w", err)
	}
	bw := bufio.NewWriterSize(f, 64<<10)
	err = Save(bw, r)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return fmt.Errorf("persist: save: %w", err)
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("persist: save: %w", err)
	}
	return nil
}

// createTemp creates a new file next to path, with the permissions
// os.Create gives (0666 less the umask; os.CreateTemp would give 0600), or
// those of path if it exists.
func createTemp(fsys vfs.FS, path string) (vfs.File, string, error) {
	for {
		name := fmt.Sprintf("%s.tmp-%08x", path, rand.Uint32())
		f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o666)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err == nil {
			if err = keepMode(fsys, f, path); err != nil {
				f.Close()
				fsys.Remove(name)
				return nil, "", err
			}
		}
		return f, name, err
	}
}

// keepMode gives f the permissions of the file at path, if there is one,
// so that replacing that file does not change them.
func keepMode(fsys vfs.FS, f vfs.File, path string) error {
	fi, err := fsys.Stat(path)
	if err != nil {
		return nil
	}
	return f.Chmod(fi.Mode().Perm())
}

// Load applies the persisted stream rd holds to the replica, as npm
// scuttlebutt's createWriteStream does: each update is applied as if a peer
// had sent it (an update the replica already has, or that its data type
// refuses, is skipped); the header's clock is not imported; "SYNC", other
// headers and values that are not updates are skipped. A last line without
// its newline is applied if it is complete.
//
// A line that is not JSON fails the load with ErrCorrupt, and input that
// ends inside a line that is not complete with ErrTorn; either way the
// lines before it have been applied.
func Load(rd io.Reader, r *scuttlebutt.Replica) error {
	_, err := scan(rd, r.Apply, false)
	return err
}

// LoadFile loads the file at path into the replica; see Load.
func LoadFile(path string, r *scuttlebutt.Replica) error {
	return loadFile(vfs.Default, path, r)
}

// loadFile is LoadFile on the file system fsys.
func loadFile(fsys vfs.FS, path string, r *scuttlebutt.Replica) error {
	f, err := fsys.Open(path)
	if err != nil {
		return fmt.Errorf("persist: load: %w", err)
	}
	defer f.Close()
	return Load(bufio.NewReaderSize(f, 64<<10), r)
}

// ReadID returns the id in the header of the persisted file at path: the
// id of the replica that wrote it, which a program passes to model.New (or
// events.New, value.New) so that the replica's own updates keep their
// source after a restart. It fails if the file does not exist
// (errors.Is(err, fs.ErrNotExist)) or does not start with a header.
func ReadID(path string) (string, error) {
	return readID(vfs.Default, path)
}

// readID is ReadID on the file system fsys.
func readID(fsys vfs.FS, path string) (string, error) {
	f, err := fsys.Open(path)
	if err != nil {
		return "", fmt.Errorf("persist: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadBytes('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("persist: %s: %w", path, err)
	}
	var h struct {
		ID    *string         `json:"id"`
		Clock json.RawMessage `json:"clock"`
	}
	if json.Unmarshal(line, &h) != nil || h.ID == nil || len(h.Clock) == 0 || string(h.Clock) == "null" {
		return "", fmt.Errorf("%w: %s does not start with a header", ErrCorrupt, path)
	}
	return *h.ID, nil
}

// Line kinds of a persisted stream.
type lineKind int

const (
	lineIgnored lineKind = iota // valid JSON that is not an update
	lineUpdate
	lineHeader
	lineSync
)

// parseLine decodes one line without its newline. It fails only when the
// line is not one JSON value; JSON that npm scuttlebutt would not apply
// (an array that is not [change, number, string, ...], an object, null,
// other strings) is lineIgnored, as there. buf is scratch space for the
// array's elements. Change and Extra alias line.
func parseLine(line []byte, buf [][]byte) (lineKind, scuttlebutt.Update, error) {
	line = bytes.TrimLeft(line, " \t\r\n")
	if len(line) == 0 {
		return 0, scuttlebutt.Update{}, errors.New("blank line")
	}
	switch line[0] {
	case '[':
		elems, err := jsjson.AppendSplitArrayRaw(buf[:0], line, 1)
		if err != nil {
			return 0, scuttlebutt.Update{}, err
		}
		if len(elems) < 3 || elems[2][0] != '"' {
			return lineIgnored, scuttlebutt.Update{}, nil
		}
		ts, err := jsjson.ParseNumber(elems[1])
		if err != nil {
			return lineIgnored, scuttlebutt.Update{}, nil
		}
		src, err := jsjson.Unquote(elems[2])
		if err != nil || src == "__proto__" {
			return lineIgnored, scuttlebutt.Update{}, nil
		}
		u := scuttlebutt.Update{Change: elems[0], Timestamp: ts, Source: src}
		if len(elems) > 3 {
			u.Extra = make([]json.RawMessage, len(elems)-3)
			for i, e := range elems[3:] {
				u.Extra[i] = e
			}
		}
		return lineUpdate, u, nil
	case '{':
		if err := jsjson.Valid(line); err != nil {
			return 0, scuttlebutt.Update{}, err
		}
		return lineHeader, scuttlebutt.Update{}, nil
	}
	v, err := jsjson.Canonical(line)
	if err != nil {
		return 0, scuttlebutt.Update{}, err
	}
	if string(v) == `"SYNC"` {
		return lineSync, scuttlebutt.Update{}, nil
	}
	return lineIgnored, scuttlebutt.Update{}, nil
}

// scanResult is what scan found in a file.
type scanResult struct {
	end     int64 // offset after the last valid complete line, "SYNC" excluded when it is the last
	valid   int64 // offset after the last valid complete line
	size    int64 // bytes read
	lines   int   // valid complete lines before end
	updates int   // update lines before end
	applied int   // updates the replica applied
}

// scan reads a persisted stream and passes each update to apply, in order.
//
// For Load (durable false), a line that is not JSON is ErrCorrupt; at the
// end of the input, a line without its newline is applied if complete and
// is ErrTorn otherwise.
//
// For a Log (durable true), the tail of the file that a crash may have torn
// is not applied, and end tells where to cut: a line without its newline,
// and invalid lines with no valid line after them. An invalid line followed
// by a valid one is ErrCorrupt. A "SYNC" on the last valid line (Close wrote
// it) is left out of end, so that appends follow the updates.
func scan(rd io.Reader, apply func(scuttlebutt.Update) bool, durable bool) (scanResult, error) {
	br, ok := rd.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(rd, 64<<10)
	}
	var (
		res      scanResult
		buf      [4][]byte
		badAt    int64 = -1 // offset of the first invalid line (durable)
		badLine  int
		badErr   error
		lastSync bool
	)
	for n := 1; ; n++ {
		line, rerr := br.ReadBytes('\n')
		start := res.size
		res.size += int64(len(line))
		if rerr != nil && rerr != io.EOF {
			return res, fmt.Errorf("persist: line %d: %w", n, rerr)
		}
		complete := rerr == nil
		if len(line) == 0 {
			break
		}
		if complete {
			line = line[:len(line)-1]
		}
		kind, u, perr := parseLine(line, buf[:0])
		switch {
		case durable && badAt >= 0:
			if perr == nil && complete {
				return res, fmt.Errorf("%w: line %d (offset %d): %w; valid lines follow it", ErrCorrupt, badLine, badAt, badErr)
			}
		case durable && !complete:
			// A line without its newline was never acknowledged: cut it.
		case perr != nil && durable:
			badAt, badLine, badErr = start, n, perr
		case perr != nil && complete:
			return res, fmt.Errorf("%w: line %d (offset %d): %w", ErrCorrupt, n, start, perr)
		case perr != nil:
			return res, fmt.Errorf("%w: line %d (offset %d): %w", ErrTorn, n, start, perr)
		default:
			if kind == lineUpdate {
				res.updates++
				if apply(u) {
					res.applied++
				}
			}
			res.lines++
			lastSync = kind == lineSync
			res.valid = res.size
			res.end = res.size
			if lastSync {
				res.end = start
			}
		}
		if !complete {
			break
		}
	}
	return res, nil
}
