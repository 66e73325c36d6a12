package scuttlebutt_test

// The 22 edge cases found by probing npm scuttlebutt (protocol notes, part
// A8), as they apply to this package. Where JavaScript's behaviour is wrong
// or unsafe, the test checks the behaviour documented in doc.go instead, and
// says so. Case 16 (an unverified update still advances the clock) is about
// signing, which this package does not have yet, and is not here.
//
// Each test plays the peer by hand: it writes the peer's lines into a
// stream and reads the stream's output with Drain.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
	"github.com/scuttlego/scuttle/scuttlebutt/value"
)

const utPeerHeader = `{"id":"P","clock":{}}`

// utModelWithPeer returns a model with one key, and a second model
// connected to it and synced, to check that other streams go on working.
func utModelWithPeer(t *testing.T) (*model.Model, *model.Model, *utPair) {
	t.Helper()
	a := model.New("A")
	if err := a.Set("x", 1); err != nil {
		t.Fatal(err)
	}
	b := model.New("B")
	p := utConnect(a.Replica, b.Replica, nil, nil)
	utPump(t, p)
	return a, b, p
}

// utExpectFail writes line to s and checks that the stream fails with an
// error wrapping target and closes.
func utExpectFail(t *testing.T, s *scuttlebutt.Stream, line string, target error) {
	t.Helper()
	_, err := s.Write([]byte(line + "\n"))
	if !errors.Is(err, target) {
		t.Fatalf("Write(%q) = %v, want an error wrapping %v", line, err, target)
	}
	if !errors.Is(s.Err(), target) {
		t.Fatalf("Err() = %v, want an error wrapping %v", s.Err(), target)
	}
	if !utClosed(s.Done()) {
		t.Fatalf("stream not closed after %q", line)
	}
	if _, err := s.Write([]byte(`"SYNC"` + "\n")); err == nil {
		t.Fatal("Write after failure succeeded")
	}
	if _, err := s.Drain(io.Discard); err == nil {
		t.Fatal("Drain after failure returned no error")
	}
}

// utStillWorks checks that a and its synced peer b go on replicating.
func utStillWorks(t *testing.T, a, b *model.Model, p *utPair) {
	t.Helper()
	if err := a.Set("after", "ok"); err != nil {
		t.Fatalf("Set after a failed stream: %v", err)
	}
	utPump(t, p)
	if v, _ := b.Get("after"); string(v) != `"ok"` {
		t.Fatalf("other stream stopped: b.Get(after) = %s", v)
	}
	if a.Streams() != 1 {
		t.Fatalf("Streams() = %d, want 1 (the failed stream gone, the other open)", a.Streams())
	}
}

// Case 1. A header without a clock object: JavaScript emits 'error' with no
// argument and ends its output; here the stream fails with ErrProtocol and
// closes, and the replica and its other streams go on.
func TestEdge01HeaderWithoutClock(t *testing.T) {
	for _, h := range []string{`{}`, `{"id":"x"}`, `{"clock":0}`, `{"clock":null}`, `{"clock":false}`, `{"clock":"abc"}`, `{"clock":[]}`, `{"Clock":{}}`} {
		t.Run(h, func(t *testing.T) {
			a, b, p := utModelWithPeer(t)
			s := a.NewStream()
			utExpectFail(t, s, h, scuttlebutt.ErrProtocol)
			utStillWorks(t, a, b, p)
		})
	}
}

// Case 2. A line that is not JSON: JavaScript reports a SyntaxError and
// carries on; here the stream fails with ErrProtocol and closes.
func TestEdge02GarbageLine(t *testing.T) {
	for _, line := range []string{`garbage`, `{"id":"P","clock":{}`, `[["x",1],5,"P"`, `"SYNC`, `nul`, "\x00\xff"} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			a, b, p := utModelWithPeer(t)
			s := a.NewStream()
			utWrite(t, s, utPeerHeader)
			utExpectFail(t, s, line, scuttlebutt.ErrProtocol)
			utStillWorks(t, a, b, p)
		})
	}
}

// Case 3. An empty or whitespace-only line is an error in JavaScript too.
func TestEdge03BlankLine(t *testing.T) {
	for _, line := range []string{"", " ", "\t", "\r", "  \r"} {
		t.Run(strconv.Quote(line), func(t *testing.T) {
			a, b, p := utModelWithPeer(t)
			s := a.NewStream()
			utExpectFail(t, s, line, scuttlebutt.ErrProtocol)
			utStillWorks(t, a, b, p)
		})
	}
}

// Case 4. Lines ending in \r\n work.
func TestEdge04CRLF(t *testing.T) {
	a := model.New("A")
	s := a.NewStream()
	if _, err := s.Write([]byte(utPeerHeader + "\r\n" + `[["k",1],5,"P"]` + "\r\n" + `"SYNC"` + "\r\n")); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Get("k"); string(v) != "1" {
		t.Fatalf("Get(k) = %s, want 1", v)
	}
	utOut(t, s)
	if !utClosed(s.Synced()) {
		t.Fatal("not synced after a \\r\\n SYNC")
	}
}

