package gossip

import "slices"

// A span is the seqs from lo to hi, both included.
type span struct{ lo, hi int64 }

// spans is a set of seqs: sorted, disjoint, non-adjacent spans. For a
// publisher that numbers its messages 0, 1, 2, ... and whose messages all
// arrived, it is one span: the scuttlebutt high-water mark.
type spans []span

// search returns the index of the first span that ends at or after x.
func (s spans) search(x int64) int {
	i, _ := slices.BinarySearchFunc(s, x, func(sp span, x int64) int {
		if sp.hi < x {
			return -1
		}
		return 1
	})
	return i
}

func (s spans) contains(x int64) bool {
	i := s.search(x)
	return i < len(s) && s[i].lo <= x
}

// add returns s with x added. Past limit spans the two lowest are merged,
// which marks the seqs between them as seen: a message that old arriving
// later is dropped.
func (s spans) add(x int64, limit int) spans {
	i := s.search(x)
	if i < len(s) && s[i].lo <= x {
		return s
	}
	left := i > 0 && s[i-1].hi == x-1
	right := i < len(s) && s[i].lo == x+1
	switch {
	case left && right:
		s[i-1].hi = s[i].hi
		s = slices.Delete(s, i, i+1)
	case left:
		s[i-1].hi = x
	case right:
		s[i].lo = x
	default:
		s = slices.Insert(s, i, span{x, x})
	}
	for len(s) > max(limit, 1) {
		s[1].lo = s[0].lo
		s = slices.Delete(s, 0, 1)
	}
	return s
}
