package message_test

import (
	"encoding/base64"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/ssb/message"
)

// gen makes random JSON values and JSON texts that reach the corners of
// V8's JSON: lone surrogates, control characters, astral characters,
// integer-like and duplicate keys, and numbers whose formatting is tricky.
type gen struct{ r *rand.Rand }

func newGen(seed uint64) *gen { return &gen{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))} }

// Lone surrogates as WTF-8.
const (
	hiSurrogate = "\xed\xa0\xbd" // U+D83D
	loSurrogate = "\xed\xb8\x80" // U+DE00
)

// stringPieces are the building blocks of random strings (as WTF-8).
var stringPieces = []string{
	"a", "Z", "post", " ", "\"", "\\", "/", "\x00", "\x01", "\x08", "\x09", "\x0a", "\x0c", "\x0d", "\x1f", "\x7f",
	"é", "ü", "\u0080", "\u00ff", "\u0100", "\u07ff", "\u0800", "’", "☃", "€", "\u2028", "\u2029", "\ufeff", "\ufffd", "\uffff",
	"中文", "😀", "\U0001F3F3\uFE0F\u200D\U0001F308", "\U00010000", "\U0010FFFF",
	hiSurrogate, loSurrogate, loSurrogate + hiSurrogate, "%", "@", "&", "<", ">", "&amp;",
}

func (g *gen) str(maxPieces int) string {
	var b strings.Builder
	for range g.r.IntN(maxPieces + 1) {
		b.WriteString(stringPieces[g.r.IntN(len(stringPieces))])
	}
	return b.String()
}

// numbers are doubles whose JavaScript formatting is easy to get wrong.
var numbers = []float64{
	0, math.Copysign(0, -1), 1, -1, 0.1, 0.1 + 0.2, 1e21, 1e-7, 1e-6, 1.5e-6, 999999999999999900000, 1e20,
	123e-20, 1e300, 5e-324, math.MaxFloat64, -math.MaxFloat64, 1 << 53, 1<<53 + 2, 12345678901234567890,
	-1e21, 4294967295, 4294967296, 2147483647, -2147483648, 1.7976931348623157e308, 2.2250738585072014e-308,
	100, 1e-323, 0.000001, 1234.5678, 1 / 3.0, 2 / 3.0, 9007199254740993,
}

func (g *gen) number() float64 {
	switch g.r.IntN(5) {
	case 0:
		return numbers[g.r.IntN(len(numbers))]
	case 1:
		for {
			if f := math.Float64frombits(g.r.Uint64()); !math.IsNaN(f) && !math.IsInf(f, 0) {
				return f
			}
		}
	case 2:
		return float64(g.r.Int64N(1<<62) - 1<<61)
	case 3:
		return float64(g.r.IntN(2000) - 1000)
	}
	return g.r.NormFloat64() * math.Pow(10, float64(g.r.IntN(40)-20))
}

// keyPool are object keys with V8 ordering quirks.
var keyPool = []string{
	"0", "1", "2", "10", "01", "00", "-1", "1.0", "9", "4294967294", "4294967295", "4294967296", "1e3",
	"type", "text", "a", "b", "", " ", "__proto__", "constructor", "toString", "é", "😀", hiSurrogate,
}

func (g *gen) key() string {
	if g.r.IntN(4) == 0 {
		return g.str(3)
	}
	return keyPool[g.r.IntN(len(keyPool))]
}

// value returns a random value at most depth levels deep.
func (g *gen) value(depth int) message.Value {
	n := 6
	if depth <= 0 {
		n = 4
	}
	switch g.r.IntN(n) {
	case 0:
		return message.Value{}
	case 1:
		return message.BoolValue(g.r.IntN(2) == 0)
	case 2:
		return message.NumberValue(g.number())
	case 3:
		return message.StringValue(g.str(8))
	case 4:
		elems := make([]message.Value, g.r.IntN(4))
		for i := range elems {
			elems[i] = g.value(depth - 1)
		}
		return message.ArrayValue(elems...)
	}
	return message.ObjectValue(g.members(depth-1, 5)...)
}

func (g *gen) members(depth, max int) []message.Member {
	ms := make([]message.Member, g.r.IntN(max+1))
	for i := range ms {
		ms[i] = message.Member{Key: g.key(), Value: g.value(depth)}
	}
	return ms
}

// content returns random message content: an object with a valid type, or
// now and then an encrypted string.
func (g *gen) content() message.Value {
	if g.r.IntN(10) == 0 {
		return message.StringValue(g.boxed())
	}
	var typ string
	for {
		typ = g.str(6)
		if n := utf16Len(typ); n >= 3 && n <= 52 {
			break
		}
	}
	ms := g.members(3, 6)
	// The type goes first, last or between the other members.
	at := g.r.IntN(len(ms) + 1)
	ms = append(ms[:at], append([]message.Member{{Key: "type", Value: message.StringValue(typ)}}, ms[at:]...)...)
	for i := range ms {
		if ms[i].Key == "type" && i != at {
			ms[i].Key = "notType" // keep the valid type the last one written
		}
	}
	return message.ObjectValue(ms...)
}

// boxed returns an encrypted content string ssb-validate accepts.
func (g *gen) boxed() string {
	b := make([]byte, g.r.IntN(80))
	for i := range b {
		b[i] = byte(g.r.Uint32())
	}
	suffixes := []string{".box", ".box", ".box2", ".boxanything", ".box☃"}
	return base64.StdEncoding.EncodeToString(b) + suffixes[g.r.IntN(len(suffixes))]
}

