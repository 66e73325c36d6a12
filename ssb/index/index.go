// Package index keeps derived views of the store's log, each in its own
// bbolt file (<dir>/<name>.bolt, usually <data>/indexes/): a view follows
// the log from its checkpoint, writes each batch of new messages (whatever
// is available, up to MaxBatch) in one transaction together with the
// checkpoint {seq, key, timestamp} of the last message of the batch, and
// answers queries in read transactions.
//
// A view is a name, a version and an update function (Spec); the package
// knows nothing of what the update writes. The file is derived data: when
// it cannot be trusted it is dropped and the view follows the log again
// from the start. That happens at Open when the file is not a bbolt file
// or is damaged (CheckFile walks its pages with plain reads before bbolt
// maps it: bbolt trusts its file, and would fault or panic, some of it in
// goroutines of its own), belongs to another view or to another version
// of this one, or holds a checkpoint whose key is not at its seq in the
// store (the store was rebuilt by sbot repair, or replaced, or that
// message was deleted); and at run time when a read or write meets damage
// (bbolt's panics and memory faults are recovered), and on Rebuild.
//
// While no query waits, the follower lets a batch grow for BatchDelay:
// fewer, larger transactions cost the appends competing for the disk and
// the cores less.
//
// Queries call Wait(ctx, st.Durable()) first, so they see every message
// the store had acknowledged when they started.
package index

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// MaxBatch is the most messages written in one transaction.
const MaxBatch = 1024

// Errors of the package.
var (
	// ErrClosed is returned by calls on a closed View.
	ErrClosed = errors.New("index: closed")
	// ErrStopped is returned by Wait when the view no longer follows the
	// log (its Run has returned) and has not reached the sequence.
	ErrStopped = errors.New("index: the view is not following the log")
	// ErrDamaged is wrapped by the errors of reads and writes that met a
	// damaged file; the view then starts over.
	ErrDamaged = errors.New("index: damaged view file")
)

// A Spec says what a view is.
type Spec struct {
	// Name names the file (<dir>/<Name>.bolt); letters, digits, '-' and '_'.
	Name string
	// Version is the format of what Update writes: a file written by
	// another version is dropped and the view rebuilt.
	Version uint32
	// Update writes what the items (new messages, in log order, with key,
	// value, receive timestamp and seq) add to the view, in tx. It must
	// not keep tx or the items' values. An error stops the view (Run
	// returns it): it is a bug or a disk error, not a bad message.
	Update func(tx *bolt.Tx, items []store.Item) error
}

// A Checkpoint is the last message a view has seen.
type Checkpoint struct {
	Seq       uint64       `json:"seq"`
	Key       refs.Message `json:"key"`
	Timestamp float64      `json:"timestamp"`
}

// metaBucket holds the view's own records; Update must not touch it.
var metaBucket = []byte("\x00index")

var (
	keyName       = []byte("name")
	keyVersion    = []byte("version")
	keyCheckpoint = []byte("checkpoint")
)

// A View is one derived index. Its methods are safe for concurrent use.
type View struct {
	spec Spec
	st   *store.Store
	path string
	log  *slog.Logger

	// dbMu guards db: readers hold it shared for a transaction, a drop
	// holds it exclusively while it replaces the file.
	dbMu sync.RWMutex
	db   *bolt.DB

	wmu sync.Mutex // one writer: the follower, or a drop

	mu       sync.Mutex
	cp       Checkpoint
	gen      uint64        // bumped by each drop: the follower restarts
	changed  chan struct{} // closed and replaced when cp changes
	running  bool
	stopped  bool // Run has returned (and not run again)
	closed   bool
	rebuilds int
	damaged  bool // a read met damage: the follower drops the file

	waiters atomic.Int32  // calls in Wait
	waiting chan struct{} // a Wait began (buffered: one pending signal)
}