// Case 5. Valid JSON lines that mean nothing are ignored, as in JavaScript.
func TestEdge05MeaninglessLinesIgnored(t *testing.T) {
	a := model.New("A")
	s := a.NewStream()
	utOut(t, s) // our header
	utWrite(t, s, `null`, `5`, `-1.5e3`, `true`, `false`, `"other"`, `"sync"`, `" SYNC"`)
	if out := utOut(t, s); len(out) != 0 {
		t.Fatalf("output after meaningless lines = %q, want none", out)
	}
	if utClosed(s.Synced()) || utClosed(s.Done()) || s.Err() != nil {
		t.Fatal("a meaningless line synced, closed or failed the stream")
	}
	utWrite(t, s, utPeerHeader, `[["k",1],5,"P"]`, `"SYNC"`)
	if v, _ := a.Get("k"); string(v) != "1" || !slices.Equal(utOut(t, s), []string{`"SYNC"`}) || !utClosed(s.Synced()) {
		t.Fatal("stream does not work after meaningless lines")
	}
}

// Case 6. Updates with the wrong types: JavaScript drops them silently; here
// they fail the stream (doc.go: "an update with the wrong types"). A source
// named "__proto__" means nothing special in Go and is an ordinary source.
func TestEdge06InvalidUpdates(t *testing.T) {
	for _, line := range []string{
		`[["k",1],"5","P"]`, // string timestamp
		`[["k",1],5,7]`,     // number source
		`[["k",1],5,null]`,  // null source
		`[["k",1],5]`,       // two elements
		`[]`,                // empty
		`[["k",1],1e400,"P"]`,
	} {
		t.Run(line, func(t *testing.T) {
			a, b, p := utModelWithPeer(t)
			s := a.NewStream()
			utWrite(t, s, utPeerHeader)
			utExpectFail(t, s, line, scuttlebutt.ErrProtocol)
			if _, ok := a.Get("k"); ok {
				t.Fatal("the invalid update was applied")
			}
			utStillWorks(t, a, b, p)
		})
	}
	t.Run("__proto__ source", func(t *testing.T) {
		a := model.New("A")
		s := a.NewStream()
		utWrite(t, s, utPeerHeader, `[["k",1],5,"__proto__"]`)
		if v, _ := a.Get("k"); string(v) != "1" || a.Clock()["__proto__"] != 5 {
			t.Fatalf("Get(k) = %s, clock %v; want the update applied", v, a.Clock())
		}
	})
	t.Run("model change that is not [key, value]", func(t *testing.T) {
		// Valid at the protocol level; the Model refuses it, and the stream
		// goes on (JavaScript throws on [null,5,"X"]).
		a := model.New("A")
		s := a.NewStream()
		applied := 0
		a.OnUpdate(func(scuttlebutt.Update) { applied++ })
		utWrite(t, s, utPeerHeader, `[null,5,"X"]`, `["abc",6,"X"]`, `[[7,1],7,"X"]`, `[["k",1],8,"X"]`)
		if applied != 1 || a.Len() != 1 || s.Err() != nil {
			t.Fatalf("applied %d updates, Len %d, Err %v; want only the valid one", applied, a.Len(), s.Err())
		}
	})
}

// Case 7. Elements after the source (a signature) are kept and forwarded
// untouched by a replica without security.
func TestEdge07ExtraElementsForwarded(t *testing.T) {
	a, b, p := utModelWithPeer(t)
	p.record = true
	s := a.NewStream()
	utWrite(t, s, utPeerHeader, `[["k",1],5,"X","c2lnbmF0dXJl"]`, `[["j",2],6,"X","sig",{"more":true}]`)
	utPump(t, p)
	want := []string{`[["k",1],5,"X","c2lnbmF0dXJl"]`, `[["j",2],6,"X","sig",{"more":true}]`}
	if got := utUpdateLines(p.aToB); !slices.Equal(got, want) {
		t.Fatalf("forwarded %q, want %q", got, want)
	}
	h := b.History(scuttlebutt.Clock{"A": math.Inf(1)})
	if len(h) != 2 || len(h[0].Extra) != 1 || string(h[0].Extra[0]) != `"c2lnbmF0dXJl"` || len(h[1].Extra) != 2 {
		t.Fatalf("b's history %v, want the extra elements kept", h)
	}
}

// Case 8. An update that arrives before the peer's header is applied, and
// (unlike JavaScript) not sent back in the history.
func TestEdge08UpdateBeforeHeader(t *testing.T) {
	a := model.New("A")
	s := a.NewStream()
	utWrite(t, s, `[["k",1],5,"P"]`)
	if v, _ := a.Get("k"); string(v) != "1" {
		t.Fatalf("update before header not applied: Get(k) = %s", v)
	}
	utWrite(t, s, utPeerHeader)
	out := utOut(t, s)
	if len(out) != 2 || out[0] != `{"id":"A","clock":{}}` || out[1] != `"SYNC"` {
		t.Fatalf("output = %q, want our header and SYNC only", out)
	}
}

