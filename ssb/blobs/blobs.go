// Package blobs is a content-addressed store of blobs: files named by the
// SHA-256 hash of their bytes, laid out on disk as the npm multiblob
// package lays them out for ssb-blobs (ssb-server 16), so that a blobs
// folder written by JavaScript can be read here and the reverse.
//
// Layout under the store's directory (<data>/blobs):
//
//	sha256/<first 2 hex digits of the hash>/<remaining 62 hex digits>
//	tmp/<temporary files of adds in progress>
//
// multiblob computes the path as path.join(dir, alg, h.substring(0,2),
// h.substring(2)) with h the lowercase hex of the hash, and removes its tmp
// folder when it starts; Open does the same.
//
// An add streams into a temporary file while hashing, enforces the size
// limit, fsyncs the file, verifies the hash, renames the file into place and
// fsyncs the directory. A blob is therefore either absent or whole, also
// after a crash. Reads are plain file reads: serving a blob costs one
// buffer of the caller's (ChunkSize, as pull-file), whatever its size.
//
// One Store per directory: Open removes the tmp folder, which would break
// the adds of another Store (or a JavaScript server) using the same folder.
package blobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// DefaultMax is the default size limit of a blob in bytes (5 MiB), as
// ssb-blobs: opts.max || 5*1024*1024 (config blobs.max).
const DefaultMax = 5 << 20

// ChunkSize is the size of the chunks a blob is read and sent in: 64 KiB,
// as pull-file, which multiblob reads blobs with.
const ChunkSize = 64 << 10

// DefaultSubscriberBuffer is how many changes a subscriber may fall behind
// before it is dropped (see Subscribe).
const DefaultSubscriberBuffer = 256

// Folder names under the store's directory.
const (
	algDir = "sha256"
	tmpDir = "tmp"
)

var (
	// ErrTooLarge is returned by Add for a blob over the store's limit.
	ErrTooLarge = errors.New("blobs: blob too large")
	// ErrMismatch is returned by Add when the bytes do not hash to the
	// expected id.
	ErrMismatch = errors.New("blobs: hash mismatch")
	// ErrMalformed is returned by ParseID for a string that is not a
	// canonical blob id; it wraps refs.ErrInvalid too.
	ErrMalformed = errors.New("blobs: malformed blob id")
	// ErrNotFound is returned for a blob that is not in the store.
	ErrNotFound = errors.New("blobs: blob not found")
	// ErrClosed is returned by a closed Store, and by Subscription.Err
	// once the Store closed it.
	ErrClosed = errors.New("blobs: store closed")
	// ErrSlow is returned by Subscription.Err when the subscription was
	// dropped because its buffer was full.
	ErrSlow = errors.New("blobs: subscriber too slow, changes dropped")
)

// emptyID is the id of the empty blob, which multiblob always has (size 0)
// whether or not a file holds it.
var emptyID = refs.NewBlob(sha256.Sum256(nil))

// An Info describes a stored blob: its id, size in bytes and modification
// time (multiblob's meta uses the change time; blobs are never modified
// in place, so both are the time the blob was stored).
type Info struct {
	ID   refs.Blob
	Size int64
	Time time.Time
}

// A Store is a folder of blobs. Its methods are safe for concurrent use.
type Store struct {
	dir    string
	max    int64
	subBuf int
	log    *slog.Logger

	renameMu sync.Mutex // makes "exists? else rename" of Add atomic
	unnamed  bool       // adds write unnamed files (O_TMPFILE), linked into place
	dirs     sync.Map   // prefix directories known to exist

	onAdd func(Info)

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	closed bool
}

// An Option configures Open.
type Option func(*Store)

