package blobs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Get opens the blob id for reading and returns it with its size. The
// caller reads it in chunks (ChunkSize, as JavaScript does) and must close
// it. The empty blob is always there, as in multiblob.
func (s *Store) Get(id refs.Blob) (io.ReadCloser, int64, error) {
	f, size, err := s.open(id)
	if err != nil {
		return nil, 0, err
	}
	if f == nil {
		return io.NopCloser(strings.NewReader("")), 0, nil
	}
	return f, size, nil
}

// GetSlice opens the bytes [start, end) of the blob id, as
// blobs.getSlice, and returns them with their length. end is clamped to the
// blob's size; a range that starts at or after its end is empty. Negative
// offsets are an error.
func (s *Store) GetSlice(id refs.Blob, start, end int64) (io.ReadCloser, int64, error) {
	if start < 0 || end < 0 {
		return nil, 0, fmt.Errorf("blobs: %s: negative slice [%d, %d)", id, start, end)
	}
	f, size, err := s.open(id)
	if err != nil {
		return nil, 0, err
	}
	end = min(end, size)
	if start >= end {
		if f != nil {
			f.Close()
		}
		return io.NopCloser(strings.NewReader("")), 0, nil
	}
	return sectionCloser{io.NewSectionReader(f, start, end-start), f}, end - start, nil
}

// open opens the file of the blob id and returns it with its size; for the
// empty blob it returns no file.
func (s *Store) open(id refs.Blob) (*os.File, int64, error) {
	if id == emptyID {
		return nil, 0, nil
	}
	f, err := os.Open(s.Path(id))
	if err != nil {
		return nil, 0, notFound(id, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("blobs: %s: %w", id, err)
	}
	return f, fi.Size(), nil
}

// A sectionCloser reads a section of a file and closes the file.
type sectionCloser struct {
	*io.SectionReader
	io.Closer
}

// Has reports whether the blob id is stored.
func (s *Store) Has(id refs.Blob) (bool, error) {
	_, err := s.Stat(id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// Size returns the size of the blob id, or ErrNotFound.
func (s *Store) Size(id refs.Blob) (int64, error) {
	info, err := s.Stat(id)
	return info.Size, err
}

// Stat describes the blob id (blobs.meta), or returns ErrNotFound.
func (s *Store) Stat(id refs.Blob) (Info, error) {
	if id == emptyID {
		return Info{ID: id}, nil
	}
	fi, err := os.Stat(s.Path(id))
	if err != nil {
		return Info{}, notFound(id, err)
	}
	return Info{ID: id, Size: fi.Size(), Time: fi.ModTime()}, nil
}

// Remove deletes the blob id (blobs.rm), or returns ErrNotFound.
func (s *Store) Remove(id refs.Blob) error {
	p := s.Path(id)
	if err := os.Remove(p); err != nil {
		return notFound(id, err)
	}
	if err := syncDir(filepath.Dir(p)); err != nil {
		return fmt.Errorf("blobs: remove %s: %w", id, err)
	}
	return nil
}

// List yields every stored blob (the old part of blobs.ls), in the order
// of their hashes' hex, until ctx ends. Files in the sha256 folder that are
// not named as blobs are skipped. To see every blob once the listing is
// done, Subscribe before calling List: a blob added meanwhile may then be
// seen twice, never missed.
func (s *Store) List(ctx context.Context) iter.Seq2[Info, error] {
	return func(yield func(Info, error) bool) {
		root := filepath.Join(s.dir, algDir)
		prefixes, err := os.ReadDir(root)
		if err != nil {
			yield(Info{}, fmt.Errorf("blobs: list: %w", err))
			return
		}
		for _, p := range prefixes {
			if !p.IsDir() {
				continue
			}
			if !s.listPrefix(ctx, filepath.Join(root, p.Name()), yield) {
				return
			}
		}
	}
}

// listPrefix yields the blobs of one prefix folder; it returns false when
// the listing must stop.
func (s *Store) listPrefix(ctx context.Context, dir string, yield func(Info, error) bool) bool {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return yield(Info{}, fmt.Errorf("blobs: list: %w", err))
	}
	prefix := filepath.Base(dir)
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			yield(Info{}, fmt.Errorf("blobs: list: %w", err))
			return false
		}
		id, err := idFromNames(prefix, e.Name())
		if err != nil || !e.Type().IsRegular() {
			s.log.Debug("blobs: list: skip file", "dir", dir, "name", e.Name())
			continue
		}
		fi, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since ReadDir
		}
		if err != nil {
			return yield(Info{}, fmt.Errorf("blobs: list: %w", err))
		}
		if !yield(Info{ID: id, Size: fi.Size(), Time: fi.ModTime()}, nil) {
			return false
		}
	}
	return true
}
