package value_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/value"
)

type vtBuf []byte

func (b *vtBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

// vtPump moves output between two streams in memory until nothing moves.
func vtPump(t *testing.T, sa, sb *scuttlebutt.Stream) {
	t.Helper()
	for range 100 {
		var x, y vtBuf
		sa.Drain(&x)
		sb.Drain(&y)
		if len(x) == 0 && len(y) == 0 {
			return
		}
		if _, err := sb.Write(x); err != nil {
			t.Fatal(err)
		}
		if _, err := sa.Write(y); err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("streams did not become quiescent")
}

func vtGet(v *value.Value) string {
	raw, ok := v.Get()
	if !ok {
		return "<unset>"
	}
	return string(raw)
}

func TestValueSetGet(t *testing.T) {
	v := value.New("V")
	if raw, ok := v.Get(); ok || raw != nil {
		t.Fatalf("new value: Get = %s, %v; want unset", raw, ok)
	}
	var s string
	if ok, err := v.GetInto(&s); ok || err != nil {
		t.Fatalf("new value: GetInto = %v, %v; want false, nil", ok, err)
	}
	if err := v.Set(map[string]any{"b": []int{1}, "a": "é"}); err != nil {
		t.Fatal(err)
	}
	if got := vtGet(v); got != `{"a":"\u00e9","b":[1]}` {
		t.Fatalf("Get = %s", got)
	}
	var x struct {
		A string
		B []int
	}
	if ok, err := v.GetInto(&x); !ok || err != nil || x.A != "é" || !slices.Equal(x.B, []int{1}) {
		t.Fatalf("GetInto = %+v, %v, %v", x, ok, err)
	}
	if ok, err := v.GetInto(&s); !ok || err == nil {
		t.Fatalf("GetInto of an object into a string = %v, %v; want true and an error", ok, err)
	}
	// null is a value like any other.
	if err := v.Set(nil); err != nil || vtGet(v) != "null" {
		t.Fatalf("Set(nil): %v, Get = %s", err, vtGet(v))
	}
	if err := v.SetRaw(json.RawMessage(" [ 1 , 2 ] ")); err != nil || vtGet(v) != "[1,2]" {
		t.Fatalf("SetRaw: %v, Get = %s", err, vtGet(v))
	}
	for _, bad := range []string{"", "[", "1 2"} {
		if err := v.SetRaw(json.RawMessage(bad)); err == nil {
			t.Errorf("SetRaw(%q) succeeded", bad)
		}
	}
	if err := v.Set(make(chan int)); err == nil {
		t.Error("Set of a value JSON cannot encode succeeded")
	}
	if vtGet(v) != "[1,2]" {
		t.Fatalf("failed sets changed the value to %s", vtGet(v))
	}
	if h := v.History(nil); len(h) != 1 || string(h[0].Change) != "[1,2]" {
		t.Fatalf("History = %v, want only the latest update", h)
	}
}

func TestValueOnChange(t *testing.T) {
	v := value.New("V")
	var seen []string
	remove := v.OnChange(func(raw json.RawMessage) { seen = append(seen, string(raw)) })
	if err := v.Set(1); err != nil {
		t.Fatal(err)
	}
	if !v.Apply(scuttlebutt.Update{Change: json.RawMessage(`"remote"`), Timestamp: float64(scuttlebutt.Timestamp()) + 1000, Source: "P"}) {
		t.Fatal("newer remote value not applied")
	}
	if v.Apply(scuttlebutt.Update{Change: json.RawMessage(`"old"`), Timestamp: 5, Source: "Q"}) {
		t.Fatal("older remote value applied")
	}
	if want := []string{"1", `"remote"`}; !slices.Equal(seen, want) {
		t.Fatalf("OnChange saw %q, want %q", seen, want)
	}
	remove()
	if err := v.Set(2); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 {
		t.Fatalf("removed listener called: %q", seen)
	}
	if vtGet(v) != "2" {
		t.Fatalf("a local Set after a newer remote value: Get = %s, want 2", vtGet(v))
	}
}

// Equal timestamps from two sources: the greater source wins, in either
// arrival order.
func TestValueTies(t *testing.T) {
	za := scuttlebutt.Update{Change: json.RawMessage(`"Z"`), Timestamp: 100, Source: "Z"}
	ba := scuttlebutt.Update{Change: json.RawMessage(`"B"`), Timestamp: 100, Source: "B"}
	for _, order := range [][]scuttlebutt.Update{{za, ba}, {ba, za}} {
		v := value.New("V")
		for _, u := range order {
			v.Apply(u)
		}
		if vtGet(v) != `"Z"` {
			t.Errorf("arrival %s then %s: Get = %s, want \"Z\"", order[0].Source, order[1].Source, vtGet(v))
		}
	}
}

func TestValueReplicates(t *testing.T) {
	a, b := value.New("A"), value.New("B")
	if err := a.Set("first"); err != nil {
		t.Fatal(err)
	}
	sa, sb := a.NewStream(), b.NewStream()
	vtPump(t, sa, sb)
	if vtGet(b) != `"first"` {
		t.Fatalf("b = %s after sync, want \"first\"", vtGet(b))
	}
	if err := b.Set("second"); err != nil {
		t.Fatal(err)
	}
	vtPump(t, sa, sb)
	if vtGet(a) != `"second"` {
		t.Fatalf("a = %s after b's change, want \"second\"", vtGet(a))
	}
	// A late joiner gets only the current value.
	c := value.New("C")
	applied := 0
	c.OnChange(func(json.RawMessage) { applied++ })
	vtPump(t, a.NewStream(), c.NewStream())
	if vtGet(c) != `"second"` || applied != 1 {
		t.Fatalf("late joiner: %s after %d changes, want \"second\" after 1", vtGet(c), applied)
	}
}

// A listener may Set the same value without deadlock.
func TestValueListenerMaySet(t *testing.T) {
	v := value.New("V")
	var seen []string
	v.OnChange(func(raw json.RawMessage) {
		seen = append(seen, string(raw))
		if string(raw) == "1" {
			if err := v.Set(2); err != nil {
				t.Error(err)
			}
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := v.Set(1); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Set from a listener deadlocked")
	}
	if !slices.Equal(seen, []string{"1", "2"}) || vtGet(v) != "2" {
		t.Fatalf("saw %q, value %s; want [1 2], 2", seen, vtGet(v))
	}
}
