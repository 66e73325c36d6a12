package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// maxProblems is how many problems Check lists before it stops looking.
const maxProblems = 20

// Check verifies the database, as fsck does a file system, and returns nil
// or an error wrapping ErrCorrupt that lists the problems found (at most
// 20). It reads the log in receive order and checks that
//
//   - receive sequences and receive timestamps strictly increase, and the
//     receive sequences count from 1 without gaps but those of deleted
//     messages: the positions the log lacks up to the last one assigned
//     are exactly as many as the meta bucket counts deleted, and a store
//     with deletions has their format;
//   - every record decodes (message.Decode: shape, content, size) to the
//     message id it is stored with, and re-prints to the stored bytes;
//   - every feed's chain is intact: sequences 1, 2, 3... with each
//     previous the id of the message before;
//   - every index holds exactly the entries the log implies: the feed and
//     id indexes point at the right receive sequence, the claimed index
//     and the type index have the message's entry, no index has an entry
//     more, and each feed's head is its last message.
//
// Signatures are not verified again: Append verified them. Check runs in
// one read transaction, so it sees one consistent state; while it runs, a
// commit that must grow the file's memory map waits for it. Its cost is
// that of decoding every message (a few microseconds each).
func (s *Store) Check(ctx context.Context) error {
	c := &checker{feeds: make(map[refs.Feed]*checkedFeed)}
	err := s.view(func(tx *bolt.Tx) error { return c.run(ctx, tx) })
	if err != nil {
		return fmt.Errorf("store: check: %w", err)
	}
	if len(c.problems) > 0 {
		return fmt.Errorf("store: check: %w: %w", ErrCorrupt, errors.Join(c.problems...))
	}
	return nil
}

type checkedFeed struct {
	state message.FeedState
	seq   uint64 // receive sequence of the head
}

type checker struct {
	lastSeq  uint64 // the last receive sequence of the log read
	feeds    map[refs.Feed]*checkedFeed
	problems []error
	typed    int
}

// problem records a problem and reports whether to stop looking.
func (c *checker) problem(format string, args ...any) bool {
	c.problems = append(c.problems, fmt.Errorf(format, args...))
	return len(c.problems) >= maxProblems
}

var errStop = errors.New("store: check: too many problems")

func (c *checker) run(ctx context.Context, tx *bolt.Tx) error {
	n, err := c.log(ctx, tx)
	if errors.Is(err, errStop) {
		return nil
	}
	if err != nil {
		return err
	}
	if c.counters(tx, uint64(n)) {
		return nil
	}
	counts := []struct {
		bucket []byte
		want   int
	}{
		{bucketFeed, n}, {bucketID, n}, {bucketClaimed, n}, {bucketType, c.typed}, {bucketHead, len(c.feeds)},
	}
	for _, cnt := range counts {
		if got := tx.Bucket(cnt.bucket).Stats().KeyN; got != cnt.want && c.problem("index %s has %d entries, want %d", cnt.bucket, got, cnt.want) {
			return nil
		}
	}
	return tx.Bucket(bucketHead).ForEach(func(k, v []byte) error {
		f, err := feedOf(k)
		if err != nil {
			c.problem("head %x: %v", k, err)
			return nil
		}
		want := c.feeds[f]
		h, _, err := readHead(tx, f)
		switch {
		case err != nil:
			c.problem("head of %s: %v", f, err)
		case want == nil:
			c.problem("head of %s, a feed without messages", f)
		case h.State != want.state || h.Seq != want.seq:
			c.problem("head of %s is %d %s at %d, want %d %s at %d", f, h.State.Sequence, h.State.ID, h.Seq, want.state.Sequence, want.state.ID, want.seq)
		}
		if len(c.problems) >= maxProblems {
			return errStop
		}
		return nil
	})
}

// counters checks the meta bucket's record of deletions against the n
// records of the log, and reports whether to stop.
func (c *checker) counters(tx *bolt.Tx, n uint64) bool {
	top, err := readTop(tx)
	if err != nil {
		return c.problem("%v", err)
	}
	if n+top.deleted != top.seq {
		return c.problem("log keys do not add up: %d records and %d deleted messages, but receive sequences 1 to %d", n, top.deleted, top.seq)
	}
	v := tx.Bucket(bucketMeta).Get(metaVersion)
	deletions := top.deleted > 0 || tx.Bucket(bucketMeta).Get(metaTop) != nil
	if deletions && (len(v) != 4 || binary.BigEndian.Uint32(v) != formatDeleted) {
		return c.problem("messages were deleted, but the database format is %x, not %d", v, formatDeleted)
	}
	return false
}

