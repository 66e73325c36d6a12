package server_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// rpc is anything that can make async calls: a local endpoint or a client.
type rpc interface {
	AsyncJSON(ctx context.Context, out any, method muxrpc.Method, args ...any) error
}

func publish(t *testing.T, e rpc, content map[string]any) {
	t.Helper()
	var m struct{ Key string }
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"publish"}, content); err != nil {
		t.Fatalf("publish %v: %v", content, err)
	}
}

// waitSeq waits until e holds feed up to seq.
func waitSeq(t *testing.T, e rpc, feed refs.Feed, seq int64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var got int64
	for time.Now().Before(deadline) {
		got = 0
		e.AsyncJSON(context.Background(), &got, muxrpc.Method{"latestSequence"}, feed.String())
		if got >= seq {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("after %v the peer holds %s up to %d, want %d", within, feed, got, seq)
}

func address(addr net.Addr, id refs.Feed) string { return ssbtest.Address(addr.String(), id) }

// Two servers that follow each other replicate both feeds, then live.
func TestReplicationGoToGo(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := startServerWith(t, caps), startServerWith(t, caps)
	ea, eb := a.local(t), b.local(t)
	for i := range 3 {
		publish(t, ea, map[string]any{"type": "post", "text": "a" + strconv.Itoa(i)})
	}
	publish(t, eb, map[string]any{"type": "post", "text": "b0"})
	publish(t, ea, map[string]any{"type": "contact", "contact": b.ID().String(), "following": true})
	publish(t, eb, map[string]any{"type": "contact", "contact": a.ID().String(), "following": true})

	var res map[string]string
	if err := ea.AsyncJSON(context.Background(), &res, muxrpc.Method{"gossip", "connect"}, address(b.addr, b.ID())); err != nil {
		t.Fatalf("gossip.connect: %v", err)
	}
	waitSeq(t, ea, b.ID(), 2, 10*time.Second)
	waitSeq(t, eb, a.ID(), 4, 10*time.Second)

	var prog struct { // status's replication progress and peers
		Progress struct{ Feeds, Current, Target int64 }
		Peers    []struct {
			Peer, Mode      string
			Received, Ahead int64
		}
	}
	if err := ea.AsyncJSON(context.Background(), &prog, muxrpc.Method{"status"}); err != nil ||
		prog.Progress.Feeds != 2 || prog.Progress.Current != 6 || prog.Progress.Target != 6 {
		t.Errorf("progress on a after the sync: %+v, %v (want 2 feeds, 6 of 6 messages)", prog.Progress, err)
	}
	if len(prog.Peers) != 1 || prog.Peers[0].Peer != b.ID().String() || prog.Peers[0].Mode != "ebt" ||
		prog.Peers[0].Received != 2 || prog.Peers[0].Ahead != 0 {
		t.Errorf("progress per peer on a: %+v (want b, ebt, 2 received, 0 ahead)", prog.Peers)
	}

	start := time.Now()
	publish(t, eb, map[string]any{"type": "post", "text": "live from b"})
	waitSeq(t, ea, b.ID(), 3, time.Second)
	publish(t, ea, map[string]any{"type": "post", "text": "live from a"})
	waitSeq(t, eb, a.ID(), 5, time.Second)
	t.Logf("live messages arrived in %v", time.Since(start))
}

// Two servers with legacy replication only (NoEBT) replicate both ways at
// once: the side that was dialed asks for feeds as soon as the dialer
// calls it (its createHistoryStream), not after replicate.DefaultEBTWait.
func TestReplicationLegacyGoToGo(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := startServerEBT(t, caps, false), startServerEBT(t, caps, false)
	ea, eb := a.local(t), b.local(t)
	publish(t, ea, map[string]any{"type": "post", "text": "a"})
	publish(t, eb, map[string]any{"type": "post", "text": "b"})
	follow(t, ea, b.ID())
	follow(t, eb, a.ID())
	var res map[string]string
	if err := ea.AsyncJSON(context.Background(), &res, muxrpc.Method{"gossip", "connect"}, address(b.addr, b.ID())); err != nil {
		t.Fatalf("gossip.connect: %v", err)
	}
	waitSeq(t, ea, b.ID(), 2, replicate.DefaultEBTWait/2)
	waitSeq(t, eb, a.ID(), 2, replicate.DefaultEBTWait/2)
	if st := b.repl().Stats(); st.LegacyPeers != 1 || st.EBTSessions != 0 {
		t.Errorf("replication on the dialed side: %+v, want legacy", st)
	}
}

// A Go server and JavaScript ssb-server@16 that follow each other
// replicate both feeds, whichever side dials, then live.
func TestReplicationWithJSServer(t *testing.T) {
	for _, ebt := range []bool{true, false} {
		for _, goDials := range []bool{true, false} {
			name := map[bool]string{true: "ebt", false: "legacy"}[ebt] + ", " + map[bool]string{true: "go dials", false: "js dials"}[goDials]
			t.Run(name, func(t *testing.T) { replicateWithJS(t, ebt, goDials) })
		}
	}
}

// startJS runs JavaScript ssb-server@16 for the test, with an owner
// connection to it.
func startJS(t *testing.T, caps [32]byte) *ssbtest.JSServer {
	t.Helper()
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	j, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return j
}

func replicateWithJS(t *testing.T, ebt, goDials bool) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startServerEBT(t, caps, ebt)
	eg := g.local(t)
	j := startJS(t, caps)
	jsKeys, jc := j.Keys, j.Client
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	publish(t, eg, map[string]any{"type": "post", "text": "hello from Go ✓"})
	publish(t, eg, map[string]any{"type": "contact", "contact": jsKeys.ID.String(), "following": true})
	publish(t, jc, map[string]any{"type": "post", "text": "hello from JavaScript 😀"})
	publish(t, jc, map[string]any{"type": "contact", "contact": g.ID().String(), "following": true})

	var res any
	if goDials {
		if err := eg.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, j.Address()); err != nil {
			t.Fatalf("gossip.connect to ssb-server: %v", err)
		}
	} else if err := jc.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, address(g.addr, g.ID())); err != nil {
		t.Fatalf("ssb-server gossip.connect to us: %v", err)
	}
	waitSeq(t, eg, jsKeys.ID, 2, 20*time.Second)
	waitSeq(t, jc, g.ID(), 2, 20*time.Second)

	// The feeds are identical: same ids on both sides.
	for _, feed := range []refs.Feed{g.ID(), jsKeys.ID} {
		var fromGo, fromJS struct{ Key string }
		eg.AsyncJSON(ctx, &fromGo, muxrpc.Method{"getLatest"}, feed.String())
		jc.AsyncJSON(ctx, &fromJS, muxrpc.Method{"getLatest"}, feed.String())
		if fromGo.Key == "" || fromGo.Key != fromJS.Key {
			t.Errorf("latest of %s: Go %q, JavaScript %q", feed, fromGo.Key, fromJS.Key)
		}
	}

	publish(t, jc, map[string]any{"type": "post", "text": "live from JavaScript"})
	waitSeq(t, eg, jsKeys.ID, 3, time.Second)
	publish(t, eg, map[string]any{"type": "post", "text": "live from Go"})
	waitSeq(t, jc, g.ID(), 3, time.Second)

	// The replication really ran as asked.
	st := g.repl().Stats()
	if ebt && (st.EBTSessions == 0 || st.LegacyPeers != 0) || !ebt && (st.EBTSessions != 0 || st.LegacyPeers == 0) {
		t.Errorf("with EBT %v: %+v", ebt, st)
	}
}

