package store

import (
	"bytes"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// commitLoop is the committer goroutine: it takes the queued requests, as
// many as the batch limits allow, and writes them in one transaction with
// one fsync (group commit). While it commits, new requests queue up for
// the next transaction, so the batches grow with the load without any
// timer. It returns when Close closes the queue.
func (s *Store) commitLoop() {
	defer close(s.stopped)
	var batch []*request
	for r := range s.reqs {
		// A deletion has a transaction of its own, between the appends
		// queued before it and those queued after.
		for r != nil {
			if r.del != nil {
				s.delete(r)
				break
			}
			batch = append(batch[:0], r)
			r = nil
			n, size := len(batch[0].msgs), batch[0].bytes
		gather:
			for n < s.cfg.maxBatch && size < s.cfg.maxBatchBytes {
				select {
				case next, ok := <-s.reqs:
					if !ok {
						break gather
					}
					if next.del != nil {
						r = next
						break gather
					}
					batch = append(batch, next)
					n, size = n+len(next.msgs), size+next.bytes
				default:
					break gather
				}
			}
			s.commit(batch)
			clear(batch) // drop references to the callers' messages
		}
	}
}

// commit writes the acceptable requests of batch in one transaction and
// replies to every request.
func (s *Store) commit(batch []*request) {
	if err := s.writable(); err != nil {
		replyAll(batch, fmt.Errorf("store: append: %w", err))
		return
	}
	err := s.update("append", func(tx *bolt.Tx) { s.commitTx(tx, batch) })
	if err != nil {
		for _, r := range batch {
			if !r.replied {
				r.reply(fmt.Errorf("store: append: %w", err))
			}
		}
	}
}

// writable returns nil, or why the store refuses writes: damage, or an
// earlier commit that failed.
func (s *Store) writable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.damaged != nil:
		return s.damaged
	case s.failed != nil:
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}

// update runs fn in a new write transaction, which fn commits or rolls
// back. A damaged page met while the transaction reads the B+trees panics
// (or faults) in bbolt: the guard rolls the transaction back, marks the
// store damaged and returns the damage.
func (s *Store) update(op string, fn func(tx *bolt.Tx)) error {
	var tx *bolt.Tx
	return s.guard(op, func() error {
		defer func() {
			if r := recover(); r != nil {
				if tx != nil && tx.DB() != nil {
					func() {
						defer func() { recover() }() // the rollback meets the same damage
						tx.Rollback()
					}()
				}
				panic(r)
			}
		}()
		var err error
		tx, err = s.db.Begin(true)
		if err != nil {
			return fmt.Errorf("begin: %w", err)
		}
		fn(tx)
		return nil
	})
}

// commitTx writes the acceptable requests of batch in tx and replies to
// each.
func (s *Store) commitTx(tx *bolt.Tx, batch []*request) {
	start := time.Now()
	w := newWriter(tx, s.top(), s.lastTS, s.cfg.nowMS)
	accepted := batch[:0:0]
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.reply(fmt.Errorf("store: append: %w", err))
			continue
		}
		if err := w.apply(s, r); err != nil {
			r.reply(err)
			continue
		}
		accepted = append(accepted, r)
	}
	if len(accepted) == 0 {
		tx.Rollback()
		return
	}
	if err := w.flush(); err != nil {
		tx.Rollback()
		s.log.Error("store: write failed", "err", err)
		replyAll(accepted, err)
		return
	}
	if err := tx.Commit(); err != nil {
		// bbolt rolled back, but after a failed fsync the file may or may
		// not hold the transaction: refuse further writes.
		s.mu.Lock()
		s.failed = err
		s.mu.Unlock()
		s.log.Error("store: commit failed; refusing writes until reopened", "err", err)
		replyAll(accepted, fmt.Errorf("store: append: commit: %w", err))
		return
	}
	s.lastTS = w.lastTS
	s.commits.Add(1)
	s.appended.Add(uint64(w.count))
	s.published(w.next - 1)
	s.tellAppended(accepted)
	for _, r := range accepted {
		r.reply(nil)
	}
	s.log.Debug("store: commit", "calls", len(accepted), "messages", w.count, "took", time.Since(start))
}

func replyAll(rs []*request, err error) {
	for _, r := range rs {
		r.reply(err)
	}
}

// reply sends r its outcome.
func (r *request) reply(err error) {
	r.replied = true
	r.done <- err
}

