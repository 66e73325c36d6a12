package scuttlebutt_test

// Randomized convergence tests: 3 to 7 replicas make random changes while
// links between them are opened, closed, half-closed and pumped in random
// order, with lines delivered late, in batches, split at random byte
// offsets, and with old lines delivered again. At the end every replica is
// linked in a line and pumped until nothing moves; all must then hold the
// same data. Failures are shrunk and replayed by rapid
// (-rapid.seed, -rapid.checks).

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
	"pgregory.net/rapid"
)

// cvNode is one replica under test.
type cvNode interface {
	replica() *scuttlebutt.Replica
	// change makes a random local change.
	change(t *rapid.T)
	// foreignChange returns the change of an update from a made-up source.
	foreignChange(t *rapid.T) json.RawMessage
	// state is what a user compares across replicas.
	state() string
}

type cvModel struct{ *model.Model }

var cvKeys = []string{"a", "b", "c", "d", "e"}

func (m cvModel) replica() *scuttlebutt.Replica { return m.Replica }

func (m cvModel) change(t *rapid.T) {
	key := rapid.SampledFrom(cvKeys).Draw(t, "key")
	var err error
	if rapid.IntRange(0, 3).Draw(t, "delete") == 0 {
		err = m.Delete(key)
	} else {
		err = m.Set(key, rapid.IntRange(0, 99).Draw(t, "value"))
	}
	if err != nil {
		t.Fatalf("%s: %v", m.ID(), err)
	}
}

func (m cvModel) foreignChange(t *rapid.T) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`[%q,%d]`, rapid.SampledFrom(cvKeys).Draw(t, "key"), rapid.IntRange(0, 99).Draw(t, "value")))
}

func (m cvModel) state() string {
	js, _ := json.Marshal(m.Snapshot()) // sorted keys
	return string(js)
}

type cvEvents struct {
	*events.Emitter
	heard *int // events delivered to listeners, local or remote
}

func newCVEvents(id string, opts ...scuttlebutt.Option) cvEvents {
	e := cvEvents{Emitter: events.New(id, opts...), heard: new(int)}
	for _, name := range []string{"a", "b"} {
		e.On(name, func([]json.RawMessage) { *e.heard++ })
	}
	return e
}

func (e cvEvents) replica() *scuttlebutt.Replica { return e.Replica }

func (e cvEvents) change(t *rapid.T) {
	if err := e.Emit(rapid.SampledFrom([]string{"a", "b"}).Draw(t, "event"), rapid.IntRange(0, 99).Draw(t, "arg")); err != nil {
		t.Fatalf("%s: %v", e.ID(), err)
	}
}

func (e cvEvents) foreignChange(t *rapid.T) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`[%q,%d]`, rapid.SampledFrom([]string{"a", "b"}).Draw(t, "event"), rapid.IntRange(0, 99).Draw(t, "arg")))
}

func (e cvEvents) state() string { return strings.Join(utHistory(e.Replica), "\n") }

// cvEnd is one stream of a link and the lines it has produced that the
// other end has not received yet.
type cvEnd struct {
	node      int
	s         *scuttlebutt.Stream
	pending   []string // lines with their newline
	delivered []string // lines the other end received, for duplicates
	ended     bool     // s's output ended
	told      bool     // the other end was told with CloseWrite
	inClosed  bool     // s's input ended: lines for it are dropped
}

type cvLink struct{ e [2]*cvEnd }

type cvWorld struct {
	nodes   []cvNode
	links   []*cvLink
	foreign []float64 // next timestamp offset of each node's made-up source
	base    float64   // timestamps of made-up sources are base + offset
	applied int       // updates applied by made-up sources (for events)
	changes int       // local changes made
}

func (w *cvWorld) linked(i, j int) bool {
	return slices.ContainsFunc(w.links, func(l *cvLink) bool {
		return l.e[0].node == i && l.e[1].node == j || l.e[0].node == j && l.e[1].node == i
	})
}

