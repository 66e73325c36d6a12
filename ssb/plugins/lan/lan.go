// Package lan is LAN discovery, compatible with ssb-local (what
// ssb-server@16 ships) and ssb-lan (Manyverse): the server announces its
// multiserver address by UDP broadcast every second, and peers heard this
// way become known peers with source "local", which the scheduler dials;
// a peer silent for 10 s is forgotten again. Off unless the config section
// "local" is true (or the --local flag of sbot): an announcement tells
// everyone on the network who this server is.
//
// Two kinds of packets, each on its own port:
//
//   - ssb-local's (legacy): the address in plain UTF-8, on the port of the
//     server (8008); anyone can forge it.
//   - ssb-lan's: the JSON {"address": ...} in a secretbox under the
//     network key, then the Ed25519 signature of the address by the key it
//     announces, on port 26830. Another network's packets do not open;
//     unsigned ones are dropped.
//
// Peers are heard only at the address they send from: the announced host
// must be the packet's source IP, and a LAN address, so a packet cannot
// make us dial a third host. The plugin bounds the packets it reads (size,
// rate per sender and in all) and the peers it knows.
package lan

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Source is the source of the known peers the plugin adds, as ssb-local
// names it.
const Source = "local"

// Plugin is LAN discovery. Its zero value is not usable; call New.
type Plugin struct {
	cfg    Config
	forced *bool // SetEnabled: overrides the section's enabled
	srv    *server.Server
	log    *slog.Logger
	listen listenFunc

	mu         sync.Mutex
	d          *discovery
	sent       int64
	sendErrors int64
	sealedFor  string // the address lanPacket was sealed for
	lanPacket  []byte
}

// New returns the plugin with the default configuration (off).
func New() *Plugin { return &Plugin{cfg: DefaultConfig(), listen: listenUDP} }

// Name returns "lan".
func (p *Plugin) Name() string { return "lan" }

// ConfigSection returns "local", ssb-server's name for LAN discovery.
func (p *Plugin) ConfigSection() string { return "local" }

// ReadConfig reads the section (see Config).
func (p *Plugin) ReadConfig(section json.RawMessage) error { return parseConfig(&p.cfg, section) }

// SetEnabled turns discovery on or off whatever the config says (sbot's
// --local flag). Call it before server.Open.
func (p *Plugin) SetEnabled(on bool) { p.forced = &on }

// Config returns the configuration (after Init, with the port filled in).
func (p *Plugin) Config() Config { return p.cfg }

// Init keeps the server and fills in the port: the server's TCP port, as
// ssb-local broadcasts on config.port.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.log = s, s.Logger()
	if p.forced != nil {
		p.cfg.Enabled = *p.forced
	}
	if p.cfg.Port == 0 {
		p.cfg.Port = s.Config().Port
	}
	if p.cfg.Port == 0 {
		p.cfg.Port = DefaultPort
	}
	var network [32]byte
	if err := refs.DecodeBase64(network[:], s.Config().Caps); err != nil {
		return fmt.Errorf("lan: caps.shs: %w", err)
	}
	p.d = newDiscovery(p.cfg, s.ID(), network)
	return nil
}

// Methods returns none: discovery has no RPC methods in ssb-server@16.
func (p *Plugin) Methods() []server.Method { return nil }

// Run forgets the LAN peers an earlier run left in the address book (as
// ssb-gossip never stores them), then, when enabled, announces and listens
// until ctx ends, and forgets the peers it found.
func (p *Plugin) Run(ctx context.Context) error {
	p.removeAll(p.leftovers())
	if !p.cfg.Enabled {
		return nil
	}
	var socks [2]transport // by mode
	defer func() {
		for _, t := range socks {
			if t != nil {
				t.Close()
			}
		}
	}()
	if p.cfg.Legacy {
		t, err := p.listen(ctx, p.cfg.Port)
		if err != nil {
			return err
		}
		socks[legacyMode] = t
	}
	if p.cfg.LANPort > 0 {
		t, err := p.listen(ctx, p.cfg.LANPort)
		if err != nil {
			return err
		}
		socks[lanMode] = t
	}
	p.log.Info("lan: discovery on", "port", p.cfg.Port, "legacy", p.cfg.Legacy, "lanPort", p.cfg.LANPort, "broadcast", p.cfg.Broadcast)
	var wg sync.WaitGroup
	for m, t := range socks {
		if t != nil {
			wg.Go(func() { p.read(t, mode(m)) })
		}
	}
	p.tick(ctx, socks)
	for i, t := range socks {
		if t != nil {
			t.Close()
			socks[i] = nil
		}
	}
	wg.Wait()
	p.mu.Lock()
	gone := p.d.forgetAll()
	p.mu.Unlock()
	p.removeAll(gone)
	return nil
}