// A writer applies requests to one write transaction. It checks each
// request against the feed heads as the transaction has them so far, and
// stages the puts of accepted requests; flush writes them, sorted by key
// within each bucket (sorted inserts walk the B+trees in order and touch
// each page once).
type writer struct {
	tx      *bolt.Tx
	feed    *bolt.Bucket
	log     *bolt.Bucket
	heads   map[refs.Feed]*pending // feeds this transaction has read or written
	undo    []undo                 // how to take back the current request
	request int                    // number of the current request in the transaction
	puts    [numIndexes][]kv       // staged puts, by index
	next    uint64                 // next receive sequence
	lastTS  float64
	now     func() float64 // the receive clock, ms
	count   int
}

// pending is a feed's head within a transaction: the head it had before
// (base) and the keys of the messages the transaction adds.
type pending struct {
	state message.FeedState
	seq   uint64         // receive sequence of state
	base  int64          // the persisted head's sequence
	keys  []refs.Message // keys of sequences base+1 ... state.Sequence
	mark  int            // the last request that changed it
}

type undo struct {
	p     *pending
	state message.FeedState
	seq   uint64
	keys  int
}

type kv struct{ k, v []byte }

// The buckets of the staged puts besides the heads.
const (
	putLog = iota
	putFeed
	putID
	putClaimed
	putType
	numIndexes
)

var putBuckets = [numIndexes][]byte{bucketLog, bucketFeed, bucketID, bucketClaimed, bucketType}

func newWriter(tx *bolt.Tx, durable uint64, lastTS float64, now func() float64) *writer {
	return &writer{
		tx:     tx,
		feed:   tx.Bucket(bucketFeed),
		log:    tx.Bucket(bucketLog),
		heads:  make(map[refs.Feed]*pending),
		next:   durable + 1,
		lastTS: lastTS,
		now:    now,
	}
}

// apply checks r's messages against the heads and stages their puts. Its
// error, an *AppendError (or ErrCorrupt), rejects r alone: nothing of r
// is staged.
func (w *writer) apply(s *Store, r *request) error {
	w.undo = w.undo[:0]
	w.request++
	if r.create != nil {
		p, err := w.head(r.feed)
		if err != nil {
			return err
		}
		m, err := s.create(r, p.state)
		if err == nil {
			err = sane(m)
		}
		if err == nil && m.Author != r.feed {
			err = fmt.Errorf("store: publish: create made a message of %s, not %s", m.Author, r.feed)
		}
		if err != nil {
			return &AppendError{Index: 0, Err: err}
		}
		r.msgs[0] = m
	}
	for i, m := range r.msgs {
		p, err := w.head(m.Author)
		if err == nil {
			err = w.check(p, m)
		}
		if err != nil {
			w.rollback()
			if errors.Is(err, ErrCorrupt) {
				return err
			}
			return &AppendError{Index: i, Key: m.Key, Author: m.Author, Sequence: m.Sequence, Err: err}
		}
		if p.mark != w.request {
			p.mark = w.request
			w.undo = append(w.undo, undo{p: p, state: p.state, seq: p.seq, keys: len(p.keys)})
		}
		p.keys = append(p.keys, m.Key)
		p.state = m.State()
	}
	for _, m := range r.msgs {
		w.stage(m)
	}
	return nil
}

// rollback restores the heads the current request changed.
func (w *writer) rollback() {
	for _, u := range w.undo {
		u.p.state, u.p.seq, u.p.keys = u.state, u.seq, u.p.keys[:u.keys]
	}
}

// head returns feed's head as the transaction has it.
func (w *writer) head(feed refs.Feed) (*pending, error) {
	if p := w.heads[feed]; p != nil {
		return p, nil
	}
	h, _, err := readHead(w.tx, feed)
	if err != nil {
		return nil, err
	}
	p := &pending{state: h.State, seq: h.Seq, base: h.State.Sequence}
	w.heads[feed] = p
	return p, nil
}

// check reports whether m extends the feed whose head is p.
func (w *writer) check(p *pending, m *message.Message) error {
	want := p.state.Sequence + 1
	switch {
	case m.Sequence == want:
		if want == 1 {
			if m.Previous != nil {
				return fmt.Errorf("%w: the first message of a feed has previous null, not %s", message.ErrShape, m.Previous)
			}
			return nil
		}
		if m.Previous == nil || *m.Previous != p.state.ID {
			prev := "not a message id"
			if m.Previous != nil {
				prev = m.Previous.String()
			}
			return fmt.Errorf("%w: %s has sequence %d and previous %s, but the feed's message %d is %s",
				message.ErrFork, m.Author, m.Sequence, prev, p.state.Sequence, p.state.ID)
		}
		return nil
	case m.Sequence > want:
		return &message.SequenceError{Got: m.Sequence, Want: want}
	}
	seqErr := &message.SequenceError{Got: m.Sequence, Want: want}
	stored, err := w.keyAt(p, m.Author, m.Sequence)
	if err != nil {
		return err
	}
	if stored == m.Key {
		return fmt.Errorf("%w: %w", ErrDuplicate, seqErr)
	}
	return fmt.Errorf("%w: %s has two messages with sequence %d, %s stored and %s: %w",
		message.ErrFork, m.Author, m.Sequence, stored, m.Key, seqErr)
}

