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
// While no query waits, the follower lets a batch grow (up to MaxBatch)
// while messages keep coming: fewer, larger transactions cost the appends
// competing for the disk and the cores less. One batch is written while
// the next is gathered; a view whose Spec has Prepare computes the next
// batch (parsing, keys) meanwhile.
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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// MaxBatch is the most messages written in one transaction, and
// MaxBatchBytes the most bytes of message values and of what Prepare made
// of them (a Sizer's Size; a batch holds at least one message). A
// transaction rewrites every page it touches, and the keys of a view are
// spread over its file: a view that has fallen behind catches up much
// faster in large batches. The follower holds two batches at most (one
// being written).
const (
	MaxBatch      = 8192
	MaxBatchBytes = 16 << 20
)

// A Sizer is a prepared part of a batch that tells the bytes it holds.
type Sizer interface{ Size() int }

// readAhead is how many messages the log reader keeps ready for the
// follower.
const readAhead = 1024

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
	// Prepare and Write, set instead of Update, split its work in two.
	// Prepare runs outside any transaction on successive parts of a
	// batch as they arrive, while the previous batch is written (so
	// parsing and computing keys overlap with the commit and its fsync);
	// Write then writes the batch in tx from what Prepare returned for
	// each part, in order (not at all when the view is dropped
	// meanwhile). The same rules as Update's hold for both.
	Prepare func(items []store.Item) (any, error)
	Write   func(tx *bolt.Tx, prepared []any) error
}

// prepare prepares a part of a batch.
func (s Spec) prepare(items []store.Item) (any, error) {
	if s.Prepare != nil {
		return s.Prepare(items)
	}
	return items, nil
}

// write writes a batch from its prepared parts.
func (s Spec) write(tx *bolt.Tx, parts []any) error {
	if s.Prepare != nil {
		return s.Write(tx, parts)
	}
	for _, p := range parts {
		if err := s.Update(tx, p.([]store.Item)); err != nil {
			return err
		}
	}
	return nil
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
	if spec.Name == "" || (spec.Update == nil) == (spec.Prepare == nil) || (spec.Prepare == nil) != (spec.Write == nil) || !validName(spec.Name) {
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
	opts := &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType, InitialMmapSize: initialMmapSize}
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

// initialMmapSize is the address space bbolt maps a view file in at
// first: when the file outgrows its map, bbolt copies every key and value
// the write transaction has touched out of the map and maps the file
// again (a tenth of a large batch's time when it happens). Address space
// is cheap on 64-bit systems; the pages are read only when used.
const initialMmapSize = 1 << 30 * (strconv.IntSize / 64)

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
	items := make(chan store.Item, readAhead)
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
	// One batch is written (by a goroutine of its own) while the next is
	// gathered and prepared.
	var w *inFlight
	defer func() {
		cancel()
		if w != nil {
			<-w.done
		}
		for range items {
		}
		<-reader
	}()
	for {
		var item store.Item
		var ok bool
		for {
			changed := v.Changed() // before the check: a change after it wakes the select
			if err := v.restartDue(gen); err != nil {
				return err
			}
			var busy <-chan struct{} // nil: no write in flight
			if w != nil {
				busy = w.done
			}
			select {
			case item, ok = <-items:
			case <-changed:
				continue
			case <-busy:
				err := w.err
				if w = nil; err != nil {
					return err
				}
				continue
			}
			break
		}
		if !ok {
			if w != nil {
				if err := w.wait(); err != nil {
					return err
				}
			}
			<-reader
			if readErr != nil {
				return fmt.Errorf("index: %s: %w", v.spec.Name, readErr)
			}
			return ctx.Err()
		}
		b, err := v.gather(items, item, w)
		if err != nil {
			return err
		}
		if w != nil {
			if err := w.wait(); err != nil {
				return err
			}
		}
		w = &inFlight{done: make(chan struct{})}
		go func(w *inFlight) {
			defer close(w.done)
			w.err = v.write(gen, b.last, b.parts)
		}(w)
	}
}

