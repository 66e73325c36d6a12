package ebt

import "time"

// Start decides how replication starts on a new connection: EBT, or the
// fallback to legacy replication (ssb-replicate's createHistoryStream), as
// ssb-ebt falls back with config.replicate.fallback. Like Machine it does
// no I/O and reads no clock: the driver reports what happens and does what
// it is told.
//
//   - The side that dialed calls ebt.replicate at once; if the call fails
//     or the peer sends no note before the stream ends, it falls back.
//   - The side that was dialed waits for the peer's ebt.replicate; if
//     none comes within the wait, it falls back.
//   - With EBT turned off (noEBT), the dialer falls back at once; the
//     dialed side waits for the peer's first call of any method (its
//     ebt.replicate, refused, or anything else), or the wait: before
//     that the peer's connection handlers may not be set up (ssb-replicate
//     misses a createHistoryStream that arrives with the end of the
//     handshake, and then never asks).
type Start struct {
	dialer, noEBT bool
	deadline      time.Time
	done          bool
}

// A StartAction is what the driver is to do next.
type StartAction int

// Actions of Start.
const (
	// Wait for the next event (a call from the peer, the end of a
	// session, or a tick at Deadline).
	Wait StartAction = iota
	// CallEBT calls ebt.replicate on the peer and runs the session;
	// report its end with SessionEnded.
	CallEBT
	// RunEBT: the peer called ebt.replicate; its session runs (the
	// connection replicates with EBT until it ends).
	RunEBT
	// RunLegacy starts legacy replication with the peer.
	RunLegacy
	// Stop: EBT ran on our call and ended with the stream; nothing more.
	Stop
)

func (a StartAction) String() string {
	switch a {
	case Wait:
		return "wait"
	case CallEBT:
		return "call ebt.replicate"
	case RunEBT:
		return "run ebt"
	case RunLegacy:
		return "run legacy"
	case Stop:
		return "stop"
	}
	return "?"
}

// NewStart starts the decision for a connection opened at now; wait is
// how long the dialed side waits for the peer's call.
func NewStart(dialer, noEBT bool, now time.Time, wait time.Duration) (*Start, StartAction) {
	s := &Start{dialer: dialer, noEBT: noEBT, deadline: now.Add(wait)}
	switch {
	case dialer && noEBT:
		return s.finish(RunLegacy)
	case dialer:
		return s, CallEBT
	}
	return s, Wait
}

// Deadline is when the dialed side stops waiting for the peer's call.
func (s *Start) Deadline() time.Time { return s.deadline }

func (s *Start) finish(a StartAction) (*Start, StartAction) {
	s.done = true
	return s, a
}

// Called reports that the peer called a method on the connection:
// ebt.replicate (ebt) or another.
func (s *Start) Called(ebt bool) StartAction {
	if s.done || s.dialer {
		return Wait
	}
	switch {
	case s.noEBT:
		_, a := s.finish(RunLegacy)
		return a
	case ebt:
		_, a := s.finish(RunEBT)
		return a
	}
	return Wait
}

// SessionEnded reports the end of the session our ebt.replicate call ran
// (or the call's failure): whether the peer sent a note, that is speaks
// EBT.
func (s *Start) SessionEnded(gotNote bool) StartAction {
	if s.done || !s.dialer {
		return Wait
	}
	if gotNote {
		_, a := s.finish(Stop)
		return a
	}
	_, a := s.finish(RunLegacy)
	return a
}

// Tick reports the time: past the deadline the dialed side falls back.
func (s *Start) Tick(now time.Time) StartAction {
	if s.done || s.dialer || now.Before(s.deadline) {
		return Wait
	}
	_, a := s.finish(RunLegacy)
	return a
}