// Case 9. A second header does not resend history (JavaScript sends history
// and SYNC again).
func TestEdge09SecondHeader(t *testing.T) {
	a := model.New("A")
	if err := a.Set("k", 1); err != nil {
		t.Fatal(err)
	}
	syncs := 0
	s := a.NewStream(scuttlebutt.OnSyncSent(func() { syncs++ }))
	utWrite(t, s, utPeerHeader)
	first := utOut(t, s)
	if len(first) != 3 || first[2] != `"SYNC"` {
		t.Fatalf("output after first header = %q, want header, update, SYNC", first)
	}
	utWrite(t, s, utPeerHeader, `{"id":"P","clock":{"Q":1}}`)
	if again := utOut(t, s); len(again) != 0 {
		t.Fatalf("output after a second header = %q, want none", again)
	}
	if syncs != 1 {
		t.Fatalf("OnSyncSent fired %d times, want 1", syncs)
	}
	if err := a.Set("k", 2); err != nil {
		t.Fatal(err)
	}
	if live := utOut(t, s); len(live) != 1 {
		t.Fatalf("live output after a second header = %q, want one update (no duplicate tail)", live)
	}
}

// Case 10. A duplicate or older timestamp from a source is old data. A
// timestamp of 0 counts like any other (JavaScript accepts ts 0 again and
// again). (In the peer's history, before its "SYNC", an older timestamp is
// a protocol error instead: see TestHostileHistoryOutOfOrder.)
func TestEdge10OldData(t *testing.T) {
	a := model.New("A")
	var old []string
	a.OnOldData(func(u scuttlebutt.Update) { old = append(old, u.String()) })
	s := a.NewStream()
	utWrite(t, s, utPeerHeader, `"SYNC"`,
		`[["k",1],5,"X"]`,
		`[["k",2],5,"X"]`, // same ts
		`[["k",3],4,"X"]`, // older
		`[["z",1],0,"Y"]`,
		`[["z",2],0,"Y"]`, // ts 0 again
	)
	want := []string{`[["k",2],5,"X"]`, `[["k",3],4,"X"]`, `[["z",2],0,"Y"]`}
	if !slices.Equal(old, want) {
		t.Fatalf("old data %q, want %q", old, want)
	}
	if v, _ := a.Get("k"); string(v) != "1" {
		t.Fatalf("Get(k) = %s, want 1", v)
	}
	if v, _ := a.Get("z"); string(v) != "1" {
		t.Fatalf("Get(z) = %s, want 1", v)
	}
	if c := a.Clock(); c["X"] != 5 || c["Y"] != 0 || len(c) != 2 {
		t.Fatalf("Clock() = %v, want X:5 Y:0", c)
	}
	if s.Err() != nil {
		t.Fatalf("old data failed the stream: %v", s.Err())
	}
}

// Case 11. A live update is not sent back on the stream it came from
// (JavaScript echoes it, and the originator drops it as old).
func TestEdge11NoEcho(t *testing.T) {
	t.Run("go peers", func(t *testing.T) {
		a, b := model.New("A"), model.New("B")
		oldA := 0
		a.OnOldData(func(scuttlebutt.Update) { oldA++ })
		p := utConnect(a.Replica, b.Replica, nil, nil)
		utPump(t, p)
		p.record = true
		if err := a.Set("x", 3); err != nil {
			t.Fatal(err)
		}
		utPump(t, p)
		if len(p.aToB) != 1 || len(p.bToA) != 0 || oldA != 0 {
			t.Fatalf("a sent %q, b sent back %q, a dropped %d; want one update out, nothing back", p.aToB, p.bToA, oldA)
		}
	})
	t.Run("raw peer", func(t *testing.T) {
		a := model.New("A")
		s := a.NewStream()
		utWrite(t, s, utPeerHeader, `"SYNC"`)
		utOut(t, s)
		utWrite(t, s, `[["x",3],1700000000005,"P"]`)
		if out := utOut(t, s); len(out) != 0 {
			t.Fatalf("echoed %q", out)
		}
		if v, _ := a.Get("x"); string(v) != "3" {
			t.Fatalf("Get(x) = %s, want 3", v)
		}
	})
	// WithEcho sends it back, as JavaScript does (bench/sbsim measures
	// the cost).
	t.Run("WithEcho", func(t *testing.T) {
		a := model.New("A", scuttlebutt.WithEcho(true))
		s := a.NewStream()
		utWrite(t, s, utPeerHeader, `"SYNC"`)
		utOut(t, s)
		utWrite(t, s, `[["x",3],1700000000005,"P"]`)
		if out := utOut(t, s); len(out) != 1 || out[0] != `[["x",3],1700000000005,"P"]` {
			t.Fatalf("sent %q, want the echo", out)
		}
	})
}

