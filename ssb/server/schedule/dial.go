package schedule

import (
	"cmp"
	"slices"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Enable starts (true) or pauses (false) dialing on Tick. Open
// connections stay, and DialStarted still claims peers. A new scheduler
// is enabled.
func (s *Scheduler) Enable(on bool) { s.enabled = on }

// Tick asks for the dials due at now: while enabled, known peers whose
// feed is not connected nor being dialed and whose NextTry has passed,
// earliest NextTry first (then by address), until Outbound known peers are
// connected or being dialed. The driver calls it every Config.Tick.
func (s *Scheduler) Tick(now time.Time) {
	s.forgetDrops(now)
	if !s.enabled {
		return
	}
	open := 0
	var due []*peer
	for _, k := range s.peers {
		switch {
		case k.dialing || s.byFeed[k.Feed] > 0:
			open++
		case !now.Before(k.NextTry):
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b *peer) int {
		return cmp.Or(a.NextTry.Compare(b.NextTry), cmp.Compare(a.Addr, b.Addr))
	})
	for _, k := range due {
		if open >= s.cfg.Outbound {
			break
		}
		if s.feedDialing(k.Feed) { // another address of the same feed was picked
			continue
		}
		s.startDial(k, now)
		s.ready.Dials = append(s.ready.Dials, k.Peer)
		open++
	}
}

// DialStarted claims addr for a dial the driver starts itself (a dial
// the owner asked for): it reports false, and claims nothing, when the
// peer's feed is connected or being dialed, or addr is not known.
func (s *Scheduler) DialStarted(addr string, now time.Time) bool {
	k, ok := s.peers[addr]
	if !ok || s.byFeed[k.Feed] > 0 || s.feedDialing(k.Feed) {
		return false
	}
	s.startDial(k, now)
	return true
}

func (s *Scheduler) startDial(k *peer, now time.Time) {
	k.dialing = true
	k.StateChange = now
}

func (s *Scheduler) feedDialing(f refs.Feed) bool {
	for _, k := range s.peers {
		if k.Feed == f && k.dialing {
			return true
		}
	}
	return false
}

// DialFailed reports that the dial of addr failed with err: the peer
// waits backoff(failures + flaps), and a peer from SourcePub that never
// connected since it was added is dropped at its MaxDialFailures-th
// failure in a row.
func (s *Scheduler) DialFailed(addr string, err error, now time.Time) {
	k, ok := s.peers[addr]
	if !ok {
		return
	}
	k.dialing = false
	k.Failures++
	k.LastError = err.Error()
	k.NextTry = now.Add(s.backoff(k.Failures + k.flaps))
	k.StateChange = now
	s.emit(EventConnectFailure, k, "")
	if k.Source == SourcePub && !k.everUp && k.Failures >= s.cfg.MaxDialFailures {
		s.drop(k, now)
	}
}

// DialCanceled reports that the dial of addr ended without a result (the
// driver is stopping): the peer is no longer being dialed, and nothing is
// counted.
func (s *Scheduler) DialCanceled(addr string) {
	if k, ok := s.peers[addr]; ok {
		k.dialing = false
	}
}
