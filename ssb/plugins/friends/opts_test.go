package friends

import (
	"encoding/json"
	"math"
	"testing"
)

var (
	nan = math.NaN()
	inf = math.Inf(1)
)

// JavaScript's truthiness and Number() of JSON values, as node 20 prints
// them (`!!v`, `Number(v)` for v = JSON.parse(json)).
var jsValues = []struct {
	json   string
	truthy bool
	number float64
}{
	{"\"2\"", true, 2},
	{"\" 3 \"", true, 3},
	{"\"\"", false, 0},
	{"\"1e1\"", true, 10},
	{"\"0x10\"", true, 16},
	{"\"0o17\"", true, 15},
	{"\"0b101\"", true, 5},
	{"\"-0x10\"", true, nan},
	{"\"0x\"", true, nan},
	{"true", true, 1},
	{"false", false, 0},
	{"null", false, 0},
	{"[]", true, 0},
	{"[5]", true, 5},
	{"[\"7\"]", true, 7},
	{"[1,2]", true, nan},
	{"{}", true, nan},
	{"\"-1.5\"", true, -1.5},
	{"\"Infinity\"", true, inf},
	{"\"-Infinity\"", true, -inf},
	{"\"inf\"", true, nan},
	{"\"abc\"", true, nan},
	{"0", false, 0},
	{"\"0\"", true, 0},
	{"1e400", true, inf},
	{"-1e400", true, -inf},
	{"\".5\"", true, 0.5},
	{"\"5.\"", true, 5},
	{"\"1_000\"", true, nan},
	{"\"0x1p3\"", true, nan},
	{"\"NaN\"", true, nan},
	{"2.5", true, 2.5},
	{"\"\\t4\\n\"", true, 4},
}

func TestOptsLikeJavaScript(t *testing.T) {
	for _, c := range jsValues {
		o := parseOpts(json.RawMessage(`[{"max":` + c.json + `}]`))
		if got := o.truthy("max"); got != c.truthy {
			t.Errorf("truthy(%s) = %v, want %v", c.json, got, c.truthy)
		}
		if got := o.num("max"); !(got == c.number || math.IsNaN(got) && math.IsNaN(c.number)) {
			t.Errorf("Number(%s) = %v, want %v", c.json, got, c.number)
		}
	}
	for _, args := range []string{``, `[]`, `[null]`, `["x"]`, `[5]`, `[[1]]`, `{"max":1}`} {
		if o := parseOpts(json.RawMessage(args)); o.has() {
			t.Errorf("parseOpts(%s) has fields: %v", args, o)
		}
	}
	q := parseHops(parseOpts(json.RawMessage(`[{"start":"","max":0,"reverse":"true"}]`)), 2)
	if q != (hopsQuery{max: 2}) {
		t.Errorf("falsy start and max, reverse not === true: %+v", q)
	}
}

func FuzzOpts(f *testing.F) {
	for _, c := range jsValues {
		f.Add(`[{"max":` + c.json + `,"start":` + c.json + `,"live":` + c.json + `}]`)
	}
	f.Add(`[{"start":"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519","reverse":true}]`)
	f.Add(`[{"source":"@x","dest":{"a":[1,2,{}]}}, 5]`)
	f.Add(`[{"max":"0b2"}]`)
	f.Fuzz(func(t *testing.T, args string) {
		o := parseOpts(json.RawMessage(args))
		for _, field := range []string{"start", "max", "live", "old", "reverse", "source", "dest", "meta"} {
			tr := o.truthy(field)
			if o.isTrue(field) && !tr || o.isFalse(field) && tr {
				t.Fatalf("%s: === true/false disagrees with truthy %v", field, tr)
			}
			n := o.num(field)
			if o.isTrue(field) && n != 1 {
				t.Fatalf("%s: Number(true) = %v", field, n)
			}
			if f, ok := o.feed(field); ok {
				if s, _ := o.key(field); f.String() != s {
					t.Fatalf("%s: feed %s from %q", field, f, s)
				}
			}
		}
		q := parseHops(o, 2)
		if (q.start != "") != o.truthy("start") {
			t.Fatalf("start %q, truthy %v", q.start, o.truthy("start"))
		}
		if !o.truthy("max") && q.max != 2 {
			t.Fatalf("falsy max gave %v", q.max)
		}
		if l := expandLimit(q.max); l < 0 || l > 1<<30 || l == 0 && q.max > 0 {
			t.Fatalf("expandLimit(%v) = %d", q.max, l)
		}
	})
}
