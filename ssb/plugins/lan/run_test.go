package lan_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scuttlego/scuttle/ssb/plugins/lan"
	"github.com/scuttlego/scuttle/ssb/server"
)

// addresser is a plugin that knows the server's address, as secretstack
// does (these servers are not served, so they have no listener).
type addresser struct{ addr string }

func (a *addresser) Name() string                { return "addr" }
func (a *addresser) Init(*server.Server) error   { return nil }
func (a *addresser) Methods() []server.Method    { return nil }
func (a *addresser) Address(scope string) string { return map[string]string{"local": a.addr}[scope] }

// openServer opens (does not serve) a server with the lan plugin, on the
// host ip of mem, with network key caps and the config file config.
func openServer(t *testing.T, mem *memNet, ip string, caps [32]byte, config string, p *lan.Plugin) *server.Server {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p.SetListen(mem.host(ip))
	addr := &addresser{}
	srv, err := server.Open(server.Config{Path: dir, Host: ip, Caps: base64.StdEncoding.EncodeToString(caps[:])}, nil, addr, p)
	if err != nil {
		t.Fatal(err)
	}
	addr.addr = addrOf(srv.Keys(), ip, 8008)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// source returns the source of a known address, "" if it is not known.
func source(srv *server.Server, addr string) string {
	for _, k := range srv.KnownPeers() {
		if k["address"] == addr {
			return k["source"].(string)
		}
	}
	return ""
}

func randomCaps() [32]byte {
	var caps [32]byte
	rand.Read(caps[:])
	return caps
}

// The plugin in virtual time over an in-memory LAN: it forgets the last
// run's LAN peers, announces at once and every second in both modes,
// makes known the peers it hears with source "local", forgets them after
// 10 s of silence (looked for every 5 s, as ssb-local), never a manual
// peer, and at the end forgets those it found.
func TestRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		mem := newMemNet()
		caps := randomCaps()
		p := lan.New()
		srv := openServer(t, mem, "10.0.0.1", caps, `{"local": true}`, p)
		ours := addrOf(srv.Keys(), "10.0.0.1", 8008)
		manual := addrOf(mustKeys(30), "10.0.0.3", 8008)
		leftover := addrOf(mustKeys(31), "10.0.0.4", 8008)
		if err := srv.AddPeer(manual); err != nil {
			t.Fatal(err)
		}
		if err := srv.AddPeerFrom(leftover, lan.Source); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		start := time.Now()
		if source(srv, leftover) != "" || source(srv, manual) != "manual" {
			t.Errorf("at start: leftover %q (want forgotten), manual %q", source(srv, leftover), source(srv, manual))
		}
		legacy, signed := mem.packets("10.0.0.1", 8008), mem.packets("10.0.0.1", 26830)
		if len(legacy) != 1 || string(legacy[0]) != ours || len(signed) != 1 {
			t.Fatalf("at start: %q and %d ssb-lan packets, want one of each, %s", legacy, len(signed), ours)
		}
		if anns, err := lan.OpenPacket(signed[0], &caps); err != nil || anns[0].Address() != ours {
			t.Errorf("our ssb-lan packet: %v, %v", anns, err)
		}
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if n, m := len(mem.packets("10.0.0.1", 8008)), len(mem.packets("10.0.0.1", 26830)); n != 4 || m != 4 {
			t.Errorf("after 3.5 s: %d and %d packets, want 4 and 4 (at 0, 1, 2, 3 s)", n, m)
		}

		// B announces once; M announces the manual peer's address; a
		// stranger floods garbage and one huge packet.
		bAddr := addrOf(keyB, "10.0.0.2", 8008)
		bcast := func(port int) netip.AddrPort {
			return netip.AddrPortFrom(netip.MustParseAddr("255.255.255.255"), uint16(port))
		}
		b, m, x := mem.bind("10.0.0.2", 8008), mem.bind("10.0.0.3", 8008), mem.bind("10.0.0.9", 8008)
		b.WriteTo([]byte(bAddr), bcast(8008))
		m.WriteTo([]byte(manual), bcast(8008))
		x.WriteTo(make([]byte, lan.MaxPacket+1), bcast(8008))
		for range 40 {
			x.WriteTo([]byte("garbage"), bcast(8008))
		}
		synctest.Wait()
		if source(srv, bAddr) != lan.Source || source(srv, manual) != "manual" {
			t.Errorf("after announcements: b %q (want local), manual %q", source(srv, bAddr), source(srv, manual))
		}
		st, _ := p.Status(ctx)
		l := st["lan"].(map[string]any)
		dropped := l["dropped"].(map[string]int64)
		if dropped["huge"] != 1 || dropped["garbage"] != 20 || dropped["rate"] != 20 || l["accepted"] != int64(2) || l["echoes"] != int64(8) {
			t.Errorf("status: %v", l)
		}
		if _, ok := st["local"].(map[string]any)[keyB.ID.String()]; !ok {
			t.Errorf("status.local without b: %v", st["local"])
		}

		// C keeps announcing, signed, every second; B and M are silent.
		c := mem.bind("10.0.0.5", 26830)
		cAddr := addrOf(keyA, "10.0.0.5", 8008)
		cPkt, err := lan.SealPacket(cAddr, &caps, keyA)
		if err != nil {
			t.Fatal(err)
		}
		announceC := func(d time.Duration) {
			for end := time.Now().Add(d); time.Now().Before(end); {
				c.WriteTo(cPkt, bcast(26830))
				time.Sleep(time.Second)
			}
		}
		announceC(10 * time.Second) // to start+13.5 s: b silent 10 s, not yet looked at after that
		synctest.Wait()
		if source(srv, bAddr) != lan.Source || source(srv, cAddr) != lan.Source {
			t.Errorf("at +%v: b %q, c %q; want both known", time.Since(start), source(srv, bAddr), source(srv, cAddr))
		}
		announceC(2 * time.Second) // past start+15 s: the look at 15 s forgets b
		synctest.Wait()
		if source(srv, bAddr) != "" || source(srv, manual) != "manual" || source(srv, cAddr) != lan.Source {
			t.Errorf("at +%v: b %q (want forgotten), manual %q, c %q", time.Since(start), source(srv, bAddr), source(srv, manual), source(srv, cAddr))
		}

		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if source(srv, cAddr) != "" || source(srv, manual) != "manual" {
			t.Errorf("after Run: c %q (want forgotten), manual %q", source(srv, cAddr), source(srv, manual))
		}
		for _, s := range []*memSock{b, m, x, c} {
			s.Close()
		}
	})
}

