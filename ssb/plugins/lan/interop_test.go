package lan_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/plugins/lan"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// ourPackets runs our plugin until it has announced once, and returns its
// identity and the packets it sent in each mode, to the ports it sent them.
func ourPackets(t *testing.T, caps [32]byte, ip string) (id refs.Feed, legacy, signed []byte, ports [2]int) {
	synctest.Test(t, func(t *testing.T) {
		mem := newMemNet()
		p := lan.New()
		srv := openServer(t, mem, ip, caps, `{"local": true}`, p)
		id = srv.ID()
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }()
		synctest.Wait()
		cancel()
		<-done
		for _, pk := range mem.sent {
			if pk.to.Addr() != netip.MustParseAddr(lan.DefaultBroadcast) {
				t.Errorf("sent to %v, not the broadcast address", pk.to)
			}
			if pk.to.Port() == 26830 {
				signed, ports[1] = pk.data, int(pk.to.Port())
			} else {
				legacy, ports[0] = pk.data, int(pk.to.Port())
			}
		}
	})
	return id, legacy, signed, ports
}

// The JavaScript peers' own code is the judge, with no network: ssb-local
// (ssb-server@16) over broadcast-stream, and ssb-lan's read and write over
// ssb-keys, in interop/lan-packet.js. What they send, we take; what we send,
// they take (ssb-local adds our address as a "local" peer, ssb-lan verifies
// our signature); their ports, broadcast address, interval and timeout are
// our defaults.
func TestInteropJS(t *testing.T) {
	oracle.Require(t)
	caps := randomCaps()
	const jsIP, goIP = "192.168.1.5", "192.168.1.2"
	ourID, ourLegacy, ourSigned, ourPorts := ourPackets(t, caps, goIP)
	ourAddr := addrOfFeed(ourID, goIP, 8008)

	js := oracle.Start(t, "lan-packet.js")
	js.WaitFor(oracle.Ev("ready"))
	b64 := base64.StdEncoding.EncodeToString
	seed := bytes.Repeat([]byte{2}, 32) // keyB's
	init := js.Do(oracle.Cmd{"op": "init", "seed": b64(seed), "caps": b64(caps[:]), "host": jsIP, "port": 8008})
	var intervals []int
	if err := init.Decode("intervals", &intervals); err != nil {
		t.Fatal(err)
	}
	if init.Str("id") != keyB.ID.String() || init.Int("bound") != lan.DefaultPort ||
		!slices.Equal(intervals, []int{int(lan.DefaultTimeout / 2 / time.Millisecond), int(lan.DefaultInterval / time.Millisecond)}) {
		t.Errorf("ssb-local: %s; want id %s, UDP port %d, timers [cleanup %v, announce %v]", init.Line, keyB.ID, lan.DefaultPort, lan.DefaultTimeout/2, lan.DefaultInterval)
	}
	if ourPorts != [2]int{8008, lan.DefaultLANPort} {
		t.Errorf("we sent to ports %v, want 8008 (the server's) and %d", ourPorts, lan.DefaultLANPort)
	}

	type packet struct {
		Data []byte
		Port int
		Host string
	}
	var sent []packet
	if err := js.Do(oracle.Cmd{"op": "announceLan"}).Decode("packets", &sent); err != nil {
		t.Fatal(err)
	}
	jsAddr := addrOf(keyB, jsIP, 8008)
	d := lan.NewDiscovery(testConfig(), ourID, caps)
	if len(sent) != 1 || sent[0].Port != lan.DefaultLANPort || sent[0].Host != lan.DefaultBroadcast {
		t.Fatalf("ssb-lan's packet: %+v", sent)
	}
	if addr, ok := d.Receive(t0, lan.LANMode, netip.MustParseAddr(jsIP), sent[0].Data); !ok || addr != jsAddr {
		t.Errorf("ssb-lan's packet: %q, %v; want %s (status %v)", addr, ok, jsAddr, d.Status()["lan"])
	}
	var legacy []packet
	if err := js.Do(oracle.Cmd{"op": "announce"}).Decode("packets", &legacy); err != nil {
		t.Fatal(err)
	}
	if len(legacy) != 1 || legacy[0].Port != 8008 || legacy[0].Host != lan.DefaultBroadcast || string(legacy[0].Data) != jsAddr {
		t.Fatalf("ssb-local's packet: %+v, want %q to %s:8008", legacy, jsAddr, lan.DefaultBroadcast)
	}
	if addr, ok := d.Receive(t0, lan.LegacyMode, netip.MustParseAddr(jsIP), legacy[0].Data); !ok || addr != jsAddr {
		t.Errorf("ssb-local's packet: %q, %v; want %s", addr, ok, jsAddr)
	}

	// Ours, read by ssb-local through broadcast-stream, from another host.
	rec := js.Do(oracle.Cmd{"op": "receive", "data": b64(ourLegacy), "address": goIP, "port": 8008})
	var adds [][2]string
	var local map[string]struct {
		Address struct {
			Host string
			Port int
			Key  string
		}
	}
	if err := rec.Decode("adds", &adds); err != nil {
		t.Fatal(err)
	}
	rec.Decode("local", &local)
	if len(adds) != 1 || adds[0] != [2]string{ourAddr, "local"} {
		t.Errorf("ssb-local's gossip.add of our packet: %v, want [%s local]", adds, ourAddr)
	}
	if a := local[ourID.String()].Address; a.Host != goIP || a.Port != 8008 || a.Key != ourID.String() {
		t.Errorf("ssb-local's status.local: %s", rec.Line)
	}
	// ssb-lan reads ours and verifies our signature.
	disc := js.Do(oracle.Cmd{"op": "receiveLan", "data": b64(ourSigned)})
	if disc.Str("address") != ourAddr || string(disc.Fields["verified"]) != "true" {
		t.Errorf("ssb-lan's discovery of our packet: %s, want %s verified", disc.Line, ourAddr)
	}
	// Our legacy packet on ssb-lan's port, and another network's, are nothing to it.
	var other [32]byte
	otherPkt, _ := lan.SealPacket(ourAddr, &other, keyA)
	for _, pkt := range [][]byte{ourLegacy, otherPkt} {
		if disc := js.Do(oracle.Cmd{"op": "receiveLan", "data": b64(pkt)}); string(disc.Fields["found"]) != "false" {
			t.Errorf("ssb-lan found %s in %q", disc.Line, pkt)
		}
	}

	// ssb-local forgets after more than 10 s of silence, as we do.
	if rm := js.Do(oracle.Cmd{"op": "advance", "ms": 10000}); rm.Fields["removes"] == nil || string(rm.Fields["removes"]) != "[]" {
		t.Errorf("ssb-local after 10 s: %s, want nothing removed", rm.Line)
	}
	if rm := js.Do(oracle.Cmd{"op": "advance", "ms": 1}); !bytes.Contains([]byte(rm.Line), []byte(ourID.String())) {
		t.Errorf("ssb-local after 10.001 s: %s, want ours removed", rm.Line)
	}
	d.Receive(t0, lan.LegacyMode, netip.MustParseAddr(jsIP), legacy[0].Data)
	if gone := d.Expire(t0.Add(lan.DefaultTimeout)); len(gone) != 0 {
		t.Errorf("we forgot after exactly the timeout: %v", gone)
	}
	if gone := d.Expire(t0.Add(lan.DefaultTimeout + time.Millisecond)); len(gone) != 1 {
		t.Errorf("we did not forget 1 ms after the timeout")
	}
}

