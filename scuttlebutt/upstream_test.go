package scuttlebutt_test

// Ports of the test files of npm scuttlebutt@5.6.15 (test/*.js), one test per
// file, named after it. JavaScript delivers synchronously through piped
// streams; here each stream's output is moved to its peer with Drain and
// Write (utPump), so "synchronously" means "after pumping, with no
// goroutine and no waiting".
//
// Not ported: secure.js; signed updates are tested against npm's
// security option in security_interop_test.go.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// cleanup.js: streams created and ended one after another leave nothing
// behind. Upstream never connects its streams, so its check is trivial; here
// each stream first exchanges headers with a peer, so that it tails live
// updates, and is then ended. An ended stream must be gone from the
// replica's streams and receive no more output.
func TestUpstreamCleanup(t *testing.T) {
	e := events.New("E")
	peer := events.New("P")
	got := 0
	peer.On("tick", func([]json.RawMessage) { got++ })
	for i := range 20 {
		p := utConnect(e.Replica, peer.Replica, nil, nil)
		utPump(t, p)
		if !utClosed(p.a.Synced()) || !utClosed(p.b.Synced()) {
			t.Fatalf("stream %d: not synced after pumping", i)
		}
		// The stream tails: a live event reaches the peer.
		if err := e.Emit("tick", i); err != nil {
			t.Fatal(err)
		}
		utPump(t, p)
		if got != i+1 {
			t.Fatalf("stream %d: peer received %d ticks, want %d", i, got, i+1)
		}
		if n := e.Streams(); n != 1 {
			t.Fatalf("stream %d: Streams() = %d while open, want 1", i, n)
		}
		if i%2 == 0 {
			// End as a peer does: our input ends, our output drains and ends.
			p.a.CloseWrite()
			utPump(t, p)
		} else {
			p.a.Close()
			p.b.Close()
		}
		if !utClosed(p.a.Done()) || !utClosed(p.b.Done()) {
			t.Fatalf("stream %d: not closed after ending", i)
		}
		if n := e.Streams(); n != 0 {
			t.Fatalf("stream %d: Streams() = %d after close, want 0", i, n)
		}
		if n := peer.Streams(); n != 0 {
			t.Fatalf("stream %d: peer Streams() = %d after close, want 0", i, n)
		}
		// A closed stream gets no more output.
		if err := e.Emit("after", i); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := p.a.Drain(&buf); !errors.Is(err, io.EOF) || buf.Len() != 0 {
			t.Fatalf("stream %d: Drain after close = %q, %v; want nothing and io.EOF", i, buf.Bytes(), err)
		}
	}
}

// clone.js: Go has no clone(), which in JavaScript makes a second instance
// with the same id kept in sync through an in-process stream. Two replicas
// with one id would both write timestamps for that source and drop each
// other's updates, so the port uses a fresh id and checks the intent: a
// replica synced over a stream has the same history at once (after
// pumping), updates made on either side show up on the other, and ending the
// second one's stream leaves the first with no streams ("unclone" 0).
func TestUpstreamClone(t *testing.T) {
	a := model.New("A")
	if err := a.Set("foo", "bar"); err != nil {
		t.Fatal(err)
	}
	b := model.New("")
	p := utConnect(a.Replica, b.Replica, nil, nil)
	utPump(t, p)
	if !slices.Equal(utHistory(b.Replica), utHistory(a.Replica)) {
		t.Fatalf("history after sync:\n b %q\n a %q", utHistory(b.Replica), utHistory(a.Replica))
	}
	if err := b.Set("quux", "zaff"); err != nil {
		t.Fatal(err)
	}
	utPump(t, p)
	if !slices.Equal(utHistory(b.Replica), utHistory(a.Replica)) {
		t.Fatalf("history after a change on the copy:\n b %q\n a %q", utHistory(b.Replica), utHistory(a.Replica))
	}
	if v, _ := a.Get("quux"); string(v) != `"zaff"` {
		t.Fatalf(`a.Get("quux") = %s, want "zaff"`, v)
	}
	b.Dispose()
	utPump(t, p)
	if a.Streams() != 0 || b.Streams() != 0 {
		t.Fatalf("after b.Dispose: a has %d streams, b %d; want 0", a.Streams(), b.Streams())
	}
}

