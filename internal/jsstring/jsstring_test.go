package jsstring_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttlego/scuttle/internal/jsstring"
	"github.com/scuttlego/scuttle/internal/oracle"
)

// Vectors for DecodeRune: what Node v20's Buffer#toString (the WHATWG
// decoder) gives, one U+FFFD per maximal subpart; TestNodeDecodes checks
// them, and many more, against node itself.
var decodeVectors = []struct {
	in   string
	r    rune
	size int
}{
	{"", utf8.RuneError, 0},
	{"a", 'a', 1}, {"é", 'é', 2}, {"€", '€', 3}, {"😀", '😀', 4}, {"\U0010FFFF", 0x10FFFF, 4}, {"\ufffd", 0xfffd, 3},
	{"\xe2\x82A", 0xfffd, 2},    // "€" cut short, then "A"
	{"\xe2\x82", 0xfffd, 2},     // at the end
	{"\xf0\x9f\x98", 0xfffd, 3}, // "😀" cut short
	{"\xed\xa0\x80", 0xfffd, 1}, // a WTF-8 surrogate: ED may only be followed by 80..9F
	{"\xed\x9f\xbf", 0xd7ff, 3}, // the code point before the surrogates
	{"\xe0\x80", 0xfffd, 1},     // overlong
	{"\xe0\xa0\x80", 0x800, 3},  // the shortest three-byte form
	{"\xc0\xaf", 0xfffd, 1},     // overlong "/"
	{"\xf4\x90", 0xfffd, 1},     // above U+10FFFF
	{"\xf0\x80\x80\x80", 0xfffd, 1},
	{"\xf4\x8f\xbf", 0xfffd, 3},
	{"\xc2", 0xfffd, 1}, {"\xff", 0xfffd, 1}, {"\x80", 0xfffd, 1}, {"\xf5\x80\x80\x80", 0xfffd, 1},
}

func TestDecodeRune(t *testing.T) {
	for _, c := range decodeVectors {
		if r, n := jsstring.DecodeRune(c.in); r != c.r || n != c.size {
			t.Errorf("DecodeRune(%q) = %U, %d; want %U, %d", c.in, r, n, c.r, c.size)
		}
		if r, n := jsstring.DecodeRune([]byte(c.in)); r != c.r || n != c.size {
			t.Errorf("DecodeRune([]byte %q) = %U, %d; want %U, %d", c.in, r, n, c.r, c.size)
		}
	}
}

// validPrefixes holds every proper prefix of the UTF-8 encoding of every
// scalar value: the byte strings that could begin a valid sequence.
var validPrefixes = sync.OnceValue(func() map[string]bool {
	m := make(map[string]bool)
	var buf [4]byte
	for r := rune(0x80); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		for k := 1; k < n; k++ {
			m[string(buf[:k])] = true
		}
	}
	return m
})

// decodeSpec is DecodeRune from its definition: Go's decoder for a valid
// sequence, else U+FFFD and the length of the longest prefix that could
// begin a valid sequence, at least 1.
func decodeSpec(s string) (rune, int) {
	if s == "" {
		return utf8.RuneError, 0
	}
	if r, n := utf8.DecodeRuneInString(s); r != utf8.RuneError || n != 1 {
		return r, n
	}
	n := 1
	for k := 2; k <= min(3, len(s)); k++ {
		if validPrefixes()[s[:k]] {
			n = k
		}
	}
	return utf8.RuneError, n
}

func checkDecode(t *testing.T, s string) {
	t.Helper()
	want, wantN := decodeSpec(s)
	if r, n := jsstring.DecodeRune(s); r != want || n != wantN {
		t.Fatalf("DecodeRune(%q) = %U, %d; want %U, %d", s, r, n, want, wantN)
	}
	if r, n := jsstring.DecodeRune([]byte(s)); r != want || n != wantN {
		t.Fatalf("DecodeRune([]byte %q) = %U, %d; want %U, %d", s, r, n, want, wantN)
	}
}

// Every input of up to two bytes, and every longer one whose later bytes
// are taken from each class of bytes that UTF-8 decoding tells apart; and
// every scalar value.
func TestDecodeRuneExhaustive(t *testing.T) {
	classes := []byte{0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xFF}
	for c0 := range 256 {
		checkDecode(t, string([]byte{byte(c0)}))
		for c1 := range 256 {
			checkDecode(t, string([]byte{byte(c0), byte(c1)}))
			for _, c2 := range classes {
				checkDecode(t, string([]byte{byte(c0), byte(c1), c2}))
			}
		}
		for _, c1 := range classes {
			for _, c2 := range classes {
				for _, c3 := range classes {
					checkDecode(t, string([]byte{byte(c0), c1, c2, c3}))
				}
			}
		}
	}
	var buf [4]byte
	for r := range rune(utf8.MaxRune + 1) {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		n := utf8.EncodeRune(buf[:], r)
		if got, size := jsstring.DecodeRune(buf[:n]); got != r || size != n {
			t.Fatalf("DecodeRune(%x) = %U, %d; want %U, %d", buf[:n], got, size, r, n)
		}
	}
}

