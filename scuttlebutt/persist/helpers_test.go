package persist

import (
	"bytes"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// richValues are Model values that exercise the encoder: unicode (BMP and
// astral), escapes, numbers at the edges of JavaScript's formatting,
// nested values and nulls.
var richValues = map[string]any{
	"ascii":       "hello",
	"héllo€":      "wörld 😀 \u2028 \"quoted\" \\ \n\t",
	"emoji-😀":     []any{"😀", "é", 1, nil},
	"int":         42,
	"negative":    -17,
	"float":       0.1,
	"tiny":        1.5e-7,
	"huge":        1e21,
	"max-safe":    9007199254740993.0,
	"zero":        0,
	"true":        true,
	"nested":      map[string]any{"b": 1, "a": []any{map[string]any{"x": "y"}}, "2": "index-like"},
	"null":        nil,
	"empty":       "",
	"empty-array": []any{},
}

// richModel returns a Model with richValues set locally, updates from two
// other sources applied (one superseding a local key, one superseded, one
// a null), and one key deleted.
func richModel(t testing.TB, id string) *model.Model {
	t.Helper()
	m := model.New(id)
	keys := slices.Sorted(maps.Keys(richValues))
	for _, k := range keys {
		if err := m.Set(k, richValues[k]); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Delete("ascii"); err != nil {
		t.Fatal(err)
	}
	now := m.Clock()[id]
	for _, u := range []scuttlebutt.Update{
		{Change: json.RawMessage(`["from-b","B's value ü"]`), Timestamp: 5, Source: "B"},
		{Change: json.RawMessage(`["int",7]`), Timestamp: 6, Source: "B"}, // older than the local "int": kept out
		{Change: json.RawMessage(`["float",2.5]`), Timestamp: now + 1000, Source: "C"},
		{Change: json.RawMessage(`["c-null",null]`), Timestamp: now + 1001, Source: "C"},
		{Change: json.RawMessage(`["signed",1]`), Timestamp: 9, Source: "D", Extra: []json.RawMessage{json.RawMessage(`"c2lnbmF0dXJl"`)}},
	} {
		m.Apply(u)
	}
	return m
}

// historyLines returns the replica's history, each update in wire form.
func historyLines(r *scuttlebutt.Replica) []string {
	var out []string
	for _, u := range r.History(nil) {
		out = append(out, u.String())
	}
	return out
}

// sameState fails the test unless got holds the history and values of
// want, and the clock of that history. (A loaded replica's clock is
// rebuilt from the updates, as in npm scuttlebutt: a source whose latest
// update was superseded appears with the timestamp of its latest kept one.)
func sameState(t testing.TB, want, got *model.Model) {
	t.Helper()
	if w, g := historyLines(want.Replica), historyLines(got.Replica); !slices.Equal(w, g) {
		i := 0
		for i < min(len(w), len(g)) && w[i] == g[i] {
			i++
		}
		t.Fatalf("history differs: want %d updates, got %d; first difference at %d: want %q, got %q",
			len(w), len(g), i, w[i:min(len(w), i+3)], g[i:min(len(g), i+3)])
	}
	if w, g := historyClock(want.Replica), got.Clock(); !maps.Equal(w, g) {
		t.Fatalf("clock differs: want %v, got %v", w, g)
	}
	wj, _ := want.MarshalJSON()
	gj, _ := got.MarshalJSON()
	var wv, gv any
	json.Unmarshal(wj, &wv)
	json.Unmarshal(gj, &gv)
	if !jsonEqual(wv, gv) {
		t.Fatalf("values differ:\nwant %s\n got %s", wj, gj)
	}
}

// historyClock returns the latest timestamp of each source in the
// replica's history.
func historyClock(r *scuttlebutt.Replica) scuttlebutt.Clock {
	c := scuttlebutt.Clock{}
	for _, u := range r.History(nil) {
		c[u.Source] = max(c[u.Source], u.Timestamp)
	}
	return c
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// fileLines returns the lines of a file, without newlines; the last
// element is what follows the last newline (usually "").
func fileLines(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(data), "\n")
}

// checkMonotonic fails unless each source's updates in the file appear in
// increasing timestamp order, as a JavaScript reader requires, and every
// line is valid.
func checkMonotonic(t testing.TB, data []byte) {
	t.Helper()
	latest := map[string]float64{}
	for i, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
		kind, u, err := parseLine(line, nil)
		if err != nil {
			t.Fatalf("line %d %q: %v", i+1, line, err)
		}
		if i == 0 && kind != lineHeader {
			t.Fatalf("line 1 %q is not a header", line)
		}
		if kind != lineUpdate {
			continue
		}
		if ts, ok := latest[u.Source]; ok && u.Timestamp <= ts {
			t.Fatalf("line %d %q: timestamp not above %v, the previous one of %s", i+1, line, ts, u.Source)
		}
		latest[u.Source] = u.Timestamp
	}
}
