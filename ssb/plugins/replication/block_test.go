package replication_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// historyLengths asks our server, with the real ssb-client as peer
// (stranger), for the history of each feed, and returns how many
// messages each stream gave.
func historyLengths(t *testing.T, g *goServer, kp *keys.KeyPair, feeds ...string) []int {
	t.Helper()
	var calls []map[string]any
	for _, f := range feeds {
		calls = append(calls, call("createHistoryStream", "source", map[string]any{"id": f}))
	}
	var out []int
	for i, r := range callJS(t, g.port(), g.Keys(), g.caps, kp, calls) {
		var items []json.RawMessage
		if err := json.Unmarshal([]byte(r), &items); err != nil {
			t.Fatalf("createHistoryStream %s: %s", feeds[i], r)
		}
		out = append(out, len(items))
	}
	return out
}

// replicate.block(X, P, true) and ebt.block keep feed X from peer P: the
// real ssb-client as P gets an empty createHistoryStream of X, still all
// of Y; ebt.block(X, P, false) gives X back. A block from our own feed
// keeps every feed from P.
func TestInteropBlockRefusesHistory(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	g := startGo(t, newCaps(), "")
	x, xs := feed(t, 3)
	y, ys := feed(t, 4)
	for _, f := range []struct {
		a    string
		raws [][]byte
	}{{x.ID.String(), xs}, {y.ID.String(), ys}} {
		if err := ssbtest.Load(ctx, g.local, mustFeed(t, f.a), f.raws); err != nil {
			t.Fatal(err)
		}
	}
	p := newKeys(t)
	block := func(method string, args ...any) {
		t.Helper()
		var r any
		if err := g.local.AsyncJSON(ctx, &r, muxrpc.Method{method, "block"}, args...); err != nil || r != false {
			t.Fatalf("%s.block%v: %v, %v", method, args, r, err)
		}
	}
	check := func(what string, want ...int) {
		t.Helper()
		got := historyLengths(t, g, p, x.ID.String(), y.ID.String())
		if got[0] != want[0] || got[1] != want[1] {
			t.Errorf("%s: P got %d of X and %d of Y, want %d and %d", what, got[0], got[1], want[0], want[1])
		}
	}
	check("no block", 3, 4)
	block("replicate", x.ID.String(), p.ID.String(), true)
	check("X blocks P", 0, 4)
	block("ebt", map[string]any{"from": x.ID.String(), "to": p.ID.String(), "blocking": false})
	check("X unblocks P", 3, 4)
	block("ebt", g.ID().String(), p.ID.String(), true)
	check("we block P", 0, 0)
}

// ebt.block keeps a feed from ssb-server@16 over EBT: it gets all of Y
// and nothing of X, which it replicates too; unblocked, X follows, live.
func TestInteropEBTBlock(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	caps := newCaps()
	js := startJS(t, ctx, caps)
	g := startGo(t, caps, "")
	x, xs := feed(t, 3)
	y, ys := feed(t, 4)
	for _, f := range []struct {
		id   string
		raws [][]byte
	}{{x.ID.String(), xs}, {y.ID.String(), ys}} {
		if err := ssbtest.Load(ctx, g.local, mustFeed(t, f.id), f.raws); err != nil {
			t.Fatal(err)
		}
		for _, e := range []*muxrpc.Endpoint{js.Client.Endpoint, g.local.Endpoint} {
			if _, err := e.Async(ctx, muxrpc.Method{"replicate", "request"}, f.id); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := g.local.Async(ctx, muxrpc.Method{"ebt", "block"}, x.ID.String(), js.Keys.ID.String(), true); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Connect(ctx, js.Address()); err != nil {
		t.Fatal(err)
	}
	if err := ssbtest.WaitSeq(ctx, js.Client, y.ID, int64(len(ys))); err != nil {
		t.Fatal(err)
	}
	var got int64
	err := js.Client.AsyncJSON(ctx, &got, muxrpc.Method{"latestSequence"}, x.ID.String())
	if err != nil && !strings.Contains(err.Error(), "not found") { // ssb-db's answer for a feed it lacks
		t.Fatal(err)
	}
	if got != 0 {
		t.Errorf("ssb-server got X up to %d while X blocks it", got)
	}
	if g.Replicator().Stats().EBTSessions == 0 {
		t.Error("no EBT session")
	}
	if _, err := g.local.Async(ctx, muxrpc.Method{"ebt", "block"}, x.ID.String(), js.Keys.ID.String(), false); err != nil {
		t.Fatal(err)
	}
	if err := ssbtest.WaitSeq(ctx, js.Client, x.ID, int64(len(xs))); err != nil {
		t.Fatal(err)
	}
}

// A live createHistoryStream of X that a peer is being served ends when
// the owner blocks X from that peer; another peer's goes on.
func TestBlockEndsLiveHistory(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	g := startGo(t, newCaps(), "")
	x, xs := feed(t, 3)
	if err := ssbtest.Load(ctx, g.local, x.ID, xs); err != nil {
		t.Fatal(err)
	}
	open := func() (*keys.KeyPair, *muxrpc.Stream) {
		kp := newKeys(t)
		c, err := client.Dial(ctx, g.addr.String(), g.caps, kp, g.Keys().Public, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		s, err := c.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, map[string]any{"id": x.ID.String(), "live": true})
		if err != nil {
			t.Fatal(err)
		}
		for range xs {
			if _, err := s.Recv(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return kp, s
	}
	blocked, ended := open()
	_, goesOn := open()
	if _, err := g.local.Async(ctx, muxrpc.Method{"replicate", "block"}, x.ID.String(), blocked.ID.String(), true); err != nil {
		t.Fatal(err)
	}
	if pkt, err := ended.Recv(ctx); !errors.Is(err, io.EOF) {
		t.Errorf("the blocked peer's stream: %s, %v; want its end", pkt.Body, err)
	}
	more, err := ssbtest.Feed(x, 4, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.local.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(more[3])); err != nil {
		t.Fatal(err)
	}
	if _, err := goesOn.Recv(ctx); err != nil {
		t.Errorf("the other peer's stream: %v", err)
	}
}