func (w *cvWorld) connect(i, j int) {
	w.links = append(w.links, &cvLink{e: [2]*cvEnd{
		{node: i, s: w.nodes[i].replica().NewStream()},
		{node: j, s: w.nodes[j].replica().NewStream()},
	}})
}

// drain moves what end x's stream has now into its pending lines.
func (w *cvWorld) drain(t *rapid.T, x *cvEnd) int {
	if x.ended {
		return 0
	}
	out, eof := utDrain(t, x.s)
	for _, l := range utSplitLines(t, out) {
		x.pending = append(x.pending, l+"\n")
	}
	if eof {
		x.ended = true
		return len(out) + 1
	}
	return len(out)
}

// deliver writes the first k pending lines of x to the other end y, with
// dups old lines inserted among them, in chunks cut at random offsets. Old
// lines come again only after x's "SYNC": in a peer's history a line older
// than one before it is a protocol error (see TestHostileHistoryOutOfOrder).
func (w *cvWorld) deliver(t *rapid.T, x, y *cvEnd, k, dups int, cut func(n int) []int) int {
	batch := slices.Clone(x.pending[:k])
	x.pending = x.pending[k:]
	if !slices.Contains(x.delivered, `"SYNC"`+"\n") {
		dups = 0
	}
	for range dups {
		p := rapid.IntRange(0, len(batch)).Draw(t, "dupAt")
		cands := append(slices.Clone(x.delivered), batch[:p]...)
		if len(cands) == 0 {
			break
		}
		batch = slices.Insert(batch, p, cands[rapid.IntRange(0, len(cands)-1).Draw(t, "dupOf")])
	}
	x.delivered = append(x.delivered, batch...)
	data := []byte(strings.Join(batch, ""))
	if !y.inClosed {
		prev := 0
		for _, at := range append(cut(len(data)), len(data)) {
			if _, err := y.s.Write(data[prev:at]); err != nil {
				t.Fatalf("node %d: Write: %v", y.node, err)
			}
			prev = at
		}
	}
	moved := len(data)
	if x.ended && len(x.pending) == 0 && !x.told {
		x.told = true
		y.s.CloseWrite()
		moved++
	}
	return moved
}

// closeInput ends the input of x's stream, as if the peer had ended.
func (w *cvWorld) closeInput(x, y *cvEnd) {
	x.s.CloseWrite()
	x.inClosed = true
	y.pending = nil
}

// prune forgets links whose streams have both closed.
func (w *cvWorld) prune() {
	w.links = slices.DeleteFunc(w.links, func(l *cvLink) bool {
		return utClosed(l.e[0].s.Done()) && utClosed(l.e[1].s.Done())
	})
}

// settle pumps every link in order, without loss or duplicates, until
// nothing moves.
func (w *cvWorld) settle(t *rapid.T) {
	noCut := func(int) []int { return nil }
	for round := 0; ; round++ {
		if round > 500 {
			t.Fatal("not quiescent after 500 rounds")
		}
		moved := 0
		for _, l := range w.links {
			for d := range 2 {
				x, y := l.e[d], l.e[1-d]
				moved += w.drain(t, x)
				if len(x.pending) > 0 || x.ended && !x.told {
					moved += w.deliver(t, x, y, len(x.pending), 0, noCut)
				}
			}
		}
		if moved == 0 {
			return
		}
	}
}