// Open opens (or creates) the view's file in dir and checks it against
// the store (see the package documentation). It does not follow the log:
// Run does.
func Open(st *store.Store, dir string, spec Spec, log *slog.Logger) (*View, error) {
	if spec.Name == "" || spec.Update == nil || !validName(spec.Name) {
		return nil, fmt.Errorf("index: invalid spec (name %q)", spec.Name)
	}
	if log == nil {
		log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	v := &View{spec: spec, st: st, path: filepath.Join(dir, spec.Name+".bolt"), log: log, changed: make(chan struct{}), waiting: make(chan struct{}, 1)}
	db, cp, err := v.openFile()
	if err != nil {
		return nil, err
	}
	v.db, v.cp = db, cp
	return v, nil
}

func validName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// openFile opens the file, dropping it when it cannot be used, and returns
// the checkpoint to resume from.
func (v *View) openFile() (*bolt.DB, Checkpoint, error) {
	db, cp, why, err := v.tryOpen()
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if why == "" {
		return db, cp, nil
	}
	v.log.Warn("index: starting the view over", "view", v.spec.Name, "reason", why)
	if db != nil {
		db.Close()
	}
	if err := os.Remove(v.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, Checkpoint{}, fmt.Errorf("index: %s: %w", v.spec.Name, err)
	}
	db, cp, why, err = v.tryOpen()
	if err != nil {
		return nil, Checkpoint{}, err
	}
	if why != "" {
		if db != nil {
			db.Close()
		}
		return nil, Checkpoint{}, fmt.Errorf("index: %s: a new file is unusable: %s", v.spec.Name, why)
	}
	return db, cp, nil
}

// tryOpen opens the file. A non-empty why says it must be dropped (db may
// then be open, to be closed); err is an error that dropping cannot fix
// (another process holds the file).
func (v *View) tryOpen() (db *bolt.DB, cp Checkpoint, why string, err error) {
	// The freelist is synced: without it bbolt rebuilds it at open by walking
	// the file in a goroutine of its own, where a damaged page panics
	// beyond recovery.
	opts := &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType}
	if err := checkFile(v.path); err != nil {
		return nil, cp, err.Error(), nil
	}
	err = guard(func() error {
		var oerr error
		db, oerr = bolt.Open(v.path, 0o600, opts)
		return oerr
	})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, cp, "", fmt.Errorf("index: %s: the file is locked by another process", v.spec.Name)
	}
	if err != nil {
		return nil, cp, "not a usable bbolt file: " + err.Error(), nil
	}
	err = guard(func() error {
		return db.Update(func(tx *bolt.Tx) error {
			m := tx.Bucket(metaBucket)
			if m == nil {
				if c := tx.Cursor(); func() bool { k, _ := c.First(); return k != nil }() {
					return errForeign
				}
				m, err := tx.CreateBucket(metaBucket)
				if err != nil {
					return err
				}
				if err := m.Put(keyName, []byte(v.spec.Name)); err != nil {
					return err
				}
				return m.Put(keyVersion, binary.BigEndian.AppendUint32(nil, v.spec.Version))
			}
			if !bytes.Equal(m.Get(keyName), []byte(v.spec.Name)) {
				return errForeign
			}
			if ver := m.Get(keyVersion); len(ver) != 4 || binary.BigEndian.Uint32(ver) != v.spec.Version {
				return errVersion
			}
			var derr error
			cp, derr = DecodeCheckpoint(m.Get(keyCheckpoint))
			return derr
		})
	})
	switch {
	case errors.Is(err, errForeign):
		return db, cp, "the file belongs to another view", nil
	case errors.Is(err, errVersion):
		return db, cp, "the file is of another version of the view", nil
	case err != nil:
		return db, cp, "damaged: " + err.Error(), nil
	}
	if cp.Seq > 0 {
		it, gerr := v.st.GetSeq(cp.Seq)
		if gerr != nil || it.Key != cp.Key {
			return db, Checkpoint{}, fmt.Sprintf("the store changed under the view (rebuilt?): message %d is not %s", cp.Seq, cp.Key), nil
		}
	}
	return db, cp, "", nil
}

var (
	errForeign = errors.New("index: foreign file")
	errVersion = errors.New("index: other version")
)

// EncodeCheckpoint is the checkpoint as it is stored: JSON.
func EncodeCheckpoint(cp Checkpoint) []byte {
	b, _ := json.Marshal(cp)
	return b
}

// DecodeCheckpoint reads a stored checkpoint; nil is the zero checkpoint
// (nothing seen).
func DecodeCheckpoint(b []byte) (Checkpoint, error) {
	var cp Checkpoint
	if b == nil {
		return cp, nil
	}
	if err := json.Unmarshal(b, &cp); err != nil {
		return Checkpoint{}, fmt.Errorf("index: checkpoint: %w", err)
	}
	if cp.Seq > 0 && (cp.Key.IsZero() || math.IsNaN(cp.Timestamp) || math.IsInf(cp.Timestamp, 0)) {
		return Checkpoint{}, fmt.Errorf("index: checkpoint %d lacks a key or a timestamp", cp.Seq)
	}
	if cp.Seq == 0 && (!cp.Key.IsZero() || cp.Timestamp != 0) {
		return Checkpoint{}, errors.New("index: checkpoint: a key without a seq")
	}
	return cp, nil
}

// guard runs fn, turning a panic or a memory fault inside bbolt (a damaged
// or truncated file) into an error wrapping ErrDamaged.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	return fn()
}

