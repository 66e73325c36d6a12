package lan_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/servertest"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/plugins/gossip"
	"github.com/scuttlego/scuttle/ssb/plugins/lan"
	"github.com/scuttlego/scuttle/ssb/plugins/replication"
	"github.com/scuttlego/scuttle/ssb/plugins/secretstack"
	"github.com/scuttlego/scuttle/ssb/plugins/status"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// loopbackBroadcast is the broadcast address of lo: the tests' packets
// never reach a real network interface.
const loopbackBroadcast = "127.255.255.255"

// freeUDPPort returns a UDP port of 127.0.0.1 that was free a moment ago.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// sbot is a served server with the lan plugin and what replication needs.
type sbot struct {
	srv   *server.Server
	lan   *lan.Plugin
	local *muxrpc.Endpoint
	addr  net.Addr
	stop  func()
}

// startSbot serves a server on 127.0.0.1 with the config file config and
// the plugins of all.Default that replication needs, secretstack (the
// address) and lan.
func startSbot(t *testing.T, caps [32]byte, config string) *sbot {
	t.Helper()
	p := lan.New()
	return startWith(t, caps, config, p, status.New(), replication.New(), db.New(), gossip.New(), secretstack.New(), p)
}

// startWith serves a server on 127.0.0.1 with the plugins; p is its lan
// plugin.
func startWith(t *testing.T, caps [32]byte, config string, p *lan.Plugin, plugins ...server.Plugin) *sbot {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r := servertest.Start(t, server.Config{Path: dir, Caps: servertest.Caps(caps)}, plugins...)
	return &sbot{srv: r.Server, lan: p, local: r.Owner(t), addr: r.Addr, stop: r.Stop}
}

// eventually waits until cond holds, failing the test after within.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		<-tick.C
	}
}

func publish(t *testing.T, e *muxrpc.Endpoint, content map[string]any) {
	t.Helper()
	var m struct{ Key string }
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"publish"}, content); err != nil {
		t.Fatalf("publish %v: %v", content, err)
	}
}

func latest(e *muxrpc.Endpoint, f refs.Feed) int64 {
	var n int64
	e.AsyncJSON(context.Background(), &n, muxrpc.Method{"latestSequence"}, f.String())
	return n
}

// Two servers on loopback with LAN discovery on and no peers given find
// each other by broadcast on lo, dial and replicate; when one stops, the
// other forgets it after the timeout.
func TestTwoServersFindEachOther(t *testing.T) {
	caps := randomCaps()
	config := fmt.Sprintf(`{"local": {"port": %d, "lanPort": %d, "broadcast": %q, "interval": 100, "timeout": 1000, "sourceRate": 100}}`,
		freeUDPPort(t), freeUDPPort(t), loopbackBroadcast)
	a := startSbot(t, caps, config)
	if known := a.srv.KnownPeers(); len(known) != 0 {
		t.Fatalf("known peers of a alone: %v", known)
	}
	b := startSbot(t, caps, config) // from now on, each may hear the other
	publish(t, a.local, map[string]any{"type": "contact", "contact": b.srv.ID().String(), "following": true})
	publish(t, b.local, map[string]any{"type": "contact", "contact": a.srv.ID().String(), "following": true})
	publish(t, a.local, map[string]any{"type": "post", "text": "found you on the LAN"})
	publish(t, b.local, map[string]any{"type": "post", "text": "and you"})

	eventually(t, 20*time.Second, "the servers did not replicate", func() bool {
		return latest(b.local, a.srv.ID()) >= 2 && latest(a.local, b.srv.ID()) >= 2
	})
	bAddr := ssbtest.Address(b.addr.String(), b.srv.ID())
	for _, s := range []*sbot{a, b} {
		if known := s.srv.KnownPeers(); len(known) != 1 || known[0]["source"] != lan.Source {
			t.Errorf("known peers of %s: %v, want the other, from %q", s.srv.ID(), known, lan.Source)
		}
	}
	if src := source(a.srv, bAddr); src != lan.Source {
		t.Errorf("b's address %s on a: source %q, want %q (known: %v)", bAddr, src, lan.Source, a.srv.KnownPeers())
	}
	var st map[string]any
	if err := a.local.AsyncJSON(context.Background(), &st, muxrpc.Method{"status"}); err != nil {
		t.Fatal(err)
	}
	l, _ := st["lan"].(map[string]any)
	if peers, _ := l["peers"].([]any); len(peers) != 1 || l["echoes"].(float64) == 0 || l["sent"].(float64) == 0 {
		t.Errorf("a's status.lan: %v; want b, our own echoes, packets sent", l)
	}
	if _, ok := st["local"].(map[string]any)[b.srv.ID().String()]; !ok {
		t.Errorf("a's status.local: %v, want b", st["local"])
	}

	b.stop()
	eventually(t, 10*time.Second, "a did not forget b", func() bool { return source(a.srv, bAddr) == "" })
}

// Without secretstack, the address announced is the configured host's,
// with the port the server listens on.
func TestAddressWithoutSecretstack(t *testing.T) {
	p := lan.New()
	s := startWith(t, randomCaps(), `{"local": false}`, p, p)
	want := ssbtest.Address(s.addr.String(), s.srv.ID())
	if got := p.Address(); got != want {
		t.Errorf("announced %q, want %q", got, want)
	}
}
