package server

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// Limits bound what peers can make the server hold. Peers are of three
// kinds: the owner (the local socket, or the server's own key over TCP),
// known peers (in gossip.json), and strangers (anyone else with the
// network key). A zero field takes its default.
//
// Memory held for peers is then bounded by:
//   - received bodies not yet consumed: BufferBudget in all (each
//     connection at most PeerBuffer, or 2×MaxBodyKnown for known peers);
//   - handlers: MaxHandlers goroutines in all (open streams and calls being
//     answered), measured at about 15 KiB each for live
//     history streams (bench/ssbhostile);
//   - bytes queued for peers: per connection 2×64 KiB for strangers (2×256
//     KiB for known peers) plus a packet, until WriteTimeout closes a peer
//     that does not read;
//   - connections: MaxConns established plus MaxHandshakes in progress,
//     each a few tens of KiB of box-stream, muxrpc and socket state.
//
// With the defaults, for strangers: 96 MiB of bodies + 10,240 streams ×
// 15 KiB (150 MiB) + 896 × ~0.2 MiB of queues and state (180 MiB), about
// 430 MiB at worst; bench/ssbhostile measured a peak heap of 254 MiB
// (RSS 433 MiB) under 1,000 hostile strangers. Known peers and the owner
// have the rest: a quarter of the budgets and ReservedConns connections.
type Limits struct {
	// IdleTimeout closes a peer's connection when nothing was received
	// from it for that long; after half of it in silence the server sends
	// a ping (the Pinger plugin's), which a live peer answers. The owner is
	// exempt (the command line's live streams are silent). Default 10 min, as
	// secret-stack's timers.inactivity under ssb-config (which also pings
	// every 5 min, timers.ping).
	IdleTimeout time.Duration
	// WriteTimeout closes a peer's connection when what is sent to it makes
	// no progress (64 KiB) for that long: a peer that does not read is
	// closed, not buffered. The owner is exempt (a paused pager). Default
	// 1 min.
	WriteTimeout time.Duration
	// MaxStreams bounds the streams a stranger has open on one connection;
	// past it a stream request is answered with an error and the
	// connection stays. Legacy replication opens one history stream per
	// feed, so this is the most feeds a stranger can replicate from us
	// that way (EBT needs one stream). Default 1024.
	MaxStreams int
	// MaxStreamsKnown is MaxStreams for known peers. The owner has no
	// per-connection bound. Default 8192.
	MaxStreamsKnown int
	// MaxCalls bounds the async requests being answered at once on one
	// connection (not the owner's); past it a request is answered with an
	// error at once. Default 64.
	MaxCalls int
	// MaxHandlers bounds the streams and calls being served at once over
	// all connections; a quarter is kept for the owner and known peers.
	// Default 16384.
	MaxHandlers int
	// MaxBody bounds a packet body from a stranger, in bytes; a larger
	// one ends the connection. Messages are at most 8 KiB; the largest
	// packet a peer sends in practice is an EBT clock of all its feeds
	// (about 60 bytes a feed). Default 1 MiB.
	MaxBody int
	// MaxBodyKnown is MaxBody for the owner and known peers. Default 4 MiB
	// (packet-stream's practical limit; muxrpc.DefaultMaxBody).
	MaxBodyKnown int
	// PeerBuffer bounds the bytes received from one stranger and not yet
	// consumed; at it, reading from that peer pauses. At least 2×MaxBody.
	// Known peers get 2×MaxBodyKnown. Default 2 MiB.
	PeerBuffer int64
	// BufferBudget bounds the bytes received from all peers and not yet
	// consumed; a quarter is kept for the owner and known peers. Default
	// 128 MiB.
	BufferBudget int64
	// BufferTimeout closes a peer's connection whose reading paused that
	// long for want of buffer room. Default 1 min.
	BufferTimeout time.Duration
	// ReservedConns is the part of MaxConns that only the owner and known
	// peers may use: strangers get at most MaxConns − ReservedConns. The
	// kind of a peer is known after the handshake. Default MaxConns/8.
	ReservedConns int
	// MaxHandshakes bounds the secret handshakes in progress; more
	// connections are refused at accept. Each costs a goroutine and a few
	// KiB for at most Config.HandshakeTimeout, so the default is generous:
	// stallers must hold them all to delay others. Default 512.
	MaxHandshakes int
}

// Defaults of Limits.
const (
	DefaultIdleTimeout     = 10 * time.Minute
	DefaultWriteTimeout    = time.Minute
	DefaultMaxStreams      = 1024
	DefaultMaxStreamsKnown = 8192
	DefaultMaxCalls        = 64
	DefaultMaxHandlers     = 16384
	DefaultMaxBody         = 1 << 20
	DefaultMaxBodyKnown    = muxrpc.DefaultMaxBody
	DefaultPeerBuffer      = 2 << 20
	DefaultBufferBudget    = 128 << 20
	DefaultBufferTimeout   = time.Minute
	DefaultMaxHandshakes   = 512
	// strangerPending bounds the bytes queued for a stranger.
	strangerPending = 64 << 10
)

