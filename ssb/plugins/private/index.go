package private

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// The index of the messages we can decrypt, in <path>/private/:
//
//   - "index": the receive sequences (store.Item.Seq, the position in the
//     log) of those messages, 8 bytes each, little-endian, appended and
//     fsynced as they are found. Positions only: no content, no keys.
//   - "scanned": {"seq": N, "key": "%…", "timestamp": T}: every message up
//     to N was tried. Written (temporary file, fsync, rename) at most every
//     few seconds and at the end; after a crash the messages past it are
//     tried again, which finds the same ones. The key of message N makes
//     a rebuilt store (sbot repair renumbers) start the index over.
//
// Each boxed message is tried once: one X25519 with its one-time key,
// spread over the cores.
type index struct {
	dir   string
	log   *slog.Logger
	st    *store.Store
	unbox privatebox.Formats

	mu      sync.Mutex
	ours    map[uint64]bool
	scanned checkpoint
	saved   time.Time
	file    *os.File
	changed chan struct{} // closed and replaced when scanned advances
	stopped bool          // run has returned: scanned no longer advances
	stats   indexStats
}

type checkpoint struct {
	Seq       uint64       `json:"seq"`
	Key       refs.Message `json:"key"`
	Timestamp float64      `json:"timestamp"`
}

type indexStats struct {
	Tried     int // boxed messages tried
	Ours      int // of them, for us
	Malformed int // boxed contents that are not private-box
}

const (
	indexFile   = "index"
	scannedFile = "scanned"
	// batch is how many messages are read before they are tried in
	// parallel, when they come faster than they are tried.
	batch = 512
	// saveEvery is how often the checkpoint is written while scanning.
	saveEvery = 5 * time.Second
)

func openIndex(dir string, st *store.Store, unbox privatebox.Formats, log *slog.Logger) (*index, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("private: index: %w", err)
	}
	x := &index{dir: dir, log: log, st: st, unbox: unbox, ours: map[uint64]bool{}, changed: make(chan struct{})}
	cp, err := readCheckpoint(filepath.Join(dir, scannedFile))
	if err != nil {
		return nil, err
	}
	if cp.Seq > 0 {
		if it, err := st.Get(cp.Key); err != nil || it.Seq != cp.Seq {
			log.Warn("private: the store changed under the index (rebuilt?); finding the private messages again", "checkpoint", cp.Seq)
			cp = checkpoint{}
			if err := os.Remove(filepath.Join(dir, indexFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("private: index: %w", err)
			}
		}
	}
	x.scanned = cp
	b, err := os.ReadFile(filepath.Join(dir, indexFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("private: index: %w", err)
	}
	whole := len(b) - len(b)%8 // a torn last record is dropped, and found again
	for i := 0; i < whole; i += 8 {
		x.ours[binary.LittleEndian.Uint64(b[i:])] = true
	}
	f, err := os.OpenFile(filepath.Join(dir, indexFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("private: index: %w", err)
	}
	if err := f.Truncate(int64(whole)); err != nil {
		f.Close()
		return nil, fmt.Errorf("private: index: %w", err)
	}
	if _, err := f.Seek(int64(whole), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("private: index: %w", err)
	}
	x.file = f
	return x, nil
}

func readCheckpoint(file string) (checkpoint, error) {
	var cp checkpoint
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return cp, nil
	}
	if err != nil {
		return cp, fmt.Errorf("private: index: %w", err)
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return checkpoint{}, nil // written by rename: only a foreign file is bad; start over
	}
	return cp, nil
}

// has reports whether the message at seq is ours, and whether the index
// knows (false: not tried yet).
func (x *index) has(seq uint64) (ours, known bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.ours[seq], seq <= x.scanned.Seq
}

// waitScanned waits until the message at seq was tried, or ctx ends.
func (x *index) waitScanned(ctx context.Context, seq uint64) error {
	for {
		x.mu.Lock()
		done, ch, stopped := x.scanned.Seq >= seq, x.changed, x.stopped
		x.mu.Unlock()
		if done {
			return nil
		}
		if stopped {
			return errors.New("private: the index has stopped (see the log)")
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// run tries every message after the checkpoint, then each new one, until
// ctx ends; it saves the checkpoint and closes the file at the end.
func (x *index) run(ctx context.Context) error {
	defer x.close()
	x.mu.Lock()
	q := store.LogQuery{Live: true}
	if x.scanned.Seq > 0 {
		ts := x.scanned.Timestamp
		q.Gt = &ts
	}
	x.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	it, err := x.st.Log(ctx, q)
	if err != nil {
		return fmt.Errorf("private: index: %w", err)
	}
	defer it.Close()

	// One goroutine reads the log; this one tries batches. The reader has
	// ended (and no longer uses it) before it is closed.
	items := make(chan store.Item, batch)
	var readErr error
	defer func() {
		cancel()
		for range items {
		}
	}()
	go func() {
		defer close(items)
		for {
			item, err := it.Next(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) && !errors.Is(err, io.EOF) {
					readErr = err
				}
				return
			}
			select {
			case items <- item:
			case <-ctx.Done():
				return
			}
		}
	}()
	buf := make([]store.Item, 0, batch)
	for {
		item, ok := <-items
		if !ok {
			break
		}
		buf = append(buf[:0], item)
	more:
		for len(buf) < batch {
			select {
			case item, ok := <-items:
				if !ok {
					break more
				}
				buf = append(buf, item)
			default:
				break more
			}
		}
		if err := x.try(buf); err != nil {
			return err
		}
	}
	return readErr // items is closed: the reader has ended
}

// try looks for our messages in a batch, in parallel, records them, and
// moves the checkpoint past the batch.
func (x *index) try(items []store.Item) error {
	found := make([]bool, len(items))
	var malformed, tried int
	var mu sync.Mutex
	workers := min(runtime.GOMAXPROCS(0), max(1, len(items)/16))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var nm, nt int
			for i := w; i < len(items); i += workers {
				content, ok := privateContent(items[i].Value, x.unbox)
				if !ok {
					continue
				}
				nt++
				_, mine, err := x.unbox.Unbox(content) // the body too: a box of ours that does not open is not ours
				if err != nil {
					nm++
					continue
				}
				found[i] = mine
			}
			mu.Lock()
			malformed += nm
			tried += nt
			mu.Unlock()
		})
	}
	wg.Wait()

	var rec []byte
	for i, ok := range found {
		if ok {
			rec = binary.LittleEndian.AppendUint64(rec, items[i].Seq)
		}
	}
	if len(rec) > 0 {
		if _, err := x.file.Write(rec); err != nil {
			return fmt.Errorf("private: index: %w", err)
		}
		if err := x.file.Sync(); err != nil {
			return fmt.Errorf("private: index: %w", err)
		}
	}
	last := items[len(items)-1]
	x.mu.Lock()
	for i, ok := range found {
		if ok {
			x.ours[items[i].Seq] = true
			x.stats.Ours++
		}
	}
	x.stats.Tried += tried
	x.stats.Malformed += malformed
	x.scanned = checkpoint{Seq: last.Seq, Key: last.Key, Timestamp: last.Timestamp}
	close(x.changed)
	x.changed = make(chan struct{})
	save := time.Since(x.saved) >= saveEvery
	x.mu.Unlock()
	if save {
		return x.save()
	}
	return nil
}

