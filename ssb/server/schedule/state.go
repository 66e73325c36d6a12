package schedule

import (
	"cmp"
	"slices"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Peer returns the state of the known peer at addr.
func (s *Scheduler) Peer(addr string) (PeerState, bool) {
	k, ok := s.peers[addr]
	if !ok {
		return PeerState{}, false
	}
	return s.state(k), true
}

// Peers returns the known peers by address.
func (s *Scheduler) Peers() []PeerState {
	out := make([]PeerState, 0, len(s.peers))
	for _, k := range s.sorted() {
		out = append(out, s.state(k))
	}
	return out
}

// IsConnected reports whether feed f has an open connection.
func (s *Scheduler) IsConnected(f refs.Feed) bool { return s.byFeed[f] > 0 }

// Enabled reports whether Tick dials.
func (s *Scheduler) Enabled() bool { return s.enabled }

func (s *Scheduler) state(k *peer) PeerState {
	st := k.PeerState
	switch {
	case s.byFeed[k.Feed] > 0:
		st.State = StateConnected
	case k.dialing:
		st.State = StateConnecting
	default:
		st.State = ""
	}
	return st
}

// sorted returns the known peers by address, for a deterministic order.
func (s *Scheduler) sorted() []*peer {
	out := make([]*peer, 0, len(s.peers))
	for _, k := range s.peers {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *peer) int { return cmp.Compare(a.Addr, b.Addr) })
	return out
}

// connIDs returns the open connections' ids in order.
func (s *Scheduler) connIDs() []ConnID {
	out := make([]ConnID, 0, len(s.conns))
	for id := range s.conns {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}
