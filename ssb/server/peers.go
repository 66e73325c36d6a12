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

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// Scheduler settings.
const (
	// DefaultOutbound is how many connections the scheduler keeps to
	// known peers.
	DefaultOutbound = 3
	// schedulerTick is how often the scheduler looks for peers to dial.
	schedulerTick = 500 * time.Millisecond
	// Back-off after a failed or lost connection: minBackoff doubling to
	// maxBackoff, with up to half again of jitter.
	minBackoff = 500 * time.Millisecond
	maxBackoff = 5 * time.Minute
	// stableAfter is how long a connection must last for its end not to
	// count as a flap: a peer that accepts and soon closes is dialed again
	// with the same back-off as one that fails.
	stableAfter = 30 * time.Second
	// maxDialFailures is how many dials in a row an automatically found
	// peer (SourcePub) may fail, never having connected since it was
	// added, before it is dropped from the known peers: with the back-off
	// above, about 8 minutes of trying.
	maxDialFailures = 10
	// maxPubPeers bounds the known peers found in pub messages; more are
	// ignored until some are dropped.
	maxPubPeers = 1000
	// droppedFor is how long a dropped peer is not added again from the
	// same kind of source; droppedMax bounds how many are remembered.
	droppedFor = time.Hour
	droppedMax = 4096
)

// Where known peers come from, as gossip.peers shows them in "source".
const (
	// SourceManual is a peer the owner added (AddPeer, Connect,
	// gossip.add, gossip.connect).
	SourceManual = "manual"
	// SourcePub is a peer announced by a pub message of a feed in the
	// store (as ssb-gossip adds them). These are dropped after
	// maxDialFailures failed dials in a row.
	SourcePub = "pub"
	// SourceInvite is the pub of an invite this server accepted.
	SourceInvite = "invite"
	// SourceLocal is a peer found on the local network.
	SourceLocal = "local"
)

// A knownPeer is a peer the server dials: an address and its key,
// persisted in <path>/gossip.json.
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
	failures    int
	nextTry     time.Time
	lastError   string
	stateChange time.Time // last connect, disconnect, dial or failure
	client      *bool     // whether the last connection was dialed by us; nil before one
	connectedAt time.Time // when the open connection started
	flaps       int       // connections in a row that ended within stableAfter
	everUp      bool      // connected at least once since it was added
	announcers  int       // times it was added again (ssb-gossip's announcers), from 1
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

// droppable reports whether the peer is dropped after failing to connect
// maxDialFailures times in a row: peers found automatically that have not
// connected since they were added.
func (k *knownPeer) droppable() bool { return k.Source == SourcePub && !k.everUp }

// peers is the server's address book and who is connected.
type peers struct {
	path string

	mu        sync.Mutex
	known     map[string]*knownPeer // by address
	connected map[refs.Feed]int     // open connections by peer
	dialing   map[string]bool
	paused    bool     // the scheduler dials no one (EnableScheduler(false))
	listen    net.Addr // the TCP listener's address, once Serve listens
	watchers  map[*PeerWatch]bool
	dropped   map[string]time.Time // address -> when it was dropped (bounded by droppedMax)
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
	p := &peers{path: path, known: make(map[string]*knownPeer), connected: make(map[refs.Feed]int), dialing: make(map[string]bool),
		watchers: make(map[*PeerWatch]bool), dropped: make(map[string]time.Time)}
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
		p.known[k.Address] = k
	}
	return p, nil
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
	tmp := p.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("server: peers: %w", err)
	}
	return os.Rename(tmp, p.path)
}

