package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// FileName is the name of the database file in the data directory.
const FileName = "messages.bolt"

// Errors of the store. Errors the store returns wrap these (or an error of
// package message, or a context error) so errors.Is tells them apart.
var (
	// ErrClosed is returned by calls on a closed Store, and by live
	// iterators when the Store closes.
	ErrClosed = errors.New("store: closed")
	// ErrLocked is returned by Open when another Store, in this process or
	// another, holds the directory's database.
	ErrLocked = errors.New("store: database is locked by another store")
	// ErrNotFound is returned by Get and Latest for a message or feed the
	// store does not hold.
	ErrNotFound = errors.New("store: not found")
	// ErrDuplicate reports a message the store already holds. The error
	// also wraps a *message.SequenceError (so errors.Is(err,
	// message.ErrSequence) holds too), which tells the feed's next
	// sequence: a replicating caller can skip ahead cheaply.
	ErrDuplicate = errors.New("store: message already stored")
	// ErrCorrupt is wrapped by the errors of Check, and by reads that find
	// the database in a state the store never writes.
	ErrCorrupt = errors.New("store: database is corrupt")
	// ErrFailed is wrapped by the errors of Append after a commit failed:
	// once an fsync has failed nothing says what reached the disk, so the
	// store refuses writes until it is closed and opened again.
	ErrFailed = errors.New("store: an earlier commit failed; reopen the store")
)

// A Store is a durable log of validated SSB messages with its indexes, in
// one bbolt file. Its methods are safe for concurrent use.
type Store struct {
	db      *bolt.DB
	dir     string
	path    string // the database file
	cfg     config
	log     *slog.Logger
	reqs    chan *request
	stopped chan struct{} // closed when the committer returns

	mu      sync.Mutex
	closed  bool
	failed  error         // set once a commit fails
	damaged *DamageError  // set once a read or commit met a damaged file
	durable uint64        // the last receive seq assigned and durable: readers' cap
	last    uint64        // receive seq of the last message still stored (Durable)
	deleted uint64        // messages deleted: positions up to durable the log lacks
	notify  chan struct{} // closed and replaced after each commit
	done    chan struct{} // closed by Close: wakes live readers
	// onAppend and onDelete hold the OnAppend and OnDelete hooks, by
	// registration number.
	onAppend map[uint64]func([]FeedHead)
	onDelete map[uint64]func(Deletion)
	hookID   uint64
	senders  sync.WaitGroup

	commits  atomic.Uint64
	appended atomic.Uint64

	// Owned by the committer goroutine (and Open before it starts).
	lastTS float64 // receive timestamp of the last message
}

// Open opens the store in directory dir, creating both if needed. It fails
// with ErrLocked after the lock timeout (WithLockTimeout) when another
// Store holds the directory.
//
// Before bbolt maps the file, Open checks it (see verifyFile): the meta
// pages, the file's length against the pages the meta page counts (a
// truncated file would fault inside bbolt), the freelist, and the
// structure of every page of every bucket's B+tree — page ids, types,
// element offsets within their page, key order, no page reachable twice
// or both reachable and free. It reads the whole file once (about 150
// ms per 100,000 messages when the file is in the page cache). A damaged
// file fails Open with a *DamageError wrapping ErrDamaged, which says what
// is wrong; Repair rebuilds the store. Open does not read the values:
// damage inside a record is found by Check, or by the read that meets it.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	path := filepath.Join(dir, FileName)
	log := cfg.logger.With("store", path)
	start := time.Now()
	pages, err := verifyLocked(path, cfg.lockTimeout)
	if err != nil {
		return nil, err
	}
	log.Debug("store: file checked", "pages", pages, "took", time.Since(start))
	s := &Store{
		dir:     dir,
		path:    path,
		cfg:     cfg,
		log:     log,
		reqs:    make(chan *request, cfg.queue),
		stopped: make(chan struct{}),
		notify:  make(chan struct{}),
		done:    make(chan struct{}),
	}
	// bbolt reads the meta pages and the freelist as it opens: the check
	// above makes that safe, the guard keeps it from crashing anyway. A
	// panic leaves the file open inside bbolt: close it to drop the lock.
	var file *os.File
	err = s.guard("open", func() error {
		var err error
		s.db, err = bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      cfg.lockTimeout,
			FreelistType: bolt.FreelistMapType,
			NoSync:       false, // acknowledged means fsynced
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				f, err := os.OpenFile(name, flag, perm)
				file = f
				return f, err
			},
		})
		return err
	})
	if errors.Is(err, ErrDamaged) {
		if file != nil {
			file.Close()
		}
		return nil, err
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, cfg.lockTimeout)
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := s.guard("open", s.init); err != nil {
		s.db.Close()
		return nil, err
	}
	go s.commitLoop()
	s.log.Info("store opened", "messages", s.durable-s.deleted, "deleted", s.deleted, "bytes", s.fileSize())
	return s, nil
}

