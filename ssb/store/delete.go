package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// ErrGap is wrapped by the error of DeleteMessage for a message that is
// not the latest of its feed: deleting it would leave a gap in a feed the
// store serves (createHistoryStream, replication), which no peer could
// validate past.
var ErrGap = errors.New("store: deleting it would leave a gap in its feed")

// A Deletion says what DeleteFeed or DeleteMessage removed.
type Deletion struct {
	Feed refs.Feed
	// Keys are the ids of the messages removed, in sequence order: the
	// feed's messages from sequence Head.Sequence+1 to its former head.
	Keys []refs.Message
	// Head is the feed's latest message after the deletion; the zero
	// FeedState when none is left.
	Head message.FeedState
}

// deletion is a Delete call on its way to the committer: a whole feed, or
// the message id (the latest of its feed).
type deletion struct {
	feed refs.Feed
	id   refs.Message
	out  Deletion
}

// DeleteFeed removes every message of feed from the store: log records
// and every index entry (feed, id, claimed, type) and the feed's head, in
// one transaction committed with fsync, so a crash leaves all of it or
// none. It returns an error wrapping ErrNotFound when the store holds no
// message of feed.
//
// The receive sequences of the deleted messages are never given again:
// queries (Log, Feed, Type, History) skip them, Get and GetSeq report
// ErrNotFound, and a consumer that follows the log by receive sequence
// never sees them again (what it derived from them before stays its
// own). The feed can be appended again from sequence 1, by replication
// for example. Messages of the feed that Append is storing in the same
// moment are either stored before the deletion (and deleted) or after it
// (and refused, as they no longer follow the feed's head). Deleting our
// own feed is the caller's decision to refuse (package db does).
//
// The first deletion moves the database to a format (2) that versions of
// the store older than deletion refuse to open, rather than misread.
func (s *Store) DeleteFeed(ctx context.Context, feed refs.Feed) (Deletion, error) {
	if feed.IsZero() {
		return Deletion{}, errors.New("store: delete: no feed id")
	}
	return s.deleteReq(ctx, &deletion{feed: feed})
}

// DeleteMessage removes message id, which must be the latest of its feed
// (else an error wrapping ErrGap: deleting a message in the middle of a
// feed would leave a gap), as DeleteFeed removes a feed: the feed's head
// becomes the message before it, or the feed is gone when it was the
// first. It returns an error wrapping ErrNotFound when the store does not
// hold id. Repeated, it removes a feed's messages from the latest back.
func (s *Store) DeleteMessage(ctx context.Context, id refs.Message) (Deletion, error) {
	if id.IsZero() {
		return Deletion{}, errors.New("store: delete: no message id")
	}
	return s.deleteReq(ctx, &deletion{id: id})
}

func (s *Store) deleteReq(ctx context.Context, d *deletion) (Deletion, error) {
	if err := s.submit(ctx, &request{del: d}); err != nil {
		return Deletion{}, err
	}
	return d.out, nil
}

// delete runs a deletion in a transaction of its own and replies.
func (s *Store) delete(r *request) {
	if err := s.writable(); err != nil {
		r.reply(fmt.Errorf("store: delete: %w", err))
		return
	}
	err := s.update("delete", func(tx *bolt.Tx) { s.deleteTx(tx, r) })
	if err != nil && !r.replied {
		r.reply(fmt.Errorf("store: delete: %w", err))
	}
}

// deleteTx removes what r.del names in tx, commits and replies.
func (s *Store) deleteTx(tx *bolt.Tx, r *request) {
	start := time.Now()
	if err := r.ctx.Err(); err != nil {
		tx.Rollback()
		r.reply(fmt.Errorf("store: delete: %w", err))
		return
	}
	s.mu.Lock()
	top, deleted := s.durable, s.deleted
	s.mu.Unlock()
	n, err := remove(tx, r.del)
	if err == nil {
		err = markDeleted(tx, top, s.lastTS, deleted+uint64(n))
	}
	if err != nil {
		tx.Rollback()
		r.reply(fmt.Errorf("store: delete: %w", err))
		return
	}
	if err := tx.Commit(); err != nil {
		s.mu.Lock()
		s.failed = err
		s.mu.Unlock()
		s.log.Error("store: commit failed; refusing writes until reopened", "err", err)
		r.reply(fmt.Errorf("store: delete: commit: %w", err))
		return
	}
	// The log's last record, read after the commit: bbolt's Cursor.Last
	// does not end on a bucket emptied within the transaction.
	var last uint64
	if err := s.db.View(func(tx *bolt.Tx) error {
		if k, _ := tx.Bucket(bucketLog).Cursor().Last(); k != nil {
			last = getSeq(k)
		}
		return nil
	}); err != nil {
		s.log.Error("store: reading the log's end after a deletion", "err", err)
	}
	s.mu.Lock()
	s.last, s.deleted = last, deleted+uint64(n)
	s.mu.Unlock()
	s.commits.Add(1)
	d := r.del.out
	s.log.Info("store: deleted", "feed", d.Feed, "messages", n, "head", d.Head.Sequence, "took", time.Since(start))
	s.mu.Lock()
	hooks := slices.Collect(maps.Values(s.onDelete))
	s.mu.Unlock()
	for _, fn := range hooks {
		fn(d)
	}
	r.reply(nil)
}

