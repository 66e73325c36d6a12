package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server/schedule"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// Scheduler settings: the defaults of schedule.Config, which document
// them (the server's tests read them here).
const (
	// DefaultOutbound is how many connections the scheduler keeps to
	// known peers.
	DefaultOutbound = schedule.DefaultOutbound
	schedulerTick   = schedule.DefaultTick
	minBackoff      = schedule.DefaultMinBackoff
	maxBackoff      = schedule.DefaultMaxBackoff
	stableAfter     = schedule.DefaultStableAfter
	maxDialFailures = schedule.DefaultMaxDialFailures
	maxPubPeers     = schedule.DefaultMaxPubPeers
	droppedFor      = schedule.DefaultDroppedFor
	droppedMax      = schedule.DefaultDroppedMax
)

// Where known peers come from, as gossip.peers shows them in "source".
const (
	// SourceManual is a peer the owner added (AddPeer, Connect,
	// gossip.add, gossip.connect).
	SourceManual = schedule.SourceManual
	// SourcePub is a peer announced by a pub message of a feed in the
	// store (as ssb-gossip adds them). These are dropped after
	// maxDialFailures failed dials in a row.
	SourcePub = schedule.SourcePub
	// SourceInvite is the pub of an invite this server accepted.
	SourceInvite = "invite"
	// SourceLocal is a peer found on the local network.
	SourceLocal = "local"
)

