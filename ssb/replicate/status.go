package replicate

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// FeedStatus is what the EBT sessions know of one feed, in the shape of
// ssb-ebt's peerStatus(id): {id, seq, peers: {<peer>: {seq, replicating}}}.
// Seq (ours) is absent when no message of the feed is stored; a peer is
// listed when its sequence of the feed is known or the feed is noted with
// it.
type FeedStatus struct {
	Seq   *int64              `json:"seq,omitempty"`
	Peers map[string]PeerFeed `json:"peers"`
}

// PeerFeed is one EBT peer's state of a feed: its sequence (-1: it does
// not replicate the feed) and, once the feed is noted either way, the
// replication state as epidemic-broadcast-trees keeps it.
type PeerFeed struct {
	Seq         *int64       `json:"seq,omitempty"`
	Replicating *Replicating `json:"replicating,omitempty"`
}

// Replicating is epidemic-broadcast-trees' per peer and feed state: we
// send the feed to the peer (Tx), we receive it from the peer (Rx), the
// peer's sequence as sent or noted (Sent; null before it is known), and
// the sequence our last note gave (Requested, -1: we do not replicate
// it; null before a note).
type Replicating struct {
	Tx        bool   `json:"tx"`
	Rx        bool   `json:"rx"`
	Sent      *int64 `json:"sent"`
	Requested *int64 `json:"requested"`
}

// PeerStatus returns what the EBT sessions know of feed.
func (r *Replicator) PeerStatus(feed refs.Feed) FeedStatus {
	st := FeedStatus{Peers: map[string]PeerFeed{}}
	if seq := r.latest(feed); seq > 0 {
		st.Seq = &seq
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, es := range r.ebts {
		fs := r.machine.Feed(id, feed)
		var pf PeerFeed
		if fs.Known {
			seq := fs.Theirs
			pf.Seq = &seq
		}
		if fs.Told || fs.Noted || fs.Sending {
			rep := &Replicating{Tx: fs.Sending, Rx: fs.Receiving, Sent: pf.Seq}
			if fs.Told {
				req := int64(-1)
				if fs.Value >= 0 {
					req = fs.Value >> 1
				}
				rep.Requested = &req
			}
			pf.Replicating = rep
		}
		if pf.Seq != nil || pf.Replicating != nil {
			st.Peers[es.p.id.String()] = pf
		}
	}
	return st
}

// Change is one of ssb-replicate's replication change events
// (replicate.changes): our id; the messages stored per second (Rate); the
// feeds stored (Feeds) and the sum of their sequences (Progress); for each
// peer, the wanted feeds it has more of than is stored here
// (PendingPeers, peers with none left out); the wanted feeds some peer has
// more of (IncompleteFeeds); and the sum over the feeds the peers told of
// the most any peer has (Total). Peers tell their sequences through EBT.
type Change struct {
	ID              string         `json:"id"`
	Rate            float64        `json:"rate"`
	Feeds           int            `json:"feeds"`
	PendingPeers    map[string]int `json:"pendingPeers"`
	IncompleteFeeds int            `json:"incompleteFeeds"`
	Progress        int64          `json:"progress"`
	Total           int64          `json:"total"`
}

// ChangesEvery is how often Changes looks for a change (ssb-replicate's
// debounce: 200 ms).
const ChangesEvery = 200 * time.Millisecond

// Changes calls emit with a Change each time replication's state differs
// from the last one (the state when it is called is not emitted, as
// ssb-replicate's changes starts with the next change), until ctx ends or
// emit fails.
func (r *Replicator) Changes(ctx context.Context, emit func(Change) error) error {
	c := changer{r: r, start: time.Now()}
	last, err := c.next(ctx)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(ChangesEvery):
		}
		ch, err := c.next(ctx)
		if err != nil {
			return err
		}
		if reflect.DeepEqual(ch, last) {
			continue
		}
		last = ch
		if err := emit(ch); err != nil {
			return err
		}
	}
}

// changer computes Changes, reading the stored feeds again only when the
// store has grown.
type changer struct {
	r        *Replicator
	durable  uint64 // the store's message count when heads were read
	read     bool
	ours     map[refs.Feed]int64
	progress int64
	start    time.Time // of the rate's window
	count    uint64    // messages stored in the window
	rate     float64
}

func (c *changer) next(ctx context.Context) (Change, error) {
	r := c.r
	if d := r.store.Durable(); !c.read || d != c.durable {
		if c.read {
			c.count += d - c.durable
			if secs := time.Since(c.start).Seconds(); secs >= 1 {
				c.rate, c.start, c.count = float64(c.count)/secs, time.Now(), 0
			}
		}
		heads, err := r.store.Feeds(ctx)
		if err != nil {
			return Change{}, fmt.Errorf("replicate: changes: %w", err)
		}
		c.ours = make(map[refs.Feed]int64, len(heads))
		c.progress = 0
		for _, h := range heads {
			c.ours[h.Feed] = h.State.Sequence
			c.progress += h.State.Sequence
		}
		c.durable, c.read = d, true
	}
	ch := Change{ID: r.self.String(), Rate: c.rate, Feeds: len(c.ours), Progress: c.progress, PendingPeers: map[string]int{}}
	known := make(map[refs.Feed]int64)
	incomplete := make(map[refs.Feed]bool)
	r.mu.Lock()
	wanted := maps.Clone(r.wanted)
	for id, es := range r.ebts {
		pending := 0
		for f, seq := range r.machine.Clock(id) {
			if seq <= 0 {
				continue
			}
			known[f] = max(known[f], seq)
			if wanted[f] && seq > c.ours[f] {
				pending++
				incomplete[f] = true
			}
		}
		if pending > 0 {
			ch.PendingPeers[es.p.id.String()] += pending
		}
	}
	r.mu.Unlock()
	ch.IncompleteFeeds = len(incomplete)
	for _, seq := range known {
		ch.Total += seq
	}
	return ch, nil
}