// save writes the checkpoint durably.
func (x *index) save() error {
	x.mu.Lock()
	cp := x.scanned
	x.saved = time.Now()
	x.mu.Unlock()
	if cp.Seq == 0 {
		return nil
	}
	b, _ := json.Marshal(cp)
	if err := vfs.WriteFile(vfs.Default, filepath.Join(x.dir, scannedFile), b, 0o600); err != nil {
		return fmt.Errorf("private: index: %w", err)
	}
	return nil
}

func (x *index) close() {
	x.mu.Lock()
	x.stopped = true
	close(x.changed)
	x.changed = make(chan struct{})
	x.mu.Unlock()
	if err := x.save(); err != nil {
		x.log.Warn("private: saving the index checkpoint", "err", err)
	}
	x.file.Close()
}

// privateContent returns the content of a message value when it is a
// string in one of the formats f knows (".box"; box2 could sit beside it).
func privateContent(value []byte, f privatebox.Formats) (string, bool) {
	// A cheap test first: most messages are public.
	if !bytes.Contains(value, []byte(`"content":"`)) {
		return "", false
	}
	s, ok := canonicalContent(value)
	if !ok {
		var v struct{ Content json.RawMessage }
		if json.Unmarshal(value, &v) != nil || len(v.Content) == 0 || v.Content[0] != '"' {
			return "", false
		}
		if json.Unmarshal(v.Content, &s) != nil {
			return "", false
		}
	}
	return s, f.Has(s)
}

// contentKey is where a signed message's content string starts in the
// form the store keeps (compact, fields in the signed order: the content
// follows the hash).
var contentKey = []byte(`"hash":"sha256","content":"`)

// canonicalContent finds a content string without escapes in a message
// value in the store's form, without decoding the JSON (the index reads
// every message; a box is base64 and never holds an escape). ok is false
// when the value is not in that form; the caller decodes it then.
func canonicalContent(value []byte) (string, bool) {
	i := bytes.Index(value, contentKey)
	if i < 0 {
		return "", false
	}
	rest := value[i+len(contentKey):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 || bytes.IndexByte(rest[:j], '\\') >= 0 || !bytes.HasPrefix(rest[j:], []byte(`","signature":"`)) {
		return "", false
	}
	return string(rest[:j]), true
}
