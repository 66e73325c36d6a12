package schedule

import (
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// KeepDialedBy returns which of two connections between self and peer
// that dialed each other at once both sides keep: the one dialed by the
// smaller public key (bytes compared). Each side computes the same answer
// from the same two keys, so the connection either side closes is the
// same one, and closing it from one side is enough.
func KeepDialedBy(self, peer refs.Feed) refs.Feed {
	if self.Compare(peer) <= 0 {
		return self
	}
	return peer
}

// crossDial closes one of c and an open connection with the same peer in
// the other direction that opened within CrossDialWithin: ours
// (outbound) if the peer's key is the smaller, else the inbound one.
func (s *Scheduler) crossDial(c Conn, now time.Time) {
	self := s.cfg.Self
	if self.IsZero() || c.Feed == self {
		return
	}
	keepOutbound := KeepDialedBy(self, c.Feed) == self
	for _, id := range s.connIDs() {
		o := s.conns[id]
		if o.Feed != c.Feed || o.Outbound == c.Outbound || now.Sub(o.since) > s.cfg.CrossDialWithin {
			continue
		}
		lose := o.ID
		if c.Outbound != keepOutbound {
			lose = c.ID
		}
		s.ready.Closes = append(s.ready.Closes, Close{Conn: lose, Reason: ReasonCrossDial})
		return
	}
}
