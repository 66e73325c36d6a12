package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	bolt "go.etcd.io/bbolt"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// HistoryQuery is ssb-db's createHistoryStream: the messages of one feed
// in sequence order.
type HistoryQuery struct {
	ID  refs.Feed // the feed; required
	Seq int64     // first sequence, inclusive (ssb-db's seq/sequence); 0 or 1 for all
	// Limit is the most old messages to return; 0 or less for all. As in
	// ssb-db (pull-level), live messages do not count against it.
	Limit int
	// Live keeps the iterator open after the old messages and returns new
	// messages as they are appended.
	Live bool
	// Old (default true) returns the messages stored when the query
	// starts. Old false implies Live, as in pull-live.
	Old *bool
	// Keys (default true) sets Item.Key; Values (default true) sets
	// Item.Value. Keys false with Values true is ssb-db's keys:false: bare
	// values.
	Keys, Values *bool
}

// LogQuery is ssb-db's createLogStream: all messages in receive order.
// The bounds are on the receive timestamp (Item.Timestamp, ms); Gt wins
// over Gte and Lt over Lte when both are set; nil is unbounded.
type LogQuery struct {
	Gt, Gte, Lt, Lte *float64
	Limit            int  // as in HistoryQuery
	Reverse          bool // old messages newest first; live ones still come in order
	Live             bool
	Old              *bool // default true; false implies Live
	Keys, Values     *bool // default true
}

// FeedQuery is ssb-db's createFeedStream: all messages ordered by their
// resolved timestamp (Item.RTS, ssb-db's rts): the claimed timestamp, or
// the receive timestamp when the claimed one is missing or later; ties
// are broken by receive order. The bounds are on the resolved timestamp
// and mean what they say (ssb-db's index compares [rts, author] keys with
// [bound, null], which makes its gt inclusive and its lte exclusive; the
// muxrpc layer may mimic that by passing Gte for gt and Lt for lte). Live
// messages come in receive order, filtered by the bounds, as in ssb-db.
type FeedQuery LogQuery

// TypeQuery is ssb-db's messagesByType: the messages whose content.type
// is Type, in receive order, with the bounds and options of LogQuery.
// (ssb-db indexes the type's first 32 UTF-16 code units only; this store
// indexes the whole type.) Encrypted messages have no type.
type TypeQuery struct {
	Type             string
	Gt, Gte, Lt, Lte *float64
	Limit            int
	Reverse          bool
	Live             bool
	Old              *bool
	Keys, Values     *bool
}

// chunk is how many items a reader reads per read transaction. Reads never
// hold a transaction between calls to Next: a long read transaction would
// keep bbolt from reusing pages and from growing its memory map.
const chunk = 64

// An Iterator returns the items of a query. Next returns them one by one,
// then io.EOF (never for a live query, which waits for new messages). The
// store never buffers for a reader: the reader reads a chunk from the
// database when it needs one, so a slow reader only slows itself. An
// Iterator is not safe for concurrent use.
type Iterator struct {
	s        *Store
	form     form
	old      *scan // nil when done or not wanted
	live     *scan // nil when not live
	oldCap   uint64
	limit    int // old items still allowed; negative for no limit
	buf      []Item
	pos      int
	arena    []byte
	err      error // sticky: io.EOF, ErrClosed or a read error
	finished bool
}

// Next returns the next item, or io.EOF after the last of a query that is
// not live, or ErrClosed when the iterator or the store is closed, or the
// context's error (the iterator may be used again after that).
func (it *Iterator) Next(ctx context.Context) (Item, error) {
	for {
		if it.pos < len(it.buf) {
			item := it.buf[it.pos]
			it.buf[it.pos] = Item{}
			it.pos++
			return item, nil
		}
		if it.err != nil {
			return Item{}, it.err
		}
		it.buf, it.pos = it.buf[:0], 0
		if err := it.fill(ctx); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return Item{}, err
			}
			it.err = err
		}
	}
}

// Close ends the iterator; Next then returns ErrClosed. It holds no
// resources between calls to Next, so Close only marks it.
func (it *Iterator) Close() error {
	it.err = ErrClosed
	it.buf, it.pos, it.arena = nil, 0, nil
	return nil
}

