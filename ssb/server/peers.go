package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

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
)

// A knownPeer is a peer the server dials: an address and its key,
// persisted in <path>/gossip.json.
type knownPeer struct {
	Address string `json:"address"`
	Key     string `json:"key"`
	Source  string `json:"source"` // "manual" (AddPeer, Connect)

	hostPort  string
	feed      refs.Feed
	failures  int
	nextTry   time.Time
	lastError string
}

// peers is the server's address book and who is connected.
type peers struct {
	path string

	mu        sync.Mutex
	known     map[string]*knownPeer // by address
	connected map[refs.Feed]int     // open connections by peer
	dialing   map[string]bool
}

func loadPeers(path string) (*peers, error) {
	p := &peers{path: path, known: make(map[string]*knownPeer), connected: make(map[refs.Feed]int), dialing: make(map[string]bool)}
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

// add records a peer; it reports whether it was new.
func (p *peers) add(addr string) (*knownPeer, error) {
	hostPort, feed, err := ParseAddress(addr)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if k, ok := p.known[addr]; ok {
		return k, nil
	}
	k := &knownPeer{Address: addr, Key: feed.String(), Source: "manual", hostPort: hostPort, feed: feed}
	p.known[addr] = k
	return k, p.saveLocked()
}

func (p *peers) remove(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.known[addr]; !ok {
		return fmt.Errorf("%q is not a known peer", addr)
	}
	delete(p.known, addr)
	return p.saveLocked()
}

// up and down count a peer's open connections.
func (p *peers) up(f refs.Feed) {
	p.mu.Lock()
	p.connected[f]++
	for _, k := range p.known {
		if k.feed == f {
			k.failures, k.lastError = 0, ""
		}
	}
	p.mu.Unlock()
}

func (p *peers) down(f refs.Feed) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.connected[f]--; p.connected[f] <= 0 {
		delete(p.connected, f)
		for _, k := range p.known {
			if k.feed == f { // reconnect soon, but not at once
				k.nextTry = time.Now().Add(minBackoff)
			}
		}
	}
}

// failed records a failed dial and schedules the next with back-off.
func (p *peers) failed(k *knownPeer, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k.failures++
	k.lastError = err.Error()
	d := minBackoff << min(k.failures-1, 20)
	if d > maxBackoff || d <= 0 {
		d = maxBackoff
	}
	d += time.Duration(rand.Int64N(int64(d/2) + 1))
	k.nextTry = time.Now().Add(d)
}

// due returns known peers to dial now: not connected, not being dialed,
// past their back-off, up to want minus the outbound connections open.
func (p *peers) due(want int) []*knownPeer {
	p.mu.Lock()
	defer p.mu.Unlock()
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
		state := "disconnected"
		if p.connected[k.feed] > 0 {
			state = "connected"
		} else if p.dialing[k.Address] {
			state = "connecting"
		}
		e := map[string]any{"address": k.Address, "key": k.Key, "source": k.Source, "state": state, "failure": k.failures}
		if k.lastError != "" {
			e["error"] = k.lastError
		}
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["address"].(string) < out[j]["address"].(string) })
	return out
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
	var d net.Dialer
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
	s.peers.up(feed) // counted before dialed() ends the dialing mark
	s.wg.Go(func() {
		defer s.peers.down(feed)
		s.servePeer(s.ctx, conn, feed.PublicKey(), true)
	})
	return nil
}

// peersPath is the address book of a data directory.
func peersPath(dir string) string { return filepath.Join(dir, "gossip.json") }

// ParseAddress reads the first net address of a multiserver address
// ("net:HOST:PORT~shs:KEY", several separated by ";").
func ParseAddress(addr string) (hostPort string, feed refs.Feed, err error) {
	for _, a := range strings.Split(addr, ";") {
		transport, auth, ok := strings.Cut(a, "~")
		hostPort, isNet := strings.CutPrefix(transport, "net:")
		key, isSHS := strings.CutPrefix(auth, "shs:")
		if !ok || !isNet || !isSHS {
			continue
		}
		feed, err := refs.ParseFeed("@" + key + ".ed25519")
		if err != nil {
			return "", refs.Feed{}, fmt.Errorf("%q: %w", addr, err)
		}
		return hostPort, feed, nil
	}
	return "", refs.Feed{}, fmt.Errorf("%q is not a net:HOST:PORT~shs:KEY address", addr)
}

// AddPeer adds a multiserver address to the known peers (kept in
// <path>/gossip.json), which the scheduler keeps connections to.
func (s *Server) AddPeer(addr string) error {
	_, err := s.peers.add(addr)
	return err
}

// RemovePeer removes a multiserver address from the known peers.
func (s *Server) RemovePeer(addr string) error { return s.peers.remove(addr) }

// KnownPeers returns the known peers: address, key, source, state
// (connected, connecting, disconnected), failures and the last error.
func (s *Server) KnownPeers() []map[string]any { return s.peers.list() }

// Connect adds a peer at a multiserver address to the known peers and
// dials it now; the connection is served until it or the server ends (the
// scheduler reconnects later). It returns once the handshake is done, or
// at once if a connection to that peer is open. One connection per peer:
// if one is being dialed (by the scheduler), it waits for it instead of
// dialing a second.
func (s *Server) Connect(ctx context.Context, addr string) (refs.Feed, error) {
	k, err := s.peers.add(addr)
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
		return refs.Feed{}, err
	}
	return k.feed, nil
}