func cvRun(t *rapid.T, newNode func(id string, opts ...scuttlebutt.Option) cvNode) *cvWorld {
	n := rapid.IntRange(3, 7).Draw(t, "replicas")
	w := &cvWorld{foreign: make([]float64, n)}
	// Made-up sources write either in the past, so that local changes win,
	// or five minutes ahead (within the default WithMaxClockSkew), so that
	// local changes must climb above them.
	w.base = float64(utT0.UnixMilli())
	if rapid.Bool().Draw(t, "futureForeign") {
		w.base = float64(scuttlebutt.Timestamp()) + 3e5
	}
	// In a signed world every replica signs (Ed25519) and verifies; made-up
	// sources, whose updates are not signed, are left out.
	signed := rapid.IntRange(0, 3).Draw(t, "signed") == 0
	for i := range n {
		var opts []scuttlebutt.Option
		id := fmt.Sprintf("N%d", i)
		if signed {
			opts = append(opts, scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(byte(i+1)), nil)))
			id = ""
		}
		if q := rapid.SampledFrom([]int{1, 2, 5, scuttlebutt.DefaultQueueLimit}).Draw(t, "queueLimit"); q != scuttlebutt.DefaultQueueLimit {
			opts = append(opts, scuttlebutt.WithQueueLimit(q))
		}
		// History in small pages, and delta batching in rounds of a few
		// updates, must converge as well.
		if pg := rapid.SampledFrom([]int{1, 2, 3, scuttlebutt.DefaultPageSize}).Draw(t, "pageSize"); pg != scuttlebutt.DefaultPageSize {
			opts = append(opts, scuttlebutt.WithPageSize(pg))
		}
		if mtu := rapid.SampledFrom([]int{0, 0, 1, 100, 300}).Draw(t, "mtu"); mtu > 0 {
			opts = append(opts, scuttlebutt.WithMTU(mtu))
		}
		w.nodes = append(w.nodes, newNode(id, opts...))
	}
	cut := func(size int) []int {
		var at []int
		for range rapid.IntRange(0, 3).Draw(t, "cuts") {
			at = append(at, rapid.IntRange(0, size).Draw(t, "cut"))
		}
		slices.Sort(at)
		return at
	}
	pickLink := func() *cvLink { return w.links[rapid.IntRange(0, len(w.links)-1).Draw(t, "link")] }

	steps := rapid.IntRange(10, 400).Draw(t, "steps")
	for range steps {
		switch rapid.IntRange(0, 9).Draw(t, "action") {
		case 0, 1: // a local change
			w.nodes[rapid.IntRange(0, n-1).Draw(t, "node")].change(t)
			w.changes++
		case 2: // an update from a made-up source of one node; such
			// sources collide on timestamps, so ties are exercised
			if signed {
				continue
			}
			i := rapid.IntRange(0, n-1).Draw(t, "node")
			w.foreign[i] += float64(rapid.IntRange(1, 3).Draw(t, "foreignStep"))
			u := scuttlebutt.Update{Change: w.nodes[i].foreignChange(t), Timestamp: w.base + w.foreign[i], Source: fmt.Sprintf("F%d", i)}
			if w.nodes[i].replica().Apply(u) {
				w.applied++
			}
		case 3: // connect two replicas
			i, j := rapid.IntRange(0, n-1).Draw(t, "from"), rapid.IntRange(0, n-1).Draw(t, "to")
			if i != j && !w.linked(i, j) {
				w.connect(i, j)
			}
		case 4: // drop a link, losing what is in flight
			if len(w.links) > 0 {
				l := pickLink()
				l.e[0].s.Close()
				l.e[1].s.Close()
			}
		case 5: // one side of a link ends, or a replica disposes
			if len(w.links) == 0 {
				break
			}
			if rapid.Bool().Draw(t, "dispose") {
				i := rapid.IntRange(0, n-1).Draw(t, "node")
				w.nodes[i].replica().Dispose()
				for _, l := range w.links {
					for d := range 2 {
						if l.e[d].node == i {
							l.e[d].inClosed = true
							l.e[1-d].pending = nil
						}
					}
				}
			} else {
				l := pickLink()
				d := rapid.IntRange(0, 1).Draw(t, "side")
				w.closeInput(l.e[d], l.e[1-d])
			}
		case 6, 7: // read a stream's output into its link
			if len(w.links) > 0 {
				w.drain(t, pickLink().e[rapid.IntRange(0, 1).Draw(t, "side")])
			}
		default: // deliver some of a link's lines, late and batched
			if len(w.links) == 0 {
				break
			}
			l := pickLink()
			d := rapid.IntRange(0, 1).Draw(t, "side")
			x, y := l.e[d], l.e[1-d]
			if len(x.pending) == 0 {
				break
			}
			k := rapid.IntRange(1, len(x.pending)).Draw(t, "lines")
			w.deliver(t, x, y, k, rapid.IntRange(0, 2).Draw(t, "dups"), cut)
		}
		w.prune()
	}

	// Finish: either let the links in flight deliver, or drop them; then
	// link the replicas in a line and pump until nothing moves.
	if rapid.Bool().Draw(t, "dropInFlight") {
		for _, l := range w.links {
			l.e[0].s.Close()
			l.e[1].s.Close()
		}
		w.prune()
	}
	w.settle(t)
	w.prune()
	for i := range n - 1 {
		if !w.linked(i, i+1) {
			w.connect(i, i+1)
		}
	}
	w.settle(t)
	for _, l := range w.links {
		for _, x := range l.e {
			if !utClosed(x.s.Synced()) && !x.inClosed {
				t.Fatalf("node %d: an open stream is not synced after settling", x.node)
			}
			if err := x.s.Err(); err != nil {
				t.Fatalf("node %d: stream failed: %v", x.node, err)
			}
		}
	}

	first := w.nodes[0]
	for _, nd := range w.nodes[1:] {
		if a, b := first.state(), nd.state(); a != b {
			t.Fatalf("%s and %s differ:\n%s\n%s", first.replica().ID(), nd.replica().ID(), a, b)
		}
		if a, b := utHistory(first.replica()), utHistory(nd.replica()); !slices.Equal(a, b) {
			t.Fatalf("histories of %s and %s differ:\n%q\n%q", first.replica().ID(), nd.replica().ID(), a, b)
		}
	}
	return w
}

