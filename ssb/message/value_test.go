package message_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
)

// v8Vectors were produced by node 20 (V8): for each input, JSON.stringify(v),
// JSON.stringify(v, null, 2) and ssb-validate id(v) of v = JSON.parse(input).
var v8Vectors = []struct{ in, compact, pretty, id string }{
	{"{\"b\":1,\"1\":2,\"a\":3,\"0\":4,\"01\":5}", "{\"0\":4,\"1\":2,\"b\":1,\"a\":3,\"01\":5}", "{\n  \"0\": 4,\n  \"1\": 2,\n  \"b\": 1,\n  \"a\": 3,\n  \"01\": 5\n}", "%HxBPlUZ3ICkrLcvKPI1ZVj9bwKHzesMjDyhSBJAAC94=.sha256"},
	{"{\"a\":1,\"b\":2,\"a\":3}", "{\"a\":3,\"b\":2}", "{\n  \"a\": 3,\n  \"b\": 2\n}", "%+8e3l3ouUo1FdZAGHivURD2CNc9c3RFlZNNVZSxqRiY=.sha256"},
	{"{\"4294967295\":1,\"4294967294\":2,\"-1\":3,\"10\":4,\"9\":5,\"1.0\":6,\"00\":7}", "{\"9\":5,\"10\":4,\"4294967294\":2,\"4294967295\":1,\"-1\":3,\"1.0\":6,\"00\":7}", "{\n  \"9\": 5,\n  \"10\": 4,\n  \"4294967294\": 2,\n  \"4294967295\": 1,\n  \"-1\": 3,\n  \"1.0\": 6,\n  \"00\": 7\n}", "%CmRiMAmYhjKoi4mog9tYUNXd2kGapajCfDylzw4ceQ8=.sha256"},
	{"[1e21,1e-7,1e-6,0.1,-0,1.0,100,1e20,123456789012345680000,5e-324,1.7976931348623157e308,1e400,-1e400,0.30000000000000004,12345678901234567890,9007199254740993,-1e-400,1E2,2.5e-8]", "[1e+21,1e-7,0.000001,0.1,0,1,100,100000000000000000000,123456789012345680000,5e-324,1.7976931348623157e+308,null,null,0.30000000000000004,12345678901234567000,9007199254740992,0,100,2.5e-8]", "[\n  1e+21,\n  1e-7,\n  0.000001,\n  0.1,\n  0,\n  1,\n  100,\n  100000000000000000000,\n  123456789012345680000,\n  5e-324,\n  1.7976931348623157e+308,\n  null,\n  null,\n  0.30000000000000004,\n  12345678901234567000,\n  9007199254740992,\n  0,\n  100,\n  2.5e-8\n]", "%ac0dUyvPhnnIph9igoEzHeJefH/82YwdlD6QqNnzQK8=.sha256"},
	{"\"\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\\\/\\u007f\\u2028\\u2029\\ud800\\udc00\\ud83d\\ude00\\ude00\\ud83d x\\uD800\"", "\"\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\x7f\u2028\u2029𐀀😀\\ude00\\ud83d x\\ud800\"", "\"\\u0000\\u001f\\b\\f\\n\\r\\t\\\"\\\\/\x7f\u2028\u2029𐀀😀\\ude00\\ud83d x\\ud800\"", "%JuLBXn+wSUdrIjjaTXNKfvF4gI8iwkxFmgfAE6gu7W0=.sha256"},
	{"{}", "{}", "{}", "%RBNvo1WzZ4oRRq0W9+hknpT7T8If536DEMBg9hyq/4o=.sha256"},
	{"[]", "[]", "[]", "%T1PNoYwrqgwDVLtfmj7L5e0Sq02OEbqHPC8RFhICuUU=.sha256"},
	{"[[],{},[{}]]", "[[],{},[{}]]", "[\n  [],\n  {},\n  [\n    {}\n  ]\n]", "%pVtweiAy8Xw4k3911kPbM/0lZJ03KiLwpp2d946IYaI=.sha256"},
	{"{\"a\":{\"b\":[]},\"c\":[1,{\"d\":null}]}", "{\"a\":{\"b\":[]},\"c\":[1,{\"d\":null}]}", "{\n  \"a\": {\n    \"b\": []\n  },\n  \"c\": [\n    1,\n    {\n      \"d\": null\n    }\n  ]\n}", "%XoB1ZbK+YBkNNgEXzvxoHHgYiLonWp1ZfYCgn8Eeuzo=.sha256"},
	{"true", "true", "true", "%tb6kG2xiP3wJ8b8k3K5Y66s8DN2QrZZrxDpFtEhn4Ss=.sha256"},
	{"null", "null", "null", "%dCNOmK/nSY+12vHzasLXiswzlGT5UHA7jAGYkvmCuQs=.sha256"},
	{"\"ü☃😀\"", "\"ü☃😀\"", "\"ü☃😀\"", "%GxDE4pH+h/OAPPvvaE4RiDsUEKplCfEfSezKay0Xr+I=.sha256"},
}

