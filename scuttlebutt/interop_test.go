package scuttlebutt_test

// Interop tests against the real npm scuttlebutt@5.6.15, driven through
// interop/sb-peer.js (see its header comment for the protocol). Every
// connection is loopback TCP, tried in both directions where it matters: Go
// listening with JavaScript dialling, and JavaScript listening with Go
// dialling.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// quiet is how long a test waits before asserting that something did not
// arrive, where there is no later message to wait for instead.
const quiet = 300 * time.Millisecond

// waitTimeout bounds every wait on the Go side.
const waitTimeout = oracle.DefaultTimeout

// directions are the two ways a Go replica and a JavaScript peer connect.
var directions = []struct {
	name      string
	goListens bool
}{
	{"GoListens", true},
	{"JSListens", false},
}

// startJS starts an sb-peer of type "model" or "events" with the given id.
func startJS(t *testing.T, typ, id string) *oracle.Peer {
	t.Helper()
	return oracle.Start(t, "sb-peer.js", "--type", typ, "--id", id)
}

// A link is one TCP connection between a Go stream and a JavaScript peer.
type link struct {
	js     int // the connection's number in sb-peer
	stream *scuttlebutt.Stream
	done   chan struct{} // closed when Serve has returned
	err    error         // Serve's result, set before done is closed
}

// connect connects Go replica r to JavaScript peer p, Go listening when
// goListens, and serves a new stream of r with goOpts over it until the
// test ends. jsOpts are the createStream options of the JavaScript side
// (nil for the default).
func connect(t *testing.T, goListens bool, p *oracle.Peer, r *scuttlebutt.Replica, jsOpts map[string]any, goOpts ...scuttlebutt.StreamOption) *link {
	t.Helper()
	if jsOpts == nil {
		jsOpts = map[string]any{}
	}
	var conn net.Conn
	var jsConn int
	if goListens {
		ln := listen(t)
		defer ln.Close()
		jsConn = p.Do(oracle.Cmd{"op": "connect", "port": port(ln), "stream": jsOpts}).Int("conn")
		conn = accept(t, ln)
	} else {
		jsPort := p.Do(oracle.Cmd{"op": "listen", "stream": jsOpts}).Int("port")
		mark := p.Mark()
		conn = dial(t, jsPort)
		ev, err := p.Wait(mark, oracle.Ev("accepted"))
		if err != nil {
			t.Fatal(err)
		}
		jsConn = ev.Int("conn")
	}
	return serve(t, r, conn, jsConn, goOpts...)
}

// serve runs a new stream of r over conn until it ends or the test ends.
func serve(t *testing.T, r *scuttlebutt.Replica, conn net.Conn, jsConn int, goOpts ...scuttlebutt.StreamOption) *link {
	t.Helper()
	l := &link{js: jsConn, stream: r.NewStream(goOpts...), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		defer close(l.done)
		l.err = l.stream.Serve(ctx, conn)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-l.done:
		case <-time.After(waitTimeout):
			t.Errorf("Serve did not return within %v of its context ending", waitTimeout)
		}
	})
	return l
}

// wait waits for Serve to return and returns its result.
func (l *link) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-l.done:
		return l.err
	case <-time.After(waitTimeout):
		t.Fatalf("Serve did not return within %v", waitTimeout)
		return nil
	}
}

// synced waits until both sides of the link have sent their history.
func (l *link) synced(t *testing.T, p *oracle.Peer) {
	t.Helper()
	waitChan(t, l.stream.Synced(), "the Go stream to sync")
	p.WaitFor(oracle.Ev("sync", "conn", l.js))
}

func waitChan(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitTimeout):
		t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
	}
}