// Name returns the view's name.
func (v *View) Name() string { return v.spec.Name }

// Checkpoint returns the last message the view has seen.
func (v *View) Checkpoint() Checkpoint {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.cp
}

// Changed returns a channel closed at the view's next change: a batch
// written, a drop, or the end of Run.
func (v *View) Changed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

func (v *View) notifyLocked() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// Wait returns when the view has seen the message at seq, or with ctx's
// error, or ErrStopped when the view no longer follows the log (Run has
// returned) and has not seen it, or ErrClosed. Before Run starts it waits.
func (v *View) Wait(ctx context.Context, seq uint64) error {
	v.mu.Lock()
	seen, closed := v.cp.Seq >= seq, v.closed
	v.mu.Unlock()
	if seen && !closed {
		return nil
	}
	v.waiters.Add(1)
	defer v.waiters.Add(-1)
	select {
	case v.waiting <- struct{}{}:
	default:
	}
	for {
		v.mu.Lock()
		done, ch, stopped, closed := v.cp.Seq >= seq, v.changed, v.stopped, v.closed
		v.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case done:
			return nil
		case stopped:
			return fmt.Errorf("%w: %s has seen %d of %d", ErrStopped, v.spec.Name, v.Checkpoint().Seq, seq)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// View runs fn in a read transaction of the view. It does not wait: call
// Wait first. fn must not keep tx or the slices bbolt returns.
func (v *View) View(fn func(tx *bolt.Tx) error) error {
	v.dbMu.RLock()
	defer v.dbMu.RUnlock()
	if v.db == nil {
		return ErrClosed
	}
	err := guard(func() error { return v.db.View(fn) })
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	if errors.Is(err, ErrDamaged) {
		v.mu.Lock()
		v.damaged = true
		v.notifyLocked()
		v.mu.Unlock()
		v.log.Error("index: a read met a damaged view file; it will be rebuilt", "view", v.spec.Name, "err", err)
		return fmt.Errorf("index: %s: %w", v.spec.Name, err)
	}
	return err
}

// Status is a view's progress.
type Status struct {
	Name     string `json:"name"`
	Seq      uint64 `json:"seq"`      // the last message seen
	Behind   uint64 `json:"behind"`   // messages of the store not seen yet
	Rebuilds int    `json:"rebuilds"` // drops since Open
}

// Status returns the view's progress against the store.
func (v *View) Status() Status {
	v.mu.Lock()
	s := Status{Name: v.spec.Name, Seq: v.cp.Seq, Rebuilds: v.rebuilds}
	v.mu.Unlock()
	if d := v.st.Durable(); d > s.Seq {
		s.Behind = d - s.Seq
	}
	return s
}

// Rebuild drops what the view holds and follows the log again from the
// start; it returns once the view has caught up with the messages stored
// when it was called, or with ctx's error (the rebuild goes on).
func (v *View) Rebuild(ctx context.Context) error {
	if err := v.drop("rebuild requested"); err != nil {
		return err
	}
	return v.Wait(ctx, v.st.Durable())
}

// drop replaces the file by an empty one and resets the checkpoint; the
// follower restarts from the start of the log.
func (v *View) drop(why string) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	v.dbMu.Lock()
	defer v.dbMu.Unlock()
	if v.db == nil {
		return ErrClosed
	}
	v.log.Warn("index: dropping the view", "view", v.spec.Name, "reason", why)
	v.db.Close()
	v.db = nil
	if err := os.Remove(v.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("index: %s: %w", v.spec.Name, err)
	}
	db, cp, err := v.openFile()
	if err != nil {
		return err
	}
	v.db = db
	v.mu.Lock()
	v.cp = cp
	v.gen++
	v.rebuilds++
	v.damaged = false
	v.notifyLocked()
	v.mu.Unlock()
	return nil
}

// Close closes the file. Run must have returned.
func (v *View) Close() error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return ErrClosed
	}
	v.closed = true
	v.notifyLocked()
	v.mu.Unlock()
	v.wmu.Lock()
	defer v.wmu.Unlock()
	v.dbMu.Lock()
	defer v.dbMu.Unlock()
	if v.db == nil {
		return nil
	}
	err := v.db.Close()
	v.db = nil
	if err != nil {
		return fmt.Errorf("index: %s: %w", v.spec.Name, err)
	}
	return nil
}