// init creates the buckets of a new database, checks the format of an old
// one, and reads the position of the log's end.
func (s *Store) init() error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store: open: bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(metaVersion); v == nil {
			if err := meta.Put(metaVersion, binary.BigEndian.AppendUint32(nil, formatVersion)); err != nil {
				return fmt.Errorf("store: open: %w", err)
			}
		} else if len(v) != 4 || (binary.BigEndian.Uint32(v) != formatVersion && binary.BigEndian.Uint32(v) != formatDeleted) {
			return fmt.Errorf("store: open: database format %x, this version reads %d and %d", v, formatVersion, formatDeleted)
		}
		top, err := readTop(tx)
		if err != nil {
			return err
		}
		s.durable, s.lastTS, s.deleted = top.seq, top.ts, top.deleted
		s.last = top.last
		return nil
	})
}

// logTop is where the log ends: the last position assigned (seq, with
// its receive timestamp ts), the last message still stored, and the
// number of messages deleted.
type logTop struct {
	seq, last, deleted uint64
	ts                 float64
}

// readTop reads where the log ends: from its last record and, in a store
// from which messages were deleted, the meta entries that remember
// positions deleted at its end.
func readTop(tx *bolt.Tx) (logTop, error) {
	var t logTop
	k, v := tx.Bucket(bucketLog).Cursor().Last()
	if k != nil {
		if len(k) != seqLen || !record(v).valid() {
			return t, fmt.Errorf("%w: last log entry %x", ErrCorrupt, k)
		}
		t.seq, t.last, t.ts = getSeq(k), getSeq(k), record(v).received()
	}
	meta := tx.Bucket(bucketMeta)
	if v := meta.Get(metaTop); v != nil {
		if len(v) != seqLen+8 {
			return t, fmt.Errorf("%w: meta %s has %d bytes", ErrCorrupt, metaTop, len(v))
		}
		if seq := getSeq(v); seq >= t.seq {
			t.seq = seq
			t.ts = max(t.ts, math.Float64frombits(binary.BigEndian.Uint64(v[seqLen:])))
		}
	}
	if v := meta.Get(metaDeleted); v != nil {
		if len(v) != 8 {
			return t, fmt.Errorf("%w: meta %s has %d bytes", ErrCorrupt, metaDeleted, len(v))
		}
		t.deleted = binary.BigEndian.Uint64(v)
	}
	return t, nil
}

// Close waits for the Append calls in progress, stops the committer,
// ends live iterators with ErrClosed and closes the database file. A
// second Close returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.closed = true
	close(s.done)
	s.mu.Unlock()

	s.senders.Wait()
	close(s.reqs)
	<-s.stopped
	size, messages := s.fileSize(), s.Stats().Messages
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	s.log.Info("store closed", "messages", messages, "commits", s.commits.Load(), "bytes", size)
	return nil
}

// Dir returns the data directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) fileSize() int64 {
	fi, err := os.Stat(s.db.Path())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// Durable returns the receive sequence of the last durable message still
// stored (0 for none). Receive sequences count from 1 and are never given
// twice; the messages deleted (see Delete) leave their positions empty, so
// Durable is the number of messages stored only in a store from which
// none was deleted (Stats tells both).
func (s *Store) Durable() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// top returns the last receive sequence assigned and durable, stored or
// deleted since: the cap of a query's old part.
func (s *Store) top() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable
}

// watch returns the last durable receive sequence and a channel closed at
// the next commit.
func (s *Store) watch() (uint64, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.durable, s.notify
}

// published makes the messages up to receive sequence seq visible to
// readers and wakes the live ones.
func (s *Store) published(seq uint64) {
	s.mu.Lock()
	s.durable, s.last = seq, seq
	close(s.notify)
	s.notify = make(chan struct{})
	s.mu.Unlock()
}

