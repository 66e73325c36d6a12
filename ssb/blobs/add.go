package blobs

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Add stores the bytes r yields and returns their id and size. If expected
// is not nil the bytes must hash to it, or Add fails with ErrMismatch. More
// than the store's limit fails with ErrTooLarge. On any error, including a
// read error of r and ctx ending, nothing is stored.
//
// The bytes go to a temporary file, hashed on the way; the file is fsynced,
// its hash checked, then it is renamed into place and the directory
// fsynced; only then does Add return and tell subscribers. Adding a blob
// that is already stored (also by a concurrent Add of the same bytes)
// succeeds and leaves the stored file alone; subscribers hear of a blob
// once.
//
// Add checks ctx between chunks; a Read of r that blocks is not
// interrupted, so a caller that cancels ctx should also close the stream r
// reads from.
func (s *Store) Add(ctx context.Context, r io.Reader, expected *refs.Blob) (refs.Blob, int64, error) {
	if s.isClosed() {
		return refs.Blob{}, 0, ErrClosed
	}
	if err := checkCtx(ctx); err != nil {
		return refs.Blob{}, 0, err
	}
	tmpdir := filepath.Join(s.dir, tmpDir)
	f, err := os.CreateTemp(tmpdir, "add-*")
	if errors.Is(err, fs.ErrNotExist) { // removed under us, as a starting multiblob does
		if err = os.MkdirAll(tmpdir, 0o700); err == nil {
			f, err = os.CreateTemp(tmpdir, "add-*")
		}
	}
	if err != nil {
		return refs.Blob{}, 0, fmt.Errorf("blobs: add: %w", err)
	}
	tmp := f.Name()
	id, size, err := s.write(ctx, f, r)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("blobs: add: %w", cerr)
	}
	if err == nil && expected != nil && *expected != id {
		err = fmt.Errorf("%w: the bytes hash to %s, expected %s", ErrMismatch, id, *expected)
	}
	if err == nil {
		err = s.place(tmp, id, size)
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("blobs: remove temporary file", "file", tmp, "err", rerr)
		}
		return refs.Blob{}, 0, err
	}
	return id, size, nil
}

// write copies r into f in chunks, hashing, up to the limit, and fsyncs f.
func (s *Store) write(ctx context.Context, f *os.File, r io.Reader) (refs.Blob, int64, error) {
	r = io.LimitReader(r, s.max+1) // one byte over is enough to refuse
	h := sha256.New()
	w := io.MultiWriter(f, h)
	buf := make([]byte, ChunkSize)
	var size int64
	for {
		if err := checkCtx(ctx); err != nil {
			return refs.Blob{}, 0, err
		}
		n, rerr := r.Read(buf)
		size += int64(n)
		if size > s.max {
			return refs.Blob{}, 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.max)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return refs.Blob{}, 0, fmt.Errorf("blobs: add: %w", err)
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return refs.Blob{}, 0, fmt.Errorf("blobs: add aborted: read: %w", rerr)
		}
	}
	if err := checkCtx(ctx); err != nil {
		return refs.Blob{}, 0, err
	}
	if err := f.Sync(); err != nil {
		return refs.Blob{}, 0, fmt.Errorf("blobs: add: %w", err)
	}
	return refs.NewBlob([32]byte(h.Sum(nil))), size, nil
}

// place renames the verified temporary file tmp into id's path unless the
// blob is there already, makes the rename durable and tells subscribers.
func (s *Store) place(tmp string, id refs.Blob, size int64) error {
	p := s.Path(id)
	dir := filepath.Dir(p)
	if err := s.mkdir(dir); err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	s.renameMu.Lock()
	_, err := os.Stat(p)
	exists := err == nil
	if !exists {
		err = os.Rename(tmp, p)
	}
	s.renameMu.Unlock()
	if exists {
		// The stored file has the same bytes; it may come from a
		// concurrent Add still making it durable, so do that too.
		if err := os.Remove(tmp); err != nil {
			s.log.Warn("blobs: remove temporary file", "file", tmp, "err", err)
		}
		if err := syncDir(dir); err != nil {
			return fmt.Errorf("blobs: add: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	fi, err := os.Stat(p)
	if err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	info := Info{ID: id, Size: size, Time: fi.ModTime()}
	if s.onAdd != nil {
		s.onAdd(info)
	}
	s.publish(info)
	return nil
}

// mkdir creates the prefix directory sha256/xx if needed, durably.
func (s *Store) mkdir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(filepath.Dir(dir))
}
