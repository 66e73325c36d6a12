package gossip

import (
	"cmp"
	"slices"
	"time"
)

// A publisher is what a node knows of one key's messages.
type publisher struct {
	key      string
	seen     spans     // the seqs seen from it (own: all used so far)
	last     time.Time // when its latest new message arrived
	retained int       // how many of its messages are retained
}

// An entry is a retained message.
type entry struct {
	id   ID
	raw  string // the envelope line as received, forwarded as is
	pub  *publisher
	seq  int64
	at   time.Time // when it was accepted
	gone bool      // evicted; queues may still point at it
}

// retained holds the retained messages in the order they were accepted,
// which is also the order they expire in.
type retained struct {
	fifo  []*entry
	head  int
	byRaw map[string]*entry
	byID  map[ID]*entry
	bytes int
}

func (r *retained) len() int { return len(r.fifo) - r.head }

func (r *retained) oldest() *entry {
	if r.head == len(r.fifo) {
		return nil
	}
	return r.fifo[r.head]
}

func (r *retained) add(e *entry) {
	r.fifo = append(r.fifo, e)
	r.byRaw[e.raw] = e
	r.byID[e.id] = e
	r.bytes += len(e.raw)
}

// popOldest removes the oldest entry.
func (r *retained) popOldest() *entry {
	e := r.fifo[r.head]
	r.fifo[r.head] = nil
	r.head++
	if r.head > 64 && r.head > len(r.fifo)/2 {
		r.fifo = slices.Delete(r.fifo, 0, r.head)
		r.head = 0
	}
	delete(r.byRaw, e.raw)
	delete(r.byID, e.id)
	r.bytes -= len(e.raw)
	e.gone = true
	return e
}

// all returns the retained entries, oldest first. The slice is shared.
func (r *retained) all() []*entry { return r.fifo[r.head:] }

// bySeq returns the retained entries sorted by publisher, then seq: the
// order in which a JavaScript peer, which drops a seq below the highest it
// has seen, accepts them all.
func (r *retained) bySeq() []*entry {
	es := slices.Clone(r.all())
	slices.SortStableFunc(es, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.pub.key, b.pub.key), cmp.Compare(a.seq, b.seq))
	})
	return es
}

// seenSet remembers the last max IDs accepted.
type seenSet struct {
	max  int
	set  map[ID]struct{}
	ring []ID
	next int
}

func (s *seenSet) has(id ID) bool {
	_, ok := s.set[id]
	return ok
}

func (s *seenSet) add(id ID) {
	if len(s.ring) < s.max {
		s.ring = append(s.ring, id)
	} else {
		delete(s.set, s.ring[s.next])
		s.ring[s.next] = id
		s.next = (s.next + 1) % s.max
	}
	s.set[id] = struct{}{}
}
