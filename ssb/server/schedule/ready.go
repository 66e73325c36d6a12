package schedule

import "time"

// Ready is what the scheduler asks of its driver since the last call of
// Ready, in the order it was decided.
type Ready struct {
	// Dials are the peers to dial now. Each is marked dialing until the
	// driver reports Connected (outbound, with its address), DialFailed or
	// DialCanceled.
	Dials []Peer
	// Closes are connections to close (the driver then reports
	// Disconnected as for any other end).
	Closes []Close
	// Dropped are the peers the rules removed (a pub that kept failing).
	Dropped []Peer
	// Events are the changes of the known peers, for their watchers.
	Events []Event
	// Save is true when the list of known peers changed: the driver
	// writes it.
	Save bool
}

// A Close asks the driver to close a connection.
type Close struct {
	Conn   ConnID
	Reason string
}

// Reasons of Close.
const (
	// ReasonCrossDial: this peer and we dialed each other at once; the
	// connection dialed by the larger key goes.
	ReasonCrossDial = "cross-dial"
)

// Event types, as ssb-gossip's gossip.changes names them.
const (
	EventDiscover       = "discover"        // a peer was added
	EventRemove         = "remove"          // a peer was removed or dropped
	EventConnect        = "connect"         // a first connection to the peer's feed opened
	EventDisconnect     = "disconnect"      // the last connection to the peer's feed closed
	EventConnectFailure = "connect-failure" // dialing the peer failed
)

// An Event is a change of a known peer: its type, the peer's state just
// after it, and for discover the source it was added from.
type Event struct {
	Type   string
	Peer   PeerState
	Source string
}

// Connection states of a PeerState.
const (
	StateConnected  = "connected"
	StateConnecting = "connecting"
)

// PeerState is a known peer as the scheduler sees it.
type PeerState struct {
	Peer
	Source string
	// State is StateConnected (its feed has an open connection),
	// StateConnecting (being dialed) or "".
	State string
	// Failures is how many dials failed in a row since the last
	// connection; LastError is the last failure's error ("" after a
	// connection).
	Failures  int
	LastError string
	// NextTry is when it may be dialed again (zero: at once).
	NextTry time.Time
	// StateChange is the time of the last connect, disconnect, dial or
	// failure; zero before any.
	StateChange time.Time
	// HasConnected is true once a connection opened since it was added;
	// Client is then whether this server dialed the last one.
	HasConnected, Client bool
}

// emit records an event with a snapshot of k.
func (s *Scheduler) emit(typ string, k *peer, source string) {
	s.ready.Events = append(s.ready.Events, Event{Type: typ, Peer: s.state(k), Source: source})
}

// Ready returns what was decided since the last call and clears it.
func (s *Scheduler) Ready() Ready {
	r := s.ready
	s.ready = Ready{}
	return r
}
