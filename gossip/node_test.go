package gossip_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/gossip"
)

// A world runs Nodes in lockstep on a manual clock: step runs a round on
// every node, then moves lines over the links until none is left.
type world struct {
	t     *testing.T
	clock *clock
	nodes []*wnode
	links []*wlink
}

type wnode struct {
	*gossip.Node
	got []*gossip.Message
}

type wlink struct {
	a, b   *wnode
	la, lb gossip.LinkID
	drop   func(line string) bool // lines for which drop is true are lost
	lines  int                    // lines carried
}

func newWorld(t *testing.T) *world {
	return &world{t: t, clock: fixedClock(1_000_000_000_000_000)}
}

func (w *world) add(seed string, cfg gossip.Config) *wnode {
	cfg.Now = w.clock.Now
	n := &wnode{Node: newNode(w.t, seed, cfg)}
	w.nodes = append(w.nodes, n)
	return n
}

func (w *world) connect(a, b *wnode) *wlink {
	l := &wlink{a: a, b: b, la: a.AddLink(), lb: b.AddLink()}
	w.links = append(w.links, l)
	return l
}

func (w *world) disconnect(l *wlink) {
	l.a.RemoveLink(l.la)
	l.b.RemoveLink(l.lb)
	for i, x := range w.links {
		if x == l {
			w.links = append(w.links[:i], w.links[i+1:]...)
			break
		}
	}
}

// step advances the clock by one interval and runs one round everywhere.
func (w *world) step() {
	w.clock.Advance(gossip.DefaultInterval)
	for _, n := range w.nodes {
		n.Round()
	}
	w.deliver()
}

func (w *world) steps(k int) {
	for range k {
		w.step()
	}
}

func (w *world) deliver() {
	for moved := true; moved; {
		moved = false
		for _, l := range w.links {
			moved = l.move(w.t, l.a, l.la, l.b, l.lb) || moved
			moved = l.move(w.t, l.b, l.lb, l.a, l.la) || moved
		}
	}
}

func (l *wlink) move(t *testing.T, from *wnode, fl gossip.LinkID, to *wnode, tl gossip.LinkID) bool {
	out := from.Output(fl)
	for _, line := range out {
		l.lines++
		if l.drop != nil && l.drop(line) {
			continue
		}
		m, err := to.Receive(tl, []byte(line))
		if err != nil && !errors.Is(err, gossip.ErrReplay) {
			t.Errorf("Receive(%.100s): %v", line, err)
		}
		if m != nil {
			to.got = append(to.got, m)
		}
	}
	return len(out) > 0
}

// payloads returns the payloads n delivered, in order.
func (n *wnode) payloads() []string {
	var ps []string
	for _, m := range n.got {
		ps = append(ps, string(m.Data))
	}
	return ps
}

func wantPayloads(t *testing.T, name string, n *wnode, want ...string) {
	t.Helper()
	if got := n.payloads(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s delivered %v, want %v", name, got, want)
	}
}

