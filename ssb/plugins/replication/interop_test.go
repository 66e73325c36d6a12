package replication_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
)

// The real ssb-client, as the owner, makes the same calls of
// ssb-replicate's and ssb-ebt's methods on ssb-server@16 and on ours, and
// gets the same answers (our id written SELF on both): request and block
// answer false (JavaScript's undefined), upto lists the wanted feeds with
// their sequence, a non-feed request changes nothing, peerStatus without
// peers. The manifest gives the seven methods JavaScript's types.
func TestInteropMethodsLikeSSBServer(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	caps := newCaps()
	js := startJS(t, ctx, caps)
	g := startGo(t, caps, "")
	f, other := newKeys(t), newKeys(t)
	calls := []map[string]any{
		call("replicate.upto", "source"),
		call("replicate.request", "sync", f.ID.String()),
		call("replicate.upto", "source"),
		call("replicate.upto", "source", map[string]any{"live": false}),
		call("ebt.peerStatus", "sync"),
		call("ebt.peerStatus", "sync", f.ID.String()),
		call("ebt.peerStatus", "sync", "not a feed"),
		call("replicate.block", "sync", f.ID.String(), other.ID.String(), true),
		call("ebt.block", "sync", map[string]any{"from": f.ID.String(), "to": other.ID.String(), "blocking": false}),
		call("replicate.request", "sync", map[string]any{"id": f.ID.String(), "replicate": false}),
		call("replicate.upto", "source"),
		call("replicate.request", "sync", "not a feed"),
		call("replicate.request", "sync", map[string]any{"id": other.ID.String()}),
		call("replicate.upto", "source"),
		call("replicate.request", "sync", other.ID.String(), false),
		call("replicate.upto", "source"),
	}
	want := callJS(t, js.Port, js.Keys, caps, js.Keys, calls)
	got := callJS(t, g.port(), g.Keys(), caps, g.Keys(), calls)
	for i := range calls {
		w := canonical(t, want[i], map[string]string{js.Keys.ID.String(): "SELF"})
		o := canonical(t, got[i], map[string]string{g.ID().String(): "SELF"})
		if w != o {
			t.Errorf("%s %v:\n got %s\nwant %s", calls[i]["method"], calls[i]["args"], o, w)
		}
	}

	var jm, gm map[string]any
	if err := js.Client.AsyncJSON(ctx, &jm, muxrpc.Method{"manifest"}); err != nil {
		t.Fatal(err)
	}
	if err := g.local.AsyncJSON(ctx, &gm, muxrpc.Method{"manifest"}); err != nil {
		t.Fatal(err)
	}
	for _, plugin := range []string{"replicate", "ebt"} {
		jp, _ := jm[plugin].(map[string]any)
		gp, _ := gm[plugin].(map[string]any)
		for name, typ := range jp {
			if gp[name] != typ {
				t.Errorf("%s.%s: %v here, %v in ssb-server", plugin, name, gp[name], typ)
			}
		}
	}
}

// feed returns n signed messages of a new author.
func feed(t *testing.T, n int) (*keys.KeyPair, [][]byte) {
	t.Helper()
	kp := newKeys(t)
	raws, err := ssbtest.Feed(kp, n, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	return kp, raws
}

// peerStatus calls ebt.peerStatus(id) on e.
func peerStatus(t *testing.T, ctx context.Context, e *muxrpc.Endpoint, id refs.Feed) map[string]any {
	t.Helper()
	var st map[string]any
	if err := e.AsyncJSON(ctx, &st, muxrpc.Method{"ebt", "peerStatus"}, id.String()); err != nil {
		t.Fatal(err)
	}
	return st
}

// shape is a JSON value with every number written 0 and every boolean
// false: what two peerStatus answers must share.
func shape(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = shape(e)
		}
		return out
	case float64:
		return 0.0
	case bool:
		return false
	}
	return v
}

// ebt.request of a feed our server does not follow makes it replicate
// from ssb-server@16 over EBT (ssb-server replicates it: requested there
// too, as ssb-ebt only exchanges the feeds it replicates). Then each
// side's ebt.peerStatus of the feed lists the other with the same shape:
// {id, seq, peers: {<peer>: {seq, replicating: {tx, rx, sent,
// requested}}}}; ours gives the peer's seq as the feed's length (a
// receiver notes nothing after appending, so ssb-server's seq of us stays
// what we noted). upto then lists the feed at its length; given up
// (request false), the feed is noted -1 to ssb-server and leaves upto.
func TestInteropEBTRequest(t *testing.T) {
	oracle.Require(t)
	for _, jsDials := range []bool{false, true} {
		t.Run(map[bool]string{false: "we dial", true: "ssb-server dials"}[jsDials], func(t *testing.T) {
			ebtRequest(t, jsDials)
		})
	}
}

