package lan_test

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"

	"github.com/scuttlego/scuttle/ssb/plugins/lan"
)

// memNet is a LAN in memory: every socket bound to a port gets each packet
// sent to that port (a broadcast, the sender's own socket included, as on
// a real LAN), from the sender's IP and port. A full queue drops, as UDP.
type memNet struct {
	mu    sync.Mutex
	socks map[int][]*memSock
	sent  []memPacket
}

type memPacket struct {
	from, to netip.AddrPort
	data     []byte
}

func newMemNet() *memNet { return &memNet{socks: make(map[int][]*memSock)} }

// host returns the listen function of a host with IP ip.
func (n *memNet) host(ip string) func(ctx context.Context, port int) (lan.Transport, error) {
	return func(ctx context.Context, port int) (lan.Transport, error) { return n.bind(ip, port), nil }
}

func (n *memNet) bind(ip string, port int) *memSock {
	s := &memSock{n: n, addr: netip.AddrPortFrom(netip.MustParseAddr(ip), uint16(port)),
		in: make(chan memPacket, 64), closed: make(chan struct{})}
	n.mu.Lock()
	n.socks[port] = append(n.socks[port], s)
	n.mu.Unlock()
	return s
}

// packets returns what was sent so far by from's IP to port.
func (n *memNet) packets(from string, port int) [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out [][]byte
	for _, p := range n.sent {
		if p.from.Addr().String() == from && int(p.to.Port()) == port {
			out = append(out, p.data)
		}
	}
	return out
}

type memSock struct {
	n      *memNet
	addr   netip.AddrPort
	in     chan memPacket
	once   sync.Once
	closed chan struct{}
}

func (s *memSock) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	select {
	case p := <-s.in:
		return copy(b, p.data), p.from, nil
	case <-s.closed:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (s *memSock) WriteTo(b []byte, to netip.AddrPort) error {
	p := memPacket{from: s.addr, to: to, data: slices.Clone(b)}
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	s.n.sent = append(s.n.sent, p)
	for _, r := range s.n.socks[int(to.Port())] {
		select {
		case r.in <- p:
		default:
		}
	}
	return nil
}

func (s *memSock) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.n.mu.Lock()
		defer s.n.mu.Unlock()
		port := int(s.addr.Port())
		s.n.socks[port] = slices.DeleteFunc(s.n.socks[port], func(x *memSock) bool { return x == s })
	})
	return nil
}
