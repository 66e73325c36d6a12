package server

import (
	"encoding/base64"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
)

// testAddress is a net address of a new key on 127.0.0.1:port.
func testAddress(t *testing.T, port int) string {
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return "net:127.0.0.1:" + strconv.Itoa(port) + "~shs:" + base64.StdEncoding.EncodeToString(kp.ID.PublicKey())
}

func testPeers(t *testing.T) *peers {
	p, err := loadPeers(filepath.Join(t.TempDir(), "gossip.json"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *peers) has(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.known[addr]
	return ok
}

// A pub that never answers is dialed less and less often, then dropped,
// and pub messages do not bring it back for a while; the owner can.
func TestUnreachablePubDropped(t *testing.T) {
	p := testPeers(t)
	addr := testAddress(t, 9)
	k, err := p.add(addr, SourcePub)
	if err != nil || k == nil {
		t.Fatal(k, err)
	}
	w := &PeerWatch{p: p, c: make(chan PeerEvent, peerWatchBuffer)}
	p.watchers[w] = true
	var last time.Duration
	for i := 1; i <= maxDialFailures; i++ {
		if !p.has(addr) {
			t.Fatalf("dropped after %d failures, want %d", i-1, maxDialFailures)
		}
		p.failed(k, errors.New("connection refused"))
		wait := time.Until(k.nextTry)
		if lo := min(minBackoff<<(i-1), maxBackoff); wait < lo-time.Second/10 || wait > lo*3/2+time.Second/10 {
			t.Errorf("failure %d: next dial in %v, want %v..%v", i, wait, lo, lo*3/2)
		}
		if i > 1 && wait < last/2 {
			t.Errorf("failure %d: back-off shrank from %v to %v", i, last, wait)
		}
		last = wait
	}
	if p.has(addr) {
		t.Fatalf("still known after %d failures", maxDialFailures)
	}
	var removed bool
	for len(w.c) > 0 {
		removed = removed || (<-w.c).Type == PeerRemove
	}
	if !removed {
		t.Error("no remove event")
	}
	if k, err := p.add(addr, SourcePub); k != nil || err != nil || p.has(addr) {
		t.Errorf("a dropped pub came back from a pub message: %v, %v", k, err)
	}
	if _, err := p.add(addr, SourceManual); err != nil || !p.has(addr) {
		t.Errorf("the owner could not add a dropped pub: %v", err)
	}
}

// Peers the owner added, or that connected once, are never dropped, and
// their back-off stops growing at maxBackoff.
func TestKeptPeersBackOff(t *testing.T) {
	p := testPeers(t)
	manual, _ := p.add(testAddress(t, 10), "")
	invite, _ := p.add(testAddress(t, 11), SourceInvite)
	seen, _ := p.add(testAddress(t, 12), SourcePub)
	p.up(seen.feed)
	p.down(seen.feed)
	for range 3 * maxDialFailures {
		for _, k := range []*knownPeer{manual, invite, seen} {
			p.failed(k, errors.New("unreachable"))
		}
	}
	for _, k := range []*knownPeer{manual, invite, seen} {
		if !p.has(k.Address) {
			t.Errorf("%s (%s) was dropped", k.Address, k.Source)
		}
		if wait := time.Until(k.nextTry); wait < maxBackoff-time.Second || wait > maxBackoff*3/2+time.Second {
			t.Errorf("%s: next dial in %v, want about %v", k.Source, wait, maxBackoff)
		}
	}
	if manual.Source != SourceManual {
		t.Errorf("source %q, want %q", manual.Source, SourceManual)
	}
}

// A peer that accepts and soon closes is dialed again later each time,
// and at once again after a connection that lasted.
func TestFlappingPeerBacksOff(t *testing.T) {
	p := testPeers(t)
	k, _ := p.add(testAddress(t, 13), SourceManual)
	var last time.Duration
	for i := 1; i <= 8; i++ {
		p.upAs(k.feed, true)
		p.down(k.feed)
		wait := time.Until(k.nextTry)
		if lo := minBackoff << (i - 1); wait < lo-time.Second/10 {
			t.Errorf("flap %d: next dial in %v, want at least %v", i, wait, lo)
		}
		last = wait
	}
	p.upAs(k.feed, true)
	p.mu.Lock()
	k.connectedAt = time.Now().Add(-2 * stableAfter)
	p.mu.Unlock()
	p.down(k.feed)
	if wait := time.Until(k.nextTry); wait > minBackoff*3/2+time.Second/10 || wait >= last {
		t.Errorf("after a stable connection: next dial in %v", wait)
	}
}

// At most maxPubPeers come from pub messages.
func TestPubPeersBounded(t *testing.T) {
	p := testPeers(t)
	for i := range maxPubPeers {
		k, _ := p.add(testAddress(t, 1000+i), SourcePub)
		if k == nil {
			t.Fatalf("pub %d refused", i)
		}
	}
	if k, err := p.add(testAddress(t, 9000), SourcePub); k != nil || !errors.Is(err, errPubPeers) {
		t.Errorf("pub beyond the bound: %v, %v", k, err)
	}
	if _, err := p.add(testAddress(t, 9001), SourceManual); err != nil {
		t.Errorf("manual add beyond the pub bound: %v", err)
	}
}

// ParseAddress refuses what cannot be dialed.
func TestParseAddressStrict(t *testing.T) {
	key := base64.StdEncoding.EncodeToString(make([]byte, 32))
	for _, c := range []struct{ addr, hostPort string }{
		{"net:127.0.0.1:8008~shs:" + key, "127.0.0.1:8008"},
		{"net:::1:8008~shs:" + key, "[::1]:8008"},
		{"net:pub.example.com:1~shs:" + key, "pub.example.com:1"},
		{"ws://x:1~shs:" + key + ";net:localhost:65535~shs:" + key, "localhost:65535"},
	} {
		hp, _, err := ParseAddress(c.addr)
		if err != nil || hp != c.hostPort {
			t.Errorf("%s: %q, %v; want %q", c.addr, hp, err, c.hostPort)
		}
	}
	for _, bad := range []string{
		"net:127.0.0.1~shs:" + key, "net:127.0.0.1:0~shs:" + key, "net:127.0.0.1:65536~shs:" + key,
		"net::8008~shs:" + key, "net:a b:8008~shs:" + key, "net:-x:8008~shs:" + key, "net:x.:8008~shs:" + key,
		"net:127.0.0.1:+1~shs:" + key, "net:127.0.0.1:8008~shs:abc",
	} {
		if hp, _, err := ParseAddress(bad); err == nil {
			t.Errorf("%s parsed as %q", bad, hp)
		}
	}
}
