package graph

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func feeds(t testing.TB, n int) []refs.Feed {
	out := make([]refs.Feed, n)
	for i := range out {
		kp, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = kp.ID
	}
	return out
}

func TestHops(t *testing.T) {
	f := feeds(t, 7)
	me, a, b, c, d, x, y := f[0], f[1], f[2], f[3], f[4], f[5], f[6]
	g := New()
	g.Set(me, a, Follow)
	g.Set(a, b, Follow)
	g.Set(b, c, Follow)
	g.Set(c, d, Follow)
	g.Set(me, x, Block)
	g.Set(a, x, Follow) // a follows x, but I block x: my block is closer
	g.Set(a, y, Block)  // a blocks y ...
	g.Set(b, y, Follow) // ... b's follow is further away
	hops := g.Hops(me, 3)
	want := map[refs.Feed]float64{me: 0, a: 1, b: 2, c: 3, x: -1, y: -2}
	if len(hops) != len(want) {
		t.Errorf("hops has %d feeds, want %d: %v", len(hops), len(want), hops)
	}
	for k, v := range want {
		if hops[k] != v {
			t.Errorf("hops[%s] = %v, want %v", k, hops[k], v)
		}
	}
	if _, ok := hops[d]; ok {
		t.Error("d is 4 hops away: beyond max 3, it must not appear")
	}
	repl := g.Replicate(me, 2)
	if len(repl) != 3 {
		t.Errorf("replicate within 2 hops: %v, want me, a, b", repl)
	}
	g.Set(me, a, Unfollow)
	if h := g.Hops(me, 3); h[a] != -2 || h[b] != 0 && len(h) != 2 {
		t.Errorf("after unfollowing a: %v", h)
	}
}

func TestContactMessages(t *testing.T) {
	f := feeds(t, 2)
	g := New()
	for _, tc := range []struct {
		content string
		want    int
	}{
		{`{"type":"contact","contact":"` + f[1].String() + `","following":true}`, Follow},
		{`{"type":"contact","contact":"` + f[1].String() + `","following":false}`, Unfollow},
		{`{"type":"contact","contact":"` + f[1].String() + `","following":true,"blocking":true}`, Block},
		{`{"type":"contact","contact":"` + f[1].String() + `","flagged":"spam"}`, Block},
		{`{"type":"contact","contact":"` + f[1].String() + `","blocking":0,"following":"true"}`, Unfollow},
	} {
		if !g.Contact(f[0], json.RawMessage(tc.content)) {
			t.Fatalf("%s was not taken as a contact message", tc.content)
		}
		if v, _ := g.Edge(f[0], f[1]); v != tc.want {
			t.Errorf("%s: edge %d, want %d", tc.content, v, tc.want)
		}
	}
	for _, content := range []string{`{"type":"post","contact":"` + f[1].String() + `"}`, `{"type":"contact","contact":"@nope"}`, `"box"`} {
		if g.Contact(f[0], json.RawMessage(content)) {
			t.Errorf("%s taken as a contact message", content)
		}
	}
}

// Random follow graphs, sent to JavaScript ssb-server@16 (ssb-friends
// 4.1.4) as signed contact messages: friends.hops from each graph's root
// must equal Hops in Go, for max 1, 2 and 3.
func TestHopsLikeSSBFriends(t *testing.T) {
	oracle.Require(t)
	var caps [32]byte
	rand.Read(caps[:])
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	js, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	c := js.Client

	rng := mrand.New(mrand.NewPCG(7, 11))
	type world struct {
		root refs.Feed
		g    *Graph
	}
	var worlds []world
	sink, err := c.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for range 16 {
		const n = 9
		kps := make([]*keys.KeyPair, n)
		for i := range kps {
			kps[i], _ = keys.Generate(nil)
		}
		g := New()
		for _, kp := range kps {
			var prev message.FeedState
			for range rng.IntN(8) {
				to := kps[rng.IntN(n)].ID
				content := map[string]any{"type": "contact", "contact": to.String()}
				switch r := rng.IntN(10); {
				case r < 6:
					content["following"] = true
				case r < 8:
					content["blocking"] = true
				default:
					content["following"] = false
				}
				m, err := message.Create(kp, nil, &prev, float64(time.Now().UnixMilli()), content)
				if err != nil {
					t.Fatal(err)
				}
				prev = m.State()
				if !g.Contact(kp.ID, m.Content) {
					t.Fatal("not a contact message")
				}
				if err := sink.SendRaw(muxrpc.JSON, m.Raw); err != nil {
					t.Fatal(err)
				}
				total++
			}
		}
		worlds = append(worlds, world{kps[0].ID, g})
	}
	sink.Close()
	if _, err := sink.Recv(ctx); err != nil && !errors.Is(err, io.EOF) {
		t.Fatal(err)
	}
	t.Logf("%d contact messages in %d graphs", total, len(worlds))

	// ssb-server indexes asynchronously: poll until every answer agrees, or
	// report the last difference.
	var lastDiff string
	for attempt := 0; ; attempt++ {
		lastDiff = ""
		for wi, w := range worlds {
			for _, max := range []int{1, 2, 3} {
				var got map[string]float64
				if err := c.AsyncJSON(ctx, &got, muxrpc.Method{"friends", "hops"}, map[string]any{"start": w.root.String(), "max": max}); err != nil {
					t.Fatalf("friends.hops: %v", err)
				}
				if d := diff(w.g.Hops(w.root, max), got); d != "" && lastDiff == "" {
					lastDiff = fmt.Sprintf("graph %d, max %d: %s", wi, max, d)
				}
			}
		}
		if lastDiff == "" {
			return
		}
		if attempt > 40 {
			t.Fatalf("Go and ssb-friends disagree: %s", lastDiff)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func diff(ours map[refs.Feed]float64, theirs map[string]float64) string {
	if len(ours) != len(theirs) {
		return fmt.Sprintf("%d feeds in Go, %d in JavaScript: %v vs %v", len(ours), len(theirs), ours, theirs)
	}
	for f, v := range ours {
		w, ok := theirs[f.String()]
		if !ok || math.Abs(v-w) > 1e-9 {
			return fmt.Sprintf("%s: Go %v, JavaScript %v (present %v)", f, v, w, ok)
		}
	}
	return ""
}

// A watcher sees the edges as they were when it started plus every later
// Set, in order, with none lost to concurrent Sets; its callback may read
// the graph.
func TestWatch(t *testing.T) {
	f := feeds(t, 4)
	g := New()
	g.Set(f[0], f[1], Follow)
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				g.Set(f[w], f[2+i%2], []int{Follow, Block, Unfollow}[i%3])
			}
		}()
	}
	type set struct {
		from, to refs.Feed
		v        int
	}
	var seen []set
	edges, stop := g.Watch(func(from, to refs.Feed, v int) {
		g.Hops(from, 2) // reading from the callback does not deadlock
		seen = append(seen, set{from, to, v})
	})
	wg.Wait()
	stop()
	g.Set(f[3], f[0], Follow) // after stop: not seen
	for _, s := range seen {
		if edges[s.from] == nil {
			edges[s.from] = map[refs.Feed]int{}
		}
		edges[s.from][s.to] = s.v
	}
	want := g.Edges()
	delete(want, f[3])
	if fmt.Sprint(edges) != fmt.Sprint(want) {
		t.Errorf("snapshot + watched sets = %v, want %v", edges, want)
	}
}
