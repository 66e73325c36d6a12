package lan

import (
	"context"
	"net/netip"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Transport is transport, for the tests' in-memory network.
type Transport = transport

// SetListen replaces how the plugin opens its sockets.
func (p *Plugin) SetListen(f func(ctx context.Context, port int) (Transport, error)) { p.listen = f }

// Address is the address the plugin announces.
func (p *Plugin) Address() string { return p.address() }

// Discovery is the state machine, for tests that drive it with their own
// clock.
type Discovery struct{ d *discovery }

// Mode numbers for Discovery.Receive.
const (
	LegacyMode = int(legacyMode)
	LANMode    = int(lanMode)
)

func NewDiscovery(cfg Config, self refs.Feed, network [32]byte) Discovery {
	return Discovery{newDiscovery(cfg, self, network)}
}

func (d Discovery) Receive(now time.Time, m int, src netip.Addr, pkt []byte) (string, bool) {
	return d.d.receive(now, mode(m), src, pkt)
}

func (d Discovery) Expire(now time.Time) []string { return d.d.expire(now) }

func (d Discovery) Status() map[string]any { return d.d.status(true) }

func (d Discovery) Dropped(reason string) int64 { return d.d.dropped[reason] }

func (d Discovery) Echoes() int64 { return d.d.echoes }
