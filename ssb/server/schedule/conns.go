package schedule

import "time"

// Connected reports a connection that opened at now (an outbound one
// ends the dial of its address). Its feed's known peers are reset: no
// failures, and on a first connection a connect event. When c and an
// open connection with the same peer in the other direction opened within
// CrossDialWithin, the two are a cross-dial and one is closed (see
// KeepDialedBy).
func (s *Scheduler) Connected(c Conn, now time.Time) {
	if k, ok := s.peers[c.Addr]; ok && c.Outbound {
		k.dialing = false
	}
	s.crossDial(c, now)
	s.conns[c.ID] = &openConn{Conn: c, since: now}
	s.byFeed[c.Feed]++
	first := s.byFeed[c.Feed] == 1
	for _, k := range s.sorted() {
		if k.Feed != c.Feed {
			continue
		}
		k.Failures, k.LastError, k.everUp = 0, "", true
		if first {
			k.StateChange, k.HasConnected, k.Client = now, true, c.Outbound
			s.emit(EventConnect, k, "")
		}
	}
}

// Disconnected reports that connection id ended at now, having lasted
// lasted (the driver measures the peer's connection from its first open
// one, as it shows it). When it was its feed's last, each known peer of the
// feed waits backoff(flaps) before it is dialed again, where flaps counts
// the connections in a row that lasted less than StableAfter.
func (s *Scheduler) Disconnected(id ConnID, lasted time.Duration, now time.Time) {
	c, ok := s.conns[id]
	if !ok {
		return
	}
	delete(s.conns, id)
	if s.byFeed[c.Feed]--; s.byFeed[c.Feed] > 0 {
		return
	}
	delete(s.byFeed, c.Feed)
	for _, k := range s.sorted() {
		if k.Feed != c.Feed {
			continue
		}
		if lasted < s.cfg.StableAfter {
			k.flaps++
		} else {
			k.flaps = 0
		}
		k.NextTry = now.Add(s.backoff(k.flaps))
		k.StateChange = now
		s.emit(EventDisconnect, k, "")
	}
}