// FuzzDecodeRune: DecodeRune agrees with its definition at every offset of
// any input.
func FuzzDecodeRune(f *testing.F) {
	for _, c := range decodeVectors {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for i := range len(s) {
			checkDecode(t, s[i:])
		}
	})
}

// Lone surrogates as WTF-8.
const (
	hi = "\xed\xa0\xbd" // U+D83D
	lo = "\xed\xb8\x80" // U+DE00
)

// unitsOf returns the UTF-16 code units of the WTF-8 string s, which must
// be well formed.
func unitsOf(t *testing.T, s string) []uint16 {
	t.Helper()
	var us []uint16
	for i := 0; i < len(s); {
		if u := jsstring.SurrogateAt(s, i); u != 0 {
			us = append(us, uint16(u))
			i += 3
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			t.Fatalf("%q is not WTF-8 at %d", s, i)
		}
		us = utf16.AppendRune(us, r)
		i += n
	}
	return us
}

func TestWTF8(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", ""}, {"abc", "abc"}, {"é😀", "é😀"},
		{hi, hi}, {lo, lo}, {lo + hi, lo + hi}, {"a" + hi + "b" + lo, "a" + hi + "b" + lo},
		{hi + lo, "😀"},           // a pair written as halves is the code point
		{hi + hi + lo, hi + "😀"}, // the second high surrogate pairs
		{hi + "\xff" + lo, hi + "\ufffd" + lo},
		{"\xed\xa0", "\ufffd\ufffd"}, // cut short
		{"\xe2\x82A\xff", "\ufffdA\ufffd"},
	} {
		got := jsstring.ToWTF8(c.in)
		if got != c.want {
			t.Errorf("ToWTF8(%q) = %q, want %q", c.in, got, c.want)
		}
		if again := jsstring.ToWTF8(got); again != got {
			t.Errorf("ToWTF8(%q) = %q, not a fixed point", got, again)
		}
	}
	for _, s := range []string{"plain ASCII", "é😀"} {
		if unsafe.StringData(jsstring.ToWTF8(s)) != unsafe.StringData(s) {
			t.Errorf("ToWTF8(%q) copied valid UTF-8", s)
		}
	}
	// AppendUnit concatenates as JavaScript does.
	var b []byte
	for _, u := range []rune{'a', 0xD83D, 0xD83D, 0xDE00, 0xDE00, 0xE9, 0xD800} {
		b = jsstring.AppendUnit(b, u)
	}
	if want := "a" + hi + "😀" + lo + "é\xed\xa0\x80"; string(b) != want {
		t.Errorf("AppendUnit built %q, want %q", b, want)
	}
}

func TestUTF16Len(t *testing.T) {
	for s, want := range map[string]int{
		"": 0, "abc": 3, "é": 1, "€": 1, "😀": 2, hi: 1, hi + lo: 2, "a" + hi + "é😀": 5,
		strings.Repeat("x", 100) + "😀" + strings.Repeat("y", 9): 111,
	} {
		if got := jsstring.UTF16Len(s); got != want {
			t.Errorf("UTF16Len(%q) = %d, want %d", s, got, want)
		}
		if got := jsstring.UTF16Len([]byte(s)); got != want {
			t.Errorf("UTF16Len([]byte %q) = %d, want %d", s, got, want)
		}
	}
}

func TestAppendLatin1(t *testing.T) {
	// Buffer.from("aé€😀", "binary"): each code unit's low byte.
	got := jsstring.AppendLatin1([]byte("x"), []byte("aé€😀"))
	if want := []byte{'x', 'a', 0xE9, 0xAC, 0x3D, 0x00}; !bytes.Equal(got, want) {
		t.Errorf("AppendLatin1 = %x, want %x", got, want)
	}
	if !jsstring.IsASCII([]byte("0123456789abcdef\x7f")) || jsstring.IsASCII([]byte("0123456789abcdef\x80")) {
		t.Error("IsASCII wrong")
	}
}

