package events_test

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
)

type etBuf []byte

func (b *etBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// etPump moves output between two streams in memory until nothing moves,
// and returns what sa sent.
func etPump(t *testing.T, sa, sb *scuttlebutt.Stream) string {
	t.Helper()
	var sent strings.Builder
	for range 100 {
		var x, y etBuf
		sa.Drain(&x)
		sb.Drain(&y)
		if len(x) == 0 && len(y) == 0 {
			return sent.String()
		}
		sent.Write(x)
		if _, err := sb.Write(x); err != nil {
			t.Fatal(err)
		}
		if _, err := sa.Write(y); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("streams did not become quiescent")
	return ""
}

func etArgs(args []json.RawMessage) string {
	s := make([]string, len(args))
	for i, a := range args {
		s[i] = string(a)
	}
	return "(" + strings.Join(s, ",") + ")"
}

func etChanges(us []scuttlebutt.Update) []string {
	out := make([]string, len(us))
	for i, u := range us {
		out[i] = string(u.Change)
	}
	return out
}

func TestEventsEmitOn(t *testing.T) {
	e := events.New("E")
	var msgs, others []string
	remove := e.On("msg", func(args []json.RawMessage) { msgs = append(msgs, etArgs(args)) })
	e.On("other", func(args []json.RawMessage) { others = append(others, etArgs(args)) })
	for _, args := range [][]any{{"a", 2, map[string]int{"x": 1}}, {}, {nil, "é"}} {
		if err := e.Emit("msg", args...); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`("a",2,{"x":1})`, `()`, `(null,"\u00e9")`}
	if !slices.Equal(msgs, want) {
		t.Fatalf("listener saw %q, want %q", msgs, want)
	}
	if len(others) != 0 {
		t.Fatalf("listener of another event saw %q", others)
	}
	if got := etChanges(e.Events("msg")); !slices.Equal(got, []string{`["msg","a",2,{"x":1}]`, `["msg"]`, `["msg",null,"\u00e9"]`}) {
		t.Fatalf("Events(msg) = %q", got)
	}
	if len(e.Events("nothing")) != 0 {
		t.Fatal("Events of an unknown name is not empty")
	}
	remove()
	if err := e.Emit("msg", 4); err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("removed listener called: %q", msgs)
	}
	if len(e.Events("msg")) != 4 {
		t.Fatal("event not kept after its listener was removed")
	}
	if err := e.Emit("msg", make(chan int)); err == nil {
		t.Fatal("Emit of an argument JSON cannot encode succeeded")
	}
	if len(e.Events("msg")) != 4 {
		t.Fatal("a failed Emit kept an event")
	}
}

// Events replicate: each replica's listeners run once per event, local or
// remote, and both keep the same events in history order.
func TestEventsReplicate(t *testing.T) {
	a, b := events.New("A"), events.New("B")
	var heardA, heardB []string
	a.On("m", func(args []json.RawMessage) { heardA = append(heardA, etArgs(args)) })
	b.On("m", func(args []json.RawMessage) { heardB = append(heardB, etArgs(args)) })
	if err := a.Emit("m", 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Emit("m", 2); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.NewStream(), b.NewStream()
	etPump(t, sa, sb)
	if err := a.Emit("m", 3); err != nil {
		t.Fatal(err)
	}
	etPump(t, sa, sb)
	slices.Sort(heardA)
	slices.Sort(heardB)
	if want := []string{"(1)", "(2)", "(3)"}; !slices.Equal(heardA, want) || !slices.Equal(heardB, want) {
		t.Fatalf("heard %q and %q, want %q each", heardA, heardB, want)
	}
	ea, eb := a.Events("m"), b.Events("m")
	if len(ea) != 3 || !slices.Equal(etChanges(ea), etChanges(eb)) {
		t.Fatalf("Events differ: %v vs %v", ea, eb)
	}
	for i := 1; i < len(ea); i++ {
		if !ea[i].Newer(ea[i-1]) {
			t.Fatalf("Events not in history order: %v", ea)
		}
	}
}

// Retain keeps the n most recent events of each name; a peer that connects
// later receives only those, and a peer connected earlier got them all.
func TestEventsRetain(t *testing.T) {
	e := events.New("E")
	early := events.New("Early")
	se, sEarly := e.NewStream(), early.NewStream()
	etPump(t, se, sEarly)
	for i := range 5 {
		if err := e.Emit("a", i); err != nil {
			t.Fatal(err)
		}
		if err := e.Emit("b", i); err != nil {
			t.Fatal(err)
		}
	}
	etPump(t, se, sEarly)
	e.Retain(2) // applies to what is kept already
	if got := etChanges(e.Events("a")); !slices.Equal(got, []string{`["a",3]`, `["a",4]`}) {
		t.Fatalf("Events(a) after Retain(2) = %q", got)
	}
	if err := e.Emit("a", 5); err != nil {
		t.Fatal(err)
	}
	if got := etChanges(e.Events("a")); !slices.Equal(got, []string{`["a",4]`, `["a",5]`}) {
		t.Fatalf("Events(a) after another Emit = %q", got)
	}
	if n := len(e.Events("b")); n != 2 {
		t.Fatalf("Events(b) has %d, want 2", n)
	}
	etPump(t, se, sEarly)
	if n := len(early.Events("a")); n != 6 {
		t.Fatalf("the peer connected early has %d a events, want all 6", n)
	}
	late := events.New("Late")
	etPump(t, e.NewStream(), late.NewStream())
	if got := etChanges(late.Events("a")); !slices.Equal(got, []string{`["a",4]`, `["a",5]`}) {
		t.Fatalf("late peer's Events(a) = %q, want the 2 retained", got)
	}
	if len(late.History(nil)) != 4 {
		t.Fatalf("late peer's history has %d events, want 4", len(late.History(nil)))
	}
	e.Retain(0)
	for i := range 3 {
		if err := e.Emit("c", i); err != nil {
			t.Fatal(err)
		}
	}
	if len(e.Events("c")) != 3 {
		t.Fatal("Retain(0) does not keep everything")
	}
}

// A remote event named like an internal one is only a user event: it
// reaches On listeners and nothing else (in npm scuttlebutt, "dispose" from
// a peer ends every stream).
func TestEventsRemoteInternalNames(t *testing.T) {
	e := events.New("E")
	var heard []string
	for _, name := range []string{"dispose", "_update", "error", "__proto__"} {
		e.On(name, func(args []json.RawMessage) { heard = append(heard, name+etArgs(args)) })
	}
	other := e.NewStream()
	if _, err := other.Write([]byte(`{"id":"O","clock":{}}` + "\n")); err != nil {
		t.Fatal(err)
	}
	s := e.NewStream()
	lines := `{"id":"P","clock":{}}` + "\n" +
		`[["dispose"],1,"P"]` + "\n" +
		`[["_update",[["k",1],1,"Q"]],2,"P"]` + "\n" +
		`[["error","boom"],3,"P"]` + "\n" +
		`[["__proto__"],4,"P"]` + "\n"
	if _, err := s.Write([]byte(lines)); err != nil {
		t.Fatal(err)
	}
	want := []string{"dispose()", `_update([["k",1],1,"Q"])`, `error("boom")`, "__proto__()"}
	if !slices.Equal(heard, want) {
		t.Fatalf("listeners heard %q, want %q", heard, want)
	}
	if e.Streams() != 2 {
		t.Fatalf("Streams() = %d, want 2: a remote event ended streams", e.Streams())
	}
	var out etBuf
	if _, err := other.Drain(&out); err != nil || strings.Count(string(out), "\n") != 2+4 || strings.Contains(string(out), `"Q"]`+"\n") {
		t.Fatalf("other stream: %v, output %q; want header, SYNC and the 4 events forwarded as events", err, out)
	}
	if _, ok := e.Clock()["Q"]; ok {
		t.Fatal("a forged update inside an event was applied")
	}
}

// A listener may Emit on the same emitter without deadlock.
func TestEventsListenerMayEmit(t *testing.T) {
	e := events.New("E")
	var order []string
	e.On("ping", func(args []json.RawMessage) {
		order = append(order, "ping"+etArgs(args))
		if err := e.Emit("pong", 1); err != nil {
			t.Error(err)
		}
		order = append(order, "ping done")
	})
	e.On("pong", func(args []json.RawMessage) { order = append(order, "pong"+etArgs(args)) })
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.Emit("ping", 0); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Emit from a listener deadlocked")
	}
	if want := []string{"ping(0)", "ping done", "pong(1)"}; !slices.Equal(order, want) {
		t.Fatalf("order %q, want %q", order, want)
	}
}

// Changes that are not [name, args...] are refused, and not kept.
func TestEventsRejectsMalformedChanges(t *testing.T) {
	e := events.New("E")
	for i, c := range []string{`5`, `[]`, `[1,2]`, `{"a":1}`, `"name"`} {
		if e.Apply(scuttlebutt.Update{Change: json.RawMessage(c), Timestamp: float64(i + 1), Source: "P"}) {
			t.Errorf("Apply(%s) = true", c)
		}
	}
	if len(e.History(nil)) != 0 {
		t.Fatalf("History = %v, want nothing", e.History(nil))
	}
	if _, err := e.LocalUpdate(json.RawMessage(`[1]`)); err == nil {
		t.Fatal("LocalUpdate of a malformed change succeeded")
	}
}
