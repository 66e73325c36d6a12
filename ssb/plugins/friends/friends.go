// Package friends is ssb-friends 4.1.4 as ssb-server 16 has it: the
// methods over the follow graph that the replication plugin keeps
// (friends.hops, isFollowing, isBlocking, get, hopStream, stream,
// createFriendStream, onEdge, help). All are the owner's only, as in
// ssb-server (ssb-friends grants strangers nothing).
//
// ssb-friends keeps the hops of our own feed within friends.hops (its
// "max") and updates them edge by edge; here they are recomputed from the
// graph (graph.Hops) when they may have changed, and a live hopStream gets
// the feeds whose value changed, as dynamic-dijkstra's update reports them.
package friends

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"math"

	"github.com/scuttlego/scuttle/ssb/graph"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
)

// ErrNoGraph is Init's error when no plugin keeps the follow graph (as
// ssb-friends throws without a replicate plugin).
var ErrNoGraph = errors.New("friends: no replication plugin with the follow graph")

// ErrOnEdge answers friends.onEdge: its argument is a JavaScript function,
// which muxrpc cannot carry (ssb-server registers whatever is sent as a
// listener, and fails at the next contact message).
var ErrOnEdge = errors.New("friends.onEdge: takes a function, which cannot be called over muxrpc")

// Plugin is the friends plugin.
type Plugin struct {
	g    *graph.Graph
	self refs.Feed
	max  int // friends.hops: the hops kept for our feed
	hub  *hub
}

// New returns the friends plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "friends".
func (p *Plugin) Name() string { return "friends" }

// replicator is what the replication plugin offers.
type replicator interface {
	Replicator() *replicate.Replicator
}

// Init finds the follow graph among the server's plugins.
func (p *Plugin) Init(s *server.Server) error {
	for _, pl := range s.Plugins() {
		if r, ok := pl.(replicator); ok && r.Replicator() != nil {
			p.g = r.Replicator().Graph()
		}
	}
	if p.g == nil {
		return ErrNoGraph
	}
	p.self = s.ID()
	p.max = s.Config().Hops
	if p.max == 0 {
		p.max = graph.DefaultHops
	}
	p.hub = newHub(p.g, p.self, p.max)
	return nil
}

// Run stops following the graph when the server stops.
func (p *Plugin) Run(ctx context.Context) error {
	<-ctx.Done()
	p.hub.close()
	return nil
}

// Methods returns ssb-friends' manifest, all for the owner only.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "friends.hops", Type: muxrpc.Async, Handler: p.hops},
		{Name: "friends.isFollowing", Type: muxrpc.Async, Handler: p.isFollowing},
		{Name: "friends.isBlocking", Type: muxrpc.Async, Handler: p.isBlocking},
		{Name: "friends.get", Type: muxrpc.Async, Handler: p.get},
		{Name: "friends.hopStream", Type: muxrpc.Source, Handler: p.hopStream},
		{Name: "friends.createFriendStream", Type: muxrpc.Source, Handler: p.createFriendStream},
		{Name: "friends.stream", Type: muxrpc.Source, Handler: p.stream},
		{Name: "friends.onEdge", Type: muxrpc.Sync, Handler: func(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
			req.Fail(ErrOnEdge)
		}},
		{Name: "friends.help", Type: muxrpc.Sync, Handler: func(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
			req.ReturnRaw(muxrpc.JSON, helpJSON)
		}},
	}
}

//go:embed help.json
var helpJSON []byte

func (p *Plugin) hops(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.Return(p.hopsOf(parseHops(parseOpts(req.Args), p.max)))
}

// hopsOf is layered-graph's getHops: the hops kept for our feed when start
// is ours and max is friends.hops, those of them at most max when max is
// less, a traversal from start otherwise, or against the edges with
// reverse.
func (p *Plugin) hopsOf(q hopsQuery) map[string]float64 {
	start := p.self
	if q.start != "" {
		f, ok := parseFeed(q.start)
		if !ok {
			return map[string]float64{q.start: 0} // a start no edge names
		}
		start = f
	}
	limit := expandLimit(q.max)
	switch {
	case q.reverse:
		return keyed(p.g.ReverseHops(start, limit))
	case start != p.self || math.IsNaN(q.max) || q.max > float64(p.max):
		return keyed(p.g.Hops(start, limit))
	}
	out := keyed(p.g.Hops(p.self, p.max))
	for k, v := range out {
		if !(v <= q.max) {
			delete(out, k)
		}
	}
	return out
}

func keyed[V any](m map[refs.Feed]V) map[string]V {
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k.String()] = v
	}
	return out
}

// isFollowing answers whether source's edge to dest is >= 0 (a follow).
// ssb-friends answers undefined when source has no edges at all, which
// muxrpc sends as false.
func (p *Plugin) isFollowing(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
	p.edge(req, func(v int) bool { return v >= 0 })
}

// isBlocking answers whether source's edge to dest is a block.
func (p *Plugin) isBlocking(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
	p.edge(req, func(v int) bool { return v == graph.Block })
}

// edge answers test of the edge from opts.source to opts.dest, false when
// there is none.
func (p *Plugin) edge(req *muxrpc.Request, test func(v int) bool) {
	o := parseOpts(req.Args)
	if !o.has() {
		req.Fail(fmt.Errorf("friends.%s: the argument must be {source, dest}", req.Method[len(req.Method)-1]))
		return
	}
	src, ok1 := o.feed("source")
	dest, ok2 := o.feed("dest")
	if !ok1 || !ok2 {
		req.Return(false)
		return
	}
	v, ok := p.g.Edge(src, dest)
	req.Return(ok && test(v))
}

// legacy is ssb-friends' toLegacyValue: true for a follow, false for a
// block, null for an unfollow (and for no edge).
func legacy(v int, ok bool) any {
	switch {
	case !ok:
		return nil
	case v >= 0:
		return true
	case v == graph.Block:
		return false
	}
	return nil
}

func legacyGraph(edges map[refs.Feed]map[refs.Feed]int) map[string]map[string]any {
	out := make(map[string]map[string]any, len(edges))
	for from, m := range edges {
		lm := make(map[string]any, len(m))
		for to, v := range m {
			lm[to.String()] = legacy(v, true)
		}
		out[from.String()] = lm
	}
	return out
}

// get is ssb-friends' legacy get: the whole graph in legacy values, or
// source's edges, or source's edge to dest, or the edges to dest by
// author.
func (p *Plugin) get(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
	o := parseOpts(req.Args)
	edges := p.g.Edges()
	switch {
	case o.truthy("source"):
		var m map[refs.Feed]int
		if src, ok := o.feed("source"); ok {
			m = edges[src]
		}
		if m != nil && o.truthy("dest") {
			dest, _ := o.feed("dest")
			v, ok := m[dest]
			req.Return(legacy(v, ok))
			return
		}
		out := make(map[string]any, len(m))
		for to, v := range m {
			out[to.String()] = legacy(v, true)
		}
		req.Return(out)
	case o.truthy("dest"):
		out := map[string]any{}
		if dest, ok := o.feed("dest"); ok {
			for from, m := range edges {
				if v, ok := m[dest]; ok {
					out[from.String()] = legacy(v, true)
				}
			}
		}
		req.Return(out)
	default:
		req.Return(legacyGraph(edges))
	}
}