// fill reads the next chunk into it.buf, waiting for new messages in the
// live phase.
func (it *Iterator) fill(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if it.s.isClosed() {
		return ErrClosed
	}
	if it.old != nil {
		n := chunk
		if it.limit >= 0 {
			n = min(n, it.limit)
		}
		exhausted := n == 0
		if n > 0 {
			err := it.s.view(func(tx *bolt.Tx) error {
				var err error
				it.buf, exhausted, err = it.old.read(tx, it.oldCap, it.form, it.buf, n, &it.arena)
				return err
			})
			if err != nil {
				return fmt.Errorf("store: read: %w", err)
			}
			if it.limit >= 0 {
				it.limit -= len(it.buf)
			}
		}
		if exhausted {
			it.old = nil
		}
		if len(it.buf) > 0 {
			return nil
		}
	}
	if it.live == nil {
		return io.EOF
	}
	for {
		durable, changed := it.s.watch()
		err := it.s.view(func(tx *bolt.Tx) error {
			var err error
			it.buf, _, err = it.live.read(tx, durable, it.form, it.buf, chunk, &it.arena)
			return err
		})
		if err != nil {
			return fmt.Errorf("store: read: %w", err)
		}
		if len(it.buf) > 0 {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-it.s.done:
			return ErrClosed
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// A scan reads a key range of one bucket, resuming after the last key it
// visited. The bucket is the log, or an index whose entries name a receive
// sequence.
type scan struct {
	bucket  []byte
	lo, hi  []byte // inclusive bounds
	reverse bool
	// monotone says that receive sequences grow with the keys, so the
	// first entry above the cap ends a forward read; otherwise such
	// entries are skipped.
	monotone bool
	seqOf    func(k, v []byte) uint64
	keep     func(rec record) bool // nil keeps all
	last     []byte                // the last key visited, nil before the first
}

// read appends up to n items of entries whose receive sequence is at most
// limit. exhausted reports that the scan reached the end of its range or,
// for a monotone scan, an entry above limit.
func (sc *scan) read(tx *bolt.Tx, limit uint64, f form, out []Item, n int, arena *[]byte) ([]Item, bool, error) {
	b := tx.Bucket(sc.bucket)
	isLog := bytes.Equal(sc.bucket, bucketLog)
	log := tx.Bucket(bucketLog)
	c := b.Cursor()
	k, v := sc.first(c)
	for ; k != nil && sc.inRange(k); k, v = sc.step(c) {
		seq := sc.seqOf(k, v)
		if seq > limit {
			if sc.monotone && !sc.reverse {
				return out, true, nil
			}
			sc.last = append(sc.last[:0], k...)
			continue
		}
		rec := record(v)
		if !isLog {
			rec = log.Get(seqKey(seq))
		}
		if !rec.valid() {
			return out, false, fmt.Errorf("%w: %s entry %x names receive sequence %d, which the log lacks", ErrCorrupt, sc.bucket, k, seq)
		}
		sc.last = append(sc.last[:0], k...)
		if sc.keep != nil && !sc.keep(rec) {
			continue
		}
		out = append(out, f.item(seq, rec, arena))
		if len(out) >= n {
			return out, false, nil
		}
	}
	return out, true, nil
}

func (sc *scan) first(c *bolt.Cursor) ([]byte, []byte) {
	switch {
	case sc.last == nil && !sc.reverse:
		return c.Seek(sc.lo)
	case sc.last == nil:
		k, v := c.Seek(sc.hi)
		if k == nil {
			return c.Last()
		}
		if bytes.Compare(k, sc.hi) > 0 {
			return c.Prev()
		}
		return k, v
	case !sc.reverse:
		k, v := c.Seek(sc.last)
		if bytes.Equal(k, sc.last) {
			return c.Next()
		}
		return k, v
	}
	if k, _ := c.Seek(sc.last); k == nil {
		return c.Last()
	}
	return c.Prev()
}

func (sc *scan) step(c *bolt.Cursor) ([]byte, []byte) {
	if sc.reverse {
		return c.Prev()
	}
	return c.Next()
}

func (sc *scan) inRange(k []byte) bool {
	if sc.reverse {
		return bytes.Compare(k, sc.lo) >= 0
	}
	return bytes.Compare(k, sc.hi) <= 0
}

// Receive sequences of the entries of each bucket.
func seqFromKey(k, _ []byte) uint64   { return getSeq(k[len(k)-seqLen:]) }
func seqFromValue(_, v []byte) uint64 { return getSeq(v) }

// bounds are inclusive limits on a float64 timestamp.
type bounds struct{ lo, hi float64 }

func makeBounds(gt, gte, lt, lte *float64) (bounds, error) {
	b := bounds{lo: math.Inf(-1), hi: math.Inf(1)}
	for _, p := range []*float64{gt, gte, lt, lte} {
		if p != nil && math.IsNaN(*p) {
			return b, errors.New("store: query: a bound is NaN")
		}
	}
	switch {
	case gt != nil:
		b.lo = math.Nextafter(*gt, math.Inf(1))
	case gte != nil:
		b.lo = *gte
	}
	switch {
	case lt != nil:
		b.hi = math.Nextafter(*lt, math.Inf(-1))
	case lte != nil:
		b.hi = *lte
	}
	return b, nil
}

func (b bounds) contains(f float64) bool { return f >= b.lo && f <= b.hi }

// seqRange returns the receive sequences, up to top, of the messages whose
// receive timestamps are within b, by binary search: receive timestamps
// strictly increase with receive sequences. A deleted position reads as
// the next stored message (as +Inf past the last one), which keeps the
// search monotone; the bounds it gives may be deleted positions.
func (b bounds) seqRange(tx *bolt.Tx, top uint64) (lo, hi uint64, err error) {
	c := tx.Bucket(bucketLog).Cursor()
	ts := func(seq uint64) float64 {
		k, v := c.Seek(seqKey(seq))
		if k == nil || getSeq(k) > top {
			return math.Inf(1)
		}
		rec := record(v)
		if !rec.valid() {
			err = fmt.Errorf("%w: the record of receive sequence %d has %d bytes", ErrCorrupt, getSeq(k), len(v))
			return 0
		}
		return rec.received()
	}
	first := func(pred func(float64) bool) uint64 {
		return 1 + uint64(sort.Search(int(top), func(i int) bool { return pred(ts(uint64(i) + 1)) }))
	}
	lo = 1
	if !math.IsInf(b.lo, -1) {
		lo = first(func(t float64) bool { return t >= b.lo })
	}
	hi = top
	if !math.IsInf(b.hi, 1) {
		hi = first(func(t float64) bool { return t > b.hi }) - 1
	}
	return lo, hi, err
}

func orTrue(p *bool) bool { return p == nil || *p }

// newIterator makes the iterator of a query with the given phases.
func (s *Store) newIterator(f form, limit int, oldOn, live bool, cap uint64, old, liveScan *scan) *Iterator {
	it := &Iterator{s: s, form: f, oldCap: cap, limit: -1}
	if limit > 0 {
		it.limit = limit
	}
	if oldOn {
		it.old = old
	}
	if live || !oldOn {
		it.live = liveScan
	}
	return it
}

// start captures the durable receive sequence a query's old phase ends at,
// and runs prepare in a read transaction.
func (s *Store) start(ctx context.Context, prepare func(tx *bolt.Tx, cap uint64) error) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if s.isClosed() {
		return 0, ErrClosed
	}
	cap := s.top()
	if err := s.view(func(tx *bolt.Tx) error { return prepare(tx, cap) }); err != nil {
		return 0, err
	}
	return cap, nil
}

// History starts a createHistoryStream query.
func (s *Store) History(ctx context.Context, q HistoryQuery) (*Iterator, error) {
	if q.ID.IsZero() {
		return nil, errors.New("store: history: no feed id")
	}
	from := uint32(1)
	if q.Seq > 1 {
		from = uint32(min(q.Seq, int64(maxSequence)))
	}
	var latest uint32 // the feed's last sequence within the cap
	cap, err := s.start(ctx, func(tx *bolt.Tx, cap uint64) error {
		c := tx.Bucket(bucketFeed).Cursor()
		prefix := appendFeed(nil, q.ID)
		k, v := c.Seek(feedKey(nil, q.ID, maxSequence))
		if k == nil || !bytes.Equal(k, feedKey(nil, q.ID, maxSequence)) {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Prev() {
			if getSeq(v) <= cap {
				latest = binary.BigEndian.Uint32(k[32:])
				return nil
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: history: %w", err)
	}
	f := form{keys: orTrue(q.Keys), values: orTrue(q.Values)}
	old := &scan{bucket: bucketFeed, lo: feedKey(nil, q.ID, from), hi: feedKey(nil, q.ID, latest), monotone: true, seqOf: seqFromValue}
	live := &scan{bucket: bucketFeed, lo: feedKey(nil, q.ID, max(from, latest+1)), hi: feedKey(nil, q.ID, maxSequence), monotone: true, seqOf: seqFromValue}
	return s.newIterator(f, q.Limit, orTrue(q.Old), q.Live, cap, old, live), nil
}

// Log starts a createLogStream query.
func (s *Store) Log(ctx context.Context, q LogQuery) (*Iterator, error) {
	b, err := makeBounds(q.Gt, q.Gte, q.Lt, q.Lte)
	if err != nil {
		return nil, err
	}
	var lo, hi uint64
	cap, err := s.start(ctx, func(tx *bolt.Tx, cap uint64) (err error) {
		lo, hi, err = b.seqRange(tx, cap)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: log: %w", err)
	}
	f := form{keys: orTrue(q.Keys), values: orTrue(q.Values)}
	old := &scan{bucket: bucketLog, lo: seqKey(lo), hi: seqKey(hi), reverse: q.Reverse, monotone: true, seqOf: seqFromKey}
	if hi < lo {
		old.lo, old.hi = seqKey(1), seqKey(0) // empty
	}
	live := &scan{bucket: bucketLog, lo: seqKey(cap + 1), hi: seqKey(maxSeq), monotone: true, seqOf: seqFromKey,
		keep: func(rec record) bool { return b.contains(rec.received()) }}
	return s.newIterator(f, q.Limit, orTrue(q.Old), q.Live, cap, old, live), nil
}

// Feed starts a createFeedStream query.
func (s *Store) Feed(ctx context.Context, q FeedQuery) (*Iterator, error) {
	b, err := makeBounds(q.Gt, q.Gte, q.Lt, q.Lte)
	if err != nil {
		return nil, err
	}
	cap, err := s.start(ctx, func(*bolt.Tx, uint64) error { return nil })
	if err != nil {
		return nil, fmt.Errorf("store: feed: %w", err)
	}
	f := form{keys: orTrue(q.Keys), values: orTrue(q.Values), rts: true}
	old := &scan{bucket: bucketClaimed, lo: claimedKey(nil, b.lo, 0), hi: claimedKey(nil, b.hi, maxSeq), reverse: q.Reverse, seqOf: seqFromKey}
	live := &scan{bucket: bucketLog, lo: seqKey(cap + 1), hi: seqKey(maxSeq), monotone: true, seqOf: seqFromKey,
		keep: func(rec record) bool { return b.contains(rec.resolved()) }}
	return s.newIterator(f, q.Limit, orTrue(q.Old), q.Live, cap, old, live), nil
}

// Type starts a messagesByType query.
func (s *Store) Type(ctx context.Context, q TypeQuery) (*Iterator, error) {
	if q.Type == "" || len(q.Type) > maxTypeLen {
		return nil, fmt.Errorf("store: type: type %q is not a content type", q.Type)
	}
	b, err := makeBounds(q.Gt, q.Gte, q.Lt, q.Lte)
	if err != nil {
		return nil, err
	}
	var lo, hi uint64
	cap, err := s.start(ctx, func(tx *bolt.Tx, cap uint64) (err error) {
		lo, hi, err = b.seqRange(tx, cap)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("store: type: %w", err)
	}
	prefix := typePrefix(nil, q.Type)
	key := func(seq uint64) []byte { return putSeq(append([]byte(nil), prefix...), seq) }
	f := form{keys: orTrue(q.Keys), values: orTrue(q.Values)}
	old := &scan{bucket: bucketType, lo: key(lo), hi: key(hi), reverse: q.Reverse, monotone: true, seqOf: seqFromKey}
	if hi < lo {
		old.lo, old.hi = key(1), key(0)
	}
	live := &scan{bucket: bucketType, lo: key(cap + 1), hi: key(maxSeq), monotone: true, seqOf: seqFromKey,
		keep: func(rec record) bool { return b.contains(rec.received()) }}
	return s.newIterator(f, q.Limit, orTrue(q.Old), q.Live, cap, old, live), nil
}
