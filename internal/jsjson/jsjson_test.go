package jsjson_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// AppendFloat against JSON.stringify. The expected strings are what Node
// v20 prints for JSON.stringify(x) of each number.
func TestAppendFloat(t *testing.T) {
	for _, c := range []struct {
		f    float64
		want string
	}{
		{0, "0"},
		{math.Copysign(0, -1), "0"},
		{1, "1"},
		{-1.5, "-1.5"},
		{0.1, "0.1"},
		{1.0 / 3, "0.3333333333333333"},
		{4.35, "4.35"},
		{1e21, "1e+21"},
		{1e20, "100000000000000000000"},
		{1e300, "1e+300"},
		{1e-6, "0.000001"},
		{0.000001234, "0.000001234"},
		{1e-7, "1e-7"},
		{-1e-7, "-1e-7"},
		{1.5e-7, "1.5e-7"},
		{1e-10, "1e-10"},
		{123e-20, "1.23e-18"},
		{123456789012345680000, "123456789012345680000"},
		{1 << 53, "9007199254740992"},
		{1700000000000.001, "1700000000000.001"},
		{5e-324, "5e-324"},
		{1.7976931348623157e308, "1.7976931348623157e+308"},
		{math.NaN(), "null"},
		{math.Inf(1), "null"},
		{math.Inf(-1), "null"},
	} {
		if got := string(jsjson.AppendFloat(nil, c.f)); got != c.want {
			t.Errorf("AppendFloat(%v) = %s, want %s", c.f, got, c.want)
		}
	}
	if got := string(jsjson.AppendFloat([]byte("x="), 2.5)); got != "x=2.5" {
		t.Errorf("AppendFloat appends: got %q", got)
	}
}

// Every finite float64 written by AppendFloat reads back exactly.
func TestAppendFloatRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 100000 {
		f := math.Float64frombits(rng.Uint64())
		if i%2 == 0 {
			f = rng.NormFloat64() * math.Pow(10, float64(rng.IntN(60)-30))
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		s := jsjson.AppendFloat(nil, f)
		g, err := strconv.ParseFloat(string(s), 64)
		if err != nil || g != f || !json.Valid(s) {
			t.Fatalf("AppendFloat(%v) = %s, reads back as %v, %v", f, s, g, err)
		}
	}
}

func TestAppendString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", `""`},
		{"plain", `"plain"`},
		{"\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`},
		{`"quote" back\slash /`, `"\"quote\" back\\slash /"`},
		{"\x7f<>&", "\"\x7f<>&\""},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"é€", `"\u00e9\u20ac"`},
		{"😀", `"\ud83d\ude00"`},
		{"\uFFFD", `"\ufffd"`},
		{"a\xffb", `"a\ufffdb"`},
		{"\xc0\xaf", `"\ufffd\ufffd"`},
	} {
		got := jsjson.AppendString(nil, c.in)
		if string(got) != c.want {
			t.Errorf("AppendString(%q) = %s, want %s", c.in, got, c.want)
		}
		var back string
		if err := json.Unmarshal(got, &back); err != nil || utf8.ValidString(c.in) && back != c.in {
			t.Errorf("AppendString(%q) = %s reads back as %q, %v", c.in, got, back, err)
		}
		for _, b := range got {
			if b >= 0x80 {
				t.Errorf("AppendString(%q) = %q is not ASCII", c.in, got)
				break
			}
		}
	}
}

// Invalid UTF-8 is written as a JavaScript decoder (Buffer#toString,
// TextDecoder) reads it, as AppendString and Canonical document: one U+FFFD
// per maximal ill-formed subsequence. The expected strings are what Node
// v20 gives for JSON.stringify of Buffer.from(bytes).toString(), with the
// U+FFFD escaped.
func TestAppendStringInvalidUTF8LikeJavaScript(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"\xff", `"\ufffd"`},
		{"\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`}, // an encoded surrogate
		{"\xc0\xaf", `"\ufffd\ufffd"`},           // overlong
		{"\xe2\x82", `"\ufffd"`},                 // "€" cut short
		{"\xf0\x9f\x98", `"\ufffd"`},             // "😀" cut short
		{"a\xe2\x82b", `"a\ufffdb"`},
	} {
		if got := string(jsjson.AppendString(nil, c.in)); got != c.want {
			t.Errorf("AppendString(%q) = %s, want %s", c.in, got, c.want)
		}
		if got, err := jsjson.Canonical([]byte(`"` + c.in + `"`)); err != nil || string(got) != c.want {
			t.Errorf("Canonical(%q) = %s, %v; want %s", `"`+c.in+`"`, got, err, c.want)
		}
	}
}