// cvClocksEqual checks that every replica has the same clock.
func cvClocksEqual(t *rapid.T, w *cvWorld) {
	c0 := w.nodes[0].replica().Clock()
	for _, nd := range w.nodes[1:] {
		if c := nd.replica().Clock(); !cvSameClock(c0, c) {
			t.Fatalf("clocks of %s and %s differ:\n%v\n%v", w.nodes[0].replica().ID(), nd.replica().ID(), c0, c)
		}
	}
}

func cvSameClock(a, b scuttlebutt.Clock) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Model replicas converge to the same key-value pairs and the same retained
// updates, and each replica's clock covers those updates, so that no peer
// would send it anything more.
//
// The clocks themselves need not be equal: a Model keeps only the latest
// update of each key, so an update that was superseded on one replica before
// another heard of it advances the first one's clock for its source and
// never reaches the second (npm scuttlebutt behaves the same). Events keep
// everything, and their clocks are compared below.
func TestConvergenceModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := cvRun(t, func(id string, opts ...scuttlebutt.Option) cvNode { return cvModel{model.New(id, opts...)} })
		for _, nd := range w.nodes {
			c := nd.replica().Clock()
			for _, u := range nd.replica().History(nil) {
				if c.Lacks(u) {
					t.Fatalf("%s's clock %v lacks its own update %v", nd.replica().ID(), c, u)
				}
			}
		}
	})
}

// Event emitters converge to the same sorted history and clock, and every
// replica's listeners hear every event exactly once.
func TestConvergenceEvents(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		w := cvRun(t, func(id string, opts ...scuttlebutt.Option) cvNode { return newCVEvents(id, opts...) })
		cvClocksEqual(t, w)
		total := w.changes + w.applied
		for _, nd := range w.nodes {
			if h := *nd.(cvEvents).heard; h != total {
				t.Fatalf("%s heard %d events, want %d", nd.replica().ID(), h, total)
			}
		}
	})
}
