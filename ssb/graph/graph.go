// Package graph is the follow graph of Secure Scuttlebutt: who follows,
// unfollows and blocks whom, from contact messages, and how many hops each
// feed is from a given one, as ssb-friends 4 (layered-graph with
// dynamic-dijkstra's "simple" rules) computes them for ssb-server 16.
//
// Each author's latest contact message about a feed sets an edge: 1 for
// following, -1 for blocking (or flagging), -2 otherwise (an unfollow).
// Hops from the start feed (0) then spread along edges: a follow adds 1; a
// block from a feed at distance a marks the target -(a+1), an unfollow
// -(a+2). Of two values the one of smaller magnitude wins, the positive one
// on a tie. Only feeds at 0 <= hops < max pass their follows on. Feeds at
// 0 <= hops <= max are the ones to replicate; negative values are feeds
// someone in range blocked or unfollowed.
package graph

import (
	"container/heap"
	"encoding/json"
	"maps"
	"math"
	"sync"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Edge values, as ssb-friends records them.
const (
	Follow   = 1
	Block    = -1
	Unfollow = -2
)

// DefaultHops is how far from its own feed a server replicates.
const DefaultHops = 2

// A Graph holds the latest edge from each author to each feed it has a
// contact message about. It is safe for concurrent use.
type Graph struct {
	wmu      sync.Mutex // serializes Set with its watchers, and Watch
	watchers map[*watcher]struct{}
	mu       sync.RWMutex
	edges    map[refs.Feed]map[refs.Feed]int
}

type watcher struct {
	fn func(from, to refs.Feed, value int)
}

// New returns an empty graph.
func New() *Graph { return &Graph{edges: make(map[refs.Feed]map[refs.Feed]int)} }

// Set records the edge from author to feed, replacing the previous one,
// then calls the watchers (even when the value is the same, as
// layered-graph's onEdge does).
func (g *Graph) Set(from, to refs.Feed, value int) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	g.mu.Lock()
	m := g.edges[from]
	if m == nil {
		m = make(map[refs.Feed]int)
		g.edges[from] = m
	}
	m[to] = value
	g.mu.Unlock()
	for w := range g.watchers {
		w.fn(from, to, value)
	}
}

// Watch calls fn after every later Set, in the order of the Sets, until
// stop is called; it returns the edges as they are when fn starts
// watching (as Edges). fn runs in the goroutine that calls Set and must
// not block; it may read the graph (Edge, Hops) but not Set it or
// Watch it.
func (g *Graph) Watch(fn func(from, to refs.Feed, value int)) (edges map[refs.Feed]map[refs.Feed]int, stop func()) {
	g.wmu.Lock()
	defer g.wmu.Unlock()
	w := &watcher{fn}
	if g.watchers == nil {
		g.watchers = make(map[*watcher]struct{})
	}
	g.watchers[w] = struct{}{}
	return g.Edges(), func() {
		g.wmu.Lock()
		defer g.wmu.Unlock()
		delete(g.watchers, w)
	}
}

// Edges returns a copy of the edges: by author, by feed.
func (g *Graph) Edges() map[refs.Feed]map[refs.Feed]int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make(map[refs.Feed]map[refs.Feed]int, len(g.edges))
	for from, m := range g.edges {
		out[from] = maps.Clone(m)
	}
	return out
}

// Edge returns the edge from author to feed, and whether there is one.
func (g *Graph) Edge(from, to refs.Feed) (int, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	v, ok := g.edges[from][to]
	return v, ok
}

// Contact applies a message's content if it is a contact message
// ({"type":"contact","contact":"@…",...}) and reports whether it was. The
// edge is Block when blocking or flagged is truthy (in JavaScript's sense),
// Follow when following is true, Unfollow otherwise.
func (g *Graph) Contact(author refs.Feed, content json.RawMessage) bool {
	var c struct {
		Type      string          `json:"type"`
		Contact   string          `json:"contact"`
		Following json.RawMessage `json:"following"`
		Blocking  json.RawMessage `json:"blocking"`
		Flagged   json.RawMessage `json:"flagged"`
	}
	if json.Unmarshal(content, &c) != nil || c.Type != "contact" {
		return false
	}
	to, err := refs.ParseFeed(c.Contact)
	if err != nil {
		return false
	}
	value := Unfollow
	switch {
	case truthy(c.Blocking) || truthy(c.Flagged):
		value = Block
	case string(c.Following) == "true":
		value = Follow
	}
	g.Set(author, to, value)
	return true
}