// JSON.stringify's output for these strings (Node v20), and the same with
// every code unit from 0x80 up escaped.
func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, json, ascii string }{
		{"", `""`, `""`},
		{"plain", `"plain"`, `"plain"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f\"", `"\u0000\u0001\u001f` + "\x7f\""},
		{"\b\f\n\r\t", `"\b\f\n\r\t"`, `"\b\f\n\r\t"`},
		{`"q" b\s /<>&`, `"\"q\" b\\s /<>&"`, `"\"q\" b\\s /<>&"`},
		{"é\u2028😀", "\"é\u2028😀\"", `"\u00e9\u2028\ud83d\ude00"`},
		{hi + "x" + lo, `"\ud83dx\ude00"`, `"\ufffd\ufffd\ufffdx\ufffd\ufffd\ufffd"`}, // AppendQuoteASCII reads UTF-8
		{"\xed\x9f\xbf", "\"\ud7ff\"", `"\ud7ff"`},
	} {
		if got := string(jsstring.AppendQuote(nil, c.in)); got != c.json {
			t.Errorf("AppendQuote(%q) = %s, want %s", c.in, got, c.json)
		}
		if got := string(jsstring.AppendQuoteASCII(nil, c.in)); got != c.ascii {
			t.Errorf("AppendQuoteASCII(%q) = %s, want %s", c.in, got, c.ascii)
		}
	}
}