// A FeedHead is a feed and the sequence of its latest message.
type FeedHead struct {
	Feed     refs.Feed
	Sequence int64
}

// OnAppend registers fn to be told, after each commit that stored
// messages, the new head of every feed the commit advanced (replication
// uses it to send them on without reading them back). fn runs in the
// store's committer once the messages are durable and readable, before the
// appending calls return: it must be quick and must not write to the
// store. The returned function unregisters it.
func (s *Store) OnAppend(fn func([]FeedHead)) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onAppend == nil {
		s.onAppend = make(map[uint64]func([]FeedHead))
	}
	s.hookID++
	id := s.hookID
	s.onAppend[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.onAppend, id)
		s.mu.Unlock()
	}
}

// tellAppended calls the OnAppend hooks with the heads a commit of
// accepted requests made.
func (s *Store) tellAppended(accepted []*request) {
	s.mu.Lock()
	if len(s.onAppend) == 0 {
		s.mu.Unlock()
		return
	}
	hooks := slices.Collect(maps.Values(s.onAppend))
	s.mu.Unlock()
	var heads []FeedHead
	at := make(map[refs.Feed]int)
	for _, r := range accepted {
		for _, m := range r.msgs {
			if i, ok := at[m.Author]; ok {
				heads[i].Sequence = max(heads[i].Sequence, m.Sequence)
				continue
			}
			at[m.Author] = len(heads)
			heads = append(heads, FeedHead{m.Author, m.Sequence})
		}
	}
	for _, fn := range hooks {
		fn(heads)
	}
}

// OnDelete registers fn to be told of each deletion once it is durable,
// before the deleting call returns (replication uses it to ask peers for
// a feed again). fn runs in the store's committer: it must be quick and
// must not write to the store. The returned function unregisters it.
func (s *Store) OnDelete(fn func(Deletion)) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.onDelete == nil {
		s.onDelete = make(map[uint64]func(Deletion))
	}
	s.hookID++
	id := s.hookID
	s.onDelete[id] = fn
	return func() {
		s.mu.Lock()
		delete(s.onDelete, id)
		s.mu.Unlock()
	}
}

// deleteChunk is how many messages remove reads before it deletes them:
// it bounds the keys it holds, not the transaction.
const deleteChunk = 4096

// remove deletes what d names from every bucket but meta, fills in d.out
// and returns the number of messages removed.
func remove(tx *bolt.Tx, d *deletion) (int, error) {
	feed, from := d.feed, int64(1)
	if !d.id.IsZero() {
		m, _, err := storedMessage(tx, d.id)
		if err != nil {
			return 0, err
		}
		feed, from = m.Author, m.Sequence
	}
	h, ok, err := readHead(tx, feed)
	switch {
	case err != nil:
		return 0, err
	case !ok && d.id.IsZero():
		return 0, fmt.Errorf("%w: feed %s", ErrNotFound, feed)
	case !ok || from > h.State.Sequence:
		return 0, fmt.Errorf("%w: message %s has sequence %d, past the head of %s (%d)", ErrCorrupt, d.id, from, feed, h.State.Sequence)
	case !d.id.IsZero() && from < h.State.Sequence:
		return 0, fmt.Errorf("%s is message %d of %s, whose latest is %d: %w", d.id, from, feed, h.State.Sequence, ErrGap)
	}
	d.out = Deletion{Feed: feed, Keys: make([]refs.Message, 0, min(h.State.Sequence-from+1, deleteChunk))}
	for lo := from; lo <= h.State.Sequence; lo += deleteChunk {
		hi := min(lo+deleteChunk-1, h.State.Sequence)
		if err := removeRange(tx, feed, lo, hi, &d.out); err != nil {
			return 0, err
		}
	}
	head := tx.Bucket(bucketHead)
	if from == 1 {
		return len(d.out.Keys), head.Delete(appendFeed(nil, feed))
	}
	prev := tx.Bucket(bucketFeed).Get(feedKey(nil, feed, uint32(from-1)))
	if len(prev) != seqLen {
		return 0, fmt.Errorf("%w: feed %s has head %d but no message %d", ErrCorrupt, feed, h.State.Sequence, from-1)
	}
	rec := record(tx.Bucket(bucketLog).Get(prev))
	if !rec.valid() {
		return 0, fmt.Errorf("%w: log lacks receive sequence %d", ErrCorrupt, getSeq(prev))
	}
	d.out.Head = message.FeedState{ID: rec.key(), Sequence: from - 1}
	seq := getSeq(prev)
	return len(d.out.Keys), head.Put(appendFeed(nil, feed), appendHead(nil, d.out.Head, seq))
}