// A peer that serves one feed with a forged message and another feed
// correctly: the good messages before the forgery are kept, the forgery is
// not, and the other feed replicates in full.
func TestReplicationRejectsInvalidMessages(t *testing.T) {
	s := startServer(t)
	es := s.local(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// Two feeds the server will want: it follows both.
	bad, _ := keys.Generate(nil)
	good, _ := keys.Generate(nil)
	publish(t, es, map[string]any{"type": "contact", "contact": bad.ID.String(), "following": true})
	publish(t, es, map[string]any{"type": "contact", "contact": good.ID.String(), "following": true})
	badFeed, err := ssbtest.Feed(bad, 4, 1700000000000)
	if err != nil {
		t.Fatal(err)
	}
	goodFeed, err := ssbtest.Feed(good, 5, 1700000000000)
	if err != nil {
		t.Fatal(err)
	}
	// Message 3 of the bad feed is altered after signing.
	badFeed[2] = []byte(strings.Replace(string(badFeed[2]), `"i":2`, `"i":99`, 1))

	// The hostile peer: serves createHistoryStream from those feeds.
	var network [32]byte
	refs.DecodeBase64(network[:], s.caps)
	peerKeys, _ := keys.Generate(nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		conn, _, err := shs.ServerConn(ctx, raw, network, peerKeys.Private, nil)
		if err != nil {
			return
		}
		e := muxrpc.NewEndpoint(conn, muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
			var args []struct {
				ID  string
				Seq int
			}
			json.Unmarshal(req.Args, &args)
			if req.Method.String() != "createHistoryStream" || len(args) != 1 {
				req.Fail(errors.New("no"))
				return
			}
			feed := map[string][][]byte{bad.ID.String(): badFeed, good.ID.String(): goodFeed}[args[0].ID]
			for i := max(args[0].Seq, 1) - 1; i < len(feed); i++ {
				req.Stream().SendRaw(muxrpc.JSON, feed[i])
			}
			<-ctx.Done() // live: stay open
		}))
		e.Serve(ctx)
	}()
	var res any
	if err := es.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, address(ln.Addr(), peerKeys.ID)); err != nil {
		t.Fatal(err)
	}
	waitSeq(t, es, good.ID, 5, 10*time.Second)
	waitSeq(t, es, bad.ID, 2, 10*time.Second)
	time.Sleep(100 * time.Millisecond) // the forgery has been seen by now
	var seq int64
	if err := es.AsyncJSON(ctx, &seq, muxrpc.Method{"latestSequence"}, bad.ID.String()); err != nil || seq != 2 {
		t.Errorf("the bad feed is stored up to %d (%v), want 2: nothing from the forgery on", seq, err)
	}
	if err := s.Store().Check(ctx); err != nil {
		t.Errorf("store check: %v", err)
	}
	cancel()
	<-served
}