// keyAt returns the key of feed's message seq (at most its head).
func (w *writer) keyAt(p *pending, feed refs.Feed, seq int64) (refs.Message, error) {
	if seq > p.base {
		return p.keys[seq-p.base-1], nil
	}
	v := w.feed.Get(feedKey(nil, feed, uint32(seq)))
	if len(v) != seqLen {
		return refs.Message{}, fmt.Errorf("%w: feed %s has head %d but no message %d", ErrCorrupt, feed, p.base, seq)
	}
	rec := record(w.log.Get(v))
	if !rec.valid() {
		return refs.Message{}, fmt.Errorf("%w: log lacks receive sequence %d", ErrCorrupt, getSeq(v))
	}
	return rec.key(), nil
}

// noValue is the value of index entries whose key says it all.
var noValue = []byte{}

// stage assigns m, whose place in its feed was checked, the next receive
// sequence and timestamp, and stages its log record and index entries.
func (w *writer) stage(m *message.Message) {
	seq := w.next
	ts := nextTimestamp(w.now(), w.lastTS)
	resolved := resolvedTimestamp(m.Timestamp, ts)

	// bbolt keeps the slices it is given until the commit: one allocation
	// per message holds them all.
	buf := make([]byte, 0, seqLen+feedKeyLen+4+32+claimedLen+1+len(m.Type)+seqLen+recordHeader+len(m.Raw))
	logKey := putSeq(buf, seq)
	fk := feedKey(logKey[len(logKey):], m.Author, uint32(m.Sequence))
	ik := idKey(fk[len(fk):], seq, m.Key)
	ck := claimedKey(ik[len(ik):], resolved, seq)
	rest := ck[len(ck):]
	if m.Type != "" {
		tk := putSeq(typePrefix(rest, m.Type), seq)
		rest = tk[len(tk):]
		w.puts[putType] = append(w.puts[putType], kv{tk, noValue})
	}
	w.puts[putLog] = append(w.puts[putLog], kv{logKey, appendRecord(rest, ts, resolved, m)})
	w.puts[putFeed] = append(w.puts[putFeed], kv{fk, logKey})
	w.puts[putID] = append(w.puts[putID], kv{ik, logKey})
	w.puts[putClaimed] = append(w.puts[putClaimed], kv{ck, noValue})
	w.heads[m.Author].seq = seq
	w.next++
	w.lastTS = ts
	w.count++
}

// flush writes the staged puts and the changed heads.
func (w *writer) flush() error {
	for i, puts := range w.puts {
		b := w.tx.Bucket(putBuckets[i])
		switch i {
		case putLog:
			b.FillPercent = 1 // staged in key order, appended: pack pages full
		case putType:
			b.FillPercent = 0.9 // appends within each type
			fallthrough
		default:
			slices.SortFunc(puts, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
		}
		for _, p := range puts {
			if err := b.Put(p.k, p.v); err != nil {
				return fmt.Errorf("store: append: put %s: %w", putBuckets[i], err)
			}
		}
	}
	heads := make([]kv, 0, len(w.heads))
	for f, p := range w.heads {
		if p.state.Sequence != p.base {
			heads = append(heads, kv{appendFeed(nil, f), appendHead(nil, p.state, p.seq)})
		}
	}
	slices.SortFunc(heads, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
	hb := w.tx.Bucket(bucketHead)
	for _, h := range heads {
		if err := hb.Put(h.k, h.v); err != nil {
			return fmt.Errorf("store: append: head: %w", err)
		}
	}
	return nil
}

// create runs r's create function, Publish's caller's code: a panic in it
// is the caller's bug, not damage of the store, so it fails the call
// (logged with its stack) instead of reaching the guard of the commit.
func (s *Store) create(r *request, prev message.FeedState) (m *message.Message, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("store: publish: the create function panicked", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = fmt.Errorf("store: publish: create panicked: %v", p)
		}
	}()
	return r.create(prev)
}