// dispose.js: Dispose ends a tailing read stream at once.
func TestUpstreamDispose(t *testing.T) {
	e := events.New("E")
	if err := e.Emit("a", 1); err != nil {
		t.Fatal(err)
	}
	var closeErr error
	closed := 0
	s := e.NewStream(scuttlebutt.Writable(false), scuttlebutt.OnClose(func(err error) { closed++; closeErr = err }))
	lines := utOut(t, s)
	if len(lines) != 3 || lines[2] != `"SYNC"` {
		t.Fatalf("read stream output = %q, want header, one event, SYNC", lines)
	}
	if utClosed(s.Done()) {
		t.Fatal("read stream closed before Dispose")
	}
	e.Dispose()
	out, eof := utDrain(t, s)
	if len(out) != 0 || !eof {
		t.Fatalf("after Dispose: Drain = %q, ended %v; want nothing, ended", out, eof)
	}
	if !utClosed(s.Done()) {
		t.Fatal("stream not closed after Dispose")
	}
	if closed != 1 || closeErr != nil {
		t.Fatalf("OnClose called %d times with %v, want once with nil", closed, closeErr)
	}
	if e.Streams() != 0 {
		t.Fatalf("Streams() = %d after Dispose, want 0", e.Streams())
	}
}

// events.js: two emitters emit three events each, then connect; each
// listener sees all six, and both keep the same events.
func TestUpstreamEvents(t *testing.T) {
	a, b := events.New("A"), events.New("B")
	var gotA, gotB []string
	a.On("a", func(args []json.RawMessage) { gotA = append(gotA, string(args[0])) })
	b.On("a", func(args []json.RawMessage) { gotB = append(gotB, string(args[0])) })
	for i := range 3 {
		if err := a.Emit("a", "A"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit("a", "B"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	utPump(t, utConnect(a.Replica, b.Replica, nil, nil))
	if len(gotA) != 6 || len(gotB) != 6 {
		t.Fatalf("listeners saw %d and %d events, want 6 each: %q %q", len(gotA), len(gotB), gotA, gotB)
	}
	slices.Sort(gotA)
	slices.Sort(gotB)
	if !slices.Equal(gotA, gotB) {
		t.Fatalf("events differ: %q vs %q", gotA, gotB)
	}
	ea, eb := a.Events("a"), b.Events("a")
	if len(ea) != 6 || !slices.EqualFunc(ea, eb, func(x, y scuttlebutt.Update) bool { return x.String() == y.String() }) {
		t.Fatalf("Events(\"a\") differ:\n%v\n%v", ea, eb)
	}
}

// header.js: the header each stream receives carries the peer's id.
func TestUpstreamHeader(t *testing.T) {
	a, b, c := model.New("A"), model.New("B"), model.New("C")
	seen := map[string][]string{}
	rec := func(name string) scuttlebutt.StreamOption {
		return scuttlebutt.OnHeader(func(h scuttlebutt.Header) { seen[name] = append(seen[name], h.ID) })
	}
	ab := utConnect(a.Replica, b.Replica, []scuttlebutt.StreamOption{rec("a")}, []scuttlebutt.StreamOption{rec("b-a")})
	bc := utConnect(b.Replica, c.Replica, []scuttlebutt.StreamOption{rec("b-c")}, []scuttlebutt.StreamOption{rec("c")})
	utPump(t, ab, bc)
	want := map[string]string{"a": "B", "b-a": "A", "b-c": "C", "c": "B"}
	for name, id := range want {
		if !slices.Equal(seen[name], []string{id}) {
			t.Errorf("stream %s: headers from %q, want [%s]", name, seen[name], id)
		}
	}
	if h, ok := ab.a.PeerHeader(); !ok || h.ID != "B" {
		t.Errorf("PeerHeader() = %+v, %v; want id B", h, ok)
	}
}

// index.js: an update applies once and shows in Get and History; an older
// one from the same source does not; History filters by a clock, where a
// source missing from the clock means "send everything".
func TestUpstreamIndex(t *testing.T) {
	t.Run("updates appear in history", func(t *testing.T) {
		g := model.New("G")
		ts := float64(utT0.UnixMilli())
		u := scuttlebutt.Update{Change: json.RawMessage(`["key",0.25]`), Timestamp: ts, Source: "source"}
		if !g.Apply(u) {
			t.Fatal("Apply returned false for a new update")
		}
		if v, _ := g.Get("key"); string(v) != "0.25" {
			t.Fatalf("Get = %s, want 0.25", v)
		}
		want := []string{`[["key",0.25],1700000000000,"source"]`}
		if h := utHistory(g.Replica); !slices.Equal(h, want) {
			t.Fatalf("History = %q, want %q", h, want)
		}
		older := scuttlebutt.Update{Change: json.RawMessage(`["key",0.5]`), Timestamp: ts - 1, Source: "source"}
		if g.Apply(older) {
			t.Fatal("Apply returned true for an older update")
		}
		if h := utHistory(g.Replica); !slices.Equal(h, want) {
			t.Fatalf("History after an older update = %q, want %q", h, want)
		}
		if v, _ := g.Get("key"); string(v) != "0.25" {
			t.Fatalf("Get after an older update = %s, want 0.25", v)
		}
	})
	t.Run("can filter history with a clock", func(t *testing.T) {
		g := model.New("G")
		ts := float64(utT0.UnixMilli())
		for _, src := range []string{"A", "B", "C"} {
			if !g.Apply(scuttlebutt.Update{Change: json.RawMessage(`["` + src + `","` + src + src + src + `"]`), Timestamp: ts, Source: src}) {
				t.Fatalf("Apply from %s failed", src)
			}
		}
		clock := scuttlebutt.Clock{"A": ts, "B": ts, "C": ts}
		if h := g.History(clock); len(h) != 0 {
			t.Fatalf("History(all seen) = %v, want nothing", h)
		}
		clock["B"] = ts - 1
		if h := g.History(clock); len(h) != 1 || h[0].Source != "B" {
			t.Fatalf("History(B behind) = %v, want B's update", h)
		}
		delete(clock, "C")
		h := g.History(clock)
		if len(h) != 2 || h[0].Source != "B" || h[1].Source != "C" {
			t.Fatalf("History(B behind, C unknown) = %v, want B's then C's update", h)
		}
	})
}

// integrate.js: two models over JSON streams; a change on one is visible on
// the other once the streams have been pumped.
func TestUpstreamIntegrate(t *testing.T) {
	g1, g2 := model.New("G1"), model.New("G2")
	p := utConnect(g1.Replica, g2.Replica, nil, nil)
	utPump(t, p)
	if err := g1.Set("key", 0.75); err != nil {
		t.Fatal(err)
	}
	p.pumpOnce(t) // one pass suffices: the update is queued at once
	if v, _ := g2.Get("key"); string(v) != "0.75" {
		t.Fatalf("g2.Get(key) = %s, want 0.75", v)
	}
	if err := g2.Set("other", "x"); err != nil {
		t.Fatal(err)
	}
	p.pumpOnce(t)
	if v, _ := g1.Get("other"); string(v) != `"x"` {
		t.Fatalf(`g1.Get(other) = %s, want "x"`, v)
	}
}

// integrate2.js: three models in a triangle; a change on one reaches the
// other two, and the redundant copies are dropped as old data, so each
// replica applies the change exactly once.
func TestUpstreamIntegrate2(t *testing.T) {
	g := []*model.Model{model.New("G1"), model.New("G2"), model.New("G3")}
	applied := make([]int, 3)
	old := make([]int, 3)
	for i, m := range g {
		m.OnUpdate(func(scuttlebutt.Update) { applied[i]++ })
		m.OnOldData(func(scuttlebutt.Update) { old[i]++ })
	}
	pairs := []*utPair{
		utConnect(g[0].Replica, g[1].Replica, nil, nil),
		utConnect(g[1].Replica, g[2].Replica, nil, nil),
		utConnect(g[2].Replica, g[0].Replica, nil, nil),
	}
	utPump(t, pairs...)
	if err := g[0].Set("key", 0.5); err != nil {
		t.Fatal(err)
	}
	utPump(t, pairs...)
	for i, m := range g {
		if v, _ := m.Get("key"); string(v) != "0.5" {
			t.Errorf("g%d.Get(key) = %s, want 0.5", i+1, v)
		}
		if applied[i] != 1 {
			t.Errorf("g%d applied the change %d times, want 1", i+1, applied[i])
		}
	}
	// npm scuttlebutt sends 4 redundant copies here (echoes included); one
	// per triangle edge that the update crosses twice is the most that
	// remains without echoes.
	if total := old[0] + old[1] + old[2]; total < 1 || total > 3 {
		t.Errorf("old data seen %v times, want between 1 and 3 in all", old)
	}
}

// iterate.js: keys keep the order they were first set in, and every value is
// visited.
func TestUpstreamIterate(t *testing.T) {
	m := model.New("M")
	for i, k := range []string{"a", "o", "e", "u", "i"} {
		if err := m.Set(k, i); err != nil {
			t.Fatal(err)
		}
	}
	if keys := m.Keys(); !slices.Equal(keys, []string{"a", "o", "e", "u", "i"}) {
		t.Fatalf("Keys() = %q, want [a o e u i]", keys)
	}
	snap := m.Snapshot()
	for i, k := range []string{"a", "o", "e", "u", "i"} {
		if string(snap[k]) != strconv.Itoa(i) {
			t.Errorf("Snapshot()[%q] = %s, want %d", k, snap[k], i)
		}
	}
	if len(snap) != 5 {
		t.Errorf("Snapshot() has %d keys, want 5", len(snap))
	}
	js, _ := m.MarshalJSON()
	if string(js) != `{"a":0,"o":1,"e":2,"u":3,"i":4}` {
		t.Errorf("MarshalJSON() = %s", js)
	}
}

// meta.js: each stream's Meta arrives in its peer's header.
func TestUpstreamMeta(t *testing.T) {
	a, b, c := model.New("A"), model.New("B"), model.New("C")
	type hdr struct{ id, meta string }
	seen := map[string][]hdr{}
	rec := func(name string) scuttlebutt.StreamOption {
		return scuttlebutt.OnHeader(func(h scuttlebutt.Header) { seen[name] = append(seen[name], hdr{h.ID, string(h.Meta)}) })
	}
	ab := utConnect(a.Replica, b.Replica,
		[]scuttlebutt.StreamOption{scuttlebutt.Meta("A"), rec("as")},
		[]scuttlebutt.StreamOption{scuttlebutt.Meta("B"), rec("bs")})
	bc := utConnect(b.Replica, c.Replica,
		[]scuttlebutt.StreamOption{scuttlebutt.Meta("B"), rec("bs")},
		[]scuttlebutt.StreamOption{scuttlebutt.Meta("C"), rec("cs")})
	utPump(t, ab, bc)
	want := map[string][]hdr{
		"as": {{"B", `"B"`}},
		"bs": {{"A", `"A"`}, {"C", `"C"`}},
		"cs": {{"B", `"B"`}},
	}
	for name, w := range want {
		if !slices.Equal(seen[name], w) {
			t.Errorf("%s received headers %v, want %v", name, seen[name], w)
		}
	}
}

// model.js: an empty model is {}; OnChange and OnChangeKey see a set; a key
// set to null reads as absent and is left out of the JSON.
func TestUpstreamModel(t *testing.T) {
	a := model.New("A")
	if js, _ := a.MarshalJSON(); string(js) != "{}" {
		t.Fatalf("empty model MarshalJSON = %s, want {}", js)
	}
	var changes, keyChanges []string
	a.OnChange(func(k string, v json.RawMessage) {
		changes = append(changes, k+"="+string(v))
		if js, _ := a.MarshalJSON(); v != nil && string(js) != `{"key":0.5}` {
			t.Errorf("MarshalJSON in OnChange = %s", js)
		}
	})
	a.OnChangeKey("key", func(v json.RawMessage) { keyChanges = append(keyChanges, string(v)) })
	if err := a.Set("key", 0.5); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(changes, []string{"key=0.5"}) || !slices.Equal(keyChanges, []string{"0.5"}) {
		t.Fatalf("after Set: OnChange %q, OnChangeKey %q", changes, keyChanges)
	}
	if err := a.Set("key", nil); err != nil {
		t.Fatal(err)
	}
	if v, ok := a.Get("key"); ok || v != nil {
		t.Fatalf("Get after Set(nil) = %s, %v; want absent", v, ok)
	}
	if js, _ := a.MarshalJSON(); string(js) != "{}" {
		t.Fatalf("MarshalJSON after Set(nil) = %s, want {}", js)
	}
	if !slices.Equal(changes, []string{"key=0.5", "key="}) {
		t.Fatalf("OnChange after Set(nil) = %q", changes)
	}
}

// persist.js: a replica's read stream, written to a file with Tail(false),
// replays into a fresh replica's write stream: the histories are then
// equal, three updates were applied, and sync was signalled. Dispose ends a
// tailing read stream.
func TestUpstreamPersist(t *testing.T) {
	a := events.New("A")
	shown := 0
	a.On("message", func([]json.RawMessage) { shown++ })
	tailing := a.NewStream(scuttlebutt.Writable(false))
	for i := range 3 {
		if err := a.Emit("message", "hello_"+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	if shown != 3 {
		t.Fatalf("local listener saw %d messages, want 3", shown)
	}

	var file bytes.Buffer
	rs := a.NewStream(scuttlebutt.Writable(false), scuttlebutt.Tail(false))
	if _, err := rs.Drain(&file); !errors.Is(err, io.EOF) {
		t.Fatalf("Tail(false) read stream: Drain = %v, want io.EOF", err)
	}
	lines := utSplitLines(t, file.Bytes())
	if len(lines) != 5 || lines[0][0] != '{' || lines[4] != `"SYNC"` {
		t.Fatalf("persisted file = %q, want header, 3 updates, SYNC", lines)
	}
	rs.CloseWrite()
	utDrain(t, rs)
	if !utClosed(rs.Done()) {
		t.Fatal("Tail(false) read stream not closed after CloseWrite")
	}

	b := events.New("B")
	applied := 0
	b.OnUpdate(func(scuttlebutt.Update) { applied++ })
	ws := b.NewStream(scuttlebutt.Readable(false))
	if _, err := ws.Write(file.Bytes()); err != nil {
		t.Fatal(err)
	}
	if !utClosed(ws.Synced()) {
		t.Fatal("write stream not synced after the file's SYNC")
	}
	ws.CloseWrite()
	if out, eof := utDrain(t, ws); len(out) != 0 || !eof {
		t.Fatalf("write stream output = %q, ended %v; want nothing, ended", out, eof)
	}
	if !utClosed(ws.Done()) {
		t.Fatal("write stream not closed at the end of the file")
	}
	if applied != 3 {
		t.Fatalf("replay applied %d updates, want 3", applied)
	}
	if ha, hb := utHistory(a.Replica), utHistory(b.Replica); !slices.Equal(ha, hb) {
		t.Fatalf("histories differ:\n a %q\n b %q", ha, hb)
	}
	if ca, cb := a.Clock(), b.Clock(); len(ca) != 1 || ca["A"] != cb["A"] || len(cb) != 1 {
		t.Fatalf("clocks differ: a %v, b %v", ca, cb)
	}

	a.Dispose()
	if _, eof := utDrain(t, tailing); !eof || !utClosed(tailing.Done()) {
		t.Fatal("Dispose did not end the tailing read stream")
	}
}

// sendclock.js: a master stream (not writable, sends its clock) feeds a
// slave stream (not readable, sends its clock): the master's changes reach
// the slave, the slave's do not reach the master, and the chain goes on to a
// third replica. Setting foo on a again makes it win on b because
// timestamps are process-wide, as npm's monotonic-timestamp is: a change
// made later is newer, whichever replica makes it.
func TestUpstreamSendClock(t *testing.T) {
	a, b, c := model.New("A"), model.New("B"), model.New("C")
	master := []scuttlebutt.StreamOption{scuttlebutt.Writable(false), scuttlebutt.SendClock(true)}
	slave := []scuttlebutt.StreamOption{scuttlebutt.Readable(false), scuttlebutt.SendClock(true)}
	ab := utConnect(a.Replica, b.Replica, master, slave)
	utPump(t, ab)

	get := func(m *model.Model) string { v, _ := m.Get("foo"); return string(v) }
	if err := a.Set("foo", "bar"); err != nil {
		t.Fatal(err)
	}
	utPump(t, ab)
	if get(b) != `"bar"` {
		t.Fatalf("b.foo = %s after a set it, want \"bar\"", get(b))
	}
	if err := b.Set("foo", "baz"); err != nil {
		t.Fatal(err)
	}
	utPump(t, ab)
	if get(b) != `"baz"` || get(a) != `"bar"` {
		t.Fatalf("after b set foo: b %s, a %s; want baz, bar", get(b), get(a))
	}
	if err := a.Set("foo", "bar"); err != nil {
		t.Fatal(err)
	}
	utPump(t, ab)
	if get(b) != `"bar"` {
		t.Fatalf("b.foo = %s after a set it again, want \"bar\"", get(b))
	}

	bc := utConnect(b.Replica, c.Replica, master, slave)
	utPump(t, ab, bc)
	if get(b) != `"bar"` || get(c) != `"bar"` {
		t.Fatalf("after chaining b to c: b %s, c %s; want bar", get(b), get(c))
	}
	if !utClosed(ab.b.Synced()) || !utClosed(bc.b.Synced()) {
		t.Fatal("slave streams not synced")
	}
}

// sync.js: OnSync fires once on each side, after which both have the same
// history.
func TestUpstreamSync(t *testing.T) {
	a, b := events.New("A"), events.New("B")
	syncA, syncB := 0, 0
	for i := range 3 {
		if err := a.Emit("event", i+1); err != nil {
			t.Fatal(err)
		}
		if err := b.Emit("event", i+4); err != nil {
			t.Fatal(err)
		}
	}
	p := utConnect(a.Replica, b.Replica,
		[]scuttlebutt.StreamOption{scuttlebutt.OnSync(func() { syncA++ })},
		[]scuttlebutt.StreamOption{scuttlebutt.OnSync(func() { syncB++ })})
	if utClosed(p.a.Synced()) {
		t.Fatal("synced before any exchange")
	}
	utPump(t, p)
	if syncA != 1 || syncB != 1 {
		t.Fatalf("OnSync fired %d and %d times, want once each", syncA, syncB)
	}
	if !utClosed(p.a.Synced()) || !utClosed(p.b.Synced()) {
		t.Fatal("Synced() not closed")
	}
	if ha, hb := utHistory(a.Replica), utHistory(b.Replica); len(ha) != 6 || !slices.Equal(ha, hb) {
		t.Fatalf("histories after sync:\n a %q\n b %q", ha, hb)
	}
	if err := a.Emit("event", 7); err != nil {
		t.Fatal(err)
	}
	utPump(t, p)
	if syncA != 1 || syncB != 1 {
		t.Fatalf("OnSync fired again on a live update: %d, %d", syncA, syncB)
	}
}

// unstream.js: the replica's stream count goes down as streams end, one at a
// time or all at once with Dispose.
func TestUpstreamUnstream(t *testing.T) {
	end := func(t *testing.T, s *scuttlebutt.Stream) {
		t.Helper()
		s.CloseWrite()
		if _, eof := utDrain(t, s); !eof {
			t.Fatal("output did not end after CloseWrite")
		}
	}
	t.Run("one", func(t *testing.T) {
		m := model.New("")
		s := m.NewStream()
		if m.Streams() != 1 {
			t.Fatalf("Streams() = %d, want 1", m.Streams())
		}
		end(t, s)
		if m.Streams() != 0 {
			t.Fatalf("Streams() = %d after end, want 0", m.Streams())
		}
	})
	t.Run("two", func(t *testing.T) {
		m := model.New("")
		s, z := m.NewStream(), m.NewStream()
		if m.Streams() != 2 {
			t.Fatalf("Streams() = %d, want 2", m.Streams())
		}
		end(t, s)
		if m.Streams() != 1 {
			t.Fatalf("Streams() = %d after one end, want 1", m.Streams())
		}
		z.Close()
		if m.Streams() != 0 {
			t.Fatalf("Streams() = %d after both, want 0", m.Streams())
		}
	})
	t.Run("dispose", func(t *testing.T) {
		m := model.New("")
		closes := 0
		onClose := scuttlebutt.OnClose(func(error) { closes++ })
		s, z := m.NewStream(onClose), m.NewStream(onClose)
		m.Dispose()
		for _, st := range []*scuttlebutt.Stream{s, z} {
			if _, eof := utDrain(t, st); !eof {
				t.Fatal("output did not end after Dispose")
			}
		}
		if m.Streams() != 0 || closes != 2 {
			t.Fatalf("after Dispose: Streams() = %d, OnClose called %d times; want 0, 2", m.Streams(), closes)
		}
	})
}
