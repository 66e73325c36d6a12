package schedule

import (
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Add makes p a known peer from source (SourcePub and SourceManual have
// rules; any other name is kept like a manual peer). It reports whether p
// is new; a known address keeps its source. A peer from SourcePub is
// refused when it was dropped less than DroppedFor ago
// (ErrRecentlyDropped) or MaxPubPeers are known (ErrTooManyPubs); a peer
// from another source clears the memory of its drop.
func (s *Scheduler) Add(p Peer, source string, now time.Time) (bool, error) {
	if _, ok := s.peers[p.Addr]; ok {
		return false, nil
	}
	if source == SourcePub {
		if at, ok := s.dropped[p.Addr]; ok && now.Sub(at) < s.cfg.DroppedFor {
			return false, ErrRecentlyDropped
		}
		if s.count(SourcePub) >= s.cfg.MaxPubPeers {
			return false, ErrTooManyPubs
		}
	}
	delete(s.dropped, p.Addr)
	k := &peer{PeerState: PeerState{Peer: p, Source: source}}
	s.peers[p.Addr] = k
	s.emit(EventDiscover, k, source)
	s.ready.Save = true
	return true, nil
}

func (s *Scheduler) count(source string) int {
	n := 0
	for _, k := range s.peers {
		if k.Source == source {
			n++
		}
	}
	return n
}

// Remove forgets the peer at addr (ErrUnknownPeer if there is none). Its
// connections stay open.
func (s *Scheduler) Remove(addr string) error {
	k, ok := s.peers[addr]
	if !ok {
		return ErrUnknownPeer
	}
	s.remove(k)
	return nil
}

// RemoveFeed forgets every address of feed f; it reports whether there
// was one.
func (s *Scheduler) RemoveFeed(f refs.Feed) bool {
	found := false
	for _, k := range s.sorted() {
		if k.Feed == f {
			s.remove(k)
			found = true
		}
	}
	return found
}

func (s *Scheduler) remove(k *peer) {
	delete(s.peers, k.Addr)
	s.emit(EventRemove, k, "")
	s.ready.Save = true
}

// drop removes a pub that kept failing and remembers when, for
// DroppedFor; when DroppedMax are remembered the oldest is forgotten.
func (s *Scheduler) drop(k *peer, now time.Time) {
	s.remove(k)
	if len(s.dropped) >= s.cfg.DroppedMax {
		oldest := ""
		for a, at := range s.dropped {
			if oldest == "" || at.Before(s.dropped[oldest]) || at.Equal(s.dropped[oldest]) && a < oldest {
				oldest = a
			}
		}
		delete(s.dropped, oldest)
	}
	s.dropped[k.Addr] = now
	s.ready.Dropped = append(s.ready.Dropped, k.Peer)
}

func (s *Scheduler) forgetDrops(now time.Time) {
	for a, at := range s.dropped {
		if now.Sub(at) >= s.cfg.DroppedFor {
			delete(s.dropped, a)
		}
	}
}