// settled waits until receive sequence seq, read in a committed
// transaction, is published. The committer publishes right after the
// commit, so a reader of heads (Latest, Feeds) could otherwise see a
// feed's head a moment before the queries, capped at top, see its
// message: getVectorClock and then createHistoryStream would miss it.
func (s *Store) settled(seq uint64) {
	var timeout <-chan time.Time
	for {
		top, ch := s.watch()
		if top >= seq || s.isClosed() {
			return
		}
		if timeout == nil {
			timeout = time.After(5 * time.Second) // a commit publishes in microseconds
		}
		select {
		case <-ch:
		case <-timeout:
			return
		}
	}
}

// view runs fn in a read transaction, mapping a closed database to
// ErrClosed. A damaged store fails at once; a panic or fault while fn
// reads marks it damaged (see guard).
func (s *Store) view(fn func(*bolt.Tx) error) error {
	if err := s.checkDamaged(); err != nil {
		return err
	}
	err := s.guard("read", func() error { return s.db.View(fn) })
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Stats are counters of a Store since Open.
type Stats struct {
	Messages  uint64 // messages stored
	Deleted   uint64 // messages deleted (Delete) since the store was made
	Commits   uint64 // write transactions committed, each with its fsyncs
	Appended  uint64 // messages appended since Open
	FileBytes int64  // size of the database file
}

// Stats returns the store's counters. Appended/Commits is the group-commit
// factor: messages per fsync.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	top, deleted := s.durable, s.deleted
	s.mu.Unlock()
	return Stats{
		Messages:  top - deleted,
		Deleted:   deleted,
		Commits:   s.commits.Load(),
		Appended:  s.appended.Load(),
		FileBytes: s.fileSize(),
	}
}

// Get returns the message with id id (its Item with key, value and receive
// metadata), or an error wrapping ErrNotFound. It looks id up in each
// epoch of the id index, newest first (see the package documentation).
func (s *Store) Get(id refs.Message) (Item, error) {
	var it Item
	err := s.view(func(tx *bolt.Tx) error {
		seq, err := lookup(tx, id)
		if err != nil {
			return err
		}
		rec := record(tx.Bucket(bucketLog).Get(seqKey(seq)))
		if !rec.valid() || rec.key() != id {
			return fmt.Errorf("%w: message %s has receive sequence %d, which the log lacks", ErrCorrupt, id, seq)
		}
		it = fullForm.item(seq, rec, nil)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return Item{}, fmt.Errorf("store: get %s: %w", id, err)
	}
	return it, err
}

// GetSeq returns the message at receive sequence seq (Item.Seq), or an
// error wrapping ErrNotFound.
func (s *Store) GetSeq(seq uint64) (Item, error) {
	var it Item
	err := s.view(func(tx *bolt.Tx) error {
		rec := record(tx.Bucket(bucketLog).Get(seqKey(seq)))
		if rec == nil {
			return fmt.Errorf("%w: receive sequence %d", ErrNotFound, seq)
		}
		if !rec.valid() {
			return fmt.Errorf("%w: the record of receive sequence %d", ErrCorrupt, seq)
		}
		it = fullForm.item(seq, rec, nil)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return Item{}, fmt.Errorf("store: get %d: %w", seq, err)
	}
	return it, err
}

// GetSeqNear returns the message at receive sequence seq or, when that
// position is empty (its message was deleted), the nearest stored after
// it, or before it when before is true; an error wrapping ErrNotFound when
// there is none. It is how a bound on receive sequences becomes a bound on
// receive timestamps (LogQuery) when messages were deleted.
func (s *Store) GetSeqNear(seq uint64, before bool) (Item, error) {
	var it Item
	err := s.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketLog).Cursor()
		k, v := c.Seek(seqKey(seq))
		switch {
		case before && k == nil:
			k, v = c.Last()
		case before && getSeq(k) != seq:
			k, v = c.Prev()
		}
		if k == nil {
			return fmt.Errorf("%w: no message near receive sequence %d", ErrNotFound, seq)
		}
		rec := record(v)
		if !rec.valid() {
			return fmt.Errorf("%w: the record of receive sequence %d", ErrCorrupt, getSeq(k))
		}
		it = fullForm.item(getSeq(k), rec, nil)
		return nil
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return Item{}, fmt.Errorf("store: get near %d: %w", seq, err)
	}
	return it, err
}