// storedMessage reads message id and its receive sequence.
func storedMessage(tx *bolt.Tx, id refs.Message) (*message.Message, uint64, error) {
	seq, err := lookup(tx, id)
	if err != nil {
		return nil, 0, err
	}
	rec := record(tx.Bucket(bucketLog).Get(seqKey(seq)))
	if !rec.valid() || rec.key() != id {
		return nil, 0, fmt.Errorf("%w: message %s has receive sequence %d, which the log lacks", ErrCorrupt, id, seq)
	}
	m, err := message.Decode(rec.raw())
	if err != nil {
		return nil, 0, fmt.Errorf("%w: message %d does not decode: %w", ErrCorrupt, seq, err)
	}
	return m, seq, nil
}

// removeRange deletes feed's messages lo to hi and their index entries,
// and appends their keys to out.Keys. It reads them all before it deletes
// any: keys and values bbolt returns are not to be used across a change
// of their bucket.
func removeRange(tx *bolt.Tx, feed refs.Feed, lo, hi int64, out *Deletion) error {
	var keys [numIndexes][][]byte
	feedB, logB := tx.Bucket(bucketFeed), tx.Bucket(bucketLog)
	for sq := lo; sq <= hi; sq++ {
		fk := feedKey(nil, feed, uint32(sq))
		v := feedB.Get(fk)
		if len(v) != seqLen {
			return fmt.Errorf("%w: feed %s lacks message %d below its head", ErrCorrupt, feed, sq)
		}
		seq := getSeq(v)
		rec := record(logB.Get(v))
		if !rec.valid() {
			return fmt.Errorf("%w: feed index of %s %d names receive sequence %d, which the log lacks", ErrCorrupt, feed, sq, seq)
		}
		m, err := message.Decode(rec.raw())
		if err != nil {
			return fmt.Errorf("%w: message %d does not decode: %w", ErrCorrupt, seq, err)
		}
		if m.Author != feed || m.Sequence != sq || m.Key != rec.key() {
			return fmt.Errorf("%w: feed index of %s %d names message %d, which is %s %d", ErrCorrupt, feed, sq, seq, m.Author, m.Sequence)
		}
		keys[putLog] = append(keys[putLog], seqKey(seq))
		keys[putFeed] = append(keys[putFeed], fk)
		keys[putID] = append(keys[putID], idKey(nil, seq, m.Key))
		keys[putClaimed] = append(keys[putClaimed], claimedKey(nil, rec.resolved(), seq))
		if m.Type != "" {
			keys[putType] = append(keys[putType], putSeq(typePrefix(nil, m.Type), seq))
		}
		out.Keys = append(out.Keys, m.Key)
	}
	for i, ks := range keys {
		b := tx.Bucket(putBuckets[i])
		for _, k := range ks {
			if err := b.Delete(k); err != nil {
				return fmt.Errorf("%s: %w", putBuckets[i], err)
			}
		}
	}
	return nil
}

// markDeleted records in the meta bucket the format of a store with
// deletions, the last receive sequence assigned (top) with its receive
// timestamp, and the number of messages deleted.
func markDeleted(tx *bolt.Tx, top uint64, ts float64, deleted uint64) error {
	meta := tx.Bucket(bucketMeta)
	v := putSeq(nil, top)
	v = binary.BigEndian.AppendUint64(v, math.Float64bits(ts))
	for _, kv := range []kv{
		{metaVersion, binary.BigEndian.AppendUint32(nil, formatDeleted)},
		{metaTop, v},
		{metaDeleted, binary.BigEndian.AppendUint64(nil, deleted)},
	} {
		if err := meta.Put(kv.k, kv.v); err != nil {
			return fmt.Errorf("meta %s: %w", kv.k, err)
		}
	}
	return nil
}