// Canonical is JSON.stringify(JSON.parse(x)) with every code unit from
// 0x80 up escaped. The expected strings are what Node v20 gives for that
// expression (escaping with s.replace(/[\u0080-\uffff]/g, ...)).
func TestCanonical(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{` { "a" : [ 1 , 2 ] , "b" : "x y" } `, `{"a":[1,2],"b":"x y"}`},
		{"\t\r\n[\n]\n", `[]`},
		{`"é€😀"`, `"\u00e9\u20ac\ud83d\ude00"`},
		{`{"é": "é"}`, `{"\u00e9":"\u00e9"}`},
		{`"\n\u00E9\/\ud800"`, `"\n\u00e9/\ud800"`},
		{`"\u0041\u001f\u007f\u2028\b\f\t\r"`, "\"A\\u001f\x7f\\u2028\\b\\f\\t\\r\""},
		{`-0`, `0`},
		{`1.0E+2`, `100`},
		{`1e400`, `null`},
		{`-1e400`, `null`},
		{`0.1e1`, `1`},
		{`1E-7`, `1e-7`},
		{`100000000000000000000000`, `1e+23`},
		{`5e-324`, `5e-324`},
		{`1e-400`, `0`},
		{`[true,false,null]`, `[true,false,null]`},
		{`{"b":1,"a":2,"10":3,"2":4,"-1":5,"01":6,"4294967294":7,"4294967295":8}`,
			`{"2":4,"10":3,"4294967294":7,"b":1,"a":2,"-1":5,"01":6,"4294967295":8}`},
		{`{"a":1,"b":2,"a":3}`, `{"a":3,"b":2}`},
		{`{"__proto__":1}`, `{"__proto__":1}`},
		{`[{"z":{"y":[1.50,"\u00e9"]}}]`, `[{"z":{"y":[1.5,"\u00e9"]}}]`},
		{`"<>&'"`, `"<>&'"`},
		{"\"a\xffb\"", `"a\ufffdb"`},
	} {
		got, err := jsjson.Canonical([]byte(c.in))
		if err != nil || string(got) != c.want {
			t.Errorf("Canonical(%q) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
	// Input already canonical is returned as is, without a copy.
	in := []byte(`{"a":[1,"b"]}`)
	if got, err := jsjson.Canonical(in); err != nil || &got[0] != &in[0] || len(got) != len(in) {
		t.Errorf("Canonical of canonical input copied it or failed: %v", err)
	}
}

var invalidJSON = []string{
	``, ` `, `{`, `}`, `[1,]`, `[,1]`, `[1 2]`, `{"a" 1}`, `{"a":1,}`, `{1:2}`, `{'a':1}`,
	`01`, `1.`, `.5`, `+1`, `-`, `1e`, `1e+`, `0x10`, `NaN`, `Infinity`, `-Infinity`,
	`nul`, `tru`, `True`, `null x`, `1 2`, `"a`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"\t\"", "\"\n\"",
	"\"\x00\"", `[`, `]`, `"abc" "d"`, "\xef\xbb\xbf1", `undefined`,
}

func TestCanonicalRejectsInvalid(t *testing.T) {
	for _, in := range invalidJSON {
		if json.Valid([]byte(in)) {
			t.Fatalf("test vector %q is valid JSON", in)
		}
		if got, err := jsjson.Canonical([]byte(in)); err == nil {
			t.Errorf("Canonical(%q) = %s, want an error", in, got)
		} else {
			var se *jsjson.SyntaxError
			if !errors.As(err, &se) {
				t.Errorf("Canonical(%q) error %v is not a *SyntaxError", in, err)
			}
		}
		if jsjson.Valid([]byte(in)) == nil {
			t.Errorf("Valid(%q) = nil", in)
		}
	}
}

// Nesting deeper than MaxDepth is refused, though encoding/json accepts it.
func TestCanonicalMaxDepth(t *testing.T) {
	nest := func(n int) []byte {
		return []byte(strings.Repeat("[", n) + strings.Repeat("]", n))
	}
	if _, err := jsjson.Canonical(nest(jsjson.MaxDepth)); err != nil {
		t.Errorf("Canonical of depth MaxDepth: %v", err)
	}
	if _, err := jsjson.Canonical(nest(jsjson.MaxDepth + 1)); err == nil {
		t.Error("Canonical of depth MaxDepth+1 succeeded")
	}
	if _, err := jsjson.SplitArray(nest(jsjson.MaxDepth + 1)); err == nil {
		t.Error("SplitArray of depth MaxDepth+1 succeeded")
	}
	if _, err := jsjson.Canonical(nest(100000)); err == nil {
		t.Error("Canonical of depth 100000 succeeded")
	}
}

func TestSplitArray(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`[]`, nil},
		{` [ ] `, nil},
		{`[1]`, []string{`1`}},
		{` [ 1 , "a,b" , { "c" : [ 2 , 3 ] } , [ ] , null , "é" ] `, []string{`1`, `"a,b"`, `{"c":[2,3]}`, `[]`, `null`, `"\u00e9"`}},
		{`[["k",1],1700000000000.001,"A","sig"]`, []string{`["k",1]`, `1700000000000.001`, `"A"`, `"sig"`}},
		{`["]\"[",{"]":"["}]`, []string{`"]\"["`, `{"]":"["}`}},
	} {
		got, err := jsjson.SplitArray([]byte(c.in))
		if err != nil || len(got) != len(c.want) {
			t.Errorf("SplitArray(%q) = %q, %v; want %q", c.in, got, err, c.want)
			continue
		}
		for i := range got {
			if string(got[i]) != c.want[i] {
				t.Errorf("SplitArray(%q)[%d] = %s, want %s", c.in, i, got[i], c.want[i])
			}
		}
		canon, _ := jsjson.Canonical([]byte(c.in))
		if sc := jsjson.SplitCanonical(nil, canon); !reflect.DeepEqual(bytesToStrings(sc), bytesToStrings(got)) {
			t.Errorf("SplitCanonical(%s) = %q, want %q", canon, sc, got)
		}
	}
	for _, in := range append([]string{`{}`, `1`, `"[1]"`, `[1] 2`, `[1]]`}, invalidJSON...) {
		if got, err := jsjson.SplitArray([]byte(in)); err == nil {
			t.Errorf("SplitArray(%q) = %q, want an error", in, got)
		}
	}
	dst := make([][]byte, 0, 4)
	got, err := jsjson.AppendSplitArray(dst, []byte(`[1,2]`))
	if err != nil || len(got) != 2 || &got[:1][0] != &dst[:1][0] {
		t.Errorf("AppendSplitArray did not append to dst: %q, %v", got, err)
	}
}

