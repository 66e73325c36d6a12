// Package schedule is the connection scheduler of the server as a pure
// state machine, in the style of etcd's raft: which known peers to dial
// and when, the back-off after failures and short connections, when a
// peer found in pub messages is dropped, and which of two connections
// with the same peer to close after a cross-dial.
//
// A Scheduler has no goroutines, locks, clocks, files or network. Its
// inputs are method calls that report events, each with the time it
// happened (Add, Remove, Tick, DialStarted, DialFailed, DialCanceled,
// Connected, Disconnected, Enable); its outputs are collected until the
// driver takes them with Ready: dials to start, connections to close,
// peers dropped, events for watchers of the known peers, and whether the
// peer list must be saved. The driver (ssb/server) owns the clock, the
// sockets and gossip.json, and calls the Scheduler under one lock.
//
// A peer is known by its address (a multiserver address) and has the
// feed of its key; connections are counted by feed, so a feed connected
// through any address, or dialing us, is connected.
package schedule

import (
	"errors"
	"math/rand/v2"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Sources of known peers that the rules tell apart.
const (
	// SourcePub is a peer announced by a pub message: bounded
	// (MaxPubPeers), dropped after MaxDialFailures failed dials if it
	// never connected, and then refused from pub messages for DroppedFor.
	SourcePub = "pub"
	// SourceManual is a peer the owner added: never dropped.
	SourceManual = "manual"
)

// Errors of Add and Remove.
var (
	// ErrTooManyPubs refuses a peer from a pub message when MaxPubPeers
	// are known.
	ErrTooManyPubs = errors.New("schedule: too many peers from pub messages are known")
	// ErrRecentlyDropped refuses a peer from a pub message that was
	// dropped less than DroppedFor ago.
	ErrRecentlyDropped = errors.New("schedule: peer was dropped recently")
	// ErrUnknownPeer is returned by Remove for an address that is not known.
	ErrUnknownPeer = errors.New("schedule: not a known peer")
)

// A Peer is a dialable address and the feed of its key.
type Peer struct {
	Addr string
	Feed refs.Feed
}

// ConnID names a connection; the driver chooses it, unique while open.
type ConnID uint64

// A Conn is an open connection as Connected reports it.
type Conn struct {
	ID   ConnID
	Feed refs.Feed
	// Outbound is true when this server dialed it; Addr is then the
	// address dialed ("" if not known).
	Outbound bool
	Addr     string
}

// A Scheduler is the state machine. It is not safe for concurrent use.
type Scheduler struct {
	cfg     Config
	rng     *rand.Rand
	enabled bool

	peers   map[string]*peer // by address
	conns   map[ConnID]*openConn
	byFeed  map[refs.Feed]int // open connections by feed
	dropped map[string]time.Time

	ready Ready
}

type peer struct {
	PeerState
	dialing bool // a dial is in flight
	everUp  bool // connected since it was added
	flaps   int  // connections in a row that ended within StableAfter
}

type openConn struct {
	Conn
	since time.Time
}

// New returns an enabled scheduler with no known peers. It panics if cfg
// is invalid (Config.Validate).
func New(cfg Config) *Scheduler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.WithDefaults()
	return &Scheduler{
		cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), enabled: true,
		peers: make(map[string]*peer), conns: make(map[ConnID]*openConn),
		byFeed: make(map[refs.Feed]int), dropped: make(map[string]time.Time),
	}
}

// Config returns the configuration, with its defaults.
func (s *Scheduler) Config() Config { return s.cfg }

// SetSelf sets Config.Self, which the driver may learn after it made the
// scheduler.
func (s *Scheduler) SetSelf(f refs.Feed) { s.cfg.Self = f }

// SetOutbound sets Config.Outbound (0: the default); it applies from the
// next Tick.
func (s *Scheduler) SetOutbound(n int) {
	if n <= 0 {
		n = DefaultOutbound
	}
	s.cfg.Outbound = n
}