func ebtRequest(t *testing.T, jsDials bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	caps := newCaps()
	js := startJS(t, ctx, caps)
	dir := t.TempDir()
	g := startGo(t, caps, dir)
	author, raws := feed(t, 5)
	if err := ssbtest.Load(ctx, js.Client, author.ID, raws); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Client.Async(ctx, muxrpc.Method{"replicate", "request"}, author.ID.String()); err != nil {
		t.Fatal(err)
	}
	var ok any
	if err := g.local.AsyncJSON(ctx, &ok, muxrpc.Method{"ebt", "request"}, author.ID.String(), true); err != nil || ok != false {
		t.Fatalf("ebt.request: %v, %v; want false", ok, err)
	}
	if jsDials {
		if _, err := js.Client.Async(ctx, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(g.addr.String(), g.ID())); err != nil {
			t.Fatal(err)
		}
	} else if _, err := g.Connect(ctx, js.Address()); err != nil {
		t.Fatal(err)
	}
	if err := ssbtest.WaitSeq(ctx, g.local, author.ID, int64(len(raws))); err != nil {
		t.Fatal(err)
	}
	if st := g.Replicator().Stats(); st.EBTSessions == 0 {
		t.Errorf("replicated without EBT: %+v", st)
	}

	// Each side's view of the other settles once both know the other has
	// the whole feed.
	n := float64(len(raws))
	var ours, theirs map[string]any
	oracle.Eventually(t, func() error {
		ours = peerStatus(t, ctx, g.local.Endpoint, author.ID)
		theirs = peerStatus(t, ctx, js.Client.Endpoint, author.ID)
		op, _ := ours["peers"].(map[string]any)[js.Keys.ID.String()].(map[string]any)
		tp, _ := theirs["peers"].(map[string]any)[g.ID().String()].(map[string]any)
		if ours["seq"] != n || theirs["seq"] != n || op == nil || tp == nil || op["seq"] != n || tp["seq"] == nil ||
			op["replicating"] == nil || tp["replicating"] == nil {
			return fmt.Errorf("peerStatus here %v, in ssb-server %v", ours, theirs)
		}
		return nil
	})
	if ours["id"] != author.ID.String() {
		t.Errorf("our peerStatus id %v, want %s", ours["id"], author.ID)
	}
	op := ours["peers"].(map[string]any)[js.Keys.ID.String()]
	tp := theirs["peers"].(map[string]any)[g.ID().String()]
	if a, b := fmt.Sprint(shape(op)), fmt.Sprint(shape(tp)); a != b {
		t.Errorf("peerStatus shapes differ:\n here %v\n ssb-server %v", op, tp)
	}
	t.Logf("peerStatus here %v; in ssb-server %v", op, tp)

	if jsDials {
		return
	}
	// The request is kept: a new server on the same folder wants the feed.
	want := g.Replicator().Wanted()
	if !slices.Contains(want, author.ID) {
		t.Fatalf("the requested feed is not wanted: %v", want)
	}
	var up []replicate.Upto
	if err := collect(ctx, g.local.Endpoint, muxrpc.Method{"replicate", "upto"}, &up); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(up, replicate.Upto{ID: author.ID.String(), Sequence: int64(len(raws))}) {
		t.Errorf("upto %v lacks the requested feed at %d", up, len(raws))
	}

	// Given up (request false), the feed is noted -1 to ssb-server, which
	// then has our sequence of it as -1, and upto no longer lists it.
	if _, err := g.local.Async(ctx, muxrpc.Method{"replicate", "request"}, author.ID.String(), false); err != nil {
		t.Fatal(err)
	}
	oracle.Eventually(t, func() error {
		st := peerStatus(t, ctx, js.Client.Endpoint, author.ID)
		if p, _ := st["peers"].(map[string]any)[g.ID().String()].(map[string]any); p == nil || p["seq"] != -1.0 {
			return fmt.Errorf("ssb-server's peerStatus %v", st)
		}
		return nil
	})
	up = nil
	if err := collect(ctx, g.local.Endpoint, muxrpc.Method{"replicate", "upto"}, &up); err != nil {
		t.Fatal(err)
	}
	for _, u := range up {
		if u.ID == author.ID.String() {
			t.Errorf("upto lists the feed given up: %v", up)
		}
	}
}

// collect reads a source into out (a pointer to a slice).
func collect[T any](ctx context.Context, e *muxrpc.Endpoint, m muxrpc.Method, out *[]T, args ...any) error {
	s, err := e.Open(m, muxrpc.Source, args...)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		var v T
		if err := s.RecvJSON(ctx, &v); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		*out = append(*out, v)
	}
}