// A feed published on one JavaScript server reaches a second one through
// ours: JS1 -> Go -> JS2, with the same ids.
func TestReplicationChainJSGoJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startServerWith(t, caps)
	eg := g.local(t)
	js1, js2 := startJS(t, caps), startJS(t, caps)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for i := range 3 {
		publish(t, js1.Client, map[string]any{"type": "post", "text": "from the first JavaScript server " + strconv.Itoa(i)})
	}
	// Go follows JS1; JS2 follows Go, so JS1 is two hops from JS2.
	publish(t, eg, map[string]any{"type": "contact", "contact": js1.Keys.ID.String(), "following": true})
	publish(t, js2.Client, map[string]any{"type": "contact", "contact": g.ID().String(), "following": true})
	var res any
	for _, j := range []*ssbtest.JSServer{js1, js2} {
		if err := eg.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, j.Address()); err != nil {
			t.Fatalf("gossip.connect: %v", err)
		}
	}
	waitSeq(t, eg, js1.Keys.ID, 3, 20*time.Second)
	waitSeq(t, js2.Client, js1.Keys.ID, 3, 30*time.Second)
	var fromJS1, fromJS2 struct{ Key string }
	js1.Client.AsyncJSON(ctx, &fromJS1, muxrpc.Method{"getLatest"}, js1.Keys.ID.String())
	js2.Client.AsyncJSON(ctx, &fromJS2, muxrpc.Method{"getLatest"}, js1.Keys.ID.String())
	if fromJS1.Key == "" || fromJS1.Key != fromJS2.Key {
		t.Errorf("latest of JS1's feed: %q on JS1, %q on JS2", fromJS1.Key, fromJS2.Key)
	}
}

// outOfOrderPeer is a hostile peer our server dials: it serves
// createHistoryStream and, if ebt, ebt.replicate from the feeds it holds.
// The first time it is asked for bad, it sends that feed out of order (the
// first two messages swapped: 1, 3, 2, 4, …); asked again, it sends it in
// order. It records the connections it accepts and the sequences bad is
// asked from.
type outOfOrderPeer struct {
	keys  *keys.KeyPair
	ln    net.Listener
	ebt   bool
	bad   refs.Feed
	feeds map[refs.Feed][][]byte

	mu    sync.Mutex
	conns int
	asks  []int64
}

// from returns the messages of f from seq on, out of order if f is the bad
// feed asked for the first time.
func (p *outOfOrderPeer) from(f refs.Feed, seq int64) [][]byte {
	feed := p.feeds[f]
	out := slices.Clone(feed[min(max(seq, 1)-1, int64(len(feed))):])
	if f != p.bad {
		return out
	}
	p.mu.Lock()
	p.asks = append(p.asks, seq)
	first := len(p.asks) == 1
	p.mu.Unlock()
	if first && len(out) >= 3 {
		out[1], out[2] = out[2], out[1]
	}
	return out
}