func listen(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func port(ln *net.TCPListener) int { return ln.Addr().(*net.TCPAddr).Port }

func accept(t *testing.T, ln *net.TCPListener) net.Conn {
	t.Helper()
	ln.SetDeadline(time.Now().Add(waitTimeout))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

func dial(t *testing.T, port int) net.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// jsState is the reply to sb-peer's "dump".
type jsState struct {
	JSON    map[string]json.RawMessage // toJSON(), for a model
	Keys    []string                   // keys(), for a model
	Clock   scuttlebutt.Clock          // sources
	History []json.RawMessage          // history()
}

func dump(t *testing.T, p *oracle.Peer) jsState {
	t.Helper()
	m := p.Do(oracle.Cmd{"op": "dump"})
	var st jsState
	for _, f := range []struct {
		key string
		v   any
	}{{"json", &st.JSON}, {"keys", &st.Keys}, {"clock", &st.Clock}, {"history", &st.History}} {
		if err := m.Decode(f.key, f.v); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// canon returns JSON in this package's wire form: compact and ASCII-only.
// For values JavaScript wrote, that is the form a Go replica stores.
func canon(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	c, err := jsjson.Canonical(raw)
	if err != nil {
		t.Fatalf("canonical %s: %v", raw, err)
	}
	return string(c)
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	raw, err := jsjson.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// diffValues compares two key-value maps of JSON values, as canonical text,
// and describes the first difference.
func diffValues(t *testing.T, what string, got map[string]json.RawMessage, want map[string]string) error {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(want)) {
		g, ok := got[k]
		if !ok {
			return fmt.Errorf("%s: key %q missing (want %s)", what, k, want[k])
		}
		if c := canon(t, g); c != want[k] {
			return fmt.Errorf("%s: key %q = %s, want %s", what, k, c, want[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			return fmt.Errorf("%s: unexpected key %q = %s", what, k, got[k])
		}
	}
	return nil
}

// converge waits until the Go model and the JavaScript model both hold
// exactly want (key -> canonical JSON).
func converge(t *testing.T, m *model.Model, p *oracle.Peer, want map[string]string) {
	t.Helper()
	oracle.Eventually(t, func() error {
		if err := diffValues(t, "Go", m.Snapshot(), want); err != nil {
			return err
		}
		return diffValues(t, "JS", dump(t, p).JSON, want)
	})
}

// jsSet sets key to value on a JavaScript model. value is encoded with
// encoding/json; a json.RawMessage goes as is.
func jsSet(t *testing.T, p *oracle.Peer, key string, value any) {
	t.Helper()
	p.Do(oracle.Cmd{"op": "set", "key": key, "value": value})
}

func goSet(t *testing.T, m *model.Model, key string, value any) {
	t.Helper()
	if err := m.Set(key, value); err != nil {
		t.Fatal(err)
	}
}

// unicodeValues are values (and keys) that stress string escaping: non-ASCII
// in and beyond the BMP, the line separators JavaScript leaves unescaped,
// control characters, and nesting.
var unicodeValues = map[string]any{
	"é":          "café crème",
	"€":          "€ 1,50 — ½",
	"emoji 😀":    "👍🏽 👨‍👩‍👧 𝄞",
	"u2028":      "a\u2028b\u2029c",
	"controls":   "\x00\x01\x07\x1f\x7f \b\f\n\r\t \"quoted\" \\ /",
	"html":       "<a href='x'>&amp;</a>",
	"empty":      "",
	"ключ\u2028": "значение",
	"nested": map[string]any{
		"arr": []any{1, "two", nil, true, false, map[string]any{"deep": []any{[]any{}, map[string]any{}}}},
		"ü":   map[string]any{"ß": "\u0000", "z": []any{"€", 2.5}},
	},
	"array": []any{"é", []any{"€", []any{"😀"}}},
	"bool":  true,
}

// TestInteropModelSync replicates a Go Model and a JavaScript model: what
// each had before connecting, then live changes both ways, including
// deletions, which are nulls on the wire.
func TestInteropModelSync(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			m := model.New("go-A")
			p := startJS(t, "model", "js-B")
			want := map[string]string{}

			// Before connecting.
			for k, v := range unicodeValues {
				goSet(t, m, "go/"+k, v)
				jsSet(t, p, "js/"+k, v)
				want["go/"+k] = mustMarshal(t, v)
				want["js/"+k] = mustMarshal(t, v)
			}
			goSet(t, m, "go/deleted-by-js", "soon null")
			jsSet(t, p, "js/deleted-by-go", "soon null")
			goSet(t, m, "go/deleted", 1)
			if err := m.Delete("go/deleted"); err != nil {
				t.Fatal(err)
			}
			jsSet(t, p, "js/null", nil)
			// A lone surrogate: JavaScript strings can hold one, and
			// JSON.stringify writes it escaped; Go keeps the escape as sent.
			jsSet(t, p, "js/lone-surrogate", json.RawMessage(`"x\ud800y"`))
			want["js/lone-surrogate"] = `"x\ud800y"`
			want["go/deleted-by-js"] = `"soon null"`
			want["js/deleted-by-go"] = `"soon null"`

			l := connect(t, d.goListens, p, m.Replica, nil)
			l.synced(t, p)
			converge(t, m, p, want)

			// Live changes, both ways.
			goSet(t, m, "go/live", map[string]any{"n": 1, "s": "€"})
			jsSet(t, p, "js/live", []any{"😀", nil})
			want["go/live"] = `{"n":1,"s":"\u20ac"}`
			want["js/live"] = `["\ud83d\ude00",null]`
			if err := m.Delete("js/deleted-by-go"); err != nil {
				t.Fatal(err)
			}
			jsSet(t, p, "go/deleted-by-js", nil)
			delete(want, "js/deleted-by-go")
			delete(want, "go/deleted-by-js")
			converge(t, m, p, want)

			// A JavaScript null is absent in Go; a Go deletion is absent
			// from toJSON but, as in JavaScript, still a key there.
			for _, k := range []string{"js/null", "go/deleted", "js/deleted-by-go", "go/deleted-by-js"} {
				if v, ok := m.Get(k); ok {
					t.Errorf("Go Get(%q) = %s, true; want absent", k, v)
				}
				if slices.Contains(m.Keys(), k) {
					t.Errorf("Go Keys() contains deleted %q", k)
				}
			}
			if m.Len() != len(want) {
				t.Errorf("Go Len() = %d, want %d", m.Len(), len(want))
			}
			st := dump(t, p)
			for _, k := range []string{"js/null", "go/deleted", "js/deleted-by-go", "go/deleted-by-js"} {
				if !slices.Contains(st.Keys, k) {
					t.Errorf("JS keys() lacks the tombstone %q: %q", k, st.Keys)
				}
			}
			p.WaitFor(oracle.Ev("change", "key", "js/deleted-by-go", "value", nil))
		})
	}
}

// numberCases are numbers whose JSON form is easy to get wrong, as the Go
// value to set and the text JSON.stringify writes for it.
var numberCases = []struct {
	name string
	v    any
	js   string
}{
	{"0.1", 0.1, "0.1"},
	{"1e21", 1e21, "1e+21"},
	{"1e20", 1e20, "100000000000000000000"},
	{"-0", math.Copysign(0, -1), "0"},
	{"1e-7", 1e-7, "1e-7"},
	{"1e-6", 1e-6, "0.000001"},
	{"2^53", int64(1) << 53, "9007199254740992"},
	{"2^53+1", int64(1)<<53 + 1, "9007199254740992"},
	{"maxint64", int64(math.MaxInt64), "9223372036854776000"},
	{"-1.5e-300", -1.5e-300, "-1.5e-300"},
	{"5e-324", 5e-324, "5e-324"},
	{"maxfloat", math.MaxFloat64, "1.7976931348623157e+308"},
	{"1/3", 1.0 / 3, "0.3333333333333333"},
	{"100", 100, "100"},
	{"nested", map[string]any{"a": []any{0.1, 1e21, -1e-7}}, `{"a":[0.1,1e+21,-1e-7]}`},
}

// TestInteropModelNumbers sets numbers on both sides. JavaScript holds
// every number as a float64 and writes it in its shortest form, so a value
// JavaScript sent arrives in Go in that form, and a Go value shows in
// JavaScript as that float64.
func TestInteropModelNumbers(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			m := model.New("go-A")
			p := startJS(t, "model", "js-B")
			l := connect(t, d.goListens, p, m.Replica, nil)
			l.synced(t, p)
			want := map[string]string{}
			for _, c := range numberCases {
				goSet(t, m, "go/"+c.name, c.v)
				jsSet(t, p, "js/"+c.name, c.v)
				want["go/"+c.name] = c.js
				want["js/"+c.name] = c.js
			}
			oracle.Eventually(t, func() error {
				if err := diffValues(t, "JS", dump(t, p).JSON, want); err != nil {
					return err
				}
				got := m.Snapshot()
				if len(got) != len(want) {
					return fmt.Errorf("Go has %d keys, want %d", len(got), len(want))
				}
				return nil
			})
			got := m.Snapshot()
			for _, c := range numberCases {
				// What JavaScript sent is stored as it sent it.
				if g := string(got["js/"+c.name]); g != c.js {
					t.Errorf("Go value of js/%s = %s, want %s", c.name, g, c.js)
				}
				// What Go set is, as a float64, what JavaScript holds.
				if !sameNumbers(t, got["go/"+c.name], json.RawMessage(c.js)) {
					t.Errorf("Go value of go/%s = %s, JavaScript has %s", c.name, got["go/"+c.name], c.js)
				}
			}
		})
	}
}