// errPubPeers is returned when a pub's address is refused because
// maxPubPeers are known.
var errPubPeers = fmt.Errorf("server: %d peers from pub messages are known already", maxPubPeers)

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
	if source == SourcePub {
		if at, ok := p.dropped[addr]; ok && time.Since(at) < droppedFor {
			return nil, nil
		}
		if p.countLocked(SourcePub) >= maxPubPeers {
			return nil, errPubPeers
		}
	} else {
		delete(p.dropped, addr)
	}
	k := &knownPeer{Address: addr, Key: feed.String(), Source: source, hostPort: hostPort, feed: feed, announcers: 1}
	if withHostPort {
		if h, port, err := net.SplitHostPort(hostPort); err == nil {
			k.Host = h
			k.Port, _ = strconv.Atoi(port)
		}
	}
	p.known[addr] = k
	p.emitLocked(PeerDiscover, k, source)
	return k, p.saveLocked()
}

// countLocked counts the known peers from source.
func (p *peers) countLocked(source string) int {
	n := 0
	for _, k := range p.known {
		if k.Source == source {
			n++
		}
	}
	return n
}

// dropLocked removes a peer that failed too often and remembers it for
// droppedFor, so that the pub messages that name it do not add it again
// at once.
func (p *peers) dropLocked(k *knownPeer) {
	delete(p.known, k.Address)
	now := time.Now()
	for a, at := range p.dropped {
		if now.Sub(at) >= droppedFor || len(p.dropped) >= droppedMax {
			delete(p.dropped, a)
		}
	}
	p.dropped[k.Address] = now
	p.emitLocked(PeerRemove, k, "")
	p.saveLocked()
}

func (p *peers) remove(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	k, ok := p.known[addr]
	if !ok {
		return fmt.Errorf("%q is not a known peer", addr)
	}
	delete(p.known, addr)
	p.emitLocked(PeerRemove, k, "")
	return p.saveLocked()
}

// removeFeed removes every address of feed f; it reports whether there
// was one.
func (p *peers) removeFeed(f refs.Feed) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	found := false
	for addr, k := range p.known {
		if k.feed == f {
			delete(p.known, addr)
			p.emitLocked(PeerRemove, k, "")
			found = true
		}
	}
	if !found {
		return false, nil
	}
	return true, p.saveLocked()
}

// up and down count a peer's open connections; up is told whether this
// server dialed the connection.
func (p *peers) up(f refs.Feed) { p.upAs(f, false) }

func (p *peers) upAs(f refs.Feed, dialed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.connected[f]++
	first := p.connected[f] == 1
	for _, k := range p.known {
		if k.feed != f {
			continue
		}
		k.failures, k.lastError, k.everUp = 0, "", true
		if first {
			k.stateChange, k.client, k.connectedAt = time.Now(), &dialed, time.Now()
			p.emitLocked(PeerConnect, k, "")
		}
	}
}

func (p *peers) down(f refs.Feed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected[f]--; p.connected[f] <= 0 {
		delete(p.connected, f)
		for _, k := range p.known {
			if k.feed == f { // reconnect soon, but not at once, and later after each short connection
				k.duration = k.duration.add(float64(time.Since(k.connectedAt).Milliseconds()))
				if time.Since(k.connectedAt) < stableAfter {
					k.flaps++
				} else {
					k.flaps = 0
				}
				k.nextTry = time.Now().Add(backoff(k.flaps))
				k.stateChange = time.Now()
				p.emitLocked(PeerDisconnect, k, "")
			}
		}
	}
}

// backoff is the wait after n failures (or flaps) in a row: minBackoff
// doubling up to maxBackoff, plus up to half again of jitter.
func backoff(n int) time.Duration {
	d := minBackoff << min(max(n-1, 0), 20)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	return d + time.Duration(rand.Int64N(int64(d/2)+1))
}

// failed records a failed dial and schedules the next with back-off; a
// droppable peer that failed maxDialFailures times is dropped.
func (p *peers) failed(k *knownPeer, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k.failures++
	k.lastError = err.Error()
	k.nextTry = time.Now().Add(backoff(k.failures + k.flaps))
	k.stateChange = time.Now()
	if cur, still := p.known[k.Address]; !still || cur != k {
		return
	}
	p.emitLocked(PeerConnectFailure, k, "")
	if k.droppable() && k.failures >= maxDialFailures {
		p.dropLocked(k)
	}
}

