package scuttlebutt

// Flow control, checked on the stream's buffers: a peer that does not read
// never makes a stream hold more than a page of history and the live queue
// limit, whatever the replica does meanwhile; and with WithMTU, history goes
// out in rounds of at most MTU bytes in scuttle-depth order.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// flowDoc is a minimal Model-like Doc: the latest update per key, history
// in order by scan. (The real Model lives in a package that imports this
// one.)
type flowDoc struct {
	mu   sync.Mutex
	byK  map[string]Update
	keys []string
}

func newFlowDoc() *flowDoc { return &flowDoc{byK: map[string]Update{}} }

func (d *flowDoc) key(u Update) string {
	var c []json.RawMessage
	json.Unmarshal(u.Change, &c)
	return string(c[0])
}

func (d *flowDoc) ApplyUpdate(u Update) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	k := d.key(u)
	if old, ok := d.byK[k]; ok && !u.Newer(old) {
		return false
	}
	if _, ok := d.byK[k]; !ok {
		d.keys = append(d.keys, k)
	}
	d.byK[k] = u
	return true
}

func (d *flowDoc) sorted(clock Clock, after *Update) []Update {
	var out []Update
	for _, u := range d.byK {
		if clock.Lacks(u) && (after == nil || u.Newer(*after)) {
			out = append(out, u)
		}
	}
	SortHistory(out)
	return out
}

func (d *flowDoc) History(clock Clock) []Update {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sorted(clock, nil)
}

func (d *flowDoc) ScanHistory(clock Clock, after *Update, fn func(Update) bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.sorted(clock, after) {
		if !fn(u) {
			return
		}
	}
}

func (d *flowDoc) state() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var parts []string
	for k, u := range d.byK {
		parts = append(parts, k+"="+string(u.Change))
	}
	slices.Sort(parts)
	return strings.Join(parts, ";")
}

func flowSet(t *testing.T, r *Replica, key string, v int) {
	t.Helper()
	if _, err := r.LocalUpdate(json.RawMessage(fmt.Sprintf(`[%q,%d]`, key, v))); err != nil {
		t.Fatal(err)
	}
}

// buffered returns the updates a stream holds.
func (s *Stream) buffered() (page, live int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.page) - s.pageHead, len(s.queue) - s.qhead
}