// sameNumbers reports whether a and b are equal JSON values when every
// number is read as a float64, as JavaScript reads it.
func sameNumbers(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

// triangle connects Go A <-> JS B <-> Go C, A listening for B and B
// listening for C, so both directions are used.
func triangle(t *testing.T) (a, c *model.Model, b *oracle.Peer) {
	a, c = model.New("go-A"), model.New("go-C")
	b = startJS(t, "model", "js-B")
	ab := connect(t, true, b, a.Replica, nil)
	cb := connect(t, false, b, c.Replica, nil)
	ab.synced(t, b)
	cb.synced(t, b)
	return a, c, b
}

// TestInteropTriangle runs Go A <-> JS B <-> Go C, with no link between A
// and C: changes on A reach C through JavaScript and back, and all three
// end with the same values, clocks and histories.
func TestInteropTriangle(t *testing.T) {
	a, c, b := triangle(t)
	goSet(t, a, "a/1", "from A")
	goSet(t, c, "c/1", map[string]any{"from": "C", "€": []any{1, 2}})
	jsSet(t, b, "b/1", "from B ü")
	want := map[string]string{
		"a/1": `"from A"`,
		"c/1": `{"from":"C","\u20ac":[1,2]}`,
		"b/1": `"from B \u00fc"`,
	}
	converge(t, c, b, want)
	converge(t, a, b, want)

	// C overwrites A's key and deletes B's; A deletes C's.
	goSet(t, c, "a/1", "overwritten by C")
	if err := c.Delete("b/1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("c/1"); err != nil {
		t.Fatal(err)
	}
	goSet(t, a, "a/2", "😀")
	jsSet(t, b, "b/2", 2.5)
	want["a/1"] = `"overwritten by C"`
	want["a/2"] = `"\ud83d\ude00"`
	want["b/2"] = `2.5`
	delete(want, "b/1")
	delete(want, "c/1")
	converge(t, a, b, want)
	converge(t, c, b, want)

	oracle.Eventually(t, func() error {
		st := dump(t, b)
		if !reflect.DeepEqual(a.Clock(), c.Clock()) || !reflect.DeepEqual(a.Clock(), st.Clock) {
			return fmt.Errorf("clocks differ: A %v, C %v, JS B %v", a.Clock(), c.Clock(), st.Clock)
		}
		ha, hc := historyText(a.History(nil)), historyText(c.History(nil))
		var hb []string
		for _, u := range st.History {
			hb = append(hb, canon(t, u))
		}
		if !slices.Equal(ha, hc) || !slices.Equal(ha, hb) {
			return fmt.Errorf("histories differ:\nA %q\nC %q\nB %q", ha, hc, hb)
		}
		return nil
	})
}

func rawBytes(rs []json.RawMessage) [][]byte {
	out := make([][]byte, len(rs))
	for i, r := range rs {
		out[i] = r
	}
	return out
}

func historyText(us []scuttlebutt.Update) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = u.String()
	}
	return out
}