// withDefaults fills the zero fields; maxConns is Config.MaxConns.
func (l Limits) withDefaults(maxConns int) Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	defDur(&l.IdleTimeout, DefaultIdleTimeout)
	defDur(&l.WriteTimeout, DefaultWriteTimeout)
	defDur(&l.BufferTimeout, DefaultBufferTimeout)
	def(&l.MaxStreams, DefaultMaxStreams)
	def(&l.MaxStreamsKnown, DefaultMaxStreamsKnown)
	def(&l.MaxCalls, DefaultMaxCalls)
	def(&l.MaxHandlers, DefaultMaxHandlers)
	def(&l.MaxBody, DefaultMaxBody)
	def(&l.MaxBodyKnown, DefaultMaxBodyKnown)
	def(&l.MaxHandshakes, DefaultMaxHandshakes)
	def(&l.ReservedConns, maxConns/8)
	if l.PeerBuffer == 0 {
		l.PeerBuffer = max(DefaultPeerBuffer, 2*int64(l.MaxBody))
	}
	if l.BufferBudget == 0 {
		l.BufferBudget = DefaultBufferBudget
	}
	return l
}

// validate checks limits after withDefaults.
func (l Limits) validate(maxConns int) error {
	var errs []error
	// In the order of the fields, so the message is the same every time.
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"IdleTimeout", int64(l.IdleTimeout)}, {"WriteTimeout", int64(l.WriteTimeout)},
		{"MaxStreams", int64(l.MaxStreams)}, {"MaxStreamsKnown", int64(l.MaxStreamsKnown)},
		{"MaxCalls", int64(l.MaxCalls)}, {"MaxHandlers", int64(l.MaxHandlers)},
		{"BufferTimeout", int64(l.BufferTimeout)}, {"ReservedConns", int64(l.ReservedConns)},
		{"MaxHandshakes", int64(l.MaxHandshakes)},
	} {
		if f.v < 0 {
			errs = append(errs, fmt.Errorf("server: limits: %s is negative", f.name))
		}
	}
	if l.MaxBody < 1024 || l.MaxBody > muxrpc.DefaultMaxBody || l.MaxBodyKnown < l.MaxBody || l.MaxBodyKnown > muxrpc.DefaultMaxBody {
		errs = append(errs, fmt.Errorf("server: limits: bodies must be 1 KiB ≤ MaxBody (%d) ≤ MaxBodyKnown (%d) ≤ 4 MiB", l.MaxBody, l.MaxBodyKnown))
	}
	if l.PeerBuffer < 2*int64(l.MaxBody) {
		errs = append(errs, fmt.Errorf("server: limits: PeerBuffer %d is under 2×MaxBody (%d)", l.PeerBuffer, 2*l.MaxBody))
	}
	if l.BufferBudget < 8*int64(l.MaxBodyKnown) {
		errs = append(errs, fmt.Errorf("server: limits: BufferBudget %d is under 8×MaxBodyKnown (%d)", l.BufferBudget, 8*l.MaxBodyKnown))
	}
	if l.ReservedConns >= maxConns {
		errs = append(errs, fmt.Errorf("server: limits: ReservedConns %d leaves no connection for strangers (MaxConns %d)", l.ReservedConns, maxConns))
	}
	return errors.Join(errs...)
}

// kindOf classifies an authenticated key.
func (s *Server) kindOf(remote ed25519.PublicKey) PeerKind {
	if remote.Equal(s.keys.Public) {
		return Owner
	}
	if id, err := refs.NewFeed(remote); err == nil && s.peers.isKnown(id) {
		return Known
	}
	return Stranger
}

// isKnown reports whether f is in the address book.
func (p *peers) isKnown(f refs.Feed) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, k := range p.known {
		if k.feed == f {
			return true
		}
	}
	return false
}

// endpointLimits returns the muxrpc limits of a connection of kind k.
func (s *Server) endpointLimits(k PeerKind) muxrpc.Limits {
	l := s.cfg.Limits
	lim := muxrpc.Limits{
		MaxBody:  uint32(l.MaxBodyKnown),
		Handlers: s.handlers,
		Budget:   s.budget,
		Reserved: k != Stranger,
	}
	if k == Owner {
		return lim
	}
	lim.IdleTimeout = l.IdleTimeout
	if s.pinger != nil {
		lim.Ping = s.pinger.Ping
	}
	lim.WriteTimeout = l.WriteTimeout
	lim.BufferTimeout = l.BufferTimeout
	lim.MaxCalls = l.MaxCalls
	lim.MaxStreams = l.MaxStreamsKnown
	lim.Buffer = 2 * int64(l.MaxBodyKnown)
	if k == Stranger {
		lim.MaxBody = uint32(l.MaxBody)
		lim.MaxStreams = l.MaxStreams
		lim.Buffer = l.PeerBuffer
		lim.MaxPending = strangerPending
	}
	return lim
}

// admit takes a connection slot for an authenticated inbound peer of kind
// k, or reports that there is none; release gives it back.
func (s *Server) admit(k PeerKind) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inbound >= s.cfg.MaxConns || k == Stranger && s.strangers >= s.cfg.MaxConns-s.cfg.Limits.ReservedConns {
		return nil, false
	}
	s.inbound++
	if k == Stranger {
		s.strangers++
	}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.inbound--
		if k == Stranger {
			s.strangers--
		}
	}, true
}