// utf16Len is JavaScript's String#length of a WTF-8 string.
func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if strings.HasPrefix(s[i:], "\xed") && i+2 < len(s) && s[i+1] >= 0xa0 { // a lone surrogate
			n++
			i += 3
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n++
		if r > 0xffff {
			n++
		}
		i += size
	}
	return n
}

// text appends random JSON text, exercising the parser: escapes of every
// kind (lone and paired surrogates, upper- and lowercase hex), raw
// invalid UTF-8, whitespace, duplicate keys, and number literals of any
// length and exponent. With bad set it sometimes breaks the syntax.
func (g *gen) text(b []byte, depth int, bad bool) []byte {
	b = g.space(b)
	if bad && g.r.IntN(40) == 0 {
		breakers := []string{"{", "]", ",", "01", "1.", "\"\\x\"", "\"\x01\"", "tru", "-", "[1,]", "\"\\ud83", "NaN", "'a'"}
		return append(b, breakers[g.r.IntN(len(breakers))]...)
	}
	n := 7
	if depth <= 0 {
		n = 5
	}
	switch g.r.IntN(n) {
	case 0:
		b = append(b, []string{"null", "true", "false"}[g.r.IntN(3)]...)
	case 1, 2:
		b = g.numberText(b)
	case 3, 4:
		b = g.stringText(b)
	case 5:
		b = append(b, '[')
		for i := range g.r.IntN(4) {
			if i > 0 {
				b = append(b, ',')
			}
			b = g.text(b, depth-1, bad)
		}
		b = append(g.space(b), ']')
	default:
		b = append(b, '{')
		var keys []string
		for i := range g.r.IntN(6) {
			if i > 0 {
				b = append(b, ',')
			}
			k := g.key()
			if len(keys) > 0 && g.r.IntN(4) == 0 {
				k = keys[g.r.IntN(len(keys))] // a duplicate key
			}
			keys = append(keys, k)
			b = g.space(b)
			b = g.quote(b, k)
			b = append(g.space(b), ':')
			b = g.text(b, depth-1, bad)
		}
		b = append(g.space(b), '}')
	}
	return g.space(b)
}

func (g *gen) space(b []byte) []byte {
	if g.r.IntN(5) != 0 {
		return b
	}
	for range g.r.IntN(3) + 1 {
		b = append(b, " \t\r\n"[g.r.IntN(4)])
	}
	return b
}

func (g *gen) digits(b []byte, n int, leading bool) []byte {
	for i := range n {
		d := byte('0' + g.r.IntN(10))
		if i == 0 && leading && d == '0' {
			d = '1'
		}
		b = append(b, d)
	}
	return b
}

func (g *gen) numberText(b []byte) []byte {
	if g.r.IntN(3) == 0 {
		return strconv.AppendFloat(b, g.number(), 'g', -1, 64)
	}
	if g.r.IntN(2) == 0 {
		b = append(b, '-')
	}
	if g.r.IntN(5) == 0 {
		b = append(b, '0')
	} else {
		b = g.digits(b, 1+g.r.IntN(25), true)
	}
	if g.r.IntN(2) == 0 {
		b = append(b, '.')
		b = g.digits(b, 1+g.r.IntN(25), false)
	}
	if g.r.IntN(3) == 0 {
		b = append(b, "eE"[g.r.IntN(2)])
		if s := g.r.IntN(3); s < 2 {
			b = append(b, "+-"[s])
		}
		b = g.digits(b, 1+g.r.IntN(3), false)
	}
	return b
}

// stringText appends a random string literal.
func (g *gen) stringText(b []byte) []byte {
	b = append(b, '"')
	for range g.r.IntN(10) {
		switch g.r.IntN(6) {
		case 0: // a \u escape of any code unit, surrogates included
			u := []int{g.r.IntN(0x10000), 0xd800 + g.r.IntN(0x400), 0xdc00 + g.r.IntN(0x400), g.r.IntN(0x20)}[g.r.IntN(4)]
			hex := strconv.FormatInt(int64(u), 16)
			hex = strings.Repeat("0", 4-len(hex)) + hex
			if g.r.IntN(2) == 0 {
				hex = strings.ToUpper(hex)
			}
			b = append(b, `\u`+hex...)
		case 1: // an escaped pair
			r := 0x10000 + g.r.IntN(0x100000)
			b = append(b, `\u`+strconv.FormatInt(int64(0xd800+(r-0x10000)>>10), 16)+`\u`+strconv.FormatInt(int64(0xdc00+(r-0x10000)&0x3ff), 16)...)
		case 2:
			b = append(b, []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`}[g.r.IntN(8)]...)
		case 3: // raw bytes that are not UTF-8
			b = append(b, []string{"\xff", "\xc0\xaf", "\xe2\x82", "\xf0\x9f\x98", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80", "\xe0\x80"}[g.r.IntN(8)]...)
		default:
			p := stringPieces[g.r.IntN(len(stringPieces))]
			if p[0] < 0x20 || p == `"` || p == `\` {
				p = "x"
			}
			b = append(b, p...)
		}
	}
	return append(b, '"')
}

// quote appends s as a JSON string literal, escaping what JSON requires
// and lone surrogates.
func (g *gen) quote(b []byte, s string) []byte {
	return message.StringValue(s).AppendCompact(b)
}