func TestDecodeEscape(t *testing.T) {
	for _, c := range []struct {
		in        string
		u         rune
		n         int
		canonical bool
	}{
		{`\"`, '"', 2, true}, {`\\`, '\\', 2, true}, {`\/`, '/', 2, false}, {`\b`, '\b', 2, true},
		{`\f`, '\f', 2, true}, {`\n`, '\n', 2, true}, {`\r`, '\r', 2, true}, {`\t`, '\t', 2, true},
		{`\u00e9x`, 0xE9, 6, true}, {`\u00E9`, 0xE9, 6, false}, {`\u0041`, 'A', 6, false},
		{`\u001f`, 0x1F, 6, true}, {`\u000a`, '\n', 6, false}, {`\u007f`, 0x7F, 6, false},
		{`\u0022`, '"', 6, false}, {`\ud800`, 0xD800, 6, true}, {`\uDFFF`, 0xDFFF, 6, false},
		{`\`, 0, 0, false}, {`\x`, 0, 0, false}, {`\u12`, 0, 0, false}, {`\u12g4`, 0, 0, false}, {`\U1234`, 0, 0, false},
	} {
		u, n := jsstring.DecodeEscape(c.in)
		if u != c.u || n != c.n {
			t.Errorf("DecodeEscape(%q) = %U, %d; want %U, %d", c.in, u, n, c.u, c.n)
			continue
		}
		if n > 0 && jsstring.IsCanonicalEscape(c.in[:n], u) != c.canonical {
			t.Errorf("IsCanonicalEscape(%q) = %v", c.in[:n], !c.canonical)
		}
	}
}

// unquote decodes the JSON string literal lit, as written by AppendQuote,
// into WTF-8 with the package's own pieces.
func unquote(t *testing.T, lit []byte) string {
	t.Helper()
	var b []byte
	for i := 1; i < len(lit)-1; {
		if lit[i] == '\\' {
			u, n := jsstring.DecodeEscape(lit[i:])
			if n == 0 {
				t.Fatalf("invalid escape in %q at %d", lit, i)
			}
			b = jsstring.AppendUnit(b, u)
			i += n
			continue
		}
		r, n := jsstring.DecodeRune(lit[i:])
		b = utf8.AppendRune(b, r)
		i += n
	}
	return string(b)
}

// FuzzWTF8: ToWTF8 makes well-formed WTF-8 and leaves it alone; its
// UTF-16 length, its units rebuilt with AppendUnit, and the round trip
// through AppendQuote agree; AppendQuoteASCII writes ASCII JSON that
// encoding/json reads as the input when that is valid UTF-8.
func FuzzWTF8(f *testing.F) {
	for _, s := range []string{"", "a", hi + lo, lo + hi, hi + hi + lo, "\xed\xa0", "é😀\u2028\"\\\x00", "\xe2\x82A\xf0\x9f\x98"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w := jsstring.ToWTF8(s)
		if jsstring.ToWTF8(w) != w {
			t.Fatalf("ToWTF8(%q) = %q, not a fixed point", s, w)
		}
		if utf8.ValidString(s) && w != s {
			t.Fatalf("ToWTF8 changed valid UTF-8 %q to %q", s, w)
		}
		us := unitsOf(t, w)
		if n := jsstring.UTF16Len(w); n != len(us) || jsstring.UTF16Len([]byte(w)) != n {
			t.Fatalf("UTF16Len(%q) = %d, want %d", w, n, len(us))
		}
		var b []byte
		for _, u := range us {
			b = jsstring.AppendUnit(b, rune(u))
		}
		if string(b) != w {
			t.Fatalf("units of %q rebuilt as %q", w, b)
		}
		lit := jsstring.AppendQuote(nil, w)
		if !json.Valid(lit) {
			t.Fatalf("AppendQuote(%q) = %q is not JSON", w, lit)
		}
		if back := unquote(t, lit); back != w {
			t.Fatalf("AppendQuote(%q) = %q reads back as %q", w, lit, back)
		}
		ascii := jsstring.AppendQuoteASCII(nil, s)
		var back string
		if err := json.Unmarshal(ascii, &back); err != nil || slices.ContainsFunc(ascii, func(c byte) bool { return c >= 0x80 }) {
			t.Fatalf("AppendQuoteASCII(%q) = %q: not ASCII JSON: %v", s, ascii, err)
		}
		if utf8.ValidString(s) && back != s {
			t.Fatalf("AppendQuoteASCII(%q) = %q reads back as %q", s, ascii, back)
		}
	})
}

// TestNode checks the package against V8 itself: the decoding of random
// and edge-case byte strings, and JSON.stringify and String#length of
// random UTF-16 strings with lone surrogates.
func TestNode(t *testing.T) {
	path, err := filepath.Abs(filepath.Join("testdata", "jsstring.js"))
	if err != nil {
		t.Fatal(err)
	}
	p := oracle.StartScript(t, oracle.Script{Path: path})
	r := rand.New(rand.NewPCG(1, 2))
	pieces := []string{"a", "\"", "\\", "\x00", "\x1f", "\x7f", "é", "€", "😀", "\u2028", "\ufffd", hi, lo}
	for _, c := range decodeVectors {
		pieces = append(pieces, c.in)
	}
	var inputs []string
	for c := 0x80; c < 0x100; c++ { // each leading byte with each class of follower
		for _, f := range []string{"", "\x80", "\x8f", "\x90", "\x9f", "\xa0", "\xbf", "\xc0", "\x80\x80", "\xbf\xbf\xbf", "A"} {
			inputs = append(inputs, string([]byte{byte(c)})+f)
		}
	}
	for range 2000 {
		var b []byte
		for range r.IntN(8) {
			if r.IntN(3) == 0 {
				b = append(b, byte(r.Uint32()))
			} else {
				b = append(b, pieces[r.IntN(len(pieces))]...)
			}
		}
		inputs = append(inputs, string(b))
	}
	b64s := make([]string, len(inputs))
	for i, in := range inputs {
		b64s[i] = base64.StdEncoding.EncodeToString([]byte(in))
	}
	reply := p.Do(oracle.Cmd{"op": "decode", "inputs": b64s})
	var units [][]uint16
	var asciis [][]byte
	if err := reply.Decode("units", &units); err != nil {
		t.Fatal(err)
	}
	if err := reply.Decode("ascii", &asciis); err != nil || len(units) != len(inputs) || len(asciis) != len(inputs) {
		t.Fatalf("decode reply: %v, %d units, %d ascii", err, len(units), len(asciis))
	}
	for i, in := range inputs {
		var got []uint16
		for j := 0; j < len(in); {
			r, n := jsstring.DecodeRune(in[j:])
			got = utf16.AppendRune(got, r)
			j += n
		}
		if !slices.Equal(got, units[i]) {
			t.Errorf("decoding %q: %U, node %U", in, got, units[i])
		}
		if a := jsstring.AppendQuoteASCII(nil, in); !bytes.Equal(a, asciis[i]) {
			t.Errorf("AppendQuoteASCII(%q) = %s, node %s", in, a, asciis[i])
		}
	}

	special := []uint16{0, 0x1F, '"', '\\', '/', 0x7F, 0xE9, 0x2028, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0xFFFD, 0xFFFF}
	strs := make([][]uint16, 2000)
	for i := range strs {
		strs[i] = []uint16{} // JSON [], not null
		for range r.IntN(10) {
			switch r.IntN(3) {
			case 0:
				strs[i] = append(strs[i], special[r.IntN(len(special))])
			case 1:
				strs[i] = append(strs[i], uint16(0xD800+r.IntN(0x800)))
			default:
				strs[i] = append(strs[i], uint16(r.Uint32()))
			}
		}
	}
	reply = p.Do(oracle.Cmd{"op": "stringify", "strings": strs})
	var jsons [][]byte
	var lens []int
	if err := reply.Decode("json", &jsons); err != nil {
		t.Fatal(err)
	}
	if err := reply.Decode("length", &lens); err != nil || len(jsons) != len(strs) || len(lens) != len(strs) {
		t.Fatalf("stringify reply: %v, %d json, %d length", err, len(jsons), len(lens))
	}
	for i, us := range strs {
		var w []byte
		for _, u := range us {
			w = jsstring.AppendUnit(w, rune(u))
		}
		if got := jsstring.AppendQuote(nil, string(w)); !bytes.Equal(got, jsons[i]) {
			t.Errorf("AppendQuote(%U) = %s, node %s", us, got, jsons[i])
		}
		if got := jsstring.UTF16Len(w); got != lens[i] {
			t.Errorf("UTF16Len(%U) = %d, node %d", us, got, lens[i])
		}
	}
}