func TestV8Vectors(t *testing.T) {
	for _, c := range v8Vectors {
		v, err := message.Parse([]byte(c.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := string(v.AppendCompact(nil)); got != c.compact {
			t.Errorf("compact(%q)\n got %q\nwant %q", c.in, got, c.compact)
		}
		if got := string(v.AppendPretty(nil)); got != c.pretty {
			t.Errorf("pretty(%q)\n got %q\nwant %q", c.in, got, c.pretty)
		}
		if got := message.ID(v).String(); got != c.id {
			t.Errorf("ID(%q) = %s, want %s", c.in, got, c.id)
		}
		if got := string(message.Reindent([]byte(c.compact))); got != c.pretty {
			t.Errorf("Reindent(%q) = %q", c.compact, got)
		}
	}
}

// utf8Vectors are JSON strings holding invalid UTF-8, and the UTF-8 of
// JSON.stringify(JSON.parse(Buffer.from(in).toString())) in node 20: one
// U+FFFD per maximal subpart, as the WHATWG decoder does.
var utf8Vectors = []struct{ in, out string }{
	{"\x22\xe2\x82\x41\x22", "\x22\xef\xbf\xbd\x41\x22"},
	{"\x22\xed\xa0\x80\x22", "\x22\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\x22"},
	{"\x22\xf0\x9f\x98\x22", "\x22\xef\xbf\xbd\x22"},
	{"\x22\xff\xc0\xaf\x22", "\x22\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\x22"},
	{"\x22\xf4\x90\x80\x80\x22", "\x22\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\x22"},
	{"\x22\xe0\x80\x22", "\x22\xef\xbf\xbd\xef\xbf\xbd\x22"},
}

func TestInvalidUTF8(t *testing.T) {
	for _, c := range utf8Vectors {
		v, err := message.Parse([]byte(c.in))
		if err != nil {
			t.Errorf("Parse(%q): %v", c.in, err)
			continue
		}
		if got := v.String(); got != c.out {
			t.Errorf("Parse(%q) prints %q, want %q", c.in, got, c.out)
		}
		// StringValue reads WTF-8, where ED A0 80 is the lone surrogate
		// U+D800; JSON text is decoded as UTF-8 first, where it is invalid.
		want := c.out
		if strings.Contains(c.in, "\xed\xa0\x80") {
			want = `"\ud800"`
		}
		if got := message.StringValue(c.in[1 : len(c.in)-1]).String(); got != want {
			t.Errorf("StringValue(%q) prints %q, want %q", c.in, got, want)
		}
	}
}

// TestSyntaxErrors checks that Parse rejects what JSON.parse rejects.
func TestSyntaxErrors(t *testing.T) {
	bad := []string{
		"", " ", "{", "[", "[1,]", "{\"a\":1,}", "{a:1}", "{'a':1}", "01", "-", "+1", ".5", "1.", "1e", "1e+",
		"-01", "0x10", "NaN", "Infinity", "tru", "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\u12g4\"",
		"\"a\nb\"", "\"\t\"", "\"\x00\"", "[1 2]", "{\"a\" 1}", "1 2", "\ufeff1", "[]]", "{}{}", "\"\\",
	}
	for _, in := range bad {
		_, err := message.Parse([]byte(in))
		var se *message.SyntaxError
		if !errors.Is(err, message.ErrSyntax) || !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, want a SyntaxError", in, err)
		}
	}
	for _, in := range []string{" 1 ", "\t\r\n[]\n", "\"\x7f\"", "-0", "0e0", "1E+2", "[-0.0e-0]"} {
		if _, err := message.Parse([]byte(in)); err != nil {
			t.Errorf("Parse(%q): %v", in, err)
		}
	}
}

func TestDepth(t *testing.T) {
	deep := func(n int) []byte { return []byte(strings.Repeat("[", n) + strings.Repeat("]", n)) }
	if _, err := message.Parse(deep(message.MaxDepth)); err != nil {
		t.Fatalf("depth %d: %v", message.MaxDepth, err)
	}
	_, err := message.Parse(deep(message.MaxDepth + 1))
	if !errors.Is(err, message.ErrTooDeep) || errors.Is(err, message.ErrSyntax) {
		t.Fatalf("depth %d: %v, want ErrTooDeep", message.MaxDepth+1, err)
	}
	// A message nested that deep is too large for ssb-validate anyway.
	_, err = message.Validate(nil, []byte(`{"previous":`+string(deep(100000))+`}`), nil)
	if !errors.Is(err, message.ErrTooLarge) {
		t.Fatalf("Validate(deep) = %v, want ErrTooLarge", err)
	}
}

// TestStrings checks the WTF-8 representation of lone surrogates.
func TestStrings(t *testing.T) {
	hi, lo := "\xed\xa0\xbd", "\xed\xb8\x80" // U+D83D, U+DE00 as WTF-8
	for _, c := range []struct{ in, str, json string }{
		{hi, hi, `"\ud83d"`},
		{lo + hi, lo + hi, `"\ude00\ud83d"`},
		{hi + lo, "😀", `"😀"`}, // a pair written as halves is the code point
		{"a" + hi + "b" + lo, "a" + hi + "b" + lo, `"a\ud83db\ude00"`},
		{"\xff", "\ufffd", "\"\ufffd\""},
		{"\u2028\x7f", "\u2028\x7f", "\"\u2028\x7f\""},
	} {
		v := message.StringValue(c.in)
		if v.Str() != c.str || v.String() != c.json {
			t.Errorf("StringValue(%q): Str %q, JSON %s; want %q, %s", c.in, v.Str(), v.String(), c.str, c.json)
		}
	}
	v, err := message.Parse([]byte(`["\ud83d", "\uD83D\uDE00", "\ud83d\u0041", "\udE00\ud83d"]`))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{hi, "😀", hi + "A", lo + hi}
	for i, e := range v.Elems() {
		if e.Str() != want[i] {
			t.Errorf("element %d = %q, want %q", i, e.Str(), want[i])
		}
	}
}

func TestObjectValue(t *testing.T) {
	num := message.NumberValue
	v := message.ObjectValue(
		message.Member{Key: "b", Value: num(1)},
		message.Member{Key: "10", Value: num(2)},
		message.Member{Key: "a", Value: num(3)},
		message.Member{Key: "2", Value: num(4)},
		message.Member{Key: "b", Value: num(5)},
		message.Member{Key: "02", Value: num(6)},
	)
	if got, want := v.String(), `{"2":4,"10":2,"b":5,"a":3,"02":6}`; got != want {
		t.Fatalf("ObjectValue = %s, want %s", got, want)
	}
	if x, ok := v.Get("b"); !ok || x.Number() != 5 {
		t.Fatalf("Get(b) = %v, %v", x, ok)
	}
	if _, ok := v.Get("c"); ok {
		t.Fatal("Get(c) found a member")
	}
	// Many members take the map path of deduplication.
	var ms []message.Member
	for i := range 40 {
		ms = append(ms, message.Member{Key: string(rune('A' + i%20)), Value: num(float64(i))})
	}
	if got := message.ObjectValue(ms...); len(got.Members()) != 20 || got.Members()[0].Value.Number() != 20 {
		t.Fatalf("40 members with 20 keys: %s", got)
	}
}

func TestValueOf(t *testing.T) {
	v, err := message.ValueOf(map[string]any{"type": "post", "n": 1.5, "1": []int{1, 2}, "ok": true, "nil": nil})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := v.String(), `{"1":[1,2],"n":1.5,"nil":null,"ok":true,"type":"post"}`; got != want {
		t.Fatalf("ValueOf(map) = %s, want %s", got, want)
	}
	for _, x := range []any{v, &v, []byte(v.String()), []byte(v.String())} {
		w, err := message.ValueOf(x)
		if err != nil || !w.Equal(v) {
			t.Fatalf("ValueOf(%T) = %s, %v", x, w, err)
		}
	}
	if _, err := message.ValueOf(math.Inf(1)); err == nil {
		t.Fatal("ValueOf(+Inf) succeeded")
	}
	if _, err := message.ValueOf([]byte("{")); !errors.Is(err, message.ErrSyntax) {
		t.Fatalf("ValueOf(bad JSON) = %v", err)
	}
	var u message.Value
	if err := u.UnmarshalJSON([]byte(`{"b":1,"0":2}`)); err != nil || u.String() != `{"0":2,"b":1}` {
		t.Fatalf("UnmarshalJSON = %s, %v", u, err)
	}
	if b, err := u.MarshalJSON(); err != nil || string(b) != `{"0":2,"b":1}` {
		t.Fatalf("MarshalJSON = %s, %v", b, err)
	}
}

func TestAccessors(t *testing.T) {
	v, err := message.Parse([]byte(`[null,true,false,-2.5,"s",[1],{"k":"v"}]`))
	if err != nil {
		t.Fatal(err)
	}
	e := v.Elems()
	kinds := []message.Kind{message.Null, message.Bool, message.Bool, message.Number, message.String, message.Array, message.Object}
	for i, k := range kinds {
		if e[i].Kind() != k {
			t.Errorf("element %d is %v, want %v", i, e[i].Kind(), k)
		}
	}
	if !e[1].Bool() || e[2].Bool() || e[3].Number() != -2.5 || e[4].Str() != "s" || len(e[5].Elems()) != 1 || e[6].Members()[0].Key != "k" {
		t.Errorf("accessors disagree with %s", v)
	}
	if e[4].Number() != 0 || e[3].Str() != "" || e[0].Elems() != nil || e[0].Members() != nil {
		t.Error("accessors of the wrong kind return values")
	}
	if message.Kind(9).String() != "Kind(9)" || message.Object.String() != "object" {
		t.Error("Kind.String")
	}
	if message.NumberValue(math.NaN()).String() != "null" || message.BoolValue(true).String() != "true" {
		t.Error("NaN or true printed wrong")
	}
	if !message.NumberValue(0).Equal(message.NumberValue(math.Copysign(0, -1))) || message.NumberValue(1).Equal(message.StringValue("1")) {
		t.Error("Equal")
	}
	if a := message.ArrayValue(message.StringValue("x"), message.Value{}); a.String() != `["x",null]` {
		t.Errorf("ArrayValue = %s", a)
	}
}