// TestInteropTriangleCanonicalForm: a value set on Go A that JavaScript
// would write differently must still end up as the same bytes on every Go
// replica, whether it came straight from A or through a JavaScript peer.
// Go A stores what encoding/json or SetRaw gave it; Go C stores what
// JavaScript re-serialised. If they differ, two Go replicas that applied the
// same update disagree for good (int64 2^53+1 decodes to different
// integers on A and C).
func TestInteropTriangleCanonicalForm(t *testing.T) {
	a, c, b := triangle(t)
	goSet(t, a, "negzero", math.Copysign(0, -1))
	goSet(t, a, "bigint", int64(1)<<53+1)
	goSet(t, a, "plain", "control value")
	for k, raw := range map[string]string{
		"intkeys":  `{"b":1,"2":2,"a":{"10":0,"9":0}}`,
		"exponent": `1E5`,
		"trailing": `1.50`,
		"dupkey":   `{"a":1,"a":2}`,
	} {
		if err := a.SetRaw(k, json.RawMessage(raw)); err != nil {
			t.Fatal(err)
		}
	}
	oracle.Eventually(t, func() error {
		if n, want := c.Len(), a.Len(); n != want {
			return fmt.Errorf("C has %d keys, want %d", n, want)
		}
		return nil
	})
	js := dump(t, b).JSON
	ga, gc := a.Snapshot(), c.Snapshot()
	for _, k := range slices.Sorted(maps.Keys(ga)) {
		if !bytes.Equal(ga[k], gc[k]) {
			t.Errorf("key %q: Go A holds %s, Go C (through JS B) holds %s; JS B holds %s", k, ga[k], gc[k], js[k])
		}
	}
}