// log checks every record and its index entries, and returns the number
// of records.
func (c *checker) log(ctx context.Context, tx *bolt.Tx) (int, error) {
	var (
		n      int
		lastTS float64
	)
	cur := tx.Bucket(bucketLog).Cursor()
	for k, v := cur.First(); k != nil; k, v = cur.Next() {
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return n, err
			}
		}
		if len(k) != seqLen || getSeq(k) <= c.lastSeq {
			if c.problem("log key %x at position %d, want a receive sequence after %d", k, n, c.lastSeq) {
				return n, errStop
			}
			continue
		}
		seq := getSeq(k)
		c.lastSeq = seq
		rec := record(v)
		if !rec.valid() {
			if c.problem("log record %d has %d bytes", seq, len(v)) {
				return n, errStop
			}
			continue
		}
		if rec.received() <= lastTS && c.problem("receive timestamp of %d, %v, is not after the previous, %v", seq, rec.received(), lastTS) {
			return n, errStop
		}
		lastTS = rec.received()
		if c.message(tx, seq, rec) {
			return n, errStop
		}
	}
	return n, nil
}

// message checks the record of receive sequence seq, and reports whether
// to stop.
func (c *checker) message(tx *bolt.Tx, seq uint64, rec record) bool {
	m, err := message.Decode(rec.raw())
	if err != nil {
		return c.problem("message %d does not decode: %v", seq, err)
	}
	if m.Key != rec.key() {
		return c.problem("message %d is stored as %s but its id is %s", seq, rec.key(), m.Key)
	}
	if !bytes.Equal(m.Raw, rec.raw()) {
		return c.problem("message %d (%s) is not in compact form", seq, m.Key)
	}
	if r := resolvedTimestamp(m.Timestamp, rec.received()); r != rec.resolved() {
		return c.problem("message %d (%s) has resolved timestamp %v, want %v", seq, m.Key, rec.resolved(), r)
	}
	f := c.feeds[m.Author]
	if f == nil {
		f = &checkedFeed{}
		c.feeds[m.Author] = f
	}
	if stop := c.chain(seq, m, f); stop {
		return true
	}
	f.state, f.seq = m.State(), seq
	if m.Type != "" {
		c.typed++
	}
	return c.indexed(tx, seq, rec, m)
}

// chain checks that m follows f's head.
func (c *checker) chain(seq uint64, m *message.Message, f *checkedFeed) bool {
	if m.Sequence != f.state.Sequence+1 {
		return c.problem("message %d (%s) has sequence %d, but %s's previous message has %d", seq, m.Key, m.Sequence, m.Author, f.state.Sequence)
	}
	switch {
	case m.Sequence == 1 && m.Previous != nil:
		return c.problem("message %d (%s) is %s's first, with previous %s", seq, m.Key, m.Author, m.Previous)
	case m.Sequence > 1 && (m.Previous == nil || *m.Previous != f.state.ID):
		return c.problem("message %d (%s) breaks %s's chain: previous is not %s", seq, m.Key, m.Author, f.state.ID)
	}
	return false
}

// indexed checks m's entry in each index.
func (c *checker) indexed(tx *bolt.Tx, seq uint64, rec record, m *message.Message) bool {
	want := seqKey(seq)
	if v := tx.Bucket(bucketFeed).Get(feedKey(nil, m.Author, uint32(m.Sequence))); !bytes.Equal(v, want) {
		if c.problem("feed index of %s %d is %x, want receive sequence %d", m.Author, m.Sequence, v, seq) {
			return true
		}
	}
	if v := tx.Bucket(bucketID).Get(idKey(nil, seq, m.Key)); !bytes.Equal(v, want) {
		if c.problem("id index of %s is %x, want receive sequence %d", m.Key, v, seq) {
			return true
		}
	}
	if !has(tx.Bucket(bucketClaimed), claimedKey(nil, rec.resolved(), seq)) {
		if c.problem("claimed index lacks message %d (%s)", seq, m.Key) {
			return true
		}
	}
	if m.Type != "" {
		if !has(tx.Bucket(bucketType), putSeq(typePrefix(nil, m.Type), seq)) {
			return c.problem("type index lacks message %d (%s) of type %q", seq, m.Key, m.Type)
		}
	}
	return false
}

// has reports whether b holds key k.
func has(b *bolt.Bucket, k []byte) bool {
	got, _ := b.Cursor().Seek(k)
	return bytes.Equal(got, k)
}