func (p *outOfOrderPeer) serve(ctx context.Context, network [32]byte) {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		raw, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.conns++
		p.mu.Unlock()
		wg.Go(func() {
			conn, _, err := shs.ServerConn(ctx, raw, network, p.keys.Private, nil)
			if err != nil {
				raw.Close()
				return
			}
			muxrpc.NewEndpoint(conn, muxrpc.HandlerFunc(p.handle)).Serve(ctx)
		})
	}
}

func (p *outOfOrderPeer) handle(ctx context.Context, req *muxrpc.Request) {
	switch req.Method.String() {
	case "createHistoryStream":
		var args []struct {
			ID  string
			Seq int64
		}
		json.Unmarshal(req.Args, &args)
		f, err := refs.ParseFeed(args[0].ID)
		if len(args) != 1 || err != nil || p.feeds[f] == nil {
			req.Fail(errors.New("no such feed"))
			return
		}
		for _, raw := range p.from(f, args[0].Seq) {
			req.Stream().SendRaw(muxrpc.JSON, raw)
		}
		<-ctx.Done() // live: stay open
	case "ebt.replicate":
		if !p.ebt {
			req.Fail(errors.New("no ebt here"))
			return
		}
		// Called, it notes first: it has each feed, and wants nothing.
		s := req.Stream()
		have := make(map[string]int64)
		for f, feed := range p.feeds {
			have[f.String()] = int64(len(feed))<<1 | 1
		}
		if s.Send(have) != nil {
			return
		}
		// Each note that asks for a feed (an even value, sequence<<1) is
		// answered with its messages after that sequence, as ssb-ebt
		// does, so a second note asks again.
		for {
			pkt, err := s.Recv(ctx)
			if err != nil {
				return
			}
			var n map[string]int64
			if json.Unmarshal(pkt.Body, &n) != nil {
				continue // a message
			}
			for id, v := range n {
				f, err := refs.ParseFeed(id)
				if err != nil || p.feeds[f] == nil || v < 0 || v&1 == 1 {
					continue
				}
				for _, raw := range p.from(f, v>>1+1) {
					s.SendRaw(muxrpc.JSON, raw)
				}
			}
		}
	default:
		req.Fail(errors.New("no"))
	}
}

// A peer that sends a feed out of order (1, 3, 2, 4, 5) is asked for it
// again from where it stopped, on the same connection, over legacy and
// EBT: the feed reaches its end, the out-of-order message is counted once,
// and another feed on the connection replicates in full.
func TestReplicationReasksOutOfOrder(t *testing.T) {
	for _, ebt := range []bool{false, true} {
		t.Run(map[bool]string{false: "legacy", true: "ebt"}[ebt], func(t *testing.T) {
			s := startServer(t)
			es := s.local(t)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			kps, feeds := authors(t, 2, 5)
			bad, good := kps[0].ID, kps[1].ID
			follow(t, es, bad)
			follow(t, es, good)
			var network [32]byte
			refs.DecodeBase64(network[:], s.caps)
			peerKeys, _ := keys.Generate(nil)
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			p := &outOfOrderPeer{keys: peerKeys, ln: ln, ebt: ebt, bad: bad,
				feeds: map[refs.Feed][][]byte{bad: feeds[0], good: feeds[1]}}
			served := make(chan struct{})
			go func() {
				defer close(served)
				p.serve(ctx, network)
			}()
			defer func() {
				cancel()
				ln.Close()
				<-served
			}()

			start := time.Now()
			var res any
			if err := es.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, address(ln.Addr(), peerKeys.ID)); err != nil {
				t.Fatal(err)
			}
			waitSeq(t, es, good, 5, 5*time.Second)
			waitSeq(t, es, bad, 5, 5*time.Second)
			t.Logf("both feeds in full after %v", time.Since(start))

			p.mu.Lock()
			conns, asks := p.conns, slices.Clone(p.asks)
			p.mu.Unlock()
			if conns != 1 {
				t.Errorf("the peer was dialed %d times, want once: the feed is asked again on the same connection", conns)
			}
			if !slices.Equal(asks, []int64{1, 2}) {
				t.Errorf("the out-of-order feed was asked from sequences %v, want [1 2]", asks)
			}
			st := s.repl().Stats()
			if st.InvalidBatches != 1 {
				t.Errorf("%d invalid batches counted, want 1: %+v", st.InvalidBatches, st)
			}
			if ebt && st.EBTSessions != 1 || !ebt && (st.EBTSessions != 0 || st.LegacyPeers != 1) {
				t.Errorf("replication did not run as asked (EBT %v): %+v", ebt, st)
			}
			if err := s.Store().Check(ctx); err != nil {
				t.Errorf("store check: %v", err)
			}
		})
	}
}