// lookup returns the receive sequence of message id.
func lookup(tx *bolt.Tx, id refs.Message) (uint64, error) {
	last, _ := tx.Bucket(bucketLog).Cursor().Last()
	if last == nil {
		return 0, fmt.Errorf("%w: message %s", ErrNotFound, id)
	}
	b := tx.Bucket(bucketID)
	key := idKey(nil, getSeq(last), id)
	for epoch := int64(getSeq(last) >> idEpochBits); epoch >= 0; epoch-- {
		binary.BigEndian.PutUint32(key, uint32(epoch))
		if v := b.Get(key); len(v) == seqLen {
			return getSeq(v), nil
		}
	}
	return 0, fmt.Errorf("%w: message %s", ErrNotFound, id)
}

// A Head is a feed's latest message as the store holds it.
type Head struct {
	Feed  refs.Feed
	State message.FeedState // the latest message's key and sequence
	Seq   uint64            // its receive sequence
}

// Latest returns the head of feed, or an error wrapping ErrNotFound when
// the store holds no message of it. For the next message's validation use
// the State of the Head (or the zero FeedState after ErrNotFound).
func (s *Store) Latest(feed refs.Feed) (Head, error) {
	var h Head
	err := s.view(func(tx *bolt.Tx) error {
		var ok bool
		var err error
		h, ok, err = readHead(tx, feed)
		if err == nil && !ok {
			err = fmt.Errorf("%w: feed %s", ErrNotFound, feed)
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCorrupt) {
		return Head{}, fmt.Errorf("store: latest %s: %w", feed, err)
	}
	if err == nil {
		s.settled(h.Seq)
	}
	return h, err
}

func readHead(tx *bolt.Tx, feed refs.Feed) (Head, bool, error) {
	v := tx.Bucket(bucketHead).Get(appendFeed(nil, feed))
	if v == nil {
		return Head{Feed: feed}, false, nil
	}
	if len(v) != headLen {
		return Head{}, false, fmt.Errorf("%w: head of %s has %d bytes", ErrCorrupt, feed, len(v))
	}
	seq, id, rseq := decodeHead(v)
	return Head{Feed: feed, State: message.FeedState{ID: id, Sequence: int64(seq)}, Seq: rseq}, true, nil
}

// Feeds returns the head of every feed the store holds, ordered by the
// feed's public key: what replication needs to build its vector clock. It
// reads one small record per feed (44 bytes), not the messages.
func (s *Store) Feeds(ctx context.Context) ([]Head, error) {
	var heads []Head
	err := s.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketHead).ForEach(func(k, v []byte) error {
			if len(heads)%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			f, err := feedOf(k)
			if err != nil {
				return err
			}
			if len(v) != headLen {
				return fmt.Errorf("%w: head of %s has %d bytes", ErrCorrupt, f, len(v))
			}
			seq, id, rseq := decodeHead(v)
			heads = append(heads, Head{Feed: f, State: message.FeedState{ID: id, Sequence: int64(seq)}, Seq: rseq})
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: feeds: %w", err)
	}
	var last uint64
	for _, h := range heads {
		last = max(last, h.Seq)
	}
	s.settled(last)
	return heads, nil
}

// nextTimestamp returns the receive timestamp of the next message: now in
// milliseconds, or a thousandth of a millisecond after the previous one if
// the clock has not moved past it (as npm monotonic-timestamp does), so
// receive timestamps strictly increase with receive sequences.
func nextTimestamp(now, last float64) float64 {
	if now > last {
		return now
	}
	next := last + 0.001
	if next <= last { // beyond 2^53 ms; cannot happen before the year 287,000
		next = math.Nextafter(last, math.Inf(1))
	}
	return next
}

// verifyLocked checks the file at path with verifyFile while holding the
// lock bbolt takes, so that no other store writes it meanwhile. It returns
// the number of pages read.
func verifyLocked(path string, timeout time.Duration) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer f.Close()
	if err := lockFile(f, timeout); errors.Is(err, errLockTimeout) {
		return 0, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, timeout)
	} else if err != nil {
		return 0, fmt.Errorf("store: open %s: lock: %w", path, err)
	}
	defer unlockFile(f)
	return verifyFile(path)
}

var errLockTimeout = errors.New("store: lock timeout")
