package friends

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/scuttlego/scuttle/ssb/graph"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// maxQueued bounds the items a live stream holds for a reader that does
// not read (pull-notify's queue in ssb-friends has no bound); past it the
// stream ends with ErrSlowReader.
const maxQueued = 1 << 16

// ErrSlowReader ends a live stream whose reader fell maxQueued items
// behind.
var ErrSlowReader = errors.New("friends: the reader fell too far behind the live stream")

// queue holds a live stream's items until its handler sends them.
type queue struct {
	mu    sync.Mutex
	items []any
	over  bool
	ready chan struct{} // has an item when items may be waiting
}

func newQueue() *queue { return &queue{ready: make(chan struct{}, 1)} }

func (q *queue) push(v any) {
	q.mu.Lock()
	if len(q.items) >= maxQueued {
		q.over = true
	} else {
		q.items = append(q.items, v)
	}
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// drain sends the queued items on req's stream until ctx ends or the
// stream fails; each item passes through fn first (nil drops it).
func (q *queue) drain(ctx context.Context, req *muxrpc.Request, fn func(any) []any) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.ready:
		}
		q.mu.Lock()
		items, over := q.items, q.over
		q.items = nil
		q.mu.Unlock()
		for _, it := range items {
			for _, v := range fn(it) {
				if send(req, v) != nil {
					return
				}
			}
		}
		if over {
			req.Fail(ErrSlowReader)
			return
		}
	}
}

// send sends one item: a string as a string body, as JavaScript's muxrpc
// does (createFriendStream's feed ids), anything else as JSON.
func send(req *muxrpc.Request, v any) error {
	if s, ok := v.(string); ok && s != "" {
		return req.Stream().SendRaw(muxrpc.String, []byte(s))
	}
	return req.Stream().Send(v)
}

// hub keeps the hops of our feed for the live hopStreams: on every edge
// it recomputes them (only while someone listens) and sends each listener
// the feeds whose value changed or that appeared. Feeds that drop out of
// the hops are not reported, as in dynamic-dijkstra.
type hub struct {
	g    *graph.Graph
	self refs.Feed
	max  int
	stop func()

	mu   sync.Mutex
	hops map[refs.Feed]float64 // nil when no one listened at the last change
	subs map[*queue]struct{}
}

func newHub(g *graph.Graph, self refs.Feed, max int) *hub {
	h := &hub{g: g, self: self, max: max, subs: make(map[*queue]struct{})}
	_, h.stop = g.Watch(h.edge)
	return h
}

func (h *hub) close() { h.stop() }

func (h *hub) edge(_, _ refs.Feed, _ int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) == 0 {
		h.hops = nil
		return
	}
	next := h.g.Hops(h.self, h.max)
	diff := make(map[refs.Feed]float64)
	for k, v := range next {
		if old, ok := h.hops[k]; !ok || old != v {
			diff[k] = v
		}
	}
	h.hops = next
	if len(diff) == 0 {
		return
	}
	for q := range h.subs {
		q.push(diff)
	}
}

// listen returns the hops now and a queue of the changes after them.
func (h *hub) listen() (map[refs.Feed]float64, *queue, func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hops == nil {
		h.hops = h.g.Hops(h.self, h.max)
	}
	q := newQueue()
	h.subs[q] = struct{}{}
	return maps.Clone(h.hops), q, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.subs, q)
	}
}

// hopStream is layered-graph's hopStream: the hops of our feed within
// friends.hops (start and max are not read), then with live: true every
// change; old: false leaves out the first.
func (p *Plugin) hopStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	p.hopChanges(ctx, req, parseOpts(req.Args), func(first bool, m map[refs.Feed]float64) []any {
		return []any{keyed(m)}
	})
}

// createFriendStream is ssb-friends' legacy createFriendStream: hopStream
// flattened to feed ids ({id, hops} with meta), the first chunk without
// the feeds at negative hops.
func (p *Plugin) createFriendStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	o := parseOpts(req.Args)
	meta := o.has() && o.truthy("meta")
	p.hopChanges(ctx, req, o, func(first bool, m map[refs.Feed]float64) []any {
		// The start (hops 0) first, as ssb-friends' hops object has it;
		// then by hops and id, which JS leaves to its traversal.
		keys := slices.SortedFunc(maps.Keys(m), func(a, b refs.Feed) int {
			if c := cmp.Compare(m[a], m[b]); c != 0 {
				return c
			}
			return strings.Compare(a.String(), b.String())
		})
		if _, ok := m[p.self]; ok {
			keys = slices.DeleteFunc(keys, func(k refs.Feed) bool { return k == p.self })
			keys = slices.Insert(keys, 0, p.self)
		}
		var out []any
		for _, k := range keys {
			v := m[k]
			if first && v < 0 {
				continue
			}
			if meta {
				out = append(out, struct {
					ID   string  `json:"id"`
					Hops float64 `json:"hops"`
				}{k.String(), v})
			} else {
				out = append(out, k.String())
			}
		}
		return out
	})
}

// hopChanges sends the hops, then their changes with live, each as fn
// turns them into items (first is true for the first chunk sent).
func (p *Plugin) hopChanges(ctx context.Context, req *muxrpc.Request, o opts, fn func(first bool, m map[refs.Feed]float64) []any) {
	if !o.isTrue("live") {
		for _, v := range fn(true, p.g.Hops(p.self, p.max)) {
			if send(req, v) != nil {
				return
			}
		}
		return
	}
	now, q, stop := p.hub.listen()
	defer stop()
	first := true
	if !o.isFalse("old") {
		q.push(now)
	}
	q.drain(ctx, req, func(v any) []any {
		out := fn(first, v.(map[refs.Feed]float64))
		first = false
		return out
	})
}

// edge is a live item of friends.stream.
type edge struct {
	From  string `json:"from"`
	To    string `json:"to"`
	Value any    `json:"value"`
}

// stream is ssb-friends' legacy stream: the graph as get returns it, then
// every edge set ({from, to, value} in legacy values), live until the
// caller ends it.
func (p *Plugin) stream(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	q := newQueue()
	edges, stop := p.g.Watch(func(from, to refs.Feed, v int) {
		q.push(edge{from.String(), to.String(), legacy(v, true)})
	})
	defer stop()
	if req.Stream().Send(legacyGraph(edges)) != nil {
		return
	}
	q.drain(ctx, req, func(v any) []any { return []any{v} })
}
