package replicate

import (
	"slices"
	"strings"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Upto is a wanted feed and the sequence stored here, as ssb-replicate's
// upto streams it; Sequence -1 says the feed is no longer wanted.
type Upto struct {
	ID       string `json:"id"`
	Sequence int64  `json:"sequence"`
}

// maxWantQueue bounds the changes queued for one WatchWanted subscriber;
// one that falls further behind is dropped (its channel closed).
const maxWantQueue = 4096

type wantSub struct {
	ch     chan Upto
	closed bool
}

// Upto returns each wanted feed with the sequence stored here (0 if
// none), ordered by id.
func (r *Replicator) Upto() []Upto {
	wanted := r.Wanted()
	out := make([]Upto, 0, len(wanted))
	for _, f := range wanted {
		out = append(out, Upto{ID: f.String(), Sequence: r.latest(f)})
	}
	slices.SortFunc(out, func(a, b Upto) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// WatchWanted returns the channel of changes of the wanted feeds: a feed
// that becomes wanted with its stored sequence, one given up with -1.
// The channel is closed after stop, or when the subscriber falls
// maxWantQueue changes behind.
func (r *Replicator) WatchWanted() (changes <-chan Upto, stop func()) {
	s := &wantSub{ch: make(chan Upto, maxWantQueue)}
	r.mu.Lock()
	r.wantSubs[s] = struct{}{}
	r.mu.Unlock()
	return s.ch, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.dropSubLocked(s)
	}
}

func (r *Replicator) dropSubLocked(s *wantSub) {
	if !s.closed {
		s.closed = true
		close(s.ch)
		delete(r.wantSubs, s)
	}
}

// notifyWanted tells the WatchWanted subscribers of feeds added to and
// removed from the wanted set.
func (r *Replicator) notifyWanted(added, removed []refs.Feed) {
	if len(added)+len(removed) == 0 {
		return
	}
	r.mu.Lock()
	n := len(r.wantSubs)
	r.mu.Unlock()
	if n == 0 {
		return
	}
	evs := make([]Upto, 0, len(added)+len(removed))
	for _, f := range added {
		evs = append(evs, Upto{ID: f.String(), Sequence: r.latest(f)})
	}
	for _, f := range removed {
		evs = append(evs, Upto{ID: f.String(), Sequence: -1})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for s := range r.wantSubs {
		for _, ev := range evs {
			select {
			case s.ch <- ev:
			default:
				r.dropSubLocked(s)
			}
			if s.closed {
				break
			}
		}
	}
}