// WithMax sets the size limit of a blob in bytes (default DefaultMax). Adds
// of more bytes fail with ErrTooLarge after reading at most max+1 bytes.
func WithMax(max int64) Option { return func(s *Store) { s.max = max } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithSubscriberBuffer sets how many changes a subscriber may fall behind
// before it is dropped (default DefaultSubscriberBuffer). Memory per
// subscriber is bounded by it.
func WithSubscriberBuffer(n int) Option { return func(s *Store) { s.subBuf = max(n, 1) } }

// WithOnAdd sets a function called once for each blob that becomes
// stored, after it is durable and before Add returns, from the goroutine
// of the Add (the want exchange learns of new blobs this way, without the
// bounded buffer of a Subscription). It must not block for long.
func WithOnAdd(fn func(Info)) Option { return func(s *Store) { s.onAdd = fn } }

// Open opens the store in dir (<data>/blobs), creating it if needed, and
// removes the temporary files that adds interrupted by a crash left.
func Open(dir string, opts ...Option) (*Store, error) {
	s := &Store{
		dir:    dir,
		max:    DefaultMax,
		subBuf: DefaultSubscriberBuffer,
		log:    slog.Default(),
		subs:   make(map[*Subscription]struct{}),
	}
	for _, o := range opts {
		o(s)
	}
	tmp := filepath.Join(dir, tmpDir)
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("blobs: remove temporary files: %w", err)
	}
	for _, d := range []string{dir, filepath.Join(dir, algDir), tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("blobs: open: %w", err)
		}
	}
	s.unnamed = canLinkUnnamed(tmp)
	return s, nil
}

// canLinkUnnamed reports whether unnamed files can be made in dir and
// linked into it (Linux with O_TMPFILE on this file system, and /proc).
func canLinkUnnamed(dir string) bool {
	f, err := openUnnamed(dir)
	if err != nil {
		return false
	}
	defer f.Close()
	probe := filepath.Join(dir, "probe")
	if err := linkUnnamed(f, probe); err != nil {
		return false
	}
	return os.Remove(probe) == nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

// Max returns the size limit of a blob in bytes.
func (s *Store) Max() int64 { return s.max }

// Close ends every subscription (their Err reports ErrClosed); later adds
// fail with ErrClosed. Reads keep working: they hold no state.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	for sub := range s.subs {
		s.dropLocked(sub, ErrClosed)
	}
	return nil
}

// ParseID parses a blob id, &<base64 of 32 bytes>.sha256, strictly: only
// the canonical form is accepted.
func ParseID(str string) (refs.Blob, error) {
	id, err := refs.ParseBlob(str)
	if err != nil {
		return id, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return id, nil
}

// Path returns the file that holds the blob id, as multiblob computes it.
func (s *Store) Path(id refs.Blob) string { return filepath.Join(s.dir, relPath(id)) }

// relPath is sha256/<2 hex>/<62 hex>.
func relPath(id refs.Blob) string {
	h := id.Hash()
	x := hex.EncodeToString(h[:])
	return filepath.Join(algDir, x[:2], x[2:])
}

// idFromNames is the inverse of relPath for the two last path elements: it
// accepts exactly the names relPath produces (lowercase hex).
func idFromNames(prefix, rest string) (refs.Blob, error) {
	var h [32]byte
	if len(prefix) != 2 || len(prefix)+len(rest) != 2*len(h) {
		return refs.Blob{}, fmt.Errorf("blobs: %s/%s is not a blob file name", prefix, rest)
	}
	if _, err := hex.Decode(h[:], []byte(prefix+rest)); err != nil {
		return refs.Blob{}, fmt.Errorf("blobs: %s/%s is not a blob file name: %w", prefix, rest, err)
	}
	if hex.EncodeToString(h[:]) != prefix+rest { // uppercase hex
		return refs.Blob{}, fmt.Errorf("blobs: %s/%s is not a blob file name: not lowercase hex", prefix, rest)
	}
	return refs.NewBlob(h), nil
}

// syncDir fsyncs a directory, so that an entry created or removed in it is
// durable.
func syncDir(dir string) error { return vfs.Default.SyncDir(dir) }

// notFound turns a missing file into ErrNotFound.
func notFound(id refs.Blob, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return fmt.Errorf("blobs: %s: %w", id, err)
}

// checkCtx returns ctx's error, wrapped, if it is done.
func checkCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blobs: add aborted: %w", err)
	}
	return nil
}
