package message

import (
	"encoding/binary"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// This file holds the string arithmetic of JavaScript: strings are
// sequences of UTF-16 code units, held here as WTF-8 (see Value).

// decodeRune decodes the first UTF-8 sequence of s as the WHATWG decoder
// (TextDecoder, Node's Buffer#toString) does. An invalid sequence yields
// U+FFFD and the length of its maximal subpart: the longest prefix that
// could begin a valid sequence, or 1. Go's utf8.DecodeRune differs only
// there: it always reports 1, so "\xe2\x82A" is two U+FFFD to Go and one to
// JavaScript.
func decodeRune(s string) (rune, int) {
	r, n := utf8.DecodeRuneInString(s)
	if r != utf8.RuneError || n != 1 {
		return r, n
	}
	c := s[0]
	lo, hi := byte(0x80), byte(0xBF)
	var need int
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c == 0xED:
		need, hi = 2, 0x9F
	case c >= 0xE1 && c <= 0xEF:
		need = 2
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return utf8.RuneError, 1
	}
	i := 1
	for ; i <= need && i < len(s); i++ {
		if s[i] < lo || s[i] > hi {
			break
		}
		lo, hi = 0x80, 0xBF
	}
	return utf8.RuneError, i
}

// surrogateAt returns the surrogate code unit WTF-8-encoded at s[i:], or 0.
func surrogateAt(s string, i int) rune {
	if i+2 < len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2] >= 0x80 && s[i+2] <= 0xBF {
		return 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
	}
	return 0
}

// appendUnit appends the code unit u, a BMP code point or a surrogate, as
// WTF-8.
func appendUnit(dst []byte, u rune) []byte {
	if u >= 0xD800 && u <= 0xDFFF {
		return append(dst, 0xED, byte(0x80|(u>>6)&0x3F), byte(0x80|u&0x3F))
	}
	return utf8.AppendRune(dst, u)
}

// appendAfterHigh appends a code unit that follows a high surrogate hi already
// written at the end of dst: a low surrogate joins it into one code point.
func appendAfterHigh(dst []byte, hi, u rune) []byte {
	if u >= 0xDC00 && u <= 0xDFFF {
		dst = dst[:len(dst)-3]
		return utf8.AppendRune(dst, 0x10000+(hi-0xD800)<<10+(u-0xDC00))
	}
	return appendUnit(dst, u)
}

// normWTF8 returns s as well-formed WTF-8: surrogates stay, a high
// surrogate followed by a low one becomes their code point, and any other
// invalid byte sequence becomes U+FFFD (one per maximal subpart).
func normWTF8(s string) string {
	i := 0
	for i < len(s) && s[i] < utf8.RuneSelf {
		i++
	}
	if i == len(s) || utf8.ValidString(s[i:]) {
		return s // valid UTF-8 holds no surrogates
	}
	b := make([]byte, 0, len(s)+8)
	b = append(b, s[:i]...)
	var hi rune // the high surrogate just written, or 0
	for i < len(s) {
		if u := surrogateAt(s, i); u != 0 {
			if hi != 0 {
				b = appendAfterHigh(b, hi, u)
			} else {
				b = appendUnit(b, u)
			}
			hi = 0
			if u <= 0xDBFF { // written as a unit: only a low surrogate joins
				hi = u
			}
			i += 3
			continue
		}
		r, n := decodeRune(s[i:])
		b = utf8.AppendRune(b, r)
		hi = 0
		i += n
	}
	return string(b)
}

// utf16Len returns the number of UTF-16 code units of the WTF-8 text b:
// JavaScript's String#length.
func utf16Len(b []byte) int {
	n := 0
	for len(b) > 0 {
		a := asciiPrefix(b)
		n += a
		b = b[a:]
		// Count up to the next ASCII byte.
		i := 0
		for ; i < len(b) && b[i] >= utf8.RuneSelf; i++ {
			if b[i]&0xC0 != 0x80 {
				n++
			}
			if b[i] >= 0xF0 {
				n++
			}
		}
		b = b[i:]
	}
	return n
}

// utf16LenString is utf16Len for a string.
func utf16LenString(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c&0xC0 != 0x80 {
			n++
		}
		if c >= 0xF0 {
			n++
		}
	}
	return n
}

// appendLatin1 appends Buffer.from(text, "binary") for the string whose
// UTF-8 is b (a printer's output, which holds no lone surrogates): each
// UTF-16 code unit, masked to its low byte. This is the "latin1 quirk" of
// SSB message ids.
func appendLatin1(dst, b []byte) []byte {
	for i := 0; i < len(b); {
		if n := asciiPrefix(b[i:]); n > 0 {
			dst = append(dst, b[i:i+n]...)
			i += n
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		i += n
		if r < 0x10000 {
			dst = append(dst, byte(r))
			continue
		}
		r -= 0x10000
		dst = append(dst, byte(0xD800+r>>10), byte(0xDC00+r&0x3FF))
	}
	return dst
}

// isASCII reports whether b is ASCII.
func isASCII(b []byte) bool { return asciiPrefix(b) == len(b) }

// asciiPrefix returns the length of the longest ASCII prefix of b.
func asciiPrefix(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		if binary.LittleEndian.Uint64(b[i:])&0x8080808080808080 != 0 {
			break
		}
	}
	for ; i < len(b); i++ {
		if b[i] >= utf8.RuneSelf {
			break
		}
	}
	return i
}

// appendJSString appends String(v), JavaScript's ToString, for a value
// that JSON.parse can produce.
func appendJSString(dst []byte, v *Value) []byte {
	switch v.kind {
	case Null:
		return append(dst, "null"...)
	case Bool:
		if v.num != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return appendJSNumber(dst, v.num)
	case String:
		return append(dst, v.str...)
	case Array: // Array#toString is join(","), with "" for null
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			if v.arr[i].kind != Null {
				dst = appendJSString(dst, &v.arr[i])
			}
		}
		return dst
	}
	return append(dst, "[object Object]"...)
}

// looseEqualsMessageID reports whether v == id in JavaScript (the
// abstract equality ssb-validate uses for previous), where id is a message
// id. An id starts with '%', so no number, boolean or null equals it; an
// object or array is compared as its ToString, so ["%…=.sha256"] does.
func looseEqualsMessageID(v *Value, id refs.Message) bool {
	switch v.kind {
	case String:
		got, ok := parseMessageID(v.str)
		return ok && got == id
	case Array, Object:
		return string(appendJSString(nil, v)) == id.String()
	}
	return false
}
