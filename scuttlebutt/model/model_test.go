package model_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// mtSync connects two models with a pair of streams and moves output
// between them in memory until nothing moves. It returns the streams, so
// that a test can pump them again with mtPump.
func mtSync(t *testing.T, a, b *model.Model) (sa, sb *scuttlebutt.Stream) {
	t.Helper()
	sa, sb = a.NewStream(), b.NewStream()
	mtPump(t, sa, sb)
	return sa, sb
}

func mtPump(t *testing.T, sa, sb *scuttlebutt.Stream) {
	t.Helper()
	for range 100 {
		var x, y mtBuf
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

type mtBuf []byte

func (b *mtBuf) Write(p []byte) (int, error) { *b = append(*b, p...); return len(p), nil }

func mtGet(m *model.Model, key string) string {
	v, ok := m.Get(key)
	if !ok {
		return "<absent>"
	}
	return string(v)
}

func TestModelSetGet(t *testing.T) {
	m := model.New("M")
	for _, c := range []struct {
		key  string
		val  any
		want string
	}{
		{"s", "hello", `"hello"`},
		{"n", 1.5, `1.5`},
		{"big", 1e21, `1e+21`},
		{"obj", map[string]any{"b": 1, "a": []int{1, 2}}, `{"a":[1,2],"b":1}`},
		{"html", "<&>", `"<&>"`},
		{"uni", "é😀", `"\u00e9\ud83d\ude00"`},
		{"t", true, `true`},
	} {
		if err := m.Set(c.key, c.val); err != nil {
			t.Fatalf("Set(%q): %v", c.key, err)
		}
		if got := mtGet(m, c.key); got != c.want {
			t.Errorf("Get(%q) = %s, want %s", c.key, got, c.want)
		}
	}
	if _, ok := m.Get("missing"); ok {
		t.Error("Get of a missing key reports ok")
	}
	var s string
	if ok, err := m.GetInto("uni", &s); !ok || err != nil || s != "é😀" {
		t.Errorf("GetInto(uni) = %q, %v, %v", s, ok, err)
	}
	var obj struct {
		A []int
		B int
	}
	if ok, err := m.GetInto("obj", &obj); !ok || err != nil || obj.B != 1 || !slices.Equal(obj.A, []int{1, 2}) {
		t.Errorf("GetInto(obj) = %+v, %v, %v", obj, ok, err)
	}
	if ok, err := m.GetInto("missing", &s); ok || err != nil {
		t.Errorf("GetInto(missing) = %v, %v; want false, nil", ok, err)
	}
	var n int
	if ok, err := m.GetInto("s", &n); !ok || err == nil {
		t.Errorf("GetInto of a string into an int = %v, %v; want true and an error", ok, err)
	}
	if err := m.Set("bad", make(chan int)); err == nil {
		t.Error("Set of a value JSON cannot encode succeeded")
	}
	if _, ok := m.Get("bad"); ok {
		t.Error("a failed Set stored a value")
	}
}

func TestModelSetRaw(t *testing.T) {
	m := model.New("M")
	if err := m.SetRaw("k", json.RawMessage(" { \"a\" : [ 1 , \"é\" ] } ")); err != nil {
		t.Fatal(err)
	}
	if got := mtGet(m, "k"); got != `{"a":[1,"\u00e9"]}` {
		t.Fatalf("Get = %s, want the canonical form", got)
	}
	for _, bad := range []string{"", "{", "1 2", "nul", `"a`} {
		if err := m.SetRaw("x", json.RawMessage(bad)); err == nil {
			t.Errorf("SetRaw(%q) succeeded", bad)
		}
	}
	if m.Len() != 1 {
		t.Fatalf("Len() = %d after invalid SetRaw calls, want 1", m.Len())
	}
}

func TestModelDeleteKeysLenSnapshot(t *testing.T) {
	m := model.New("M")
	for i, k := range []string{"z", "a", "m", "é"} {
		if err := m.Set(k, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Set("z", "again"); err != nil { // updating keeps the position
		t.Fatal(err)
	}
	if keys := m.Keys(); !slices.Equal(keys, []string{"z", "a", "m", "é"}) {
		t.Fatalf("Keys() = %q", keys)
	}
	if err := m.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if err := m.Delete("never-set"); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Get("a"); ok {
		t.Fatal("Get of a deleted key reports ok")
	}
	if m.Len() != 3 {
		t.Fatalf("Len() = %d, want 3", m.Len())
	}
	if keys := m.Keys(); !slices.Equal(keys, []string{"z", "m", "é"}) {
		t.Fatalf("Keys() after Delete = %q", keys)
	}
	want := map[string]json.RawMessage{"z": json.RawMessage(`"again"`), "m": json.RawMessage(`2`), "é": json.RawMessage(`3`)}
	if snap := m.Snapshot(); !reflect.DeepEqual(snap, want) {
		t.Fatalf("Snapshot() = %s, want %s", snap, want)
	}
	js, err := json.Marshal(m)
	if err != nil || string(js) != `{"z":"again","m":2,"\u00e9":3}` {
		t.Fatalf("json.Marshal(model) = %s, %v", js, err)
	}
	// Set again after Delete: back at its first position.
	if err := m.Set("a", "back"); err != nil {
		t.Fatal(err)
	}
	if keys := m.Keys(); !slices.Equal(keys, []string{"z", "a", "m", "é"}) || m.Len() != 4 {
		t.Fatalf("Keys() after setting a deleted key = %q, Len %d", keys, m.Len())
	}
	// The deletion replicates: it is a null, kept in history.
	m2 := model.New("M2")
	if err := m.Delete("m"); err != nil {
		t.Fatal(err)
	}
	mtSync(t, m, m2)
	if !reflect.DeepEqual(m2.Snapshot(), m.Snapshot()) || m2.Len() != 3 {
		t.Fatalf("replicated snapshot %s, want %s", m2.Snapshot(), m.Snapshot())
	}
	if len(m2.History(nil)) != 5 {
		t.Fatalf("replicated history has %d updates, want 5 (deletions included)", len(m2.History(nil)))
	}
}

func TestModelOnChange(t *testing.T) {
	a, b := model.New("A"), model.New("B")
	var all []string
	var onlyK []string
	removeAll := b.OnChange(func(k string, v json.RawMessage) { all = append(all, k+"="+string(v)) })
	b.OnChangeKey("k", func(v json.RawMessage) { onlyK = append(onlyK, string(v)) })
	sa, sb := mtSync(t, a, b)

	if err := b.Set("k", 1); err != nil { // local
		t.Fatal(err)
	}
	if err := a.Set("j", 2); err != nil { // remote
		t.Fatal(err)
	}
	mtPump(t, sa, sb)
	if err := a.Set("k", 1); err != nil { // same value, new update
		t.Fatal(err)
	}
	mtPump(t, sa, sb)
	if err := a.Delete("k"); err != nil {
		t.Fatal(err)
	}
	mtPump(t, sa, sb)
	if want := []string{"k=1", "j=2", "k=1", "k="}; !slices.Equal(all, want) {
		t.Fatalf("OnChange saw %q, want %q", all, want)
	}
	if want := []string{"1", "1", ""}; !slices.Equal(onlyK, want) {
		t.Fatalf("OnChangeKey saw %q, want %q", onlyK, want)
	}
	// An update older than the key's current one changes nothing.
	if b.Apply(scuttlebutt.Update{Change: json.RawMessage(`["k","stale"]`), Timestamp: 1, Source: "Z"}) {
		t.Fatal("Apply of a stale update returned true")
	}
	if len(all) != 4 || mtGet(b, "k") != "<absent>" {
		t.Fatalf("a stale update changed the model: %q, k=%s", all, mtGet(b, "k"))
	}
	removeAll()
	if err := b.Set("k", 3); err != nil {
		t.Fatal(err)
	}
	if len(all) != 4 || len(onlyK) != 4 {
		t.Fatalf("after remove: OnChange saw %d, OnChangeKey %d; want 4, 4", len(all), len(onlyK))
	}
}

// A listener may call Set on the same model: no deadlock, the change is
// visible at once, and its events are delivered after the listener returns.
func TestModelListenerMaySet(t *testing.T) {
	m := model.New("M")
	var order []string
	m.OnChange(func(k string, v json.RawMessage) {
		order = append(order, "start "+k)
		if k == "a" && v != nil {
			if err := m.Set("b", 2); err != nil {
				t.Error(err)
			}
			if got := mtGet(m, "b"); got != "2" {
				t.Errorf("in listener, Get(b) = %s after Set, want 2", got)
			}
		}
		order = append(order, "end "+k)
	})
	m.OnChangeKey("b", func(json.RawMessage) {
		if err := m.Delete("a"); err != nil {
			t.Error(err)
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := m.Set("a", 1); err != nil {
			t.Error(err)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Set from a listener deadlocked")
	}
	// a set → b set by the listener → a deleted by the key listener.
	want := []string{"start a", "end a", "start b", "end b", "start a", "end a"}
	if !slices.Equal(order, want) {
		t.Fatalf("listener calls %q, want %q", order, want)
	}
	if mtGet(m, "a") != "<absent>" || mtGet(m, "b") != "2" {
		t.Fatalf("a = %s, b = %s; want absent, 2", mtGet(m, "a"), mtGet(m, "b"))
	}
}

func TestModelLastWriterWins(t *testing.T) {
	m := model.New("M")
	apply := func(val string, ts float64, src string) bool {
		return m.Apply(scuttlebutt.Update{Change: json.RawMessage(`["k",` + val + `]`), Timestamp: ts, Source: src})
	}
	if !apply(`"x@10"`, 10, "X") {
		t.Fatal("first update not applied")
	}
	if apply(`"y@5"`, 5, "Y") || mtGet(m, "k") != `"x@10"` {
		t.Fatal("an older update from another source won")
	}
	if !apply(`"y@20"`, 20, "Y") || mtGet(m, "k") != `"y@20"` {
		t.Fatal("a newer update lost")
	}
	// Ties: the greater source wins, in either order.
	if !apply(`"z@30"`, 30, "Z") || apply(`"b@30"`, 30, "B") || mtGet(m, "k") != `"z@30"` {
		t.Fatalf("tie: k = %s, want z@30", mtGet(m, "k"))
	}
	if !apply(`"a@40"`, 40, "A") || !apply(`"c@40"`, 40, "C") || mtGet(m, "k") != `"c@40"` {
		t.Fatalf("tie: k = %s, want c@40", mtGet(m, "k"))
	}
	// History keeps only the latest update of the key.
	if h := m.History(nil); len(h) != 1 || h[0].Source != "C" {
		t.Fatalf("History = %v, want C's update only", h)
	}
	// A local change wins over all of it.
	if err := m.Set("k", "local"); err != nil || mtGet(m, "k") != `"local"` {
		t.Fatalf("local Set: %v, k = %s", err, mtGet(m, "k"))
	}
}

// Concurrent use from many goroutines is safe (run with -race) and loses
// nothing.
func TestModelConcurrent(t *testing.T) {
	m := model.New("M")
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				k := fmt.Sprintf("g%d-%d", g, i%50)
				if err := m.Set(k, i); err != nil {
					t.Error(err)
					return
				}
				m.Get(k)
				m.Keys()
				m.Len()
			}
		}()
	}
	wg.Wait()
	if m.Len() != 8*50 {
		t.Fatalf("Len() = %d, want %d", m.Len(), 8*50)
	}
	for g := range 8 {
		if got := mtGet(m, fmt.Sprintf("g%d-0", g)); got != "150" {
			t.Fatalf("g%d-0 = %s, want 150 (the last write)", g, got)
		}
	}
}