// Case 12. One update in a triangle reaches every replica; the redundant
// copies are dropped as old data, so each applies it once.
func TestEdge12Triangle(t *testing.T) {
	ms := []*model.Model{model.New("A"), model.New("B"), model.New("C")}
	applied, old := make([]int, 3), make([]int, 3)
	for i, m := range ms {
		m.OnUpdate(func(scuttlebutt.Update) { applied[i]++ })
		m.OnOldData(func(scuttlebutt.Update) { old[i]++ })
	}
	pairs := []*utPair{
		utConnect(ms[0].Replica, ms[1].Replica, nil, nil),
		utConnect(ms[1].Replica, ms[2].Replica, nil, nil),
		utConnect(ms[0].Replica, ms[2].Replica, nil, nil),
	}
	utPump(t, pairs...)
	for _, p := range pairs {
		p.record = true
	}
	if err := ms[0].Set("k", "v"); err != nil {
		t.Fatal(err)
	}
	utPump(t, pairs...)
	for i, m := range ms {
		if v, _ := m.Get("k"); string(v) != `"v"` || applied[i] != 1 {
			t.Errorf("%s: Get(k) = %s, applied %d times; want \"v\" once", m.ID(), v, applied[i])
		}
	}
	sent := 0
	for _, p := range pairs {
		sent += len(p.aToB) + len(p.bToA)
	}
	// Two copies are needed; JavaScript sends 6 (with 4 redundant), and
	// without echoes at most one redundant copy per remaining edge is left.
	if sent < 2 || sent > 4 || old[0]+old[1]+old[2] != sent-2 {
		t.Fatalf("%d copies sent, old data %v; want 2 to 4 copies, the extra ones dropped", sent, old)
	}
}

// Case 13. Two updates of one key with the same timestamp: the greater
// source wins in either arrival order (JavaScript lets the later arrival
// win, so replicas can diverge).
func TestEdge13TieBrokenBySource(t *testing.T) {
	za := `[["k","from Z"],1700000000000,"Z"]`
	ba := `[["k","from B"],1700000000000,"B"]`
	for _, order := range [][]string{{za, ba}, {ba, za}} {
		m := model.New("M")
		s := m.NewStream()
		utWrite(t, s, append([]string{utPeerHeader}, order...)...)
		if v, _ := m.Get("k"); string(v) != `"from Z"` {
			t.Errorf("arrival %q: Get(k) = %s, want \"from Z\"", order, v)
		}
	}
}

// Case 14. An update superseded by a newer one of the same key is not kept
// and not forwarded (JavaScript forwards it if a '_remove' listener
// exists); its source's clock still advances.
func TestEdge14StaleUpdateNotForwarded(t *testing.T) {
	a, b, p := utModelWithPeer(t)
	if !a.Apply(scuttlebutt.Update{Change: json.RawMessage(`["k","new"]`), Timestamp: 10, Source: "Z"}) {
		t.Fatal("Apply failed")
	}
	utPump(t, p)
	p.record = true
	s := a.NewStream()
	utWrite(t, s, utPeerHeader, `[["k","old"],5,"Y"]`)
	utPump(t, p)
	if len(p.aToB) != 0 {
		t.Fatalf("forwarded %q, want nothing", p.aToB)
	}
	if v, _ := a.Get("k"); string(v) != `"new"` {
		t.Fatalf("Get(k) = %s, want \"new\"", v)
	}
	if a.Clock()["Y"] != 5 {
		t.Fatalf("Clock()[Y] = %v, want 5", a.Clock()["Y"])
	}
	if _, ok := b.Clock()["Y"]; ok {
		t.Fatal("b heard of Y")
	}
}

// Case 15. A local change after a peer's value with a future timestamp
// still wins, here and at the peer (JavaScript drops the local change).
// Five minutes ahead is within the default WithMaxClockSkew; with the bound
// removed, 30 years ahead works the same.
func TestEdge15LocalChangeBeatsFastPeerClock(t *testing.T) {
	for _, c := range []struct {
		name  string
		ahead float64
		opts  []scuttlebutt.Option
	}{
		{"5min", 3e5, nil},
		{"30years", 1e12, []scuttlebutt.Option{scuttlebutt.WithMaxClockSkew(-1)}},
	} {
		t.Run(c.name, func(t *testing.T) { testLocalChangeBeatsFastPeerClock(t, c.ahead, c.opts...) })
	}
}

func testLocalChangeBeatsFastPeerClock(t *testing.T, ahead float64, opts ...scuttlebutt.Option) {
	a := model.New("A", opts...)
	s := a.NewStream()
	future := float64(time.Now().UnixMilli()) + ahead
	utWrite(t, s, utPeerHeader, `"SYNC"`, fmt.Sprintf(`[["k","peer"],%v,"P"]`, future))
	utOut(t, s)
	if err := a.Set("k", "local"); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.Get("k"); string(v) != `"local"` {
		t.Fatalf("Get(k) = %s, want \"local\"", v)
	}
	out := utOut(t, s)
	if len(out) != 1 {
		t.Fatalf("output = %q, want the local change", out)
	}
	_, ts, src := utDecodeUpdate(t, out[0])
	if src != "A" || !(ts > future) || math.IsInf(ts, 0) {
		t.Fatalf("sent %q: want source A and a finite timestamp above %v", out[0], future)
	}
	// The peer, applying it with LWW, keeps it too.
	p := model.New("P", opts...)
	ps := p.NewStream()
	utWrite(t, ps, utPeerHeader, fmt.Sprintf(`[["k","peer"],%v,"P"]`, future), out[0])
	if v, _ := p.Get("k"); string(v) != `"local"` {
		t.Fatalf("peer's Get(k) = %s, want \"local\"", v)
	}
}