// TestInteropEvents replicates a Go events.Emitter and a JavaScript
// scuttlebutt/events: every event, emitted before or after connecting,
// reaches each side's listeners exactly once with equal arguments, and the
// histories end equal.
func TestInteropEvents(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			e := events.New("go-E")
			p := startJS(t, "events", "js-E")
			p.Do(oracle.Cmd{"op": "on", "event": "msg"})
			p.Do(oracle.Cmd{"op": "on", "event": "fence"})

			var mu sync.Mutex
			goGot := map[string][]string{} // event -> canonical args arrays received
			for _, name := range []string{"msg", "fence"} {
				e.On(name, func(args []json.RawMessage) {
					mu.Lock()
					defer mu.Unlock()
					goGot[name] = append(goGot[name], string(append(json.RawMessage("["), bytes.Join(rawBytes(args), []byte(","))...))+"]")
				})
			}
			var want []string // canonical args arrays of every "msg"
			emit := func(goSide bool, args ...any) {
				t.Helper()
				if args == nil {
					args = []any{}
				}
				if goSide {
					if err := e.Emit("msg", args...); err != nil {
						t.Fatal(err)
					}
				} else {
					p.Do(oracle.Cmd{"op": "emit", "event": "msg", "args": args})
				}
				want = append(want, mustMarshal(t, args))
			}

			emit(true, "go-0", 1, map[string]any{"x": []int{1, 2}})
			emit(true, "go-1", nil)
			emit(true)
			emit(false, "js-0", map[string]any{"y": "ü€😀\u2028"})
			emit(false, "js-1", nil, 2.5)
			emit(false)
			l := connect(t, d.goListens, p, e.Replica, nil)
			l.synced(t, p)
			for i := 2; i < 5; i++ {
				emit(true, fmt.Sprintf("go-%d", i), i)
				emit(false, fmt.Sprintf("js-%d", i), []any{i, "é"})
			}

			jsGot := func() map[string][]string {
				got := map[string][]string{}
				for _, ev := range p.Events() {
					if ev.Ev() == "event" {
						got[ev.Str("event")] = append(got[ev.Str("event")], canon(t, ev.Fields["args"]))
					}
				}
				return got
			}
			goMsgs := func() []string {
				mu.Lock()
				defer mu.Unlock()
				return slices.Clone(goGot["msg"])
			}
			oracle.Eventually(t, func() error {
				if n, m := len(goMsgs()), len(jsGot()["msg"]); n < len(want) || m < len(want) {
					return fmt.Errorf("Go has %d events, JS %d, want %d", n, m, len(want))
				}
				return nil
			})
			// Fence both ways: anything sent before a fence, a duplicate
			// included, arrives before it.
			if err := e.Emit("fence", "go"); err != nil {
				t.Fatal(err)
			}
			p.WaitFor(oracle.Ev("event", "event", "fence", "args", []any{"go"}))
			p.Do(oracle.Cmd{"op": "emit", "event": "fence", "args": []any{"js"}})
			oracle.Eventually(t, func() error {
				mu.Lock()
				defer mu.Unlock()
				if len(goGot["fence"]) < 2 {
					return errors.New("the JS fence has not reached Go")
				}
				return nil
			})

			sortedWant := slices.Sorted(slices.Values(want))
			if got := slices.Sorted(slices.Values(goMsgs())); !slices.Equal(got, sortedWant) {
				t.Errorf("Go listener got\n%q\nwant each once of\n%q", got, sortedWant)
			}
			if got := slices.Sorted(slices.Values(jsGot()["msg"])); !slices.Equal(got, sortedWant) {
				t.Errorf("JS listener got\n%q\nwant each once of\n%q", got, sortedWant)
			}
			var jsHist []string
			for _, u := range dump(t, p).History {
				jsHist = append(jsHist, canon(t, u))
			}
			if goHist := historyText(e.History(nil)); !slices.Equal(goHist, jsHist) {
				t.Errorf("histories differ:\nGo %q\nJS %q", goHist, jsHist)
			}
			if n := len(jsHist); n != len(want)+2 {
				t.Errorf("history has %d events, want %d", n, len(want)+2)
			}
		})
	}
}

