package model

import (
	"encoding/json"
	"testing"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/jsstring"
)

// keyLiterals are key literals in their canonical (ASCII) wire form, with
// the WTF-8 key JSON.parse makes of each.
var keyLiterals = []struct{ lit, key string }{
	{`"k"`, "k"},
	{`""`, ""},
	{`"a\ud800"`, "a\xed\xa0\x80"},
	{`"a\ufffd"`, "a\uFFFD"},
	{`"b\udc00"`, "b\xed\xb0\x80"},
	{`"\udc00\ud800"`, "\xed\xb0\x80\xed\xa0\x80"},
	{`"c\ud83d\ude00"`, "c😀"},
	{`"\ud83d"`, "\xed\xa0\xbd"},
	{`"\u00e9\"\\\n\u0000"`, "é\"\\\n\x00"},
	{`"__proto__"`, "__proto__"},
}

// Keys keep the identity of JavaScript strings: a lone surrogate survives
// decoding (as WTF-8), and writing the key gives back its literal.
func TestKeyLiterals(t *testing.T) {
	for _, c := range keyLiterals {
		key, err := unquoteKey([]byte(c.lit))
		if err != nil || key != c.key {
			t.Errorf("unquoteKey(%s) = %q, %v; want %q", c.lit, key, err, c.key)
		}
		if lit := appendKey(nil, c.key); string(lit) != c.lit {
			t.Errorf("appendKey(%q) = %s, want %s", c.key, lit, c.lit)
		}
	}
}

// A model holds 'a\ud800' and 'a\ufffd' as two keys, set locally or
// received, and writes each back as it came.
func TestLoneSurrogateKeys(t *testing.T) {
	m := New("A")
	for i, c := range keyLiterals[2:8] {
		if err := m.Set(c.key, i); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.Len(); n != 6 {
		t.Fatalf("Len() = %d after six keys, want 6: %q", n, m.Keys())
	}
	got, _ := m.MarshalJSON()
	want := `{"a\ud800":0,"a\ufffd":1,"b\udc00":2,"\udc00\ud800":3,"c\ud83d\ude00":4,"\ud83d":5}`
	if string(got) != want {
		t.Fatalf("MarshalJSON() = %s, want %s", got, want)
	}
	// Equal to the WTF-8 keys, in any well- or ill-formed spelling: a high
	// and a low surrogate written apart are one code point, as in
	// JavaScript.
	if v, _ := m.Get("c\xed\xa0\xbd\xed\xb8\x80"); string(v) != "4" {
		t.Fatalf("Get(c + surrogates of U+1F600) = %s, want 4", v)
	}
	// What a peer receives is what JavaScript reads as the same keys.
	b := New("B")
	s := b.NewStream()
	for _, u := range m.History(nil) {
		if _, err := s.Write([]byte(u.String() + "\n")); err != nil {
			t.Fatal(err)
		}
	}
	if got, _ := b.MarshalJSON(); string(got) != want {
		t.Fatalf("the peer's MarshalJSON() = %s, want %s", got, want)
	}
}

// The key "__proto__" is refused as npm scuttlebutt refuses it.
func TestProtoKey(t *testing.T) {
	m := New("A")
	if err := m.Set("__proto__", 1); err != ErrIllegalKey {
		t.Fatalf(`Set("__proto__") = %v, want ErrIllegalKey`, err)
	}
	if len(m.Clock()) != 0 {
		t.Fatalf("the refused Set made an update: clock %v", m.Clock())
	}
	s := m.NewStream()
	if _, err := s.Write([]byte(`[["__proto__",1],5,"P"]` + "\n")); err != nil {
		t.Fatal(err)
	}
	if m.Len() != 0 || len(m.History(nil)) != 0 || m.Clock()["P"] != 5 {
		t.Fatalf("after a __proto__ update: Len %d, history %v, clock %v; want nothing kept and P at 5", m.Len(), m.History(nil), m.Clock())
	}
}

// FuzzKeyLiteral: for any JSON string literal, the key decoded from its
// canonical form is well-formed WTF-8 and is written back as that form.
func FuzzKeyLiteral(f *testing.F) {
	for _, c := range keyLiterals {
		f.Add(c.lit)
	}
	for _, s := range []string{`"\uD800"`, `"é"`, "\"\xed\xa0\x80\"", "\"\xff\"", `"\ud800\udc00"`, `"\/"`, `"\uDBFF\uDFFF\uDC00"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, lit string) {
		c, err := jsjson.Canonical([]byte(lit))
		if err != nil || len(c) == 0 || c[0] != '"' {
			return
		}
		key, err := unquoteKey(c)
		if err != nil {
			t.Fatalf("unquoteKey(%s): %v", c, err)
		}
		if jsstring.ToWTF8(key) != key {
			t.Fatalf("unquoteKey(%s) = %q, not well-formed WTF-8", c, key)
		}
		if back := appendKey(nil, key); string(back) != string(c) {
			t.Fatalf("appendKey(unquoteKey(%s)) = %s", c, back)
		}
		// A change with that key is applied under it.
		m := New("A")
		if err := m.SetRaw(key, json.RawMessage("1")); err != nil {
			if key == illegalKey {
				return
			}
			t.Fatalf("SetRaw(%q): %v", key, err)
		}
		if keys := m.Keys(); len(keys) != 1 || keys[0] != key {
			t.Fatalf("Keys() = %q, want [%q]", keys, key)
		}
	})
}
