package message_test

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/message"
)

// fuzzSeeds are inputs for both fuzz targets; the dataset's messages are
// added when interop/node_modules is installed.
func fuzzSeeds(f *testing.F) {
	for _, c := range v8Vectors {
		f.Add([]byte(c.in))
	}
	for _, c := range utf8Vectors {
		f.Add([]byte(c.in))
	}
	kp := testKey(f, 9)
	for _, m := range feed(f, kp, nil, 2) {
		f.Add(m.Raw)
		f.Add(m.Pretty())
	}
	f.Add([]byte(`{"b":1,"1":2,"a":3,"0":4,"01":5,"b":6,"\ud800":"\udc00\ud800x"}`))
	f.Add([]byte(`[1e400,-0,0.1e-999,123456789012345678901234567890,"\u2028"]`))
	path := filepath.Join(oracle.Dir(), "node_modules", "ssb-validation-dataset", "data.json")
	if data, err := os.ReadFile(path); err == nil {
		if all, err := message.Parse(data); err == nil {
			for _, e := range all.Elems() {
				m, _ := e.Get("message")
				f.Add(m.AppendCompact(nil))
			}
		}
	}
}

// sameJSON reports whether b is what a round trip through JSON text makes
// of a: equal, except that numbers JSON cannot hold (NaN, ±Inf) became
// null.
func sameJSON(a, b message.Value) bool {
	if a.Kind() == message.Number && (math.IsInf(a.Number(), 0) || math.IsNaN(a.Number())) {
		return b.Kind() == message.Null
	}
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case message.Array:
		ae, be := a.Elems(), b.Elems()
		if len(ae) != len(be) {
			return false
		}
		for i := range ae {
			if !sameJSON(ae[i], be[i]) {
				return false
			}
		}
		return true
	case message.Object:
		am, bm := a.Members(), b.Members()
		if len(am) != len(bm) {
			return false
		}
		for i := range am {
			if am[i].Key != bm[i].Key || !sameJSON(am[i].Value, bm[i].Value) {
				return false
			}
		}
		return true
	}
	return a.Equal(b)
}

// FuzzParsePrint: whatever Parse accepts prints to text that parses back
// to the same value, and printing that value again gives the same bytes;
// the pretty and compact forms hold the same value and differ only in
// whitespace.
func FuzzParsePrint(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := message.Parse(data)
		if err != nil {
			return
		}
		compact := v.AppendCompact(nil)
		pretty := v.AppendPretty(nil)
		v2, err := message.Parse(compact)
		if err != nil {
			t.Fatalf("Parse(compact %q): %v", compact, err)
		}
		if !sameJSON(v, v2) {
			t.Fatalf("value changed: %q -> %q", data, compact)
		}
		if again := v2.AppendCompact(nil); !bytes.Equal(again, compact) {
			t.Fatalf("compact not stable: %q -> %q", compact, again)
		}
		if again := v2.AppendPretty(nil); !bytes.Equal(again, pretty) {
			t.Fatalf("pretty not stable: %q -> %q", pretty, again)
		}
		v3, err := message.Parse(pretty)
		if err != nil || !v3.Equal(v2) {
			t.Fatalf("Parse(pretty %q) = %v, %v; want %v", pretty, v3, err, v2)
		}
		if got := message.Reindent(compact); !bytes.Equal(got, pretty) {
			t.Fatalf("Reindent(%q) = %q, want %q", compact, got, pretty)
		}
		if message.ID(v) != message.ID(v2) {
			t.Fatalf("ID changed: %q", data)
		}
	})
}

// FuzzValidate: the validators never panic, and a message they accept
// validates again, from its Raw and from its pretty form, with the same key.
func FuzzValidate(f *testing.F) {
	fuzzSeeds(f)
	hmacKey := bytes.Repeat([]byte{7}, 32)
	f.Fuzz(func(t *testing.T, data []byte) {
		var state *message.FeedState
		if m, err := message.Decode(data); err == nil {
			if !bytes.HasSuffix(m.Raw, []byte(`"content":`+string(m.Content)+`,"signature":"`+m.Signature+`"}`)) {
				t.Fatalf("Content %q is not in Raw %q", m.Content, m.Raw)
			}
			if m.Previous != nil {
				state = &message.FeedState{ID: *m.Previous, Sequence: m.Sequence - 1}
			}
		}
		for _, key := range [][]byte{nil, hmacKey} {
			check := func(name string, m *message.Message, err error, again func([]byte) (*message.Message, error)) {
				if err != nil {
					return
				}
				for _, raw := range [][]byte{m.Raw, m.Pretty()} {
					m2, err := again(raw)
					if err != nil || m2.Key != m.Key || !bytes.Equal(m2.Raw, m.Raw) {
						t.Fatalf("%s: accepted %q, then not %q: %v", name, data, raw, err)
					}
				}
			}
			m, err := message.Validate(state, data, key)
			check("Validate", m, err, func(b []byte) (*message.Message, error) { return message.Validate(state, b, key) })
			m, err = message.ValidateOOO(data, key)
			check("ValidateOOO", m, err, func(b []byte) (*message.Message, error) { return message.ValidateOOO(b, key) })
		}
	})
}