// TestInteropStreamOptions pairs stream options across the languages.
func TestInteropStreamOptions(t *testing.T) {
	type optCase struct {
		name   string
		jsOpts map[string]any
		goOpts []scuttlebutt.StreamOption
		toJS   bool // Go's changes reach JavaScript
		toGo   bool // JavaScript's changes reach Go
	}
	cases := []optCase{
		// The README's master/slave pair, JavaScript the master.
		{"JSMasterGoSlave", map[string]any{"writable": false, "sendClock": true},
			[]scuttlebutt.StreamOption{scuttlebutt.Readable(false), scuttlebutt.SendClock(true)}, false, true},
		// Go the master. The JavaScript slave does send what it has once
		// it gets Go's header (readable:false does not stop that in npm
		// scuttlebutt); Go, not writable, ignores it.
		{"GoMasterJSSlave", map[string]any{"readable": false, "sendClock": true},
			[]scuttlebutt.StreamOption{scuttlebutt.Writable(false), scuttlebutt.SendClock(true)}, true, false},
		{"GoWritableFalse", nil, []scuttlebutt.StreamOption{scuttlebutt.Writable(false)}, true, false},
		// Go sends nothing, not even its header, and a JavaScript stream
		// sends nothing before it gets a header: nothing flows.
		{"GoReadableFalse", nil, []scuttlebutt.StreamOption{scuttlebutt.Readable(false)}, false, false},
	}
	for _, c := range cases {
		for _, d := range directions {
			t.Run(c.name+"/"+d.name, func(t *testing.T) {
				m := model.New("go-A")
				p := startJS(t, "model", "js-B")
				goSet(t, m, "go/before", "g0")
				jsSet(t, p, "js/before", "j0")
				l := connect(t, d.goListens, p, m.Replica, c.jsOpts, c.goOpts...)

				// Go's header reaches JavaScript unless Go is neither
				// readable nor sending its clock.
				if c.name != "GoReadableFalse" {
					p.WaitFor(oracle.Ev("header", "conn", l.js))
				}
				if c.toGo {
					oracle.Eventually(t, func() error {
						if _, ok := m.Get("js/before"); !ok {
							return errors.New("js/before has not reached Go")
						}
						return nil
					})
				}
				if c.toJS {
					oracle.Eventually(t, func() error {
						if _, ok := dump(t, p).JSON["go/before"]; !ok {
							return errors.New("go/before has not reached JS")
						}
						return nil
					})
				}
				goSet(t, m, "go/live", "g1")
				jsSet(t, p, "js/live", "j1")
				wantGo := map[string]string{"go/before": `"g0"`, "go/live": `"g1"`}
				wantJS := map[string]string{"js/before": `"j0"`, "js/live": `"j1"`}
				if c.toGo {
					maps.Copy(wantGo, wantJS)
				}
				if c.toJS {
					maps.Copy(wantJS, map[string]string{"go/before": `"g0"`, "go/live": `"g1"`})
				}
				check := func() error {
					if err := diffValues(t, "Go", m.Snapshot(), wantGo); err != nil {
						return err
					}
					return diffValues(t, "JS", dump(t, p).JSON, wantJS)
				}
				oracle.Eventually(t, check)
				// What must not arrive has no later message to wait for.
				time.Sleep(quiet)
				if err := check(); err != nil {
					t.Error(err)
				}
				if c.name == "GoReadableFalse" {
					for _, ev := range p.Events() {
						if ev.Ev() == "header" {
							t.Errorf("JavaScript got a header from a Go stream that is not readable: %s", ev.Line)
						}
					}
				}
			})
		}
	}
}

