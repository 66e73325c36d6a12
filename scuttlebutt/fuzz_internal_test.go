package scuttlebutt

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// FuzzDecodeLine checks the line codec on arbitrary lines: decoding never
// panics and fails only with ErrProtocol; a decoded update or header,
// encoded again, is one line of ASCII that decodes to the same thing; and an
// update's change and extra elements are in canonical form.
func FuzzDecodeLine(f *testing.F) {
	for _, seed := range []string{
		`{"id":"A","clock":{"A":1700000000000.001},"meta":"hi"}`,
		`{"id":"B","clock":{"B":1700000000000.002}}`,
		`[["x",1],1700000000000,"A"]`,
		`[["y","two"],1700000000000.001,"A"]`,
		`[["k",{"b":1}],1795315650990,"lk5RPxZJ4InN3AxwVYiqIOHHpQs=","BynwNV1U"]`,
		`"SYNC"`,
		` "SYNC" ` + "\r",
		`null`, `5`, `true`, `"other"`, ``, ` `,
		`{}`, `{"clock":0}`, `{"clock":[]}`, `{"clock":{"X":0,"Y":null,"Z":"s","W":-0}}`,
		`{"id":7,"clock":{},"meta":null}`,
		`[ [ "k" , 1 ] , 5 , "P" ]`,
		`[["k","h` + "\u00e9" + `"],5,"\ud800"]`,
		"[[\"k\",1],5,\"\xff\"]",
		`[["k",1],"5","P"]`, `[["k",1],5]`, `[]`, `[["k",1],1e400,"P"]`, `[["k",1],-0,"P"]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 {
			return // a stream splits lines at newlines
		}
		var cache sourceCache
		kind, u, h, err := decodeLine(line, &cache, 0)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("decodeLine(%q) = %v, want an ErrProtocol", line, err)
			}
			return
		}
		switch kind {
		case lineUpdate:
			if c, err := jsjson.Canonical(u.Change); err != nil || !bytes.Equal(c, u.Change) {
				t.Fatalf("change %q is not canonical", u.Change)
			}
			for _, x := range u.Extra {
				if c, err := jsjson.Canonical(x); err != nil || !bytes.Equal(c, x) {
					t.Fatalf("extra element %q is not canonical", x)
				}
			}
			enc := fzCheckLine(t, u.appendJSON(nil))
			kind2, u2, _, err := decodeLine(enc, nil, 0)
			if err != nil || kind2 != lineUpdate {
				t.Fatalf("re-encoded update %q: kind %v, %v", enc, kind2, err)
			}
			if !bytes.Equal(u.Change, u2.Change) || u.Timestamp != u2.Timestamp || u.Source != u2.Source ||
				!slices.EqualFunc(u.Extra, u2.Extra, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
				t.Fatalf("update %q re-encoded as %q decodes to %+v, want %+v", line, enc, u2, u)
			}
		case lineHeader:
			// The count taken before decoding (which bounds a hostile
			// clock) never misses an entry.
			if n := clockEntries(line); n < len(h.Clock) {
				t.Fatalf("clockEntries(%q) = %d, the clock has %d", line, n, len(h.Clock))
			}
			enc := fzCheckLine(t, h.appendJSON(nil))
			if n := clockEntries(enc); n != len(h.Clock) {
				t.Fatalf("clockEntries(%q) = %d, want %d", enc, n, len(h.Clock))
			}
			kind2, _, h2, err := decodeLine(enc, nil, 0)
			if err != nil || kind2 != lineHeader {
				t.Fatalf("re-encoded header %q: kind %v, %v", enc, kind2, err)
			}
			if h.ID != h2.ID || !bytes.Equal(h.Meta, h2.Meta) || len(h.Clock) != len(h2.Clock) {
				t.Fatalf("header %q re-encoded as %q decodes to %+v, want %+v", line, enc, h2, h)
			}
			for src, ts := range h.Clock {
				if ts2, ok := h2.Clock[src]; !ok || ts2 != ts {
					t.Fatalf("header %q re-encoded as %q: clock %v, want %v", line, enc, h2.Clock, h.Clock)
				}
			}
		case lineSync:
			if c, _ := jsjson.Canonical(line); string(c) != syncLine {
				t.Fatalf("%q decoded as SYNC", line)
			}
		}
	})
}

// fzCheckLine checks that an encoded line is ASCII without control
// characters (so no newline) and returns it.
func fzCheckLine(t *testing.T, enc []byte) []byte {
	t.Helper()
	for _, c := range enc {
		if c >= 0x80 || c < 0x20 {
			t.Fatalf("encoded line has byte %#x: %q", c, enc)
		}
	}
	return enc
}