func publish(t *testing.T, n *wnode, payloads ...string) []gossip.Message {
	t.Helper()
	var ms []gossip.Message
	for _, p := range payloads {
		m, err := n.Publish([]byte(p))
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// A message published before anyone is connected reaches peers that
// connect later (secure-gossip drops it at the next round), and a peer that
// joins a line later gets everything from its neighbour.
func TestLateJoiner(t *testing.T) {
	w := newWorld(t)
	a, b, c := w.add("a", gossip.Config{}), w.add("b", gossip.Config{}), w.add("c", gossip.Config{})
	publish(t, a, `{"n":1}`, `{"n":2}`)
	w.steps(5)
	w.connect(a, b)
	w.steps(3)
	wantPayloads(t, "b", b, `{"n":1}`, `{"n":2}`)
	publish(t, a, `{"n":3}`)
	w.steps(3)
	w.connect(b, c)
	w.steps(3)
	wantPayloads(t, "b", b, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	wantPayloads(t, "c", c, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	if s := a.Stats(); s.Own != 0 {
		t.Errorf("a got %d of its own messages back: flooding back to the sender", s.Own)
	}
	if s := c.Stats(); s.Duplicates != 0 {
		t.Errorf("c got %d duplicates", s.Duplicates)
	}
}

// A peer that reconnects gets what it missed, and only that: the digest
// says what it has.
func TestReconnectFillsTheGap(t *testing.T) {
	w := newWorld(t)
	a, b := w.add("a", gossip.Config{}), w.add("b", gossip.Config{})
	l := w.connect(a, b)
	var old []string
	for i := range 50 {
		old = append(old, fmt.Sprintf(`{"old":%d}`, i))
	}
	publish(t, a, old...)
	w.steps(3)
	wantPayloads(t, "b", b, old...)
	w.disconnect(l)
	publish(t, a, `{"new":1}`, `{"new":2}`)
	w.steps(3)
	before := a.Stats().Sent
	w.connect(a, b)
	w.steps(3)
	wantPayloads(t, "b", b, append(old, `{"new":1}`, `{"new":2}`)...)
	if sent := a.Stats().Sent - before; sent != 2 {
		t.Errorf("a sent %d messages on reconnecting, want the 2 b missed", sent)
	}
	if s := b.Stats(); s.Duplicates != 0 {
		t.Errorf("b got %d duplicates", s.Duplicates)
	}
}

// Messages that arrive out of order are all delivered (secure-gossip drops
// anything below the highest seq it has seen).
func TestOutOfOrder(t *testing.T) {
	pub := mustKeys(t, "js publisher")
	n := newNode(t, "receiver", gossip.Config{})
	l := n.AddLink()
	for _, seq := range []int64{5, 2, 9, 0, 1} {
		m, err := n.Receive(l, jsEnvelope(t, pub, fmt.Sprintf(`{"seq":%d}`, seq), seq))
		if m == nil || err != nil {
			t.Fatalf("seq %d: %v, %v", seq, m, err)
		}
	}
	w := newWorld(t)
	a, b := w.add("a", gossip.Config{}), w.add("b", gossip.Config{})
	ms := publish(t, a, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	lb := b.AddLink()
	for _, i := range []int{2, 0, 1} {
		if m, err := b.Receive(lb, ms[i].Raw); m == nil || err != nil {
			t.Fatalf("Go message %d out of order: %v, %v", i, m, err)
		}
	}
}

// A relayer cannot re-send a message under a new seq: a Go message's seq
// is signed, and any message is recognised by its hash.
func TestReplay(t *testing.T) {
	w := newWorld(t)
	a := w.add("a", gossip.Config{})
	b := newNode(t, "b", gossip.Config{})
	lb := b.AddLink()
	ms := publish(t, a, `{"n":1}`)
	goMsg := ms[0]
	if m, _ := b.Receive(lb, goMsg.Raw); m == nil {
		t.Fatal("original not delivered")
	}
	seq := fmt.Sprint(goMsg.Seq)
	for _, newSeq := range []string{fmt.Sprint(goMsg.Seq + 1), "99", "0"} {
		replay := strings.Replace(string(goMsg.Raw), `"seq":`+seq+"}", `"seq":`+newSeq+"}", 1)
		m, err := b.Receive(lb, []byte(replay))
		if m != nil || !errors.Is(err, gossip.ErrReplay) {
			t.Errorf("Go message replayed with seq %s: %v, %v; want ErrReplay", newSeq, m, err)
		}
	}
	// A fresh node that never saw the original rejects the replay too.
	c := newNode(t, "c", gossip.Config{})
	lc := c.AddLink()
	replay := strings.Replace(string(goMsg.Raw), `"seq":`+seq+"}", `"seq":7}`, 1)
	if m, err := c.Receive(lc, []byte(replay)); m != nil || !errors.Is(err, gossip.ErrReplay) {
		t.Errorf("replay to a fresh node: %v, %v", m, err)
	}

	js := mustKeys(t, "js")
	orig := jsEnvelope(t, js, `{"hello":"world"}`, 3)
	if m, _ := b.Receive(lb, orig); m == nil {
		t.Fatal("JavaScript message not delivered")
	}
	for _, s := range []int64{4, 100, 0} {
		if m, err := b.Receive(lb, jsEnvelope(t, js, `{"hello":"world"}`, s)); m != nil || err != nil {
			t.Errorf("JavaScript message replayed with seq %d: %v, %v", s, m, err)
		}
	}
	if st := b.Stats(); st.Replayed != 6 || st.Delivered != 2 {
		t.Errorf("stats: %d replayed, %d delivered; want 6, 2", st.Replayed, st.Delivered)
	}
}

// Once a message has left the seen set, a replay of a signed seq is still
// refused: the publisher's seq spans remember it.
func TestReplayAfterForgetting(t *testing.T) {
	w := newWorld(t)
	a := w.add("a", gossip.Config{})
	b := newNode(t, "b", gossip.Config{MaxRetained: 1, MaxSeen: 1})
	lb := b.AddLink()
	ms := publish(t, a, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	for _, m := range ms {
		if got, err := b.Receive(lb, m.Raw); got == nil {
			t.Fatalf("not delivered: %v", err)
		}
	}
	if s := b.Stats(); s.Seen != 1 || s.Retained != 1 {
		t.Fatalf("seen %d, retained %d; want 1, 1", s.Seen, s.Retained)
	}
	if m, err := b.Receive(lb, ms[0].Raw); m != nil || !errors.Is(err, gossip.ErrReplay) {
		t.Errorf("forgotten message sent again: %v, %v; want ErrReplay", m, err)
	}
}

// Lines lost in transit are sent again once a digest shows them missing.
func TestLossRepair(t *testing.T) {
	w := newWorld(t)
	a, b := w.add("a", gossip.Config{}), w.add("b", gossip.Config{})
	l := w.connect(a, b)
	w.steps(2)
	lost := 0
	l.drop = func(line string) bool {
		if strings.Contains(line, `"n":2`) && lost == 0 {
			lost++
			return true
		}
		return false
	}
	publish(t, a, `{"n":1}`, `{"n":2}`, `{"n":3}`)
	w.step()
	if lost != 1 {
		t.Fatal("nothing was dropped")
	}
	wantPayloads(t, "b before the repair", b, `{"n":1}`, `{"n":3}`)
	w.steps(gossip.DefaultDigestEvery + 2)
	wantPayloads(t, "b", b, `{"n":1}`, `{"n":3}`, `{"n":2}`)
	if s := a.Stats(); s.Resent != 1 {
		t.Errorf("a resent %d, want 1", s.Resent)
	}
	// Then, once the resent message is confirmed, the link goes quiet: no
	// digests without something to confirm.
	w.steps(gossip.DefaultDigestEvery + 2)
	before := l.lines
	w.steps(5 * gossip.DefaultDigestEvery)
	if n := l.lines - before; n != 0 {
		t.Errorf("an idle link carried %d lines", n)
	}
}

// Memory is bounded: retained messages, the seen set and the queue of a
// link whose transport does not read.
func TestBounds(t *testing.T) {
	w := newWorld(t)
	a := w.add("a", gossip.Config{MaxRetained: 100, MaxSeen: 300, MaxQueue: 50})
	b := w.add("b", gossip.Config{MaxRetained: 100, MaxSeen: 300})
	w.connect(a, b)
	stuck := a.AddLink() // nobody reads its output
	for i := range 1000 {
		publish(t, a, fmt.Sprintf(`{"i":%d}`, i))
		if i%10 == 9 {
			w.step()
		}
	}
	w.step()
	if len(b.got) != 1000 {
		t.Errorf("b got %d messages, want 1000", len(b.got))
	}
	sa, sb := a.Stats(), b.Stats()
	if sa.Retained != 100 || sb.Retained != 100 || sb.Seen != 300 {
		t.Errorf("retained %d and %d, seen %d; want 100, 100, 300", sa.Retained, sb.Retained, sb.Seen)
	}
	if len(a.Output(stuck)) == 0 {
		t.Error("the stuck link got nothing")
	}
	// Retention in time.
	w.clock.Advance(gossip.DefaultRetainFor)
	w.step()
	if s := b.Stats(); s.Retained != 0 {
		t.Errorf("%d messages retained past RetainFor", s.Retained)
	}
}

// A stuck link's output is bounded by MaxBuffered and MaxQueue.
func TestStuckLinkBounded(t *testing.T) {
	w := newWorld(t)
	a := w.add("a", gossip.Config{MaxBuffered: 10 << 10, MaxQueue: 100})
	stuck := a.AddLink()
	for i := range 2000 {
		publish(t, a, fmt.Sprintf(`{"i":%d,"pad":"%s"}`, i, strings.Repeat("x", 100)))
		a.Round()
	}
	if s := a.Stats(); s.NotQueued == 0 {
		t.Errorf("nothing was refused: %+v", s)
	}
	total, last := 0, 0
	for _, line := range a.Output(stuck) {
		total += len(line) + 1
		last = len(line) + 1
	}
	if total-last >= 10<<10 {
		t.Errorf("%d bytes buffered for a stuck link, the bound is 10 KiB and one line", total)
	}
}

// A JavaScript peer never sends a digest: after JSAfter rounds it gets the
// retained messages, in seq order per publisher.
func TestJavaScriptPeerGetsBacklog(t *testing.T) {
	w := newWorld(t)
	a := w.add("a", gossip.Config{})
	ms := publish(t, a, `{"n":1}`, `{"n":2}`)
	js := a.AddLink()
	first := a.Output(js)
	if len(first) != 1 || !strings.HasPrefix(first[0], `{"gossip":"digest"`) {
		t.Fatalf("first output %q", first)
	}
	a.Round()
	if out := a.Output(js); len(out) != 0 {
		t.Fatalf("sent %d lines before JSAfter rounds", len(out))
	}
	a.Round()
	out := a.Output(js)
	if len(out) != 2 || out[0] != string(ms[0].Raw) || out[1] != string(ms[1].Raw) {
		t.Fatalf("backlog %q", out)
	}
	w.clock.Advance(time.Second)
}

// Messages that find a Go peer's queue full reach it later: the node asks
// the peer for its have once the queue has drained.
func TestQueueOverflowRecovers(t *testing.T) {
	w := newWorld(t)
	a := w.add("a", gossip.Config{MaxQueue: 10})
	b := w.add("b", gossip.Config{})
	w.connect(a, b)
	w.steps(2)
	var want []string
	for i := range 100 {
		want = append(want, fmt.Sprintf(`{"i":%d}`, i))
	}
	publish(t, a, want...)
	if s := a.Stats(); s.NotQueued != 90 {
		t.Fatalf("%d not queued, want 90", s.NotQueued)
	}
	w.steps(40)
	if len(b.got) != 100 {
		t.Fatalf("b got %d of 100", len(b.got))
	}
	seen := map[string]bool{}
	for _, p := range b.payloads() {
		seen[p] = true
	}
	for _, p := range want {
		if !seen[p] {
			t.Errorf("b lacks %s", p)
		}
	}
}