// tick announces at once and every Interval, and forgets silent peers
// every Timeout/2, until ctx ends.
func (p *Plugin) tick(ctx context.Context, socks [2]transport) {
	announce := time.NewTicker(p.cfg.Interval)
	defer announce.Stop()
	expire := time.NewTicker(p.cfg.Timeout / 2)
	defer expire.Stop()
	p.announce(socks)
	for {
		select {
		case <-ctx.Done():
			return
		case <-announce.C:
			p.announce(socks)
		case <-expire.C:
			p.mu.Lock()
			gone := p.d.expire(time.Now())
			p.mu.Unlock()
			p.removeAll(gone)
		}
	}
}

// maxReadErrors ends a read loop whose socket keeps failing.
const maxReadErrors = 100

// read handles the packets of one socket until it is closed.
func (p *Plugin) read(t transport, m mode) {
	buf := make([]byte, MaxPacket+1) // one more: a longer packet is seen as one
	errs := 0
	for {
		n, src, err := t.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			if errs++; errs == maxReadErrors {
				p.log.Error("lan: reading stopped", "mode", m, "err", err)
				return
			}
			continue
		}
		errs = 0
		p.mu.Lock()
		addr, ok := p.d.receive(time.Now(), m, src.Addr(), buf[:n])
		p.mu.Unlock()
		if ok {
			if err := p.srv.AddPeerFrom(addr, Source); err != nil {
				p.log.Warn("lan: cannot add a peer", "address", addr, "err", err)
			}
		}
	}
}

// announce sends our address in each mode.
func (p *Plugin) announce(socks [2]transport) {
	addr := p.address()
	if addr == "" {
		return
	}
	if t := socks[legacyMode]; t != nil {
		p.send(t, []byte(addr), p.cfg.Port)
	}
	if t := socks[lanMode]; t != nil {
		if pkt := p.sealed(addr); pkt != nil {
			p.send(t, pkt, p.cfg.LANPort)
		}
	}
}

func (p *Plugin) send(t transport, pkt []byte, port int) {
	err := t.WriteTo(pkt, netip.AddrPortFrom(p.cfg.Broadcast, uint16(port)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		if p.sendErrors++; p.sendErrors == 1 {
			p.log.Warn("lan: cannot send an announcement", "err", err)
		}
		return
	}
	p.sent++
}

// sealed returns our ssb-lan packet of addr, sealed once per address.
func (p *Plugin) sealed(addr string) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sealedFor != addr {
		pkt, err := SealPacket(addr, &p.d.network, p.srv.Keys())
		if err != nil {
			p.log.Warn("lan: cannot seal the announcement", "err", err)
			return nil
		}
		p.sealedFor, p.lanPacket = addr, pkt
	}
	return p.lanPacket
}

// addresser is a plugin that knows the server's multiserver address of a
// scope (secretstack).
type addresser interface{ Address(scope string) string }

// address is what ssb-local announces: getAddress('private') ||
// getAddress('local'). Without a plugin that knows it, it is the net
// address of the configured host, or of the first private IPv4 address of
// an interface when the server listens on all; "" before Serve listens.
func (p *Plugin) address() string {
	for _, pl := range p.srv.Plugins() {
		if a, ok := pl.(addresser); ok {
			for _, scope := range []string{"private", "local"} {
				if s := a.Address(scope); s != "" {
					return s
				}
			}
			return ""
		}
	}
	la, ok := p.srv.ListenAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	host := p.srv.Config().Host
	if ip, err := netip.ParseAddr(host); host == "" || err == nil && ip.IsUnspecified() {
		host = firstPrivateIPv4()
	}
	if host == "" {
		return ""
	}
	return "net:" + host + ":" + strconv.Itoa(la.Port) + "~shs:" + base64.StdEncoding.EncodeToString(p.srv.ID().PublicKey())
}

func firstPrivateIPv4() string {
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsPrivate() {
			return n.IP.String()
		}
	}
	return ""
}

// leftovers are the known peers with source "local": found on the LAN by
// an earlier run.
func (p *Plugin) leftovers() []string {
	var out []string
	for _, k := range p.srv.KnownPeers() {
		if k["source"] == Source {
			out = append(out, k["address"].(string))
		}
	}
	return out
}

// removeAll removes the addresses from the known peers, those that still
// have source "local" only: a peer added by hand (or from elsewhere) at
// the same address stays.
func (p *Plugin) removeAll(addrs []string) {
	if len(addrs) == 0 {
		return
	}
	ours := make(map[string]bool)
	for _, a := range p.leftovers() {
		ours[a] = true
	}
	for _, a := range addrs {
		if !ours[a] {
			continue
		}
		if err := p.srv.RemovePeer(a); err != nil {
			p.log.Debug("lan: cannot forget a peer", "address", a, "err", err)
		}
	}
}

// Status returns the "local" (ssb-local's: the peers by feed) and "lan"
// (the peers, the counts of packets) keys of the status answer.
func (p *Plugin) Status(ctx context.Context) (map[string]any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := p.d.status(p.cfg.Enabled)
	lan := st["lan"].(map[string]any)
	lan["sent"], lan["sendErrors"] = p.sent, p.sendErrors
	lan["port"], lan["lanPort"], lan["legacy"] = p.cfg.Port, p.cfg.LANPort, p.cfg.Legacy
	return st, nil
}
