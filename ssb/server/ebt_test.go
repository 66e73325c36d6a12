package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
)

// authors returns n new feeds of msgs messages each.
func authors(t *testing.T, n, msgs int) ([]*keys.KeyPair, [][][]byte) {
	t.Helper()
	var kps []*keys.KeyPair
	var feeds [][][]byte
	for range n {
		kp, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		raws, err := ssbtest.Feed(kp, msgs, 1.7e12)
		if err != nil {
			t.Fatal(err)
		}
		kps, feeds = append(kps, kp), append(feeds, raws)
	}
	return kps, feeds
}

func follow(t *testing.T, e rpc, whom refs.Feed) {
	t.Helper()
	publish(t, e, map[string]any{"type": "contact", "contact": whom.String(), "following": true})
}

func connect(t *testing.T, from *node, to *node) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var res any
		err := from.local.AsyncJSON(context.Background(), &res, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(to.addr(), to.id()))
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gossip.connect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (n *node) stats() replicate.Stats { return replOf(n.srv).Stats() }

// waitStats waits until the node's replication counters satisfy ok.
func (n *node) waitStats(what string, ok func(replicate.Stats) bool) replicate.Stats {
	n.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := n.stats()
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("waiting for %s: %+v", what, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// After a restart with nothing new, EBT's first notes carry nothing: each
// side remembers the other's clock on disk and leaves out the feeds where
// both are at the same sequence. A feed that advances later still flows.
func TestEBTRequestSkipping(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := newNode(t, caps), newNode(t, caps)
	const feeds, msgs = 40, 3
	kps, raws := authors(t, feeds, msgs)
	for i, kp := range kps {
		if _, err := b.srv.Store().Append(context.Background(), raws[i]...); err != nil {
			t.Fatal(err)
		}
		follow(t, b.local, kp.ID)
	}
	follow(t, a.local, b.id())
	follow(t, b.local, a.id())
	publish(t, a.local, map[string]any{"type": "post", "text": "a"})

	connect(t, a, b)
	for _, kp := range kps {
		waitSeq(t, a.local, kp.ID, msgs, 20*time.Second)
	}
	waitSeq(t, b.local, a.id(), 2, 10*time.Second)
	first := a.stats()
	t.Logf("first session, a: %d notes with %d feeds, %d bytes; received %d messages", first.Notes, first.NoteFeeds, first.NoteBytes, first.Received)
	if first.NoteFeeds < feeds {
		t.Fatalf("a noted %d feeds in the first session, want at least %d", first.NoteFeeds, feeds)
	}

	// Restart b on its data directory; a dials it again.
	b.halt()
	b.start()
	a.waitStats("the session with b to end", func(st replicate.Stats) bool { return st.ActiveEBT == 0 })
	connect(t, a, b)
	again := a.waitStats("a second EBT session", func(st replicate.Stats) bool { return st.EBTSessions > first.EBTSessions })
	time.Sleep(300 * time.Millisecond) // let any answering notes arrive
	again = a.stats()
	bs := b.stats()
	t.Logf("second session, a: %d notes with %d feeds, %d bytes, %d feeds skipped; b: %d feeds noted, %d skipped",
		again.Notes-first.Notes, again.NoteFeeds-first.NoteFeeds, again.NoteBytes-first.NoteBytes, again.SkippedFeeds-first.SkippedFeeds, bs.NoteFeeds, bs.SkippedFeeds)
	if got := again.SkippedFeeds - first.SkippedFeeds; got < feeds {
		t.Errorf("a skipped %d feeds in the second session's first note, want at least %d", got, feeds)
	}
	if got := again.NoteFeeds - first.NoteFeeds; got > 2 {
		t.Errorf("a noted %d feeds in the second session, want at most 2 (nothing changed)", got)
	}
	if bs.SkippedFeeds < feeds {
		t.Errorf("restarted b skipped %d feeds, want at least %d (its clock of a is on disk)", bs.SkippedFeeds, feeds)
	}

	// A skipped feed that advances on b reaches a, and a's own feed
	// reaches b, within a second.
	next, err := ssbtest.Feed(kps[7], msgs+1, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.srv.Store().Append(context.Background(), next[msgs]); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, a.local, kps[7].ID, msgs+1, time.Second)
	publish(t, a.local, map[string]any{"type": "post", "text": "a again"})
	waitSeq(t, b.local, a.id(), 3, time.Second)
}

// With two peers that have a feed, EBT asks only one of them for it: the
// messages arrive about once, not once per peer.
func TestEBTOnePeerPerFeed(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b, c := newNode(t, caps), newNode(t, caps), newNode(t, caps)
	const msgs = 400
	kps, raws := authors(t, 1, msgs)
	x := kps[0].ID
	for _, n := range []*node{b, c} {
		if _, err := n.srv.Store().Append(context.Background(), raws[0]...); err != nil {
			t.Fatal(err)
		}
		follow(t, n.local, x)
	}
	follow(t, a.local, b.id())
	follow(t, a.local, c.id())
	connect(t, a, b)
	connect(t, a, c)
	waitSeq(t, a.local, x, msgs, 20*time.Second)
	waitSeq(t, a.local, b.id(), 1, 10*time.Second)
	waitSeq(t, a.local, c.id(), 1, 10*time.Second)
	st := a.stats()
	t.Logf("a received %d messages, %d of them duplicates, for %d new", st.Received, st.Duplicates, msgs+2)
	if st.Received-st.Duplicates != msgs+2 {
		t.Errorf("a stored %d received messages, want %d", st.Received-st.Duplicates, msgs+2)
	}
	if st.Duplicates > msgs/4 {
		t.Errorf("a received %d duplicates of %d messages: the feed was asked from both peers", st.Duplicates, msgs)
	}
}

// A peer that promises a feed and sends nothing loses it to a peer that
// has it after EBTStall.
func TestEBTStalledPeerIsReplaced(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := newNode(t, caps), newNode(t, caps)
	a.halt()
	a.cfg.EBT.Stall = 300 * time.Millisecond
	a.start()
	const msgs = 50
	kps, raws := authors(t, 1, msgs)
	x := kps[0].ID
	if _, err := b.srv.Store().Append(context.Background(), raws[0]...); err != nil {
		t.Fatal(err)
	}
	follow(t, a.local, x)
	follow(t, a.local, b.id())
	follow(t, b.local, x)

	// The staller: a peer that dials a, opens EBT, says it has all of x
	// and wants it from us, and never sends a message.
	staller, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sc, err := client.Dial(ctx, a.addr(), caps, staller, a.id().PublicKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	s, err := sc.Open(muxrpc.Method{"ebt", "replicate"}, muxrpc.Duplex, map[string]any{"version": 3})
	if err != nil {
		t.Fatal(err)
	}
	var first map[string]int64
	if err := s.RecvJSON(ctx, &first); err != nil {
		t.Fatal(err)
	}
	if v, ok := first[x.String()]; !ok || v != 0 {
		t.Fatalf("a's first note to the staller: %v, want %s: 0 (asks for x from it)", first, x)
	}
	if err := s.Send(map[string]int64{x.String(): msgs << 1}); err != nil {
		t.Fatal(err)
	}
	connect(t, a, b)
	start := time.Now()
	waitSeq(t, a.local, x, msgs, 10*time.Second)
	t.Logf("x came from b %v after b connected", time.Since(start).Round(time.Millisecond))
	// The staller was told to stop: a note with the receive bit cleared.
	for {
		pkt, err := s.Recv(ctx)
		if err != nil {
			t.Fatalf("the staller was not told to stop sending x: %v", err)
		}
		var n map[string]int64
		if json.Unmarshal(pkt.Body, &n) == nil {
			if v, ok := n[x.String()]; ok && v&1 == 1 {
				break
			}
		}
	}
}

// With JavaScript ssb-server: after the Go side restarts, both sides skip
// the feeds where nothing changed (ssb-ebt keeps its peers' clocks too), and
// feeds that advance afterwards still flow both ways.
func TestEBTRestartWithJSServer(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a := newNode(t, caps)
	j := startJS(t, caps)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const feeds, msgs = 10, 3
	kps, raws := authors(t, feeds, msgs)
	for i, kp := range kps {
		if err := ssbtest.Load(ctx, j.Client, kp.ID, raws[i]); err != nil {
			t.Fatal(err)
		}
		follow(t, j.Client, kp.ID)
	}
	follow(t, j.Client, a.id())
	follow(t, a.local, j.Keys.ID)
	publish(t, a.local, map[string]any{"type": "post", "text": "from Go"})

	var res any
	if err := a.local.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, j.Address()); err != nil {
		t.Fatalf("gossip.connect: %v", err)
	}
	for _, kp := range kps {
		waitSeq(t, a.local, kp.ID, msgs, 30*time.Second)
	}
	waitSeq(t, j.Client, a.id(), 2, 20*time.Second)
	first := a.stats()

	// ssb-ebt learns our sequences from our notes, not from the messages
	// it sends us, so its stored clock of us lags after the first session:
	// it notes the feeds again once, and we answer. From then on both
	// sides skip.
	restart := func() replicate.Stats {
		t.Helper()
		a.halt()
		a.start()
		if err := a.local.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, j.Address()); err != nil {
			t.Fatalf("gossip.connect again: %v", err)
		}
		a.waitStats("an EBT session", func(st replicate.Stats) bool { return st.EBTSessions > 0 })
		time.Sleep(500 * time.Millisecond)
		return a.stats()
	}
	second := restart()
	third := restart()
	t.Logf("first session: %d feeds noted in %d bytes; after a restart: %d in %d bytes (%d skipped); after another: %d in %d bytes (%d skipped)",
		first.NoteFeeds, first.NoteBytes, second.NoteFeeds, second.NoteBytes, second.SkippedFeeds, third.NoteFeeds, third.NoteBytes, third.SkippedFeeds)
	for _, st := range []replicate.Stats{second, third} {
		if st.SkippedFeeds < feeds {
			t.Errorf("after a restart the Go side skipped %d feeds in its first note, want at least %d", st.SkippedFeeds, feeds)
		}
	}
	if third.NoteFeeds > 2 {
		t.Errorf("after the second restart the Go side noted %d feeds, want at most 2", third.NoteFeeds)
	}

	// Skipped feeds advance on the JavaScript side, then on ours.
	next, err := ssbtest.Feed(kps[3], msgs+1, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	if err := ssbtest.Load(ctx, j.Client, kps[3].ID, next[msgs:]); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, a.local, kps[3].ID, msgs+1, 2*time.Second)
	publish(t, j.Client, map[string]any{"type": "post", "text": "from JavaScript"})
	waitSeq(t, a.local, j.Keys.ID, feeds+2, 2*time.Second)
	publish(t, a.local, map[string]any{"type": "post", "text": "from Go again"})
	waitSeq(t, j.Client, a.id(), 3, 2*time.Second)
}