// Off by default: Run opens no socket, sends nothing, and still forgets
// the LAN peers an earlier run left. SetEnabled (the --local flag)
// overrides the config file both ways.
func TestOffByDefault(t *testing.T) {
	for _, c := range []struct {
		config string
		flag   *bool
		on     bool
	}{
		{"", nil, false},
		{`{"local": false}`, nil, false},
		{`{"local": {"enabled": false, "port": 9000}}`, nil, false},
		{`{"local": {"port": 9000}}`, nil, true},
		{`{"local": true}`, new(false), false},
		{`{"local": false}`, new(true), true},
		{"", new(true), true},
	} {
		synctest.Test(t, func(t *testing.T) {
			mem := newMemNet()
			p := lan.New()
			if c.flag != nil {
				p.SetEnabled(*c.flag)
			}
			srv := openServer(t, mem, "10.0.0.1", randomCaps(), c.config, p)
			leftover := addrOf(keyB, "10.0.0.4", 8008)
			srv.AddPeerFrom(leftover, lan.Source)
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- p.Run(ctx) }()
			synctest.Wait()
			sent := len(mem.sent)
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if p.Config().Enabled != c.on || (sent > 0) != c.on || source(srv, leftover) != "" {
				t.Errorf("config %s, flag %v: enabled %v, %d packets sent, leftover %q; want on %v",
					c.config, c.flag, p.Config().Enabled, sent, source(srv, leftover), c.on)
			}
		})
	}
}