// A peer that reads nothing while the replica takes 20,000 changes on top
// of 5,000 keys: the stream never holds more than one page and the queue
// limit. Once the peer reads, it ends up with the replica's state.
func TestFlowSlowReaderBounded(t *testing.T) {
	const pageSize, queueLimit = 100, 50
	doc := newFlowDoc()
	r := New("A", doc, WithPageSize(pageSize), WithQueueLimit(queueLimit))
	for i := range 5000 {
		flowSet(t, r, "k"+strconv.Itoa(i), i)
	}
	s := r.NewStream()
	if _, err := s.Write([]byte(`{"id":"B","clock":{}}` + "\n")); err != nil {
		t.Fatal(err)
	}
	// The header and the first page go out; then the peer stops reading.
	first := make([]byte, 4096)
	n, err := s.Read(first)
	if err != nil {
		t.Fatal(err)
	}
	first = first[:n]
	maxPage, maxLive := 0, 0
	for i := range 20000 {
		flowSet(t, r, "k"+strconv.Itoa(i%7000), -i)
		p, l := s.buffered()
		maxPage, maxLive = max(maxPage, p), max(maxLive, l)
	}
	if maxPage > pageSize || maxLive > queueLimit {
		t.Fatalf("stream held %d history and %d live updates, limits %d and %d", maxPage, maxLive, pageSize, queueLimit)
	}

	// The peer reads everything now, and holds the replica's state.
	peerDoc := newFlowDoc()
	peer := New("B", peerDoc)
	ps := peer.NewStream()
	var out bytes.Buffer
	out.Write(first)
	if _, err := s.Drain(&out); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(out.Bytes(), []byte("\n"))
	for _, l := range lines {
		if _, err := ps.Write(l); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := peerDoc.state(), doc.state(); got != want {
		t.Fatalf("peer has %d bytes of state, want %d", len(got), len(want))
	}
	// Each key at most about twice: once in the first history pass, and
	// once more if it changed after the pass had passed it. Never once per
	// change.
	t.Logf("%d lines", len(lines))
	if n := len(lines); n > 2*7000+10 {
		t.Fatalf("%d lines for 7,000 keys changed 25,000 times", n)
	}
}

// With WithMTU, the history goes out in rounds of at most MTU bytes, one
// read each: the source with the most updates the peer lacks first, each
// source in timestamp order; "SYNC" only after the last round.
func TestFlowMTURounds(t *testing.T) {
	const mtu = 2000
	doc := newFlowDoc()
	r := New("A", doc, WithMTU(mtu))
	// Sources S0..S4 with 10, 20, 30, 40, 50 keys.
	for src := range 5 {
		for i := range 10 * (src + 1) {
			u := Update{Change: json.RawMessage(fmt.Sprintf(`["s%d-%d",%d]`, src, i, i)), Timestamp: float64(1000 + 10*i + src), Source: "S" + strconv.Itoa(src)}
			if !r.Apply(u) {
				t.Fatalf("Apply(%s) = false", u)
			}
		}
	}
	s := r.NewStream()
	if _, err := s.Write([]byte(`{"id":"B","clock":{"S0":1005}}` + "\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	var rounds [][]string
	for {
		n, err := s.read(buf, false)
		if err == errWouldBlock {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rounds = append(rounds, strings.Split(strings.TrimSuffix(string(buf[:n]), "\n"), "\n"))
	}
	if !strings.HasPrefix(rounds[0][0], `{"id":"A"`) || len(rounds[0]) != 1 {
		t.Fatalf("first read %q, want the header alone", rounds[0])
	}
	rounds = rounds[1:]
	last := rounds[len(rounds)-1]
	if last[len(last)-1] != `"SYNC"` {
		t.Fatalf("last read ends %q, want SYNC", last[len(last)-1])
	}
	rounds[len(rounds)-1] = last[:len(last)-1]
	seen := map[string]float64{}
	total := 0
	for i, round := range rounds {
		size := 0
		for _, l := range round {
			size += len(l) + 1
		}
		if size > mtu {
			t.Fatalf("round %d is %d bytes, MTU %d", i, size, mtu)
		}
		// Ranked by what each source lacks at the round's start: the
		// sources appear in blocks, the one lacking most first.
		var order []string
		for _, l := range round {
			var u []json.RawMessage
			json.Unmarshal([]byte(l), &u)
			var src string
			var ts float64
			json.Unmarshal(u[2], &src)
			json.Unmarshal(u[1], &ts)
			if ts <= seen[src] {
				t.Fatalf("round %d: %s at %v after %v", i, src, ts, seen[src])
			}
			seen[src] = ts
			if len(order) == 0 || order[len(order)-1] != src {
				if slices.Contains(order, src) {
					t.Fatalf("round %d: source %s in two blocks: %q", i, src, round)
				}
				order = append(order, src)
			}
			total++
		}
		if i == 0 && order[0] != "S4" {
			t.Fatalf("first round starts with %s, want S4 (50 updates lacking)", order[0])
		}
	}
	if want := 10 + 20 + 30 + 40 + 50 - 1; total != want { // S0's first is in the peer's clock
		t.Fatalf("%d updates sent, want %d", total, want)
	}
	t.Logf("%d rounds", len(rounds))
	if len(rounds) < 4 {
		t.Fatalf("%d rounds for %d updates under an MTU of %d", len(rounds), total, mtu)
	}
}

// With WithMTU, a peer reading slower than changes arrive is caught up in
// rounds built from its clock: a key changed many times costs one update.
func TestFlowMTUCoalesces(t *testing.T) {
	doc := newFlowDoc()
	r := New("A", doc, WithMTU(1000))
	s := r.NewStream()
	s.Write([]byte(`{"id":"B","clock":{}}` + "\n"))
	io.ReadAll(io.LimitReader(s, 1)) // start: header out
	var out bytes.Buffer
	s.Drain(&out)
	for i := range 5000 {
		flowSet(t, r, "k"+strconv.Itoa(i%10), i)
		if p, l := s.buffered(); p+l > 1000/20 {
			t.Fatalf("stream holds %d updates", p+l)
		}
	}
	out.Reset()
	s.Drain(&out)
	t.Logf("%d catch-up lines", bytes.Count(out.Bytes(), []byte("\n")))
	if n := bytes.Count(out.Bytes(), []byte("\n")); n > 10+50 {
		t.Fatalf("%d lines to catch up 10 keys changed 5,000 times", n)
	}
	peerDoc := newFlowDoc()
	ps := New("B", peerDoc).NewStream()
	ps.Write([]byte(`{"id":"A","clock":{}}` + "\n"))
	ps.Write(out.Bytes())
	if peerDoc.state() != doc.state() {
		t.Fatalf("peer %s, want %s", peerDoc.state(), doc.state())
	}
}