func bytesToStrings(bs [][]byte) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = string(b)
	}
	return out
}

func TestUnquote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`""`, ""},
		{`"abc"`, "abc"},
		{`"a\"b\\c\/"`, `a"b\c/`},
		{`"\u00e9\n\t"`, "é\n\t"},
		{`"\ud83d\ude00"`, "😀"},
		{`"\ud800"`, "\uFFFD"},
		{"\"é\"", "é"},
	} {
		if got, err := jsjson.Unquote([]byte(c.in)); err != nil || got != c.want {
			t.Errorf("Unquote(%s) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{``, `"`, `abc`, `'a'`, `"a"b"`, `1`, `"\x"`} {
		if got, err := jsjson.Unquote([]byte(in)); err == nil {
			t.Errorf("Unquote(%s) = %q, want an error", in, got)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"0", 0}, {"-0", 0}, {"1700000000000.001", 1700000000000.001}, {"1e+21", 1e21}, {"-1.5E-7", -1.5e-7},
	} {
		if got, err := jsjson.ParseNumber([]byte(c.in)); err != nil || got != c.want {
			t.Errorf("ParseNumber(%s) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"", "abc", `"1"`, "1e400", "-1e400", "+1", "null"} {
		if got, err := jsjson.ParseNumber([]byte(in)); err == nil {
			t.Errorf("ParseNumber(%q) = %v, want an error", in, got)
		}
	}
}

func TestMarshal(t *testing.T) {
	got, err := jsjson.Marshal(map[string]any{"b": "<&>", "a": []any{1, "é", nil}})
	if err != nil || string(got) != `{"a":[1,"\u00e9",null],"b":"<&>"}` {
		t.Fatalf("Marshal = %s, %v", got, err)
	}
	if _, err := jsjson.Marshal(math.NaN()); err == nil {
		t.Fatal("Marshal(NaN) succeeded")
	}
	if _, err := jsjson.Marshal(func() {}); err == nil {
		t.Fatal("Marshal(func) succeeded")
	}
}

// FuzzCanonical: Canonical accepts exactly what encoding/json accepts (but
// for nesting deeper than MaxDepth), and its output is ASCII, has no
// newline, is its own canonical form, and decodes to the same value as the
// input (numbers compared as float64, those out of range as null, as
// JSON.parse and JSON.stringify see them). SplitArray and SplitCanonical
// agree with it on arrays.
func FuzzCanonical(f *testing.F) {
	for _, s := range append([]string{
		`{"id":"A","clock":{"A":1700000000000.001},"meta":"hi"}`,
		`[["k",{"b":1}],1795315650990,"A","sig"]`,
		` { "a" : [ 1 , 2 ] , "é" : "😀\u2028" } `,
		`"\ud800\udc00\ud800"`, "\"\xed\xa0\x80\xff\"", `[-0,1e400,1.0E+2]`,
		strings.Repeat("[", 600) + strings.Repeat("]", 600),
	}, invalidJSON...) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		canon, err := jsjson.Canonical(data)
		valid := json.Valid(data)
		switch {
		case err != nil && valid:
			if fzDepth(data) > jsjson.MaxDepth {
				return
			}
			t.Fatalf("Canonical(%q) = %v, but encoding/json accepts it", data, err)
		case err == nil && !valid:
			t.Fatalf("Canonical(%q) = %q, but encoding/json rejects it", data, canon)
		case err != nil:
			jsjson.SplitCanonical(nil, data) // must not panic
			if _, err := jsjson.SplitArray(data); err == nil {
				t.Fatalf("SplitArray(%q) succeeded where Canonical failed", data)
			}
			return
		}
		for _, c := range canon {
			if c >= 0x80 || c == '\n' {
				t.Fatalf("Canonical(%q) = %q has byte %#x", data, canon, c)
			}
		}
		if again, err := jsjson.Canonical(canon); err != nil || !bytes.Equal(again, canon) || &again[0] != &canon[0] {
			t.Fatalf("Canonical is not idempotent: %q -> %q -> %q, %v", data, canon, again, err)
		}
		// Invalid UTF-8 reads differently in Go (a U+FFFD per byte) and in
		// JavaScript (per ill-formed subsequence); it is checked against
		// JavaScript in TestAppendStringInvalidUTF8LikeJavaScript.
		if !utf8.Valid(data) {
			return
		}
		if a, b := fzDecode(t, data), fzDecode(t, canon); !reflect.DeepEqual(a, b) {
			t.Fatalf("Canonical(%q) = %q decodes to %#v, want %#v", data, canon, b, a)
		}
		if canon[0] == '[' {
			elems, err := jsjson.SplitArray(data)
			if err != nil {
				t.Fatalf("SplitArray(%q): %v", data, err)
			}
			if joined := "[" + strings.Join(bytesToStrings(elems), ",") + "]"; joined != string(canon) {
				t.Fatalf("SplitArray(%q) = %q, which joins to %s, want %s", data, elems, joined, canon)
			}
			if sc := jsjson.SplitCanonical(nil, canon); !reflect.DeepEqual(bytesToStrings(sc), bytesToStrings(elems)) {
				t.Fatalf("SplitCanonical(%s) = %q, want %q", canon, sc, elems)
			}
		} else if _, err := jsjson.SplitArray(data); err == nil {
			t.Fatalf("SplitArray(%q) accepted a non-array", data)
		}
		if canon[0] == '"' {
			var want string
			json.Unmarshal(canon, &want)
			if got, err := jsjson.Unquote(canon); err != nil || got != want {
				t.Fatalf("Unquote(%s) = %q, %v; want %q", canon, got, err, want)
			}
		}
	})
}

// fzDecode decodes valid JSON as JSON.parse would: numbers are float64,
// those out of range are infinite and written by JSON.stringify as null.
func fzDecode(t *testing.T, data []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decoding %q: %v", data, err)
	}
	return fzNumbers(v)
}

func fzNumbers(v any) any {
	switch v := v.(type) {
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil && !math.IsInf(f, 0) {
			panic(err)
		}
		if math.IsInf(f, 0) {
			return nil
		}
		return f
	case []any:
		for i := range v {
			v[i] = fzNumbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = fzNumbers(v[k])
		}
	}
	return v
}

// fzDepth returns the deepest nesting of arrays and objects in JSON text.
func fzDepth(data []byte) int {
	depth, deepest, inString := 0, 0, false
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case inString && c == '\\':
			i++
		case c == '"':
			inString = !inString
		case inString:
		case c == '[' || c == '{':
			depth++
			deepest = max(deepest, depth)
		case c == ']' || c == '}':
			depth--
		}
	}
	return deepest
}