// TestInteropTailFalse connects a JavaScript stream with {tail:false}: it
// sends its history, "SYNC" and then ends its output right away. Go must
// still send its own history, then end, and Serve return nil.
func TestInteropTailFalse(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			m := model.New("go-A")
			p := startJS(t, "model", "js-B")
			goSet(t, m, "go/1", "g1")
			goSet(t, m, "go/2", []any{"é", 2})
			jsSet(t, p, "js/1", "j1")
			jsSet(t, p, "js/2", map[string]any{"€": nil})
			l := connect(t, d.goListens, p, m.Replica, map[string]any{"tail": false})
			if err := l.wait(t); err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
			waitChan(t, l.stream.Synced(), "the Go stream to sync")
			if _, ok := m.Get("js/2"); !ok {
				t.Fatalf("Go lacks the JavaScript history: %v", m.Snapshot())
			}
			p.WaitFor(oracle.Ev("streamEnd", "conn", l.js))
			p.WaitFor(oracle.Ev("close", "conn", l.js))
			want := map[string]string{
				"go/1": `"g1"`, "go/2": `["\u00e9",2]`,
				"js/1": `"j1"`, "js/2": `{"\u20ac":null}`,
			}
			converge(t, m, p, want)
			if n := m.Streams(); n != 0 {
				t.Errorf("Go replica has %d open streams, want 0", n)
			}
		})
	}
}

// TestInteropNoEchoAndMeta checks that Go does not send a live update back
// to the JavaScript peer it came from (npm scuttlebutt does, and the
// receiver drops it as old_data), and that header meta crosses over both
// ways.
func TestInteropNoEchoAndMeta(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			m := model.New("go-A")
			p := startJS(t, "model", "js-B")
			var mu sync.Mutex
			var goOld []scuttlebutt.Update
			m.OnOldData(func(u scuttlebutt.Update) {
				mu.Lock()
				goOld = append(goOld, u)
				mu.Unlock()
			})
			headers := make(chan scuttlebutt.Header, 2)
			l := connect(t, d.goListens, p, m.Replica, map[string]any{"meta": map[string]any{"from": "js", "n": []any{1, "é"}}},
				scuttlebutt.Meta("hi"), scuttlebutt.OnHeader(func(h scuttlebutt.Header) { headers <- h }))
			l.synced(t, p)

			// Meta, both ways.
			var h struct {
				ID   string
				Meta any
			}
			if err := p.WaitFor(oracle.Ev("header", "conn", l.js)).Decode("header", &h); err != nil {
				t.Fatal(err)
			}
			if h.ID != "go-A" || h.Meta != "hi" {
				t.Errorf("JavaScript got header id %q meta %v, want go-A and hi", h.ID, h.Meta)
			}
			select {
			case gh := <-headers:
				if gh.ID != "js-B" || string(gh.Meta) != `{"from":"js","n":[1,"\u00e9"]}` {
					t.Errorf("Go got header id %q meta %s", gh.ID, gh.Meta)
				}
			case <-time.After(waitTimeout):
				t.Fatal("OnHeader was not called")
			}

			// A live update from JavaScript, then a fence from Go: an echo
			// of the update would reach JavaScript before the fence.
			jsSet(t, p, "x", "from JS")
			oracle.Eventually(t, func() error {
				if _, ok := m.Get("x"); !ok {
					return errors.New("x has not reached Go")
				}
				return nil
			})
			goSet(t, m, "fence", "from Go")
			p.WaitFor(oracle.Ev("change", "key", "fence"))
			for _, ev := range p.Events() {
				if ev.Ev() == "old_data" {
					t.Errorf("JavaScript dropped an update Go sent back: %s", ev.Line)
				}
			}
			// The check above can see an echo: JavaScript echoes Go's fence.
			oracle.Eventually(t, func() error {
				mu.Lock()
				defer mu.Unlock()
				for _, u := range goOld {
					if u.Source == "go-A" && string(u.Change) == `["fence","from Go"]` {
						return nil
					}
				}
				return fmt.Errorf("no echo of the fence from JavaScript yet; old data %v", goOld)
			})
		})
	}
}