// Run follows the log from the checkpoint until ctx ends (it then returns
// nil) or an update fails. Only one Run at a time.
func (v *View) Run(ctx context.Context) error {
	v.mu.Lock()
	if v.running || v.closed {
		v.mu.Unlock()
		return errors.New("index: Run called twice, or after Close")
	}
	v.running, v.stopped = true, false
	v.mu.Unlock()
	defer func() {
		v.mu.Lock()
		v.running, v.stopped = false, true
		v.notifyLocked()
		v.mu.Unlock()
	}()
	for {
		err := v.follow(ctx)
		if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
			return nil
		}
		if errors.Is(err, ErrDamaged) || errors.Is(err, errRestart) {
			if errors.Is(err, ErrDamaged) {
				v.log.Error("index: the view file is damaged; rebuilding", "view", v.spec.Name, "err", err)
				if derr := v.drop(err.Error()); derr != nil {
					return derr
				}
			}
			continue
		}
		return err
	}
}

var errRestart = errors.New("index: restart")

// follow reads the log after the checkpoint into batches until ctx ends,
// the view is dropped (errRestart) or a write fails.
func (v *View) follow(ctx context.Context) error {
	v.mu.Lock()
	cp, gen := v.cp, v.gen
	v.mu.Unlock()
	q := store.LogQuery{Live: true}
	if cp.Seq > 0 {
		ts := cp.Timestamp
		q.Gt = &ts
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	it, err := v.st.Log(ctx, q)
	if err != nil {
		return fmt.Errorf("index: %s: %w", v.spec.Name, err)
	}
	items := make(chan store.Item, MaxBatch)
	var readErr error
	reader := make(chan struct{})
	go func() {
		defer close(reader)
		defer close(items)
		defer it.Close()
		for {
			item, err := it.Next(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, io.EOF) {
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
	defer func() {
		cancel()
		for range items {
		}
		<-reader
	}()
	buf := make([]store.Item, 0, MaxBatch)
	for {
		var item store.Item
		var ok bool
		changed := v.Changed() // before the check: a change after it wakes the select
		if err := v.restartDue(gen); err != nil {
			return err
		}
		select {
		case item, ok = <-items:
		case <-changed:
			continue
		}
		if !ok {
			<-reader
			if readErr != nil {
				return fmt.Errorf("index: %s: %w", v.spec.Name, readErr)
			}
			return ctx.Err()
		}
		buf = append(buf[:0], item)
		buf = v.gather(items, buf)
		if err := v.write(gen, buf); err != nil {
			return err
		}
	}
}

// BatchDelay is how long the follower waits for more messages before it
// writes a batch smaller than MaxBatch while no query waits for it: fewer,
// larger transactions cost the appends competing for the disk and the
// cores much less.
const BatchDelay = 20 * time.Millisecond

// gather adds to buf what items has, up to MaxBatch: what is there at
// once, then, while nobody waits on the view, what arrives within
// BatchDelay.
func (v *View) gather(items <-chan store.Item, buf []store.Item) []store.Item {
	var timer <-chan time.Time
	for len(buf) < MaxBatch {
		select {
		case item, ok := <-items:
			if !ok {
				return buf
			}
			buf = append(buf, item)
			continue
		default:
		}
		if v.waiters.Load() > 0 {
			return buf
		}
		if timer == nil {
			t := time.NewTimer(BatchDelay)
			defer t.Stop()
			timer = t.C
		}
		select {
		case item, ok := <-items:
			if !ok {
				return buf
			}
			buf = append(buf, item)
		case <-timer:
			return buf
		case <-v.waiting:
			return buf
		}
	}
	return buf
}

// restartDue says whether the follower must start over: errRestart when
// the view was dropped, an error wrapping ErrDamaged when a read met
// damage (Run then drops the file), nil to go on.
func (v *View) restartDue(gen uint64) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.damaged {
		v.damaged = false
		return fmt.Errorf("%w: a read met damage", ErrDamaged)
	}
	if v.gen != gen {
		return errRestart
	}
	return nil
}

// write applies a batch and moves the checkpoint in one transaction.
func (v *View) write(gen uint64, items []store.Item) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if err := v.restartDue(gen); err != nil {
		return err
	}
	last := items[len(items)-1]
	cp := Checkpoint{Seq: last.Seq, Key: last.Key, Timestamp: last.Timestamp}
	v.dbMu.RLock()
	db := v.db
	var err error
	if db == nil {
		err = ErrClosed
	} else {
		err = guard(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				if err := v.spec.Update(tx, items); err != nil {
					return err
				}
				return tx.Bucket(metaBucket).Put(keyCheckpoint, EncodeCheckpoint(cp))
			})
		})
	}
	v.dbMu.RUnlock()
	if err != nil {
		return fmt.Errorf("index: %s: %w", v.spec.Name, err)
	}
	v.mu.Lock()
	v.cp = cp
	v.notifyLocked()
	v.mu.Unlock()
	return nil
}
