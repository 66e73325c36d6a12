package lan_test

import (
	"encoding/base64"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/plugins/lan"
	"github.com/scuttlego/scuttle/ssb/refs"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testConfig() lan.Config {
	c := lan.DefaultConfig()
	c.Enabled = true
	return c
}

func addrOf(kp *keys.KeyPair, host string, port int) string { return addrOfFeed(kp.ID, host, port) }

func addrOfFeed(f refs.Feed, host string, port int) string {
	return "net:" + host + ":" + strconv.Itoa(port) + "~shs:" + base64.StdEncoding.EncodeToString(f.PublicKey())
}

var ip = netip.MustParseAddr

// The hostile cases, each on a fresh state machine of A, with B as the
// peer: only B's own announcements from its own LAN address are taken.
func TestDiscoveryReceive(t *testing.T) {
	var network, other [32]byte
	network[0], other[0] = 7, 8
	bAddr := addrOf(keyB, "192.168.1.5", 8008)
	seal := func(addr string, n *[32]byte, kp *keys.KeyPair) []byte {
		p, err := lan.SealPacket(addr, n, kp)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	cases := []struct {
		name string
		mode int
		src  string
		pkt  []byte
		drop string // "" accepted (bAddr, or wants[name]), "echo" our own
	}{
		{"legacy", lan.LegacyMode, "192.168.1.5", []byte(bAddr), ""},
		{"legacy, several addresses, the sender's second", lan.LegacyMode, "192.168.1.5",
			[]byte(addrOf(keyB, "172.17.0.1", 8008) + ";" + bAddr), ""},
		{"ssb-lan", lan.LANMode, "192.168.1.5", seal(bAddr, &network, keyB), ""},
		{"loopback sender", lan.LegacyMode, "127.0.0.1", []byte(addrOf(keyB, "127.0.0.1", 8008)), ""},
		{"IPv4-mapped sender", lan.LegacyMode, "::ffff:192.168.1.5", []byte(bAddr), ""},
		{"our own, echoed", lan.LegacyMode, "192.168.1.2", []byte(addrOf(keyA, "192.168.1.2", 8008)), "echo"},
		{"our key behind another's address", lan.LegacyMode, "192.168.1.5",
			[]byte(addrOf(keyB, "10.9.9.9", 8008) + ";" + addrOf(keyA, "192.168.1.5", 8008)), "echo"},
		{"our own ssb-lan, echoed", lan.LANMode, "192.168.1.2", seal(addrOf(keyA, "192.168.1.2", 8008), &network, keyA), "echo"},
		{"spoofed: another host's address", lan.LegacyMode, "192.168.1.9", []byte(bAddr), "sender"},
		{"a host name", lan.LegacyMode, "192.168.1.5", []byte(addrOf(keyB, "b.local", 8008)), "sender"},
		{"a public sender", lan.LegacyMode, "8.8.8.8", []byte(addrOf(keyB, "8.8.8.8", 8008)), "sender"},
		{"ssb-lan of another network", lan.LANMode, "192.168.1.5", seal(bAddr, &other, keyB), "network"},
		{"ssb-lan signed by another key", lan.LANMode, "192.168.1.5", seal(bAddr, &network, keyA), "signature"},
		{"ssb-lan plain text", lan.LANMode, "192.168.1.5", []byte(bAddr), "network"},
		{"legacy packet that is an ssb-lan one", lan.LegacyMode, "192.168.1.5", seal(bAddr, &network, keyB), "garbage"},
		{"garbage", lan.LegacyMode, "192.168.1.5", []byte("\xff\x00hello~"), "garbage"},
		{"huge", lan.LegacyMode, "192.168.1.5", append([]byte(bAddr+";"), make([]byte, lan.MaxPacket)...), "huge"},
	}
	wants := map[string]string{"loopback sender": addrOf(keyB, "127.0.0.1", 8008)}
	for _, c := range cases {
		d := lan.NewDiscovery(testConfig(), keyA.ID, network)
		addr, ok := d.Receive(t0, c.mode, ip(c.src), c.pkt)
		want, ok2 := wants[c.name]
		if !ok2 {
			want = bAddr
		}
		switch {
		case c.drop == "":
			if !ok || addr != want {
				t.Errorf("%s: %q, %v; want %s", c.name, addr, ok, want)
			}
		case ok:
			t.Errorf("%s: accepted %s", c.name, addr)
		case c.drop == "echo":
			if d.Echoes() != 1 {
				t.Errorf("%s: not counted as an echo: %v", c.name, d.Status()["lan"])
			}
		case d.Dropped(c.drop) != 1:
			t.Errorf("%s: not counted as %s: %v", c.name, c.drop, d.Status()["lan"])
		}
	}
}

// A peer is forgotten when it has been silent for more than the timeout,
// as ssb-local's Date.now() - lastSeen > 10e3; each announcement extends it.
func TestDiscoveryExpire(t *testing.T) {
	d := lan.NewDiscovery(testConfig(), keyA.ID, [32]byte{})
	b := addrOf(keyB, "10.0.0.2", 8008)
	d.Receive(t0, lan.LegacyMode, ip("10.0.0.2"), []byte(b))
	d.Receive(t0.Add(5*time.Second), lan.LegacyMode, ip("10.0.0.2"), []byte(b))
	if gone := d.Expire(t0.Add(15 * time.Second)); len(gone) != 0 {
		t.Fatalf("forgotten after exactly 10 s of silence: %v", gone)
	}
	if gone := d.Expire(t0.Add(15*time.Second + time.Millisecond)); len(gone) != 1 || gone[0] != b {
		t.Fatalf("after 10.001 s of silence: %v, want %s", gone, b)
	}
	if gone := d.Expire(t0.Add(time.Hour)); len(gone) != 0 {
		t.Fatalf("forgotten twice: %v", gone)
	}
}

// At most MaxPeers peers: a new one is dropped until one is forgotten; the
// known ones stay.
func TestDiscoveryFull(t *testing.T) {
	cfg := testConfig()
	cfg.MaxPeers = 2
	d := lan.NewDiscovery(cfg, keyA.ID, [32]byte{})
	for i, want := range []bool{true, true, false} {
		host := "10.0.0." + strconv.Itoa(i+2)
		if _, ok := d.Receive(t0, lan.LegacyMode, ip(host), []byte(addrOf(mustKeys(byte(10+i)), host, 8008))); ok != want {
			t.Errorf("peer %d: accepted %v, want %v", i, ok, want)
		}
	}
	if _, ok := d.Receive(t0, lan.LegacyMode, ip("10.0.0.2"), []byte(addrOf(mustKeys(10), "10.0.0.2", 8008))); !ok {
		t.Errorf("a known peer was dropped when full")
	}
	d.Expire(t0.Add(time.Minute))
	if _, ok := d.Receive(t0.Add(time.Minute), lan.LegacyMode, ip("10.0.0.4"), []byte(addrOf(mustKeys(12), "10.0.0.4", 8008))); !ok {
		t.Errorf("a new peer was dropped after the others were forgotten")
	}
	if d.Dropped("full") != 1 {
		t.Errorf("full drops: %d, want 1", d.Dropped("full"))
	}

	// One host has at most 8 places, whatever MaxPeers.
	d = lan.NewDiscovery(testConfig(), keyA.ID, [32]byte{})
	for port := 1; port <= 10; port++ {
		_, ok := d.Receive(t0, lan.LegacyMode, ip("10.0.0.2"), []byte(addrOf(keyB, "10.0.0.2", port)))
		if ok != (port <= 8) {
			t.Errorf("port %d of one host: accepted %v", port, ok)
		}
	}
}

// A flood: one sender gets SourceRate packets per second, all senders
// together Rate, and senders beyond the tracked ones share one bucket.
func TestDiscoveryRate(t *testing.T) {
	cfg := testConfig()
	cfg.SourceRate, cfg.Rate = 5, 1000
	d := lan.NewDiscovery(cfg, keyA.ID, [32]byte{})
	b := []byte(addrOf(keyB, "10.0.0.2", 8008))
	accepted := 0
	for range 100 {
		if _, ok := d.Receive(t0, lan.LegacyMode, ip("10.0.0.2"), b); ok {
			accepted++
		}
	}
	if accepted != 5 || d.Dropped("rate") != 95 {
		t.Errorf("100 packets at once from one sender: %d accepted, %d dropped for rate; want 5, 95", accepted, d.Dropped("rate"))
	}
	if _, ok := d.Receive(t0.Add(200*time.Millisecond), lan.LegacyMode, ip("10.0.0.2"), b); !ok {
		t.Errorf("a packet 200 ms later (one token refilled) was dropped")
	}

	cfg.SourceRate, cfg.Rate = 1, 10000
	d = lan.NewDiscovery(cfg, keyA.ID, [32]byte{})
	for i := range 300 { // garbage from 300 senders: 256 tracked, 44 share one token
		d.Receive(t0, lan.LegacyMode, netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), []byte("x"))
	}
	if d.Dropped("garbage") != 257 || d.Dropped("rate") != 43 {
		t.Errorf("300 senders: %d read, %d dropped for rate; want 257, 43", d.Dropped("garbage"), d.Dropped("rate"))
	}

	cfg.SourceRate, cfg.Rate = 1000, 50
	d = lan.NewDiscovery(cfg, keyA.ID, [32]byte{})
	for i := range 300 {
		d.Receive(t0, lan.LegacyMode, netip.AddrFrom4([4]byte{10, 2, byte(i >> 8), byte(i)}), []byte("x"))
	}
	if d.Dropped("garbage") != 50 || d.Dropped("rate") != 250 {
		t.Errorf("global rate 50: %d read, %d dropped; want 50, 250", d.Dropped("garbage"), d.Dropped("rate"))
	}
}

// The status: ssb-local's "local" (by feed) and our "lan".
func TestDiscoveryStatus(t *testing.T) {
	d := lan.NewDiscovery(testConfig(), keyA.ID, [32]byte{})
	if _, ok := d.Status()["local"]; ok {
		t.Errorf(`"local" with no peers (ssb-local leaves it out)`)
	}
	d.Receive(t0, lan.LegacyMode, ip("10.0.0.2"), []byte(addrOf(keyB, "10.0.0.2", 8008)))
	d.Receive(t0, lan.LegacyMode, ip("10.0.0.3"), []byte("junk"))
	st := d.Status()
	local := st["local"].(map[string]any)[keyB.ID.String()].(map[string]any)
	a := local["address"].(map[string]any)
	if a["host"] != "10.0.0.2" || a["port"] != 8008 || a["key"] != keyB.ID.String() || local["seen"] != t0.UnixMilli() {
		t.Errorf("local: %v", local)
	}
	l := st["lan"].(map[string]any)
	peers := l["peers"].([]map[string]any)
	if l["received"] != int64(2) || l["accepted"] != int64(1) || l["dropped"].(map[string]int64)["garbage"] != 1 ||
		len(peers) != 1 || peers[0]["address"] != addrOf(keyB, "10.0.0.2", 8008) || peers[0]["signed"] != false {
		t.Errorf("lan: %v", l)
	}
}

// The config section: true, false, or an object; values checked.
func TestReadConfig(t *testing.T) {
	for _, c := range []struct {
		section string
		ok, on  bool
	}{
		{"", true, false}, {"null", true, false}, {"true", true, true}, {"false", true, false},
		{`{}`, true, true}, {`{"enabled": false}`, true, false},
		{`{"port": 9000, "lanPort": -1, "broadcast": "127.255.255.255", "interval": 2000, "timeout": 20000, "maxPeers": 4, "rate": 10, "sourceRate": 2}`, true, true},
		{`"yes"`, false, false}, {`1`, false, false}, {`{"port": 70000}`, false, false},
		{`{"lanPort": 0}`, false, false}, {`{"broadcast": "::1"}`, false, false}, {`{"broadcast": "x"}`, false, false},
		{`{"interval": 0}`, false, false}, {`{"timeout": -5}`, false, false}, {`{"maxPeers": 0}`, false, false},
		{`{"rate": 0}`, false, false}, {`{"legacy": false, "lanPort": -1}`, false, false}, {`{"bogus": 1}`, false, false},
	} {
		p := lan.New()
		err := p.ReadConfig([]byte(c.section))
		if (err == nil) != c.ok || (c.ok && p.Config().Enabled != c.on) {
			t.Errorf("section %s: enabled %v, %v; want ok %v, on %v", c.section, p.Config().Enabled, err, c.ok, c.on)
		}
	}
	p := lan.New()
	p.ReadConfig([]byte(`{"port": 9000, "lanPort": -1, "broadcast": "127.255.255.255", "interval": 2000, "timeout": 20000, "maxPeers": 4, "rate": 10, "sourceRate": 2}`))
	want := lan.Config{Enabled: true, Port: 9000, Legacy: true, LANPort: -1, Broadcast: ip("127.255.255.255"),
		Interval: 2 * time.Second, Timeout: 20 * time.Second, MaxPeers: 4, Rate: 10, SourceRate: 2}
	if p.Config() != want {
		t.Errorf("config %+v, want %+v", p.Config(), want)
	}
}
