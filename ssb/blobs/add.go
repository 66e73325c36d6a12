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
	"sync"
	"time"

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
	f, tmp, err := s.createTemp()
	if err != nil {
		return refs.Blob{}, 0, fmt.Errorf("blobs: add: %w", err)
	}
	id, size, err := s.write(ctx, f, r)
	var mtime time.Time
	if err == nil {
		var fi os.FileInfo
		if fi, err = f.Stat(); err == nil {
			mtime = fi.ModTime()
		}
	}
	if err == nil && expected != nil && *expected != id {
		err = fmt.Errorf("%w: the bytes hash to %s, expected %s", ErrMismatch, id, *expected)
	}
	if err == nil {
		err = s.place(f, tmp, id, size, mtime)
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("blobs: add: %w", cerr)
	}
	if err != nil {
		if tmp == "" {
			return refs.Blob{}, 0, err // an unnamed file: gone with its descriptor
		}
		if rerr := os.Remove(tmp); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.log.Warn("blobs: remove temporary file", "file", tmp, "err", rerr)
		}
		return refs.Blob{}, 0, err
	}
	return id, size, nil
}

// write copies r into f in chunks, hashing, up to the limit, and fsyncs f.
func (s *Store) write(ctx context.Context, f *os.File, r io.Reader) (refs.Blob, int64, error) {
	h := sha256.New()
	size, err := s.copyIn(ctx, io.MultiWriter(f, h), r)
	if err != nil {
		return refs.Blob{}, 0, err
	}
	if err := checkCtx(ctx); err != nil {
		return refs.Blob{}, 0, err
	}
	if err := f.Sync(); err != nil {
		return refs.Blob{}, 0, fmt.Errorf("blobs: add: %w", err)
	}
	return refs.NewBlob([32]byte(h.Sum(nil))), size, nil
}

// copyIn copies r into w in chunks, up to the limit, with a buffer of
// chunkPool that it gives back before the fsync.
func (s *Store) copyIn(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	r = io.LimitReader(r, s.max+1) // one byte over is enough to refuse
	bp := chunkPool.Get().(*[ChunkSize]byte)
	defer chunkPool.Put(bp)
	buf := bp[:]
	var size int64
	for {
		if err := checkCtx(ctx); err != nil {
			return 0, err
		}
		n, rerr := r.Read(buf)
		size += int64(n)
		if size > s.max {
			return 0, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, s.max)
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return 0, fmt.Errorf("blobs: add: %w", err)
		}
		if rerr == io.EOF {
			return size, nil
		}
		if rerr != nil {
			return 0, fmt.Errorf("blobs: add aborted: read: %w", rerr)
		}
	}
}

// chunkPool holds the chunk buffers of adds: a fetch of many small blobs
// would otherwise allocate one per blob, and the collector run that often.
var chunkPool = sync.Pool{New: func() any { return new([ChunkSize]byte) }}

// createTemp returns the file an add writes to: an unnamed file in the
// temporary folder where the system has them (Linux's O_TMPFILE: nothing
// is left by a crash, and placing it is one link), or a named one, whose
// name it returns.
func (s *Store) createTemp() (*os.File, string, error) {
	tmpdir := filepath.Join(s.dir, tmpDir)
	for range 2 {
		var f *os.File
		var err error
		if s.unnamed {
			f, err = openUnnamed(tmpdir)
		} else {
			f, err = os.CreateTemp(tmpdir, "add-*")
		}
		if errors.Is(err, fs.ErrNotExist) { // removed under us, as a starting multiblob does
			if err := os.MkdirAll(tmpdir, 0o700); err != nil {
				return nil, "", err
			}
			continue
		}
		if err != nil {
			return nil, "", err
		}
		if s.unnamed {
			return f, "", nil
		}
		return f, f.Name(), nil
	}
	return nil, "", fmt.Errorf("%s keeps disappearing", tmpdir)
}

// place puts the verified temporary file f (named tmp, or unnamed when
// tmp is "") at id's path unless the blob is there already, makes that
// durable and tells subscribers.
func (s *Store) place(f *os.File, tmp string, id refs.Blob, size int64, mtime time.Time) error {
	p := s.Path(id)
	dir := filepath.Dir(p)
	if err := s.mkdir(dir); err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	var exists bool
	var err error
	if tmp == "" {
		err = linkUnnamed(f, p)             // fails with EEXIST rather than replace
		if errors.Is(err, fs.ErrNotExist) { // the prefix folder was removed under us
			s.dirs.Delete(dir)
			if err = s.mkdir(dir); err == nil {
				err = linkUnnamed(f, p)
			}
		}
		if errors.Is(err, fs.ErrExist) {
			exists, err = true, nil
		}
	} else {
		s.renameMu.Lock()
		_, serr := os.Stat(p)
		exists = serr == nil
		if !exists {
			err = os.Rename(tmp, p)
		}
		s.renameMu.Unlock()
		if exists {
			if err := os.Remove(tmp); err != nil {
				s.log.Warn("blobs: remove temporary file", "file", tmp, "err", err)
			}
		}
	}
	if err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	// When the blob was there, the stored file has the same bytes; it may
	// come from a concurrent Add still making it durable, so do that too.
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("blobs: add: %w", err)
	}
	if exists {
		return nil
	}
	info := Info{ID: id, Size: size, Time: mtime}
	if s.onAdd != nil {
		s.onAdd(info)
	}
	s.publish(info)
	return nil
}

// mkdir creates the prefix directory sha256/xx if needed, durably. The
// prefixes known to exist are remembered (there are 256).
func (s *Store) mkdir(dir string) error {
	if _, ok := s.dirs.Load(dir); ok {
		return nil
	}
	if _, err := os.Stat(dir); err != nil {
		if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := syncDir(filepath.Dir(dir)); err != nil {
			return err
		}
	}
	s.dirs.Store(dir, true)
	return nil
}