// TestInteropBadHeader: a Go stream whose peer sends a header without a
// clock fails with ErrProtocol, and the replica's link to a JavaScript peer
// goes on working. Likewise a bad header sent to the JavaScript peer breaks
// only that connection.
func TestInteropBadHeader(t *testing.T) {
	const bad = `{"id":"fake"}` + "\n"
	for _, d := range directions {
		t.Run("FakePeer"+d.name, func(t *testing.T) {
			m := model.New("go-A")
			p := startJS(t, "model", "js-B")
			good := connect(t, true, p, m.Replica, nil)
			good.synced(t, p)

			// The fake peer sends a bad header, then reads until Go closes.
			fake := func(conn net.Conn) {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(waitTimeout))
				io.WriteString(conn, bad)
				io.Copy(io.Discard, conn)
			}
			var conn net.Conn
			fakeDone := make(chan struct{})
			if d.goListens {
				ln := listen(t)
				fc := dial(t, port(ln))
				go func() { defer close(fakeDone); fake(fc) }()
				conn = accept(t, ln)
			} else {
				ln := listen(t)
				go func() {
					defer close(fakeDone)
					ln.SetDeadline(time.Now().Add(waitTimeout))
					if fc, err := ln.Accept(); err == nil {
						fake(fc)
					}
				}()
				conn = dial(t, port(ln))
			}
			bl := serve(t, m.Replica, conn, 0)
			if err := bl.wait(t); !errors.Is(err, scuttlebutt.ErrProtocol) {
				t.Fatalf("Serve with a bad header = %v, want ErrProtocol", err)
			}
			waitChan(t, fakeDone, "the fake peer to see Go close")

			goSet(t, m, "go/after", 1)
			jsSet(t, p, "js/after", 2)
			converge(t, m, p, map[string]string{"go/after": "1", "js/after": "2"})
			if n := m.Streams(); n != 1 {
				t.Errorf("Go replica has %d open streams, want 1", n)
			}
		})
	}
	t.Run("ToJS", func(t *testing.T) {
		m := model.New("go-A")
		p := startJS(t, "model", "js-B")
		good := connect(t, false, p, m.Replica, nil)
		good.synced(t, p)

		jsPort := p.Do(oracle.Cmd{"op": "listen"}).Int("port")
		mark := p.Mark()
		fc := dial(t, jsPort)
		defer fc.Close()
		ev, err := p.Wait(mark, oracle.Ev("accepted"))
		if err != nil {
			t.Fatal(err)
		}
		n := ev.Int("conn")
		// JavaScript sends its header first, then waits for ours.
		fc.SetDeadline(time.Now().Add(waitTimeout))
		if line, err := bufio.NewReader(fc).ReadString('\n'); err != nil || !strings.Contains(line, `"clock"`) {
			t.Fatalf("JavaScript header: %q, %v", line, err)
		}
		io.WriteString(fc, bad)
		p.WaitFor(oracle.Ev("error", "conn", n))
		p.Do(oracle.Cmd{"op": "destroy", "conn": n})

		goSet(t, m, "go/after", 1)
		jsSet(t, p, "js/after", 2)
		converge(t, m, p, map[string]string{"go/after": "1", "js/after": "2"})
	})
}
