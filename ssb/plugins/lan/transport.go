package lan

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// A transport is one UDP socket: the narrow seam between the plugin and
// the network, so tests can run the plugin over memory.
type transport interface {
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	WriteTo(b []byte, to netip.AddrPort) error
	Close() error
}

// listenFunc opens the socket of a port.
type listenFunc func(ctx context.Context, port int) (transport, error)

// udpTransport is a UDP socket bound to 0.0.0.0:port as broadcast-stream
// binds it: with SO_REUSEADDR (other peers of the host share the port and
// all of them get each broadcast) and SO_BROADCAST.
type udpTransport struct{ c *net.UDPConn }

func listenUDP(ctx context.Context, port int) (transport, error) {
	lc := net.ListenConfig{Control: broadcastControl}
	pc, err := lc.ListenPacket(ctx, "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("lan: %w", err)
	}
	return udpTransport{pc.(*net.UDPConn)}, nil
}

func (u udpTransport) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	return u.c.ReadFromUDPAddrPort(b)
}

func (u udpTransport) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, to)
	return err
}

func (u udpTransport) Close() error { return u.c.Close() }
