package replicate

import (
	"context"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// served is a history stream of feed served to peer, live until cancel.
type served struct {
	feed, peer refs.Feed
	cancel     context.CancelFunc
}

// Serving registers a history stream of feed that peer is being served
// (createHistoryStream): cancel is called if feed comes to be kept from
// peer (Block, or a contact message). Call done when the stream ends.
func (r *Replicator) Serving(feed, peer refs.Feed, cancel context.CancelFunc) (done func()) {
	s := &served{feed: feed, peer: peer, cancel: cancel}
	r.mu.Lock()
	r.serving[s] = struct{}{}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		delete(r.serving, s)
		r.mu.Unlock()
	}
}

// recheckServing ends the history streams whose feed is now kept from
// their peer.
func (r *Replicator) recheckServing() {
	r.mu.Lock()
	var end []*served
	for s := range r.serving {
		if r.excludesLocked(s.feed, s.peer) || r.excludesLocked(r.self, s.peer) {
			end = append(end, s)
		}
	}
	r.mu.Unlock()
	for _, s := range end {
		s.cancel()
	}
}

// blockChanged applies a change of Block(from, to, …) or of the graph to
// what runs: the history streams served, the legacy streams asked and the
// EBT machine. A block from our own feed closes the replicating
// connections with to.
func (r *Replicator) blockChanged(from, to refs.Feed) {
	r.recheckServing()
	self := from == r.self
	r.mu.Lock()
	var closing []*peer
	for p := range r.peers {
		if p.id != to {
			continue
		}
		if self && r.excludesLocked(r.self, to) {
			closing = append(closing, p)
			continue
		}
		if fe := p.asking[from]; fe != nil && r.excludesLocked(from, to) {
			fe.cancel()
			delete(p.asking, from)
		}
		if p.legacy {
			r.askLocked(p)
		}
	}
	r.machine.Exclude(from, to, r.excludesLocked(from, to))
	r.flushLocked()
	for _, p := range closing {
		r.log.Info("replicate: a peer is blocked; closing its connection", "peer", to.String())
		if r.stopped {
			go p.e.Close() // shutting down: the connection ends with the server
			continue
		}
		r.wg.Go(func() { p.e.Close() }) // goodbye waits for the flush
	}
	r.mu.Unlock()
}
