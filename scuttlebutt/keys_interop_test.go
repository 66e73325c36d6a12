package scuttlebutt_test

// Model keys against npm scuttlebutt: lone UTF-16 surrogates keep a key's
// identity through a Go hub, and "__proto__" is refused as JavaScript
// refuses it.

import (
	"encoding/json"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// jsonOf returns the raw JSON of a field of a reply: what JSON.stringify
// wrote, byte for byte.
func jsonOf(t *testing.T, m oracle.Msg, key string) string {
	t.Helper()
	raw, ok := m.Fields[key]
	if !ok {
		t.Fatalf("no field %q in %s", key, m.Line)
	}
	return string(raw)
}

// JavaScript keys 'a\ud800' and 'a\ufffd' are two keys. They cross a Go hub
// from one JavaScript peer to another as two keys, so the two JavaScript
// replicas agree; a Go key holding a lone surrogate (in WTF-8) reaches them
// as that surrogate; and the hub's MarshalJSON is JSON.stringify's output
// for the same model, in this module's ASCII-only form.
func TestInteropLoneSurrogateKeys(t *testing.T) {
	for _, d := range directions {
		t.Run(d.name, func(t *testing.T) {
			a := startJS(t, "model", "js-A")
			b := startJS(t, "model", "js-B")
			hub := model.New("go-H")
			jsKeys := []string{`"a\ud800"`, `"a\ufffd"`, `"b\udc00"`, `"c\ud83d\ude00"`, `"\udc00\ud800"`}
			for i, key := range jsKeys {
				a.Do(oracle.Cmd{"op": "set", "key": json.RawMessage(key), "value": i + 1})
			}
			la := connect(t, d.goListens, a, hub.Replica, nil)
			la.synced(t, a)
			// Keys in WTF-8: a lone surrogate is ED A0 80 (U+D800) or ED B0 80 (U+DC00).
			for key, want := range map[string]string{
				"a\xed\xa0\x80": "1", "a\ufffd": "2", "b\xed\xb0\x80": "3", "c😀": "4",
				"\xed\xb0\x80\xed\xa0\x80": "5", "c\xed\xa0\xbd\xed\xb8\x80": "4",
			} {
				wantValue(t, hub, key, want)
			}
			if n := hub.Len(); n != len(jsKeys) {
				t.Fatalf("the hub has %d keys, want %d: %q", n, len(jsKeys), hub.Keys())
			}
			goSet(t, hub, "d\xed\xa0\x80", 6)
			lb := connect(t, d.goListens, b, hub.Replica, nil)
			lb.synced(t, b)
			want := `{"a\ud800":1,"a\ufffd":2,"b\udc00":3,"c\ud83d\ude00":4,"\udc00\ud800":5,"d\ud800":6}`
			oracle.Eventually(t, func() error {
				for _, p := range []*oracle.Peer{a, b} {
					if got := canon(t, json.RawMessage(jsonOf(t, p.Do(oracle.Cmd{"op": "dump"}), "json"))); got != want {
						return errors.New("JavaScript toJSON() = " + got + ", want " + want)
					}
				}
				return nil
			})
			jsA := jsonOf(t, a.Do(oracle.Cmd{"op": "dump"}), "json")
			if jsB := jsonOf(t, b.Do(oracle.Cmd{"op": "dump"}), "json"); jsA != jsB {
				t.Fatalf("the JavaScript replicas disagree:\nA %s\nB %s", jsA, jsB)
			}
			got, err := hub.MarshalJSON()
			must(t, err)
			if string(got) != canon(t, json.RawMessage(jsA)) {
				t.Fatalf("MarshalJSON() = %s, want JSON.stringify's %s (ASCII form %s)", got, jsA, canon(t, json.RawMessage(jsA)))
			}
		})
	}
}

// MarshalJSON writes a key with a lone surrogate as JSON.stringify does,
// byte for byte: 'b\udc00' is "b\udc00", not "b\ufffd".
func TestInteropMarshalJSONLoneSurrogate(t *testing.T) {
	a := startJS(t, "model", "js-A")
	a.Do(oracle.Cmd{"op": "set", "key": json.RawMessage(`"b\udc00"`), "value": 1})
	a.Do(oracle.Cmd{"op": "set", "key": json.RawMessage(`"\ud800x\udbff"`), "value": "\\"})
	m := model.New("go-M")
	l := connect(t, true, a, m.Replica, nil)
	l.synced(t, a)
	js := jsonOf(t, a.Do(oracle.Cmd{"op": "dump"}), "json")
	got, err := m.MarshalJSON()
	must(t, err)
	if string(got) != js {
		t.Fatalf("MarshalJSON() = %s, JSON.stringify(toJSON()) = %s", got, js)
	}
}

// npm scuttlebutt's model refuses the key "__proto__" (model.applyUpdate:
// 'invalid'): the update advances its source's clock and is neither kept
// nor forwarded. The same lines written to a JavaScript model and to a Go
// model leave them in the same state, and a JavaScript peer joining the
// Go replica afterwards gets the same state too.
func TestInteropProtoKey(t *testing.T) {
	lines := []string{
		`{"id":"R","clock":{}}`,
		`[["__proto__",{"polluted":true}],5,"R"]`,
		`[["k",1],6,"R"]`,
		`[["__proto__",2],7,"R"]`,
		`"SYNC"`,
	}
	p := startJS(t, "model", "js-A")
	raw := dial(t, p.Do(oracle.Cmd{"op": "listen"}).Int("port"))
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, raw); close(drained) }()
	t.Cleanup(func() { raw.Close(); <-drained })
	for _, line := range lines {
		if _, err := io.WriteString(raw, line+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	p.WaitFor(oracle.Ev("syncRecieved"))
	js := dump(t, p)

	g := model.New("go-G")
	s := g.NewStream()
	for _, line := range lines {
		if _, err := s.Write([]byte(line + "\n")); err != nil {
			t.Fatalf("Write(%s) = %v", line, err)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(g.Keys(), js.Keys) || !slices.Equal(js.Keys, []string{"k"}) {
		t.Fatalf("keys: Go %q, JavaScript %q, want [k]", g.Keys(), js.Keys)
	}
	if err := diffValues(t, "Go", g.Snapshot(), map[string]string{"k": "1"}); err != nil {
		t.Fatal(err)
	}
	if gc := g.Clock(); gc["R"] != js.Clock["R"] || gc["R"] != 7 {
		t.Fatalf("clock of R: Go %v, JavaScript %v, want 7 (the refused updates advance it)", gc["R"], js.Clock["R"])
	}
	if h := utHistory(g.Replica); len(h) != len(js.History) || len(h) != 1 {
		t.Fatalf("history: Go %q, JavaScript %s; want the update of k only", h, js.History)
	}

	// What the Go replica forwards: a JavaScript peer joining it gets k,
	// and nothing it would refuse.
	b := startJS(t, "model", "js-B")
	l := connect(t, true, b, g.Replica, nil)
	l.synced(t, b)
	if st := dump(t, b); !slices.Equal(st.Keys, []string{"k"}) || st.Clock["R"] != 6 {
		t.Fatalf("the peer of the Go replica has keys %q, clock %v; want [k] and R at 6", st.Keys, st.Clock)
	}

	// A local Set of "__proto__" is refused before it makes an update, as
	// npm's model.set is.
	before := g.Clock()
	if err := g.Set("__proto__", 1); !errors.Is(err, model.ErrIllegalKey) || !errors.Is(err, scuttlebutt.ErrRejected) {
		t.Fatalf(`Set("__proto__") = %v, want ErrIllegalKey`, err)
	}
	if after := g.Clock(); len(after) != len(before) || after[g.ID()] != before[g.ID()] {
		t.Fatalf("the refused Set moved the clock: %v -> %v", before, after)
	}
}