// Every address we read, ssb-ref's parseAddress (what ssb-local calls)
// reads as the same host, port and key; we are stricter (no host names in
// practice, decimal ports only), never looser.
func TestInteropParseAddress(t *testing.T) {
	oracle.Require(t)
	js := oracle.Start(t, "lan-packet.js")
	js.WaitFor(oracle.Ev("ready"))
	a := b64key(keyA)
	for _, s := range []string{
		"net:192.168.1.5:8008~shs:" + a,
		"net:10.0.0.2:8008~shs:" + a + ";ws://10.0.0.2:8989~shs:" + a + ";net:192.168.1.5:9000~shs:" + a,
		"net:10.0.0.2:65535~shs:" + a + ":" + a,
		"net:fe80::1:8008~shs:" + a,
		"net:my-host.local:1~shs:" + a,
		"192.168.1.5:8008:@" + a + ".ed25519",
		"net:192.168.1.5:08008~shs:" + a,
		"net:192.168.1.5:8e3~shs:" + a,
		"net:192.168.1.5:8008~shs:" + a[:42] + "x=",
		"net:192.168.1.5:8008~shs:" + a + "~noauth",
		"hello",
	} {
		anns, err := lan.ParsePacket([]byte(s))
		var got struct {
			Host string
			Port int
			Key  string
		}
		m := js.Do(oracle.Cmd{"op": "parseAddress", "data": s})
		if err != nil {
			t.Logf("%q: ours refuses (%v), ssb-ref: %s", s, err, m.Fields["addr"])
			continue
		}
		if err := m.Decode("addr", &got); err != nil {
			t.Fatal(err)
		}
		if got.Host != anns[0].Host || got.Port != anns[0].Port || got.Key != anns[0].Key.String() {
			t.Errorf("%q: ours %+v, ssb-ref's %s", s, anns[0], m.Fields["addr"])
		}
	}
}
