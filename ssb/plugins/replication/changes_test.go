package replication_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// replicate.upto({live: true}) on ssb-server@16 and on ours: the wanted
// feeds, {sync: true}, then a feed requested ({id, sequence: 0}) and given
// up ({id, sequence: -1}); the same items on both (our id written SELF).
func TestInteropUptoLive(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	caps := newCaps()
	js := startJS(t, ctx, caps)
	g := startGo(t, caps, "")
	f := newKeys(t).ID.String()
	run := func(c *client.Client, self refs.Feed) []string {
		s, err := c.Open(muxrpc.Method{"replicate", "upto"}, muxrpc.Source, map[string]any{"live": true})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var out []string
		next := func() string {
			t.Helper()
			pkt, err := s.Recv(ctx)
			if err != nil {
				t.Fatal(err)
			}
			line := canonical(t, string(pkt.Body), map[string]string{self.String(): "SELF"})
			out = append(out, line)
			return line
		}
		for next() != `{"sync":true}` {
		}
		for _, args := range [][]any{{f}, {f, false}} {
			if _, err := c.Async(ctx, muxrpc.Method{"replicate", "request"}, args...); err != nil {
				t.Fatal(err)
			}
			next()
		}
		return out
	}
	want := run(js.Client, js.Keys.ID)
	got := run(g.local, g.ID())
	t.Logf("upto: %v", got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("upto live:\n got %v\nwant %v", got, want)
	}
}

// replicate.changes on ssb-server@16 and on ours: after a feed of three
// messages is added, an event {id, rate, feeds, pendingPeers,
// incompleteFeeds, progress, total} with the same fields and, but for
// id and rate, the same values.
func TestInteropChanges(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	caps := newCaps()
	js := startJS(t, ctx, caps)
	g := startGo(t, caps, "")
	author, raws := feed(t, 3)
	run := func(c *client.Client, self refs.Feed) map[string]any {
		s, err := c.Open(muxrpc.Method{"replicate", "changes"}, muxrpc.Source)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := ssbtest.Load(ctx, c, author.ID, raws); err != nil {
			t.Fatal(err)
		}
		for {
			var ev map[string]any
			if err := s.RecvJSON(ctx, &ev); err != nil {
				t.Fatal(err)
			}
			if ev["id"] != self.String() {
				t.Errorf("changes: id %v, want %s", ev["id"], self)
			}
			if ev["progress"] == float64(len(raws)) {
				delete(ev, "id")
				if _, ok := ev["rate"].(float64); !ok {
					t.Errorf("changes: rate %v", ev["rate"])
				}
				delete(ev, "rate")
				return ev
			}
		}
	}
	want := run(js.Client, js.Keys.ID)
	got := run(g.local, g.ID())
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	t.Logf("changes: %s", gb)
	if string(wb) != string(gb) {
		t.Errorf("changes:\n got %s\nwant %s", gb, wb)
	}
}