// inFlight is a batch being written.
type inFlight struct {
	done chan struct{} // closed when the write has ended
	err  error
}

func (w *inFlight) wait() error {
	<-w.done
	return w.err
}

// A batch is a gathered batch, prepared.
type batch struct {
	last  store.Item
	parts []any // prepared
}

// prepareChunk is how many messages are prepared at a time while a batch
// is gathered.
const prepareChunk = 512

// While no query waits for it, the follower writes a batch smaller than
// MaxBatch only when no message came for BatchDelay, or MaxBatchDelay
// after the batch began: fewer, larger transactions cost the appends
// competing for the disk and the cores much less.
const (
	BatchDelay    = 20 * time.Millisecond
	MaxBatchDelay = time.Second
)

// gather makes a batch of first and what items has, up to MaxBatch
// messages and MaxBatchBytes: what is there at once, what arrives while
// the previous batch (w, may be nil) is being written, then, while nobody
// waits on the view, what arrives until the log is quiet for BatchDelay
// or MaxBatchDelay has passed since the start. It prepares the messages a
// chunk at a time as they come. An error is Prepare's (or the previous
// write's).
func (v *View) gather(items <-chan store.Item, first store.Item, w *inFlight) (batch, error) {
	deadline := time.Now().Add(MaxBatchDelay)
	buf := []store.Item{first}
	size, prepared := len(first.Value), 0
	var b batch
	prepare := func() error {
		if prepared == len(buf) {
			return nil
		}
		part, err := v.spec.prepare(buf[prepared:])
		if err != nil {
			return fmt.Errorf("index: %s: %w", v.spec.Name, err)
		}
		b.parts = append(b.parts, part)
		prepared = len(buf)
		if s, ok := part.(Sizer); ok {
			size += s.Size()
		}
		return nil
	}
	var busy <-chan struct{}
	if w != nil {
		busy = w.done
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	add := func(item store.Item) error {
		buf = append(buf, item)
		size += len(item.Value)
		if len(buf)-prepared >= prepareChunk {
			return prepare()
		}
		return nil
	}
gathering:
	for len(buf) < MaxBatch && size < MaxBatchBytes {
		if busy == nil && v.waiters.Load() > 0 {
			break
		}
		select {
		case item, ok := <-items:
			if !ok {
				break gathering
			}
			if err := add(item); err != nil {
				return b, err
			}
			continue
		default:
		}
		if busy != nil { // the previous batch is being written: gather on
			select {
			case item, ok := <-items:
				if !ok {
					break gathering
				}
				if err := add(item); err != nil {
					return b, err
				}
			case <-busy:
				busy = nil
				if w.err != nil {
					return b, w.err
				}
			}
			continue
		}
		if time.Now().After(deadline) {
			break
		}
		if timer == nil {
			timer = time.NewTimer(BatchDelay)
		} else {
			timer.Reset(BatchDelay)
		}
		select {
		case item, ok := <-items:
			if !ok {
				break gathering
			}
			if err := add(item); err != nil {
				return b, err
			}
		case <-timer.C:
			break gathering
		case <-v.waiting:
			break gathering
		}
	}
	if err := prepare(); err != nil {
		return b, err
	}
	b.last = buf[len(buf)-1]
	return b, nil
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

// write applies a batch (its prepared parts) and moves the checkpoint to
// last in one transaction.
func (v *View) write(gen uint64, last store.Item, parts []any) error {
	v.wmu.Lock()
	defer v.wmu.Unlock()
	if err := v.restartDue(gen); err != nil {
		return err
	}
	cp := Checkpoint{Seq: last.Seq, Key: last.Key, Timestamp: last.Timestamp}
	v.dbMu.RLock()
	db := v.db
	var err error
	if db == nil {
		err = ErrClosed
	} else {
		err = guard(func() error {
			return db.Update(func(tx *bolt.Tx) error {
				if err := v.spec.write(tx, parts); err != nil {
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