// truthy reports whether a JSON value is truthy in JavaScript.
func truthy(v json.RawMessage) bool {
	switch s := string(v); s {
	case "", "null", "false", `""`:
		return false
	default:
		var f float64
		if json.Unmarshal(v, &f) == nil {
			return f != 0 && !math.IsNaN(f)
		}
		return true
	}
}

// add is dynamic-dijkstra/simple's add: the value a feed gets through an
// edge from a feed at distance a; ok is false for none.
func add(a float64, v int) (float64, bool) {
	if a < 0 {
		return 0, false // a blocked feed passes nothing on
	}
	e := float64(v)
	if v == 0 {
		e = 0.1
	}
	if e >= 0 {
		return a + e, true
	}
	return -a + e, true
}

// better is simple's min: smaller magnitude wins, the positive on a tie.
func better(a, b float64) float64 {
	if math.Abs(a) == math.Abs(b) {
		return math.Max(a, b)
	}
	if math.Abs(a) < math.Abs(b) {
		return a
	}
	return b
}

// Hops returns the distance of every feed reached from start within max
// hops, with the values ssb-friends' friends.hops gives: 0 for start,
// positive for followed feeds, negative for blocked or unfollowed ones.
func (g *Graph) Hops(start refs.Feed, max int) map[refs.Feed]float64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return traverse(g.edges, start, max)
}

// ReverseHops is Hops along the edges reversed: from start to the feeds
// that follow (or block) it, as friends.hops with reverse: true.
func (g *Graph) ReverseHops(start refs.Feed, max int) map[refs.Feed]float64 {
	g.mu.RLock()
	rev := make(map[refs.Feed]map[refs.Feed]int)
	for from, m := range g.edges {
		for to, v := range m {
			if rev[to] == nil {
				rev[to] = make(map[refs.Feed]int)
			}
			rev[to][from] = v
		}
	}
	g.mu.RUnlock()
	return traverse(rev, start, max)
}

// traverse is dynamic-dijkstra's traverse of edges from start.
func traverse(edges map[refs.Feed]map[refs.Feed]int, start refs.Feed, max int) map[refs.Feed]float64 {
	hops := map[refs.Feed]float64{start: 0}
	q := &queue{{start, 0}}
	for q.Len() > 0 {
		j := heap.Pop(q).(item).feed
		hj := hops[j]
		if !(hj >= 0 && hj < float64(max)) {
			continue
		}
		for k, v := range edges[j] {
			nv, ok := add(hj, v)
			if !ok {
				continue
			}
			old, had := hops[k]
			if had {
				nv = better(old, nv)
			}
			if !had || nv != old {
				hops[k] = nv
				heap.Push(q, item{k, nv})
			}
		}
	}
	return hops
}

// Replicate returns the feeds to replicate from start: those at
// 0 <= hops <= max.
func (g *Graph) Replicate(start refs.Feed, max int) []refs.Feed {
	var out []refs.Feed
	for f, h := range g.Hops(start, max) {
		if h >= 0 && h <= float64(max) {
			out = append(out, f)
		}
	}
	return out
}

// IsBlocking reports whether from's latest contact message about to blocks
// it.
func (g *Graph) IsBlocking(from, to refs.Feed) bool {
	v, ok := g.Edge(from, to)
	return ok && v == Block
}

type item struct {
	feed  refs.Feed
	value float64
}

// queue pops the smallest value first, as the heap of dynamic-dijkstra's
// traverse does.
type queue []item

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].value < q[j].value }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)        { *q = append(*q, x.(item)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
