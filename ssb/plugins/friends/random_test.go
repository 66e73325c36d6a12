package friends_test

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// Random follow graphs grown one contact message at a time on both
// servers (our feed's own messages published by each, foreign ones about
// our feed signed per server): the live hopStream's changes, the live
// stream's edges, and then hops, get and the reverse hops must be the
// same. ssb-friends updates its hops edge by edge (dynamic-dijkstra's
// update); ours are recomputed, so this is where they could part.
func TestRandomGraphsLikeSSBServer(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) { randomGraph(ctx, t, seed) })
	}
}

func randomGraph(ctx context.Context, t *testing.T, seed uint64) {
	pr := startBoth(t, ctx)
	sides := []*side{pr.goSide, pr.jsSide}
	rng := mrand.New(mrand.NewPCG(seed, 99))
	const n = 8
	kps := make([]*keys.KeyPair, n)
	for i := range kps {
		kps[i], _ = keys.Generate(nil)
	}
	marker, _ := keys.Generate(nil)
	prev := [2][n]message.FeedState{}

	type opened struct{ hops, edges <-chan any }
	streams := make([]opened, len(sides))
	for i, s := range sides {
		edges, err := s.rpc.Open(muxrpc.Method{"friends", "stream"}, muxrpc.Source)
		if err != nil {
			t.Fatal(err)
		}
		s.read(ctx, t, edges, 1) // the empty graph: ready
		hops, err := s.rpc.Open(muxrpc.Method{"friends", "hopStream"}, muxrpc.Source, map[string]any{"live": true, "old": false})
		if err != nil {
			t.Fatal(err)
		}
		streams[i].edges = s.pump(t, edges)
		streams[i].hops = s.pump(t, hops)
	}

	const steps = 70
	for range steps {
		from := rng.IntN(n + 1) // n is our own feed
		to := rng.IntN(n + 1)
		fields := map[string]any{"following": true}
		switch r := rng.IntN(10); {
		case r < 2:
			fields = map[string]any{"blocking": true}
		case r < 4:
			fields = map[string]any{"following": false}
		}
		for i, s := range sides {
			target := s.self.String()
			if to < n {
				target = kps[to].ID.String()
			}
			content := map[string]any{"type": "contact", "contact": target}
			for k, v := range fields {
				content[k] = v
			}
			if from == n {
				if _, err := s.rpc.Async(ctx, muxrpc.Method{"publish"}, content); err != nil {
					t.Fatalf("%s: publish: %v", s.name, err)
				}
				continue
			}
			m, err := message.Create(kps[from], nil, &prev[i][from], float64(time.Now().UnixMilli()), content)
			if err != nil {
				t.Fatal(err)
			}
			prev[i][from] = m.State()
			if _, err := s.rpc.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(m.Raw)); err != nil {
				t.Fatalf("%s: add: %v", s.name, err)
			}
		}
	}
	// A follow of a new feed by our own: its change is the last.
	var changes [2][]any
	for i, s := range sides {
		if _, err := s.rpc.Async(ctx, muxrpc.Method{"publish"}, map[string]any{"type": "contact", "contact": marker.ID.String(), "following": true}); err != nil {
			t.Fatal(err)
		}
		edges := take(ctx, t, streams[i].edges, steps+1)
		last := edges[len(edges)-1].(map[string]any)
		if last["to"] != marker.ID.String() {
			t.Fatalf("%s: the last edge is %v", s.name, last)
		}
		for {
			item := take(ctx, t, streams[i].hops, 1)[0]
			changes[i] = append(changes[i], item)
			if _, ok := item.(map[string]any)[marker.ID.String()]; ok {
				break
			}
		}
	}
	t.Logf("%d changes of the hops", len(changes[0]))
	if d := diff(changes[1], changes[0]); d != "" {
		t.Errorf("live hopStream: go differs from ssb-server (-js +go):\n%s", d)
	}
	for _, a := range []map[string]any{nil, {"max": 1}, {"max": 3}, {"reverse": true}, {"reverse": true, "max": 4}, {"start": kps[0].ID.String(), "max": 3}} {
		var got [2]any
		for i, s := range sides {
			got[i] = s.call(ctx, "friends.hops", a)
		}
		if d := diff(got[1], got[0]); d != "" {
			t.Errorf("friends.hops %v: go differs from ssb-server (-js +go):\n%s", a, d)
		}
	}
	var got [2]any
	for i, s := range sides {
		got[i] = s.call(ctx, "friends.get")
	}
	if d := diff(got[1], got[0]); d != "" {
		t.Errorf("friends.get: go differs from ssb-server (-js +go):\n%s", d)
	}
}

// pump reads a stream as fast as it comes (a stream left unread would
// stall the whole connection) until the test ends.
func (s *side) pump(t *testing.T, st *muxrpc.Stream) <-chan any {
	ch := make(chan any, 10000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		for {
			p, err := st.Recv(context.Background())
			if err != nil {
				return
			}
			ch <- s.normalize(p)
		}
	}()
	t.Cleanup(func() { st.Close(); <-done })
	return ch
}

// take returns the next n items of a pumped stream.
func take(ctx context.Context, t *testing.T, ch <-chan any, n int) []any {
	t.Helper()
	var out []any
	for len(out) < n {
		select {
		case v, ok := <-ch:
			if !ok {
				t.Fatalf("the stream ended after %d items", len(out))
			}
			out = append(out, v)
		case <-ctx.Done():
			t.Fatalf("after %d items: %v", len(out), ctx.Err())
		}
	}
	return out
}
