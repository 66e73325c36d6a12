package lan

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// A mode is the kind of packet a socket reads.
type mode int

const (
	legacyMode mode = iota // ssb-local: the plain address
	lanMode                // ssb-lan: encrypted with the network key, signed
)

func (m mode) String() string { return [...]string{"legacy", "lan"}[m] }

// Reasons a packet is dropped, as the status counts them.
const (
	dropHuge      = "huge"      // longer than MaxPacket
	dropRate      = "rate"      // over Rate or SourceRate
	dropGarbage   = "garbage"   // no net~shs address
	dropNetwork   = "network"   // an ssb-lan packet of another network, or noise
	dropSignature = "signature" // an ssb-lan packet with a bad signature
	dropSender    = "sender"    // no address of the sender's own IP, or not a LAN address
	dropFull      = "full"      // a new peer when MaxPeers are known, or 8 of its host
)

// A lanPeer is a peer known from its announcements.
type lanPeer struct {
	ann     Announcement
	addr    string // ann.Address()
	first   time.Time
	seen    time.Time
	packets int64
	signed  bool // an ssb-lan packet announced it
}

// maxPerHost bounds the peers of one host (several servers may share a
// machine), so that one sender cannot take every place.
const maxPerHost = 8

// fromHost counts the known peers at host.
func (d *discovery) fromHost(host string) int {
	n := 0
	for _, p := range d.peers {
		if p.ann.Host == host {
			n++
		}
	}
	return n
}

// maxSources bounds the senders with their own rate bucket; others share
// one.
const maxSources = 256

// A bucket is a token bucket of packets.
type bucket struct {
	tokens float64
	last   time.Time
}

// take refills b at rate per second up to burst and takes one token.
func (b *bucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens = burst
	} else if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(burst, b.tokens+d*rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// discovery is LAN discovery as a state machine without I/O or clocks:
// receive is given each packet and the time, expire the time; they return
// what to tell the server. It is not safe for concurrent use.
type discovery struct {
	cfg     Config
	self    refs.Feed
	network [32]byte

	peers    map[string]*lanPeer // by address
	sources  map[netip.Addr]*bucket
	overflow bucket // senders beyond maxSources
	global   bucket

	received, accepted, echoes int64
	dropped                    map[string]int64
}

func newDiscovery(cfg Config, self refs.Feed, network [32]byte) *discovery {
	return &discovery{cfg: cfg, self: self, network: network, peers: make(map[string]*lanPeer),
		sources: make(map[netip.Addr]*bucket), dropped: make(map[string]int64)}
}

// receive handles a packet from src read in mode m at now. It returns the
// address of the peer it announces when the packet is accepted: the
// server should know it (again).
func (d *discovery) receive(now time.Time, m mode, src netip.Addr, pkt []byte) (string, bool) {
	d.received++
	src = src.Unmap()
	if len(pkt) > MaxPacket {
		return d.drop(dropHuge)
	}
	if !d.admit(now, src) {
		return d.drop(dropRate)
	}
	var anns []Announcement
	var err error
	if m == lanMode {
		anns, err = OpenPacket(pkt, &d.network)
	} else {
		anns, err = ParsePacket(pkt)
	}
	switch {
	case errors.Is(err, ErrNetwork):
		return d.drop(dropNetwork)
	case errors.Is(err, ErrSignature):
		return d.drop(dropSignature)
	case err != nil:
		return d.drop(dropGarbage)
	}
	if slices.ContainsFunc(anns, func(a Announcement) bool { return a.Key == d.self }) {
		d.echoes++ // ours, echoed (or someone announcing our key: never dial it)
		return "", false
	}
	ann, ok := fromSender(anns, src)
	if !ok {
		return d.drop(dropSender)
	}
	addr := ann.Address()
	p := d.peers[addr]
	if p == nil {
		if len(d.peers) >= d.cfg.MaxPeers || d.fromHost(ann.Host) >= maxPerHost {
			return d.drop(dropFull)
		}
		p = &lanPeer{ann: ann, addr: addr, first: now}
		d.peers[addr] = p
	}
	p.seen = now
	p.packets++
	p.signed = p.signed || m == lanMode
	d.accepted++
	return addr, true
}

func (d *discovery) drop(reason string) (string, bool) {
	d.dropped[reason]++
	return "", false
}

// admit takes a token from src's bucket and the global one.
func (d *discovery) admit(now time.Time, src netip.Addr) bool {
	b := d.sources[src]
	if b == nil {
		if len(d.sources) >= maxSources {
			d.sweepSources(now)
		}
		if len(d.sources) < maxSources {
			b = &bucket{}
			d.sources[src] = b
		} else {
			b = &d.overflow
		}
	}
	return b.take(now, d.cfg.SourceRate, d.cfg.SourceRate) && d.global.take(now, d.cfg.Rate, d.cfg.Rate)
}

// sweepSources forgets the senders whose bucket has refilled: they have
// been quiet for a second or more.
func (d *discovery) sweepSources(now time.Time) {
	maps.DeleteFunc(d.sources, func(_ netip.Addr, b *bucket) bool { return now.Sub(b.last) >= time.Second })
}

// fromSender picks the announcement of the sender's own address: its host
// must be the IP the packet came from (a packet cannot make us dial a
// third host) and a LAN address (private, loopback or link-local, as
// ssb-gossip dials local peers).
func fromSender(anns []Announcement, src netip.Addr) (Announcement, bool) {
	if !(src.IsPrivate() || src.IsLoopback() || src.IsLinkLocalUnicast()) {
		return Announcement{}, false
	}
	for _, a := range anns {
		if h, err := netip.ParseAddr(a.Host); err == nil && h.Unmap() == src && h.Zone() == "" {
			return a, true
		}
	}
	return Announcement{}, false
}

// expire forgets the peers silent for Timeout and returns their addresses.
func (d *discovery) expire(now time.Time) []string {
	var gone []string
	for addr, p := range d.peers {
		if now.Sub(p.seen) > d.cfg.Timeout {
			gone = append(gone, addr)
			delete(d.peers, addr)
		}
	}
	slices.Sort(gone)
	return gone
}

// forgetAll forgets every peer and returns their addresses.
func (d *discovery) forgetAll() []string {
	gone := slices.Sorted(maps.Keys(d.peers))
	clear(d.peers)
	return gone
}

// status is the plugin's part of the status answer: "local" as ssb-local
// shows it (by feed: the address, parsed, and when it was last seen), and
// "lan" with the peers and the counts of packets.
func (d *discovery) status(enabled bool) map[string]any {
	peers := make([]map[string]any, 0, len(d.peers))
	local := make(map[string]any)
	for _, addr := range slices.Sorted(maps.Keys(d.peers)) {
		p := d.peers[addr]
		peers = append(peers, map[string]any{
			"address": addr, "key": p.ann.Key.String(), "first": p.first.UnixMilli(),
			"seen": p.seen.UnixMilli(), "packets": p.packets, "signed": p.signed,
		})
		local[p.ann.Key.String()] = map[string]any{
			"address": map[string]any{"host": p.ann.Host, "port": p.ann.Port, "key": p.ann.Key.String()},
			"seen":    p.seen.UnixMilli(),
		}
	}
	out := map[string]any{"lan": map[string]any{
		"enabled": enabled, "peers": peers, "received": d.received, "accepted": d.accepted,
		"echoes": d.echoes, "dropped": maps.Clone(d.dropped),
	}}
	if len(local) > 0 { // ssb-local adds its key only when it knows peers
		out["local"] = local
	}
	return out
}
