package gossip_test

// The four tests of secure-gossip@0.3.1 (test/test.js), ported. They run in
// virtual time (testing/synctest) with the default 100 ms interval.

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/scuttlego/scuttle/gossip"
)

// wantOnce checks that p delivered exactly one message, from `from`, with
// payload want.
func wantOnce(t *testing.T, name string, p *peer, from *peer, want string) {
	t.Helper()
	ms := p.messages()
	if len(ms) != 1 {
		t.Fatalf("%s got %d messages, want 1: %v", name, len(ms), ms)
	}
	if ms[0].Public != from.Public() {
		t.Errorf("%s: message from %s, want %s", name, ms[0].Public, from.Public())
	}
	if !jsonEqual(t, ms[0].Data, []byte(want)) {
		t.Errorf("%s: payload %s, want %s", name, ms[0].Data, want)
	}
}

func wantNone(t *testing.T, name string, p *peer) {
	t.Helper()
	if ms := p.messages(); len(ms) != 0 {
		t.Errorf("%s saw %d messages, want none (its own must not come back): %v", name, len(ms), ms)
	}
}

// "3 peers in a line": peer3 publishes; peer1 and peer2 get it once.
func TestUpstreamLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p1 := newPeer(t, "", gossip.Options{})
		p2 := newPeer(t, "", gossip.Options{})
		p3 := newPeer(t, "", gossip.Options{})
		connect(p1, p2)
		connect(p3, p2)
		const msg = `{"data":"hello warld"}`
		if _, err := p3.Publish([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		settle(2 * time.Second)
		wantOnce(t, "peer1", p1, p3, msg)
		wantOnce(t, "peer2", p2, p3, msg)
		wantNone(t, "peer3", p3)
	})
}

// "4 peers in a loop": peer1 publishes; 2, 3 and 4 get it once, intact.
func TestUpstreamLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ps [4]*peer
		for i := range ps {
			ps[i] = newPeer(t, "", gossip.Options{})
		}
		connect(ps[0], ps[1])
		connect(ps[0], ps[3])
		connect(ps[1], ps[2])
		connect(ps[2], ps[3])
		const msg = `{"foo":"hello warld"}`
		if _, err := ps[0].Publish([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		settle(2 * time.Second)
		wantNone(t, "peer1", ps[0])
		for i, p := range ps[1:] {
			wantOnce(t, "peer"+string(rune('2'+i)), p, ps[0], msg)
		}
	})
}

// "2 peers with stream breaks": the stream is re-chunked into 5-byte
// writes; the message arrives once and intact.
func TestUpstreamStreamBreaks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p1 := newPeer(t, "", gossip.Options{})
		p2 := newPeer(t, "", gossip.Options{})
		pipe(p1.PeerStream(), p2.PeerStream(), 5)
		const msg = `{"data":"gosh I really hope this packet arrives in one piece!"}`
		if _, err := p1.Publish([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		settle(2 * time.Second)
		wantOnce(t, "peer2", p2, p1, msg)
		wantNone(t, "peer1", p1)
	})
}

// "broken connection": peer2 ends its stream after the first message;
// everything goes on without errors, and a new stream works.
func TestUpstreamBrokenConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p1 := newPeer(t, "", gossip.Options{})
		p2 := newPeer(t, "", gossip.Options{})
		_, s2 := connect(p1, p2)
		if _, err := p1.Publish([]byte(`{"data":"bust"}`)); err != nil {
			t.Fatal(err)
		}
		for len(p2.messages()) == 0 {
			time.Sleep(10 * time.Millisecond)
		}
		if err := s2.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := p1.Publish([]byte(`{"data":"after"}`)); err != nil {
			t.Fatal(err)
		}
		settle(time.Second)
		synctest.Wait()
		if s := p1.Stats(); s.Links != 0 {
			t.Errorf("peer1 still has %d links after the peer closed", s.Links)
		}
		if n := len(p2.messages()); n != 1 {
			t.Errorf("peer2 got %d messages before reconnecting, want 1", n)
		}
		if err := s2.Err(); err != nil {
			t.Errorf("stream error: %v", err)
		}
		// Reconnected, peer2 catches up on what it missed.
		connect(p1, p2)
		settle(time.Second)
		if n := len(p2.messages()); n != 2 {
			t.Errorf("peer2 has %d messages after reconnecting, want 2", n)
		}
		wantNone(t, "peer1", p1)
	})
}