// A knownPeer is a peer the server dials: an address and its key,
// persisted in <path>/gossip.json, with what ssb-gossip shows of it
// beside the scheduler's state.
type knownPeer struct {
	Address string `json:"address"`
	Key     string `json:"key"`
	Source  string `json:"source"` // "manual" (AddPeer, Connect) or the source given to AddPeerFrom
	// Host and Port are set for a peer given as {host, port, key}
	// (AddPeerHostPort): ssb-gossip keeps them in its record.
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`

	hostPort    string
	feed        refs.Feed
	st          schedule.PeerState // the scheduler's, after the last input
	nextTry     time.Time          // st.NextTry
	connectedAt time.Time          // when its feed's current connection opened
	announcers  int                // times it was added again (ssb-gossip's announcers), from 1
	duration    *durationStats
}

// durationStats are the lengths of a peer's connections in milliseconds,
// as npm statistics reduces them for ssb-gossip's duration.
type durationStats struct {
	Mean  float64 `json:"mean"`
	Stdev float64 `json:"stdev"`
	Count int     `json:"count"`
	Sum   float64 `json:"sum"`
	Sqsum float64 `json:"sqsum"`
}

func (d *durationStats) add(v float64) *durationStats {
	if d == nil {
		return &durationStats{Mean: v, Count: 1, Sum: v, Sqsum: v * v}
	}
	n := &durationStats{Count: d.Count + 1, Sum: d.Sum + v, Sqsum: d.Sqsum + v*v}
	n.Mean = n.Sum / float64(n.Count)
	n.Stdev = math.Sqrt(max(0, n.Sqsum/float64(n.Count)-n.Mean*n.Mean))
	return n
}

// peers drives the connection scheduler (package schedule): it gives it
// the events, with the time, under one lock, and carries out what it
// decides (dials, closes, watchers' events, gossip.json).
type peers struct {
	path string

	mu       sync.Mutex
	m        *schedule.Scheduler
	known    map[string]*knownPeer // by address: the scheduler's known peers
	conns    map[schedule.ConnID]openConn
	byFeed   map[refs.Feed][]schedule.ConnID // connections reported by up, for down
	lastID   schedule.ConnID
	listen   net.Addr // the TCP listener's address, once Serve listens
	watchers map[*PeerWatch]bool
}

// An openConn is a connection the scheduler counts, and how to close it.
type openConn struct {
	feed  refs.Feed
	at    time.Time
	close func() // nil for one reported by up: the peer closes a duplicate
}

// Peer event types, as ssb-gossip's changes stream names them.
const (
	PeerDiscover       = "discover"        // a peer was added to the known peers
	PeerRemove         = "remove"          // a peer was removed from them
	PeerConnect        = "connect"         // a first connection to a known peer opened
	PeerDisconnect     = "disconnect"      // the last connection to a known peer closed
	PeerConnectFailure = "connect-failure" // dialing a known peer failed
)

// A PeerEvent is a change of a known peer, as ssb-gossip's gossip.changes
// reports it: the type, the peer as KnownPeer shows it at that moment, and
// for discover the source it was added from.
type PeerEvent struct {
	Type   string
	Peer   map[string]any
	Source string
}

// peerWatchBuffer is how many events a PeerWatch holds for a slow reader
// before it is ended (PeerWatch.Overflowed).
const peerWatchBuffer = 256

// A PeerWatch receives the PeerEvents of the known peers from the moment
// WatchPeers returned it, in the order they happened, until Stop.
type PeerWatch struct {
	p          *peers
	c          chan PeerEvent
	overflowed bool // under p.mu
}

// C is closed by Stop, or when the reader fell peerWatchBuffer events
// behind (then Overflowed reports true).
func (w *PeerWatch) C() <-chan PeerEvent { return w.c }

// Overflowed reports whether the watch was ended because its reader was
// too slow.
func (w *PeerWatch) Overflowed() bool {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.overflowed
}

// Stop ends the watch and closes C; it may be called more than once.
func (w *PeerWatch) Stop() {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	if w.p.watchers[w] {
		delete(w.p.watchers, w)
		close(w.c)
	}
}

// emitLocked sends an event to every watcher without blocking; a watcher
// whose buffer is full is ended.
func (p *peers) emitLocked(typ string, k *knownPeer, source string) {
	if len(p.watchers) == 0 {
		return
	}
	ev := PeerEvent{Type: typ, Peer: p.viewLocked(k), Source: source}
	for w := range p.watchers {
		select {
		case w.c <- ev:
		default:
			w.overflowed = true
			delete(p.watchers, w)
			close(w.c)
		}
	}
}

func loadPeers(path string) (*peers, error) {
	p := &peers{path: path, m: schedule.New(schedule.Config{Seed: rand.Uint64()}), known: make(map[string]*knownPeer),
		conns: make(map[schedule.ConnID]openConn), byFeed: make(map[refs.Feed][]schedule.ConnID), watchers: make(map[*PeerWatch]bool)}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: peers: %w", err)
	}
	var list []*knownPeer
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, fmt.Errorf("server: peers %s: %w", path, err)
	}
	for _, k := range list {
		hostPort, feed, err := ParseAddress(k.Address)
		if err != nil {
			continue
		}
		k.hostPort, k.feed = hostPort, feed
		if added, _ := p.m.Add(schedule.Peer{Addr: k.Address, Feed: feed}, k.Source, time.Now()); added {
			p.known[k.Address] = k
		}
	}
	p.m.Ready() // nobody watches yet, and the file is as read
	p.refreshLocked()
	return p, nil
}

// bind gives the scheduler the server's key (for the cross-dial rule)
// and its Config.Outbound.
func (p *peers) bind(self refs.Feed, outbound int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m.SetSelf(self)
	p.m.SetOutbound(outbound)
}

// saveLocked writes the address book atomically.
func (p *peers) saveLocked() error {
	list := make([]*knownPeer, 0, len(p.known))
	for _, k := range p.known {
		list = append(list, k)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Address < list[j].Address })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	if err := vfs.WriteFile(vfs.Default, p.path, b, 0o600); err != nil {
		return fmt.Errorf("server: peers: %w", err)
	}
	return nil
}

// applyLocked carries out what the scheduler decided after an input at
// now: the view records follow (a connect starts the connection's
// duration, a disconnect adds it to the statistics, a remove forgets the
// record), the watchers are told, and the address book is saved when it
// changed. It returns the dials to start, the closes to run once p.mu is
// released, and the save's error.
func (p *peers) applyLocked(now time.Time) (dials []*knownPeer, closes []closing, err error) {
	r := p.m.Ready()
	for _, ev := range r.Events {
		k := p.known[ev.Peer.Addr]
		if k == nil {
			continue
		}
		switch ev.Type {
		case schedule.EventConnect:
			k.connectedAt = now
		case schedule.EventDisconnect:
			k.duration = k.duration.add(float64(now.Sub(k.connectedAt).Milliseconds()))
		case schedule.EventRemove:
			delete(p.known, k.Address)
		}
		k.st, k.nextTry = ev.Peer, ev.Peer.NextTry
		p.emitLocked(ev.Type, k, ev.Source)
	}
	p.refreshLocked()
	for _, d := range r.Dials {
		if k := p.known[d.Addr]; k != nil {
			dials = append(dials, k)
		}
	}
	for _, c := range r.Closes {
		if oc, ok := p.conns[c.Conn]; ok {
			closes = append(closes, closing{c.Conn, oc.close})
		}
	}
	if r.Save {
		err = p.saveLocked()
	}
	return dials, closes, err
}

// refreshLocked copies the scheduler's state of every known peer into its
// record.
func (p *peers) refreshLocked() {
	for _, k := range p.known {
		if st, ok := p.m.Peer(k.Address); ok {
			k.st, k.nextTry = st, st.NextTry
		}
	}
}

// A closing is a connection the scheduler closes.
type closing struct {
	id    schedule.ConnID
	close func() // nil for a connection reported by up: the peer closes it
}

// run closes the connections; call it without p.mu.
func run(closes []closing) {
	for _, c := range closes {
		if c.close != nil {
			c.close()
		}
	}
}

// step gives the scheduler one input (with the time) and carries out what
// it decided, closing connections after p.mu is released.
func (p *peers) step(input func(now time.Time)) error {
	p.mu.Lock()
	now := time.Now()
	input(now)
	_, closes, err := p.applyLocked(now)
	p.mu.Unlock()
	run(closes)
	return err
}

// errPubPeers is returned when a pub's address is refused because
// maxPubPeers are known.
var errPubPeers = fmt.Errorf("server: %d peers from pub messages are known already: %w", maxPubPeers, schedule.ErrTooManyPubs)

// add records a peer from source ("manual" if empty) and tells the
// watchers when it is new. A pub's address that was dropped within
// droppedFor is ignored (nil, nil), and beyond maxPubPeers refused.
func (p *peers) add(addr, source string) (*knownPeer, error) {
	return p.addAs(addr, source, false)
}

// addAs is add; withHostPort keeps the host and port in the record.
func (p *peers) addAs(addr, source string, withHostPort bool) (*knownPeer, error) {
	hostPort, feed, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	given := source
	if source == "" {
		source = SourceManual
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.known[addr]; ok {
		// ssb-gossip counts each announcement but LAN ones.
		if k.Source != SourceLocal && given != SourceLocal {
			k.announcers++
		}
		return k, nil
	}
	k := &knownPeer{Address: addr, Key: feed.String(), Source: source, hostPort: hostPort, feed: feed, announcers: 1}
	if withHostPort {
		if h, port, err := net.SplitHostPort(hostPort); err == nil {
			k.Host = h
			k.Port, _ = strconv.Atoi(port)
		}
	}
	now := time.Now()
	added, err := p.m.Add(schedule.Peer{Addr: addr, Feed: feed}, source, now)
	switch {
	case errors.Is(err, schedule.ErrRecentlyDropped):
		return nil, nil
	case errors.Is(err, schedule.ErrTooManyPubs):
		return nil, errPubPeers
	case err != nil || !added:
		return nil, fmt.Errorf("server: add peer %q: %w", addr, err)
	}
	p.known[addr] = k
	_, _, err = p.applyLocked(now)
	return k, err
}

func (p *peers) remove(addr string) error {
	var removed error
	err := p.step(func(time.Time) { removed = p.m.Remove(addr) })
	if errors.Is(removed, schedule.ErrUnknownPeer) {
		return fmt.Errorf("%q is not a known peer", addr)
	}
	return err
}

// removeFeed removes every address of feed f; it reports whether there
// was one.
func (p *peers) removeFeed(f refs.Feed) (bool, error) {
	var found bool
	err := p.step(func(time.Time) { found = p.m.RemoveFeed(f) })
	return found, err
}

// opened reports a connection to peer f that opened, dialed by this
// server (outbound, from addr) or by the peer; close closes it (nil if the
// caller cannot). It returns the connection's id for closed, and false
// when the scheduler closes it at once (the losing side of a cross-dial):
// the caller then closes it without serving it, and reports closed.
func (p *peers) opened(f refs.Feed, outbound bool, addr string, close func()) (schedule.ConnID, bool) {
	p.mu.Lock()
	p.lastID++
	id := p.lastID
	now := time.Now()
	p.conns[id] = openConn{feed: f, at: now, close: close}
	p.m.Connected(schedule.Conn{ID: id, Feed: f, Outbound: outbound, Addr: addr}, now)
	_, closes, _ := p.applyLocked(now)
	p.mu.Unlock()
	keep := true
	for i, c := range closes {
		if c.id == id {
			keep = false
			closes = append(closes[:i:i], closes[i+1:]...)
			break
		}
	}
	run(closes)
	return id, keep
}

// closed reports that connection id, from opened, ended. The peer's
// connection is measured from its record's connectedAt (as ssb-gossip's
// duration shows it), or from this connection's start if earlier.
func (p *peers) closed(id schedule.ConnID) {
	p.step(func(now time.Time) {
		c, ok := p.conns[id]
		if !ok {
			return
		}
		delete(p.conns, id)
		since := c.at
		for _, k := range p.known {
			if k.feed == c.feed && !k.connectedAt.IsZero() && k.connectedAt.Before(since) {
				since = k.connectedAt
			}
		}
		p.m.Disconnected(id, now.Sub(since), now)
	})
}

// up and down count a peer's open connections by feed, for a caller that
// has no way to close them (an inbound one served by servePeer); upAs is
// told whether this server dialed the connection.
func (p *peers) up(f refs.Feed) { p.upAs(f, false) }

func (p *peers) upAs(f refs.Feed, dialed bool) {
	id, _ := p.opened(f, dialed, "", nil)
	p.mu.Lock()
	p.byFeed[f] = append(p.byFeed[f], id)
	p.mu.Unlock()
}

func (p *peers) down(f refs.Feed) {
	p.mu.Lock()
	ids := p.byFeed[f]
	if len(ids) == 0 {
		p.mu.Unlock()
		return
	}
	id := ids[len(ids)-1]
	if p.byFeed[f] = ids[:len(ids)-1]; len(p.byFeed[f]) == 0 {
		delete(p.byFeed, f)
	}
	p.mu.Unlock()
	p.closed(id)
}

// failed records a failed dial: the scheduler sets the next with back-off,
// and drops a pub that failed maxDialFailures times.
func (p *peers) failed(k *knownPeer, err error) {
	p.step(func(now time.Time) { p.m.DialFailed(k.Address, err, now) })
}

// tick returns the known peers to dial now, marked as being dialed (none
// while the scheduler is paused).
func (p *peers) tick() []*knownPeer {
	p.mu.Lock()
	now := time.Now()
	p.m.Tick(now)
	dials, closes, _ := p.applyLocked(now)
	p.mu.Unlock()
	run(closes)
	return dials
}

// claim marks k as being dialed, unless its feed is connected or being
// dialed already (then it returns false).
func (p *peers) claim(k *knownPeer) bool {
	var ok bool
	p.step(func(now time.Time) { ok = p.m.DialStarted(k.Address, now) })
	return ok
}

// isConnected reports whether a connection to f is open.
func (p *peers) isConnected(f refs.Feed) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m.IsConnected(f)
}

// dialed ends k's dial without a result (the context ended); a dial that
// connected or failed has ended already.
func (p *peers) dialed(k *knownPeer) {
	p.step(func(time.Time) { p.m.DialCanceled(k.Address) })
}

// list returns the known peers as KnownPeers shows them.
func (p *peers) list() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]map[string]any, 0, len(p.known))
	for _, k := range p.known {
		out = append(out, p.viewLocked(k))
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["address"].(string) < out[j]["address"].(string) })
	return out
}

// viewLocked is a known peer as ssb-gossip shows it (see KnownPeers).
func (p *peers) viewLocked(k *knownPeer) map[string]any {
	// ssb-gossip's record: announcers and duration from the start, host
	// and port for a peer given as {host, port, key}, failure once it
	// was dialed or connected.
	e := map[string]any{"address": k.Address, "key": k.Key, "source": k.Source, "announcers": max(k.announcers, 1)}
	if k.duration != nil {
		e["duration"] = *k.duration
	} else {
		e["duration"] = nil
	}
	if k.Host != "" {
		e["host"], e["port"] = k.Host, k.Port
	}
	st := k.st
	if !st.StateChange.IsZero() {
		e["failure"] = st.Failures
		e["stateChange"] = st.StateChange.UnixMilli()
	}
	if st.State != "" {
		e["state"] = st.State
	}
	if st.HasConnected {
		e["client"] = st.Client
	}
	if st.LastError != "" {
		e["error"] = st.LastError
	}
	return e
}

// byFeedView returns the known peer of f as KnownPeers shows it, or nil; with
// several addresses, the first by address.
func (p *peers) byFeedView(f refs.Feed) map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best *knownPeer
	for _, k := range p.known {
		if k.feed != f {
			continue
		}
		if best == nil || k.Address < best.Address {
			best = k
		}
	}
	if best == nil {
		return nil
	}
	return p.viewLocked(best)
}

// schedule keeps up to cfg.Outbound connections to known peers until ctx
// ends, retrying with back-off: every schedulerTick it dials the peers
// the scheduler says are due.
func (s *Server) schedule(ctx context.Context) {
	s.peers.bind(s.keys.ID, s.cfg.Outbound)
	t := time.NewTicker(schedulerTick)
	defer t.Stop()
	for {
		for _, k := range s.peers.tick() {
			s.wg.Go(func() {
				if err := s.dialPeer(ctx, k); err != nil && ctx.Err() == nil {
					s.log.Info("dial failed", "peer", k.Address, "err", err)
				}
			})
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// dialPeer dials k, claimed by tick or claim, and reports the end of the
// dial: once the handshake is done the connection is served in the
// background (unless it is the losing side of a cross-dial). It returns
// the dial or handshake error.
func (s *Server) dialPeer(ctx context.Context, k *knownPeer) error {
	conn, err := s.handshake(ctx, k)
	if err != nil {
		if ctx.Err() == nil {
			s.peers.failed(k, err)
		} else {
			s.peers.dialed(k)
		}
		return err
	}
	id, keep := s.peers.opened(k.feed, true, k.Address, func() { conn.Close() })
	if !keep {
		s.log.Debug("cross-dial: closed ours, the peer's is kept", "peer", k.Address)
		conn.Close()
		s.peers.closed(id)
		return nil
	}
	s.wg.Go(func() {
		defer s.peers.closed(id)
		c := &Conn{ID: k.feed, Kind: s.kindOf(k.feed.PublicKey()), Dialed: true}
		s.confine(c)
		s.serveRPC(s.ctx, conn, "peer", c)
	})
	return nil
}

// handshake dials k and runs the secret handshake as its client.
func (s *Server) handshake(ctx context.Context, k *knownPeer) (net.Conn, error) {
	d := net.Dialer{Timeout: s.cfg.HandshakeTimeout}
	raw, err := d.DialContext(ctx, "tcp", k.hostPort)
	if err != nil {
		return nil, err
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	defer cancel()
	return shs.ClientConn(hctx, raw, s.network, s.keys.Private, k.feed.PublicKey())
}

// peersPath is the address book of a data directory.
func peersPath(dir string) string { return filepath.Join(dir, "gossip.json") }

// ParseAddress reads the first net address of a multiserver address
// ("net:HOST:PORT~shs:KEY", several separated by ";"): HOST is an IP
// address (IPv6 with its colons, as ssb-ref writes it) or a host name,
// PORT a number in 1..65535. hostPort is HOST:PORT for net.Dial.
func ParseAddress(addr string) (hostPort string, feed refs.Feed, err error) {
	for _, a := range strings.Split(addr, ";") {
		transport, auth, ok := strings.Cut(a, "~")
		hp, isNet := strings.CutPrefix(transport, "net:")
		key, isSHS := strings.CutPrefix(auth, "shs:")
		if !ok || !isNet || !isSHS {
			continue
		}
		i := strings.LastIndexByte(hp, ':')
		if i < 0 || !validPort(hp[i+1:]) || !validHost(hp[:i]) {
			return "", refs.Feed{}, fmt.Errorf("%q: %q is not HOST:PORT", addr, hp)
		}
		feed, err := refs.ParseFeed("@" + key + ".ed25519")
		if err != nil {
			return "", refs.Feed{}, fmt.Errorf("%q: %w", addr, err)
		}
		return net.JoinHostPort(hp[:i], hp[i+1:]), feed, nil
	}
	return "", refs.Feed{}, fmt.Errorf("%q is not a net:HOST:PORT~shs:KEY address", addr)
}

// validPort reports whether s is a port number in 1..65535, digits only.
func validPort(s string) bool {
	if len(s) == 0 || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return false
	}
	n, _ := strconv.Atoi(s)
	return n >= 1 && n <= 65535
}

// validHost reports whether h is an IP address or a host name: labels of
// letters, digits and inner hyphens separated by dots, at most 253
// characters.
func validHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) == 0 || len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// AddPeer adds a multiserver address to the known peers (kept in
// <path>/gossip.json), which the scheduler keeps connections to.
func (s *Server) AddPeer(addr string) error { return s.AddPeerFrom(addr, "") }

// AddPeerFrom is AddPeer with the source the peer came from (SourceManual,
// SourcePub, SourceInvite, SourceLocal, or another name; "" is
// SourceManual). A known address keeps its source. Peers from SourcePub
// are bounded (maxPubPeers; more are refused), dropped after
// maxDialFailures failed dials in a row if they never connected, and then
// not added again from SourcePub for an hour (AddPeerFrom returns nil).
func (s *Server) AddPeerFrom(addr, source string) error {
	_, err := s.peers.add(addr, source)
	return err
}

// AddPeerHostPort is AddPeerFrom for a peer given as {host, port, key}:
// its record (KnownPeers) shows the host and port, as ssb-gossip's does.
func (s *Server) AddPeerHostPort(addr, source string) error {
	_, err := s.peers.addAs(addr, source, true)
	return err
}

// RemovePeer removes a multiserver address from the known peers.
func (s *Server) RemovePeer(addr string) error { return s.peers.remove(addr) }

// RemovePeerFeed removes every known address of feed f; it reports
// whether there was one.
func (s *Server) RemovePeerFeed(f refs.Feed) (bool, error) { return s.peers.removeFeed(f) }

// KnownPeers returns the known peers as ssb-gossip shows them: address,
// key, source, failure (failed dials since the last connection), and when
// known state ("connected" or "connecting"; absent otherwise),
// stateChange (Unix milliseconds of the last connect, disconnect, dial or
// failure), client (whether we dialed the last connection) and error (the
// last dial's).
func (s *Server) KnownPeers() []map[string]any { return s.peers.list() }

// KnownPeer returns the known peer of feed f as KnownPeers shows it, or
// nil if f is not known.
func (s *Server) KnownPeer(f refs.Feed) map[string]any { return s.peers.byFeedView(f) }

// WatchPeers returns a watch of the known peers' changes: added, removed,
// connected, disconnected, failed to dial (PeerEvent). Call Stop when done.
func (s *Server) WatchPeers() *PeerWatch {
	w := &PeerWatch{p: s.peers, c: make(chan PeerEvent, peerWatchBuffer)}
	s.peers.mu.Lock()
	s.peers.watchers[w] = true
	s.peers.mu.Unlock()
	return w
}

// EnableScheduler starts (true) or pauses (false) the scheduler's dialing
// of known peers; connections open stay, and Connect still dials. It is
// enabled when the server opens.
func (s *Server) EnableScheduler(on bool) {
	s.peers.mu.Lock()
	s.peers.m.Enable(on)
	s.peers.mu.Unlock()
}

// SchedulerEnabled reports whether the scheduler dials known peers.
func (s *Server) SchedulerEnabled() bool {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return s.peers.m.Enabled()
}

// Disconnect closes every connection to peer f (goodbye, then the
// connection ends), except the local socket's, and waits until they have
// ended or ctx ends. It returns how many it closed.
func (s *Server) Disconnect(ctx context.Context, f refs.Feed) (int, error) {
	return s.closeConns(ctx, func(c *Conn) bool { return !c.Local && c.ID == f })
}

// DisconnectPeers closes every connection except the owner's (the local
// socket, and peers with the server's own key), as ssb-gossip's reconnect
// does; the scheduler dials the known peers again. It waits as Disconnect.
func (s *Server) DisconnectPeers(ctx context.Context) (int, error) {
	return s.closeConns(ctx, func(c *Conn) bool { return c.Kind != Owner })
}

func (s *Server) closeConns(ctx context.Context, match func(*Conn) bool) (int, error) {
	var closing []*muxrpc.Endpoint
	s.mu.Lock()
	for e, c := range s.conns {
		if match(c) {
			closing = append(closing, e)
		}
	}
	s.mu.Unlock()
	for _, e := range closing {
		s.wg.Go(func() { e.Close() }) // goodbye waits for the flush: close all at once
	}
	for _, e := range closing {
		select {
		case <-e.Done():
		case <-ctx.Done():
			return len(closing), fmt.Errorf("server: disconnect: %w", ctx.Err())
		}
	}
	return len(closing), nil
}

// ListenAddr returns the address the server listens on for peers (TCP),
// or nil before Serve listens.
func (s *Server) ListenAddr() net.Addr {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return s.peers.listen
}

func (p *peers) listening(a net.Addr) {
	p.mu.Lock()
	p.listen = a
	p.mu.Unlock()
}

// Connect adds a peer at a multiserver address to the known peers and
// dials it now; the connection is served until it or the server ends (the
// scheduler reconnects later). It returns once the handshake is done, or
// at once if a connection to that peer is open. One connection per peer:
// if one is being dialed (by the scheduler), it waits for it instead of
// dialing a second.
func (s *Server) Connect(ctx context.Context, addr string) (refs.Feed, error) {
	s.peers.bind(s.keys.ID, s.cfg.Outbound)
	k, err := s.peers.addAs(addr, "", true) // ssb-gossip's connect adds the parsed {host, port, key}
	if err != nil {
		return refs.Feed{}, err
	}
	for !s.peers.claim(k) {
		if s.peers.isConnected(k.feed) {
			return k.feed, nil
		}
		select {
		case <-ctx.Done():
			return refs.Feed{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := s.dialPeer(ctx, k); err != nil {
		return refs.Feed{}, err
	}
	return k.feed, nil
}