// Case 17. Output is ASCII only, so a reader that decodes each chunk of
// UTF-8 separately cannot split a character; input split inside a
// character is reassembled.
func TestEdge17UTF8Split(t *testing.T) {
	const val = "héllo€😀\u2028\x7f<&>"
	a := model.New("A")
	if err := a.Set("k€", val); err != nil {
		t.Fatal(err)
	}
	s := a.NewStream()
	utWrite(t, s, utPeerHeader)
	out, _ := utDrain(t, s)
	for i, c := range out {
		if c >= 0x80 {
			t.Fatalf("non-ASCII byte %#x at %d in %q", c, i, out)
		}
	}
	if !strings.Contains(string(out), `["k\u20ac","h\u00e9llo\u20ac\ud83d\ude00\u2028`) {
		t.Fatalf("output %q lacks the escaped change", out)
	}
	// Feed it to another replica one byte at a time.
	b := model.New("B")
	bs := b.NewStream()
	for i := range out {
		if _, err := bs.Write(out[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	var got string
	if ok, err := b.GetInto("k€", &got); !ok || err != nil || got != val {
		t.Fatalf("b.GetInto = %q, %v, %v; want %q", got, ok, err, val)
	}
	// Raw UTF-8 from a peer, cut inside "€".
	c := model.New("C")
	cs := c.NewStream()
	raw := []byte(utPeerHeader + "\n" + `[["k","héllo€"],5,"P"]` + "\n")
	cut := strings.Index(string(raw), "€") + 1
	for _, chunk := range [][]byte{raw[:cut], raw[cut:]} {
		if _, err := cs.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := c.GetInto("k", &got); !ok || err != nil || got != "héllo€" {
		t.Fatalf("c.GetInto = %q, %v, %v; want héllo€", got, ok, err)
	}
}

// Case 18. Tail(false): the output ends right after our "SYNC", incoming
// updates are still applied, and a peer that gets the end early still
// receives our history when it ended after sending its header.
func TestEdge18TailFalse(t *testing.T) {
	t.Run("raw peer", func(t *testing.T) {
		a := model.New("A")
		if err := a.Set("x", 1); err != nil {
			t.Fatal(err)
		}
		s := a.NewStream(scuttlebutt.Tail(false))
		utWrite(t, s, utPeerHeader)
		out, eof := utDrain(t, s)
		lines := utSplitLines(t, out)
		if !eof || len(lines) != 3 || lines[2] != `"SYNC"` {
			t.Fatalf("output %q, ended %v; want header, update, SYNC, then the end", lines, eof)
		}
		utWrite(t, s, `[["y",2],5,"P"]`, `"SYNC"`)
		if v, _ := a.Get("y"); string(v) != "2" {
			t.Fatalf("update after our output ended not applied: Get(y) = %s", v)
		}
		if !utClosed(s.Synced()) || utClosed(s.Done()) {
			t.Fatal("want synced and still open for input")
		}
		if err := a.Set("x", 3); err != nil {
			t.Fatal(err)
		}
		if out, eof := utDrain(t, s); len(out) != 0 || !eof {
			t.Fatalf("live output after the end: %q", out)
		}
		s.CloseWrite()
		if !utClosed(s.Done()) {
			t.Fatal("not closed after the peer ended")
		}
	})
	t.Run("half-close between go peers", func(t *testing.T) {
		a, b := model.New("A"), model.New("B")
		if err := a.Set("fromA", 1); err != nil {
			t.Fatal(err)
		}
		if err := b.Set("fromB", 2); err != nil {
			t.Fatal(err)
		}
		p := utConnect(a.Replica, b.Replica, []scuttlebutt.StreamOption{scuttlebutt.Tail(false)}, nil)
		utPump(t, p)
		if v, _ := a.Get("fromB"); string(v) != "2" {
			t.Fatalf("a.Get(fromB) = %s, want 2: b stopped sending when a's output ended", v)
		}
		if v, _ := b.Get("fromA"); string(v) != "1" {
			t.Fatalf("b.Get(fromA) = %s, want 1", v)
		}
		if !utClosed(p.a.Done()) || !utClosed(p.b.Done()) {
			t.Fatal("streams not closed once both outputs ended")
		}
	})
}

// Case 19. A stream that is not writable sends its whole history at once,
// and only once, even when the peer's header arrives over TCP (JavaScript
// sends it a second time).
func TestEdge19NotWritableHistoryOnce(t *testing.T) {
	a := model.New("A")
	if err := a.Set("x", 1); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- a.ServeConn(ctx, conn, scuttlebutt.Writable(false))
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	rd := bufio.NewReader(conn)
	var lines []string
	for len(lines) < 3 {
		l, err := rd.ReadString('\n')
		if err != nil {
			t.Fatalf("reading history: %v (got %q)", err, lines)
		}
		lines = append(lines, strings.TrimSuffix(l, "\n"))
	}
	if lines[0][0] != '{' || !strings.HasPrefix(lines[1], `[["x",1],`) || lines[2] != `"SYNC"` {
		t.Fatalf("history = %q", lines)
	}
	if _, err := io.WriteString(conn, utPeerHeader+"\n"+`[["y",2],5,"P"]`+"\n"+`"SYNC"`+"\n"); err != nil {
		t.Fatal(err)
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(rest) != 0 {
		t.Fatalf("sent again after the peer's header: %q", rest)
	}
	if err := <-served; err != nil {
		t.Fatalf("ServeConn: %v", err)
	}
	if _, ok := a.Get("y"); ok {
		t.Fatal("a stream that is not writable applied the peer's update")
	}
}

// Case 20. A stream that is not readable sends nothing, even after the
// peer's header (JavaScript then sends its history); with SendClock it sends
// only its header.
func TestEdge20NotReadableSendsNothing(t *testing.T) {
	for _, sendClock := range []bool{false, true} {
		t.Run("SendClock="+strconv.FormatBool(sendClock), func(t *testing.T) {
			a := model.New("A")
			if err := a.Set("x", 1); err != nil {
				t.Fatal(err)
			}
			s := a.NewStream(scuttlebutt.Readable(false), scuttlebutt.SendClock(sendClock))
			var all []string
			all = append(all, utOut(t, s)...)
			utWrite(t, s, utPeerHeader, `[["y",2],5,"P"]`, `"SYNC"`)
			all = append(all, utOut(t, s)...)
			if err := a.Set("x", 2); err != nil {
				t.Fatal(err)
			}
			all = append(all, utOut(t, s)...)
			want := 0
			if sendClock {
				want = 1
			}
			if len(all) != want || (sendClock && !strings.HasPrefix(all[0], `{"id":"A","clock":{"A":`)) {
				t.Fatalf("output %q, want %d header lines and nothing else", all, want)
			}
			if v, _ := a.Get("y"); string(v) != "2" {
				t.Fatalf("peer's update not applied: Get(y) = %s", v)
			}
			if !utClosed(s.Synced()) {
				t.Fatal("not synced after the peer's SYNC")
			}
		})
	}
}

// Case 21. A history of 100,000 keys goes out in one burst, in history
// order, and fills an empty replica.
func TestEdge21LargeHistory(t *testing.T) {
	n := 100000
	if testing.Short() {
		n = 10000
	}
	a := model.New("A")
	for i := range n {
		if err := a.SetRaw("k"+strconv.Itoa(i), json.RawMessage(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	s := a.NewStream()
	utWrite(t, s, utPeerHeader)
	out, _ := utDrain(t, s)
	lines := utSplitLines(t, out)
	if len(lines) != n+2 || lines[n+1] != `"SYNC"` {
		t.Fatalf("%d lines, want %d", len(lines), n+2)
	}
	prev := math.Inf(-1)
	for _, l := range lines[1 : n+1] {
		_, ts, _ := utDecodeUpdate(t, l)
		if !(ts > prev) {
			t.Fatalf("history out of order at %q", l)
		}
		prev = ts
	}
	b := model.New("B")
	bs := b.NewStream()
	if _, err := bs.Write(out); err != nil {
		t.Fatal(err)
	}
	if b.Len() != n {
		t.Fatalf("b.Len() = %d, want %d", b.Len(), n)
	}
}

// Case 22. Timestamps strictly increase and never hang: 100,000 changes
// with a frozen clock (npm's monotonic-timestamp spins after about 3,000 in
// one millisecond), and a clock that goes backwards.
func TestEdge22MonotonicTimestamps(t *testing.T) {
	run := func(t *testing.T, now func() time.Time) {
		m := model.New("M", scuttlebutt.WithTimeSource(now))
		prev := math.Inf(-1)
		for i := range 100000 {
			u, err := m.LocalUpdate(json.RawMessage(`["k",` + strconv.Itoa(i) + `]`))
			if err != nil {
				t.Fatalf("change %d: %v", i, err)
			}
			if !(u.Timestamp > prev) {
				t.Fatalf("change %d: timestamp %v not above %v", i, u.Timestamp, prev)
			}
			prev = u.Timestamp
		}
		if v, _ := m.Get("k"); string(v) != "99999" {
			t.Fatalf("Get(k) = %s, want the last change", v)
		}
	}
	t.Run("frozen", func(t *testing.T) {
		frozen := time.Now()
		run(t, func() time.Time { return frozen })
	})
	t.Run("backwards", func(t *testing.T) {
		// Start a little ahead of the process's timestamps, so that the
		// first reading counts, then step back a second at every reading.
		clk := &utClock{t: time.Now().Add(20 * time.Millisecond), step: -time.Second}
		run(t, clk.Now)
	})
	t.Run("wall clock", func(t *testing.T) {
		m := model.New("M")
		before := float64(time.Now().UnixMilli())
		u, err := m.LocalUpdate(json.RawMessage(`["k",1]`))
		after := float64(time.Now().Add(time.Second).UnixMilli())
		if err != nil || u.Timestamp < before || u.Timestamp > after {
			t.Fatalf("LocalUpdate = %v, %v; want a timestamp between %v and %v", u, err, before, after)
		}
	})
	t.Run("process-wide", func(t *testing.T) {
		// As with npm's monotonic-timestamp, a change made later in the
		// process is newer, whichever replica makes it.
		ms := []*model.Model{model.New("A"), model.New("B"), model.New("C")}
		prev := scuttlebutt.Timestamp()
		for i := range 3000 {
			u, err := ms[i%3].LocalUpdate(json.RawMessage(`["k",1]`))
			if err != nil {
				t.Fatal(err)
			}
			if !(u.Timestamp > prev) {
				t.Fatalf("change %d on %s: timestamp %v not above %v", i, ms[i%3].ID(), u.Timestamp, prev)
			}
			prev = u.Timestamp
		}
		if ts := scuttlebutt.Timestamp(); !(ts > prev) {
			t.Fatalf("Timestamp() = %v, not above %v", ts, prev)
		}
	})
}

// A line over the replica's limit fails the stream with ErrLineTooLong,
// whether it arrives whole or in pieces; a line at the limit is accepted.
func TestEdgeMaxLine(t *testing.T) {
	const limit = 64
	line := func(n int) string { // an update line of exactly n bytes
		pre, suf := `[["k","`, `"],5,"P"]`
		return pre + strings.Repeat("a", n-len(pre)-len(suf)) + suf
	}
	t.Run("at the limit", func(t *testing.T) {
		a := model.New("A", scuttlebutt.WithMaxLine(limit))
		s := a.NewStream()
		utWrite(t, s, utPeerHeader, line(limit))
		if _, ok := a.Get("k"); !ok {
			t.Fatal("line at the limit not applied")
		}
	})
	t.Run("whole", func(t *testing.T) {
		a := model.New("A", scuttlebutt.WithMaxLine(limit))
		s := a.NewStream()
		utWrite(t, s, utPeerHeader)
		utExpectFail(t, s, line(limit+1), scuttlebutt.ErrLineTooLong)
	})
	t.Run("in pieces without a newline", func(t *testing.T) {
		a := model.New("A", scuttlebutt.WithMaxLine(limit))
		s := a.NewStream()
		var err error
		for i := 0; i < 10 && err == nil; i++ {
			_, err = s.Write([]byte(strings.Repeat("a", 20)))
		}
		if !errors.Is(err, scuttlebutt.ErrLineTooLong) || !utClosed(s.Done()) {
			t.Fatalf("err = %v, want ErrLineTooLong and the stream closed", err)
		}
		if err := a.Set("still", "works"); err != nil {
			t.Fatal(err)
		}
	})
}

// Updates before a bad line in the same Write are applied, as they are when
// the lines arrive in separate writes: the result must not depend on how
// the bytes were chunked.
func TestEdgeUpdatesBeforeBadLineInOneWrite(t *testing.T) {
	for _, oneWrite := range []bool{false, true} {
		a := model.New("A")
		s := a.NewStream()
		lines := []string{utPeerHeader, `[["k",1],5,"P"]`, `garbage`}
		var err error
		if oneWrite {
			_, err = s.Write([]byte(strings.Join(lines, "\n") + "\n"))
		} else {
			for _, l := range lines {
				if _, err = s.Write([]byte(l + "\n")); err != nil {
					break
				}
			}
		}
		if !errors.Is(err, scuttlebutt.ErrProtocol) {
			t.Fatalf("oneWrite=%v: err = %v, want ErrProtocol", oneWrite, err)
		}
		if v, ok := a.Get("k"); !ok || string(v) != "1" {
			t.Errorf("oneWrite=%v: the update before the bad line was not applied", oneWrite)
		}
	}
}

// A peer's update at the largest finite timestamp must not stop local
// changes: the next local timestamp has to stay finite (a non-finite one is
// written as null, which every peer rejects), later changes must still
// apply, and other streams must go on. The stream that received it may
// either apply it or fail with ErrProtocol.
func TestEdgeLargestTimestampFromPeer(t *testing.T) {
	a, b, p := utModelWithPeer(t)
	s := a.NewStream()
	utWrite(t, s, utPeerHeader, `"SYNC"`)
	if _, err := s.Write([]byte(`[["k","peer"],1.7976931348623157e308,"P"]` + "\n")); err != nil && !errors.Is(err, scuttlebutt.ErrProtocol) {
		t.Fatalf("Write = %v, want nil or an ErrProtocol", err)
	}
	for i := range 2 {
		u, err := a.LocalUpdate(json.RawMessage(`["j",` + strconv.Itoa(i) + `]`))
		if err != nil {
			t.Fatalf("local change %d after a peer's maximal timestamp: %v", i, err)
		}
		if math.IsInf(u.Timestamp, 0) || math.IsNaN(u.Timestamp) {
			t.Fatalf("local change %d got timestamp %v", i, u.Timestamp)
		}
	}
	utPump(t, p) // fails if b's stream rejects what a sends
	if v, _ := b.Get("j"); string(v) != "1" {
		t.Fatalf("b.Get(j) = %s, want 1", v)
	}
}

// The Docs of this module return History in a slice the caller owns: a
// Stream queues it and clears its entries as it sends them.
func TestEdgeBuiltinHistoryOwnedByCaller(t *testing.T) {
	m := model.New("M")
	e := events.New("E")
	v := value.New("V")
	for i := range 3 {
		if err := m.Set("k"+strconv.Itoa(i), i); err != nil {
			t.Fatal(err)
		}
		if err := e.Emit("ev", i); err != nil {
			t.Fatal(err)
		}
		if err := v.Set(i); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []*scuttlebutt.Replica{m.Replica, e.Replica, v.Replica} {
		before := utHistory(r)
		h := r.History(nil)
		clear(h)
		_ = append(h, scuttlebutt.Update{Change: json.RawMessage(`"junk"`)}) // into any spare capacity
		if after := utHistory(r); !slices.Equal(after, before) {
			t.Errorf("%s: History changed from %q to %q after its result was modified", r.ID(), before, after)
		}
	}
}

// A stream whose Meta cannot be encoded fails at once and closes, like any
// other failed stream, instead of staying open with an error.
func TestEdgeUnencodableMeta(t *testing.T) {
	a := model.New("A")
	s := a.NewStream(scuttlebutt.Meta(func() {}))
	if s.Err() == nil {
		t.Fatal("Err() = nil for a Meta that cannot be encoded")
	}
	if _, err := s.Write([]byte(utPeerHeader + "\n")); err == nil {
		t.Fatal("Write succeeded")
	}
	if !utClosed(s.Done()) || a.Streams() != 0 {
		t.Fatalf("stream not closed: Done closed %v, Streams() = %d", utClosed(s.Done()), a.Streams())
	}
}

// utLogDoc is an append-only Doc that returns its own log from History when
// the peer lacks everything: the Doc interface does not say History must
// return a fresh slice.
type utLogDoc struct{ log []scuttlebutt.Update }

func (d *utLogDoc) History(c scuttlebutt.Clock) []scuttlebutt.Update {
	if len(c) == 0 {
		return d.log
	}
	var out []scuttlebutt.Update
	for _, u := range d.log {
		if c.Lacks(u) {
			out = append(out, u)
		}
	}
	return out
}

func (d *utLogDoc) ApplyUpdate(u scuttlebutt.Update) bool { d.log = append(d.log, u); return true }

// Two replicas over loopback TCP with ServeConn: they sync, replicate live,
// and stop when the context is cancelled; a peer that breaks the protocol
// gets its connection closed and ServeConn returns the error.
func TestEdgeServeLoopback(t *testing.T) {
	a, b := model.New("A"), model.New("B")
	if err := a.Set("before", 1); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	served := make(chan error, 2)
	synced := make(chan struct{}, 2)
	onSync := scuttlebutt.OnSync(func() { synced <- struct{}{} })
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- a.ServeConn(ctx, conn, onSync)
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	go func() { served <- b.ServeConn(ctx, conn, onSync) }()
	for range 2 {
		select {
		case <-synced:
		case <-ctx.Done():
			t.Fatal("timed out waiting for sync")
		}
	}
	if v, _ := b.Get("before"); string(v) != "1" {
		t.Fatalf("b.Get(before) = %s after sync, want 1", v)
	}
	got := make(chan struct{})
	remove := b.OnChangeKey("live", func(json.RawMessage) { close(got) })
	if err := a.Set("live", 2); err != nil {
		t.Fatal(err)
	}
	utDone(t, got, "the live update")
	remove()
	cancel()
	// Each side returns context.Canceled, or nil when it saw the other
	// side's connection end cleanly first (see TestEdgeServeCancelled).
	for range 2 {
		if err := <-served; err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("ServeConn after cancel = %v, want context.Canceled or nil", err)
		}
	}
	if a.Streams() != 0 || b.Streams() != 0 {
		t.Fatalf("streams left open: %d, %d", a.Streams(), b.Streams())
	}

	// A peer that sends garbage.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- a.ServeConn(ctx2, conn)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(raw, "garbage\n"); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, scuttlebutt.ErrProtocol) {
		t.Fatalf("ServeConn with a garbage peer = %v, want ErrProtocol", err)
	}
	if _, err := io.ReadAll(raw); err != nil {
		t.Fatalf("reading until the server closed: %v", err)
	}
	if err := a.Set("after", 3); err != nil {
		t.Fatal(err)
	}
}

// utEOFConn is a connection whose peer has already ended: reads return
// io.EOF, writes are discarded.
type utEOFConn struct{}

func (utEOFConn) Read([]byte) (int, error)    { return 0, io.EOF }
func (utEOFConn) Write(p []byte) (int, error) { return len(p), nil }
func (utEOFConn) Close() error                { return nil }

// Serve with a context that is already done returns ctx.Err(), as its
// documentation says ("ctx.Err() when ctx was done first"), even when the
// connection also ends cleanly at once.
func TestEdgeServeCancelled(t *testing.T) {
	a := model.New("A")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	nils := 0
	for range 500 {
		err := a.ServeConn(ctx, utEOFConn{})
		if err == nil {
			nils++
		} else if !errors.Is(err, context.Canceled) {
			t.Fatalf("ServeConn = %v, want context.Canceled", err)
		}
	}
	if nils > 0 {
		t.Fatalf("ServeConn with a cancelled context returned nil %d times in 500", nils)
	}
}