// due returns known peers to dial now: not connected, not being dialed,
// past their back-off, up to want minus the outbound connections open;
// none while the scheduler is paused.
func (p *peers) due(want int) []*knownPeer {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		return nil
	}
	open := 0
	for _, k := range p.known {
		if p.connected[k.feed] > 0 || p.dialing[k.Address] {
			open++
		}
	}
	now := time.Now()
	var out []*knownPeer
	for _, k := range p.known {
		if open+len(out) >= want {
			break
		}
		if p.connected[k.feed] == 0 && !p.dialing[k.Address] && !now.Before(k.nextTry) {
			p.dialing[k.Address] = true
			k.stateChange = now
			out = append(out, k)
		}
	}
	return out
}

// claim marks k as being dialed, unless it is connected or being dialed
// already (then it returns false).
func (p *peers) claim(k *knownPeer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected[k.feed] > 0 || p.dialing[k.Address] {
		return false
	}
	p.dialing[k.Address] = true
	k.stateChange = time.Now()
	return true
}

// isConnected reports whether a connection to f is open.
func (p *peers) isConnected(f refs.Feed) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.connected[f] > 0
}

func (p *peers) dialed(k *knownPeer) {
	p.mu.Lock()
	delete(p.dialing, k.Address)
	p.mu.Unlock()
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
	if !k.stateChange.IsZero() {
		e["failure"] = k.failures
	}
	if p.connected[k.feed] > 0 {
		e["state"] = "connected"
	} else if p.dialing[k.Address] {
		e["state"] = "connecting"
	}
	if !k.stateChange.IsZero() {
		e["stateChange"] = k.stateChange.UnixMilli()
	}
	if k.client != nil {
		e["client"] = *k.client
	}
	if k.lastError != "" {
		e["error"] = k.lastError
	}
	return e
}

// byFeed returns the known peer of f as KnownPeers shows it, or nil; with
// several addresses, a connected one, else the first by address.
func (p *peers) byFeed(f refs.Feed) map[string]any {
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
// ends, retrying with back-off.
func (s *Server) schedule(ctx context.Context) {
	t := time.NewTicker(schedulerTick)
	defer t.Stop()
	for {
		for _, k := range s.peers.due(s.cfg.Outbound) {
			s.wg.Go(func() {
				err := s.dialPeer(ctx, k.hostPort, k.feed)
				s.peers.dialed(k)
				if err != nil && ctx.Err() == nil {
					s.log.Info("dial failed", "peer", k.Address, "err", err)
					s.peers.failed(k, err)
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

// dialPeer connects to a peer and, once the handshake is done, serves the
// connection in the background; it returns the dial or handshake error.
func (s *Server) dialPeer(ctx context.Context, hostPort string, feed refs.Feed) error {
	d := net.Dialer{Timeout: s.cfg.HandshakeTimeout}
	raw, err := d.DialContext(ctx, "tcp", hostPort)
	if err != nil {
		return err
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	conn, err := shs.ClientConn(hctx, raw, s.network, s.keys.Private, feed.PublicKey())
	cancel()
	if err != nil {
		return err
	}
	s.peers.upAs(feed, true) // counted before dialed() ends the dialing mark
	s.wg.Go(func() {
		defer s.peers.down(feed)
		s.servePeer(s.ctx, conn, feed.PublicKey(), true)
	})
	return nil
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
func (s *Server) KnownPeer(f refs.Feed) map[string]any { return s.peers.byFeed(f) }

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
	s.peers.paused = !on
	s.peers.mu.Unlock()
}

// SchedulerEnabled reports whether the scheduler dials known peers.
func (s *Server) SchedulerEnabled() bool {
	s.peers.mu.Lock()
	defer s.peers.mu.Unlock()
	return !s.peers.paused
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
	err = s.dialPeer(ctx, k.hostPort, k.feed)
	s.peers.dialed(k)
	if err != nil {
		if ctx.Err() == nil {
			s.peers.failed(k, err)
		}
		return refs.Feed{}, err
	}
	return k.feed, nil
}
