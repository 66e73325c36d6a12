// Package jsstring is JavaScript's string arithmetic over bytes, shared by
// the JSON of the wire (internal/jsjson) and of signed messages
// (ssb/message).
//
// A JavaScript string is a sequence of UTF-16 code units, and any sequence
// is allowed: a surrogate need not be paired. Go holds such a string as
// WTF-8 (https://simonsapin.github.io/wtf-8/): UTF-8 that may also encode an
// unpaired surrogate U+D800..U+DFFF as the three bytes ED A0 80..ED BF BF,
// while a pair is always the four-byte UTF-8 of its code point. Valid UTF-8
// is valid WTF-8 without lone surrogates.
//
// Bytes from outside are read as JavaScript's UTF-8 decoder (the WHATWG
// Encoding Standard's, used by TextDecoder and Node's Buffer#toString) reads
// them: DecodeRune. JSON string literals are written as JSON.stringify
// writes them: AppendQuote, and AppendQuoteASCII for the ASCII-only form of
// the replication wire.
package jsstring

import (
	"encoding/binary"
	"unicode/utf8"
	"unsafe"
)

// Text is what the functions of this package read: a string or its bytes.
type Text interface{ string | []byte }

// leads tells, for each byte that can begin a UTF-8 sequence of two bytes or
// more, how many continuation bytes follow and the range of the first of
// them (the Unicode Standard, Table 3-7, Well-Formed UTF-8 Byte Sequences).
// The range excludes overlong forms, surrogates and code points above
// U+10FFFF. need is 0 for a byte that begins no sequence.
var leads = func() (t [256]struct{ need, lo, hi byte }) {
	for c := 0xC2; c <= 0xF4; c++ {
		l := &t[c]
		l.lo, l.hi = 0x80, 0xBF
		switch {
		case c <= 0xDF:
			l.need = 1
		case c <= 0xEF:
			l.need = 2
		default:
			l.need = 3
		}
	}
	t[0xE0].lo = 0xA0
	t[0xED].hi = 0x9F
	t[0xF0].lo = 0x90
	t[0xF4].hi = 0x8F
	return t
}()

// DecodeRune decodes the first UTF-8 sequence of s as the WHATWG decoder
// does. An invalid sequence yields U+FFFD and the length of its maximal
// subpart: the longest prefix that could begin a valid sequence, or 1.
// Go's utf8.DecodeRune differs only there: it always reports 1, so
// "\xe2\x82A" is two U+FFFD to Go and one to JavaScript. An empty s yields
// U+FFFD and 0. A WTF-8 lone surrogate is invalid UTF-8 (three U+FFFD): see
// SurrogateAt.
func DecodeRune[T Text](s T) (rune, int) {
	if len(s) == 0 {
		return utf8.RuneError, 0
	}
	c := s[0]
	if c < utf8.RuneSelf {
		return rune(c), 1
	}
	l := leads[c]
	if l.need == 0 || len(s) < 2 || s[1] < l.lo || s[1] > l.hi {
		return utf8.RuneError, 1
	}
	if l.need == 1 {
		return rune(c&0x1F)<<6 | rune(s[1]&0x3F), 2
	}
	if len(s) < 3 || s[2]&0xC0 != 0x80 {
		return utf8.RuneError, 2
	}
	if l.need == 2 {
		return rune(c&0x0F)<<12 | rune(s[1]&0x3F)<<6 | rune(s[2]&0x3F), 3
	}
	if len(s) < 4 || s[3]&0xC0 != 0x80 {
		return utf8.RuneError, 3
	}
	return rune(c&0x07)<<18 | rune(s[1]&0x3F)<<12 | rune(s[2]&0x3F)<<6 | rune(s[3]&0x3F), 4
}

// SurrogateAt returns the surrogate code unit WTF-8-encoded at s[i:], or 0.
func SurrogateAt[T Text](s T, i int) rune {
	if i+2 < len(s) && s[i] == 0xED && s[i+1] >= 0xA0 && s[i+1] <= 0xBF && s[i+2] >= 0x80 && s[i+2] <= 0xBF {
		return 0xD000 | rune(s[i+1]&0x3F)<<6 | rune(s[i+2]&0x3F)
	}
	return 0
}

// AppendUnit appends the UTF-16 code unit u (below 0x10000) to the WTF-8
// string dst, as JavaScript concatenates strings: a low surrogate that
// follows a high one at the end of dst joins it into their code point; any
// other surrogate stays alone, as its three bytes.
func AppendUnit(dst []byte, u rune) []byte {
	switch {
	case u < utf8.RuneSelf:
		return append(dst, byte(u))
	case u < 0xD800 || u > 0xDFFF:
		return utf8.AppendRune(dst, u)
	case u >= 0xDC00:
		if n := len(dst) - 3; n >= 0 {
			if hi := SurrogateAt(dst, n); hi >= 0xD800 && hi <= 0xDBFF {
				return utf8.AppendRune(dst[:n], 0x10000+(hi-0xD800)<<10+(u-0xDC00))
			}
		}
	}
	return append(dst, 0xED, byte(0x80|(u>>6)&0x3F), byte(0x80|u&0x3F))
}

// ToWTF8 returns s as well-formed WTF-8: lone surrogates stay, a high
// surrogate followed by a low one becomes their code point, and any other
// invalid byte sequence becomes U+FFFD, one per maximal subpart (see
// DecodeRune). Valid UTF-8 is returned as is, without a copy.
func ToWTF8(s string) string {
	i := asciiPrefix(bytesOf(s))
	if i == len(s) || utf8.ValidString(s[i:]) {
		return s // valid UTF-8 holds no surrogates
	}
	b := make([]byte, 0, len(s)+8)
	b = append(b, s[:i]...)
	for i < len(s) {
		if u := SurrogateAt(s, i); u != 0 {
			b = AppendUnit(b, u)
			i += 3
			continue
		}
		r, n := DecodeRune(s[i:])
		b = utf8.AppendRune(b, r)
		i += n
	}
	return string(b)
}

// UTF16Len returns the number of UTF-16 code units of the WTF-8 string s:
// JavaScript's String#length.
func UTF16Len[T Text](s T) int {
	b := bytesOf(s)
	n := 0
	for len(b) > 0 {
		a := asciiPrefix(b)
		n += a
		b = b[a:]
		// Count up to the next ASCII byte: a unit per leading byte, two for
		// a code point above the BMP.
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

// AppendLatin1 appends Buffer.from(text, "binary") for the string whose
// UTF-8 is b, which must be valid: each UTF-16 code unit, masked to its low
// byte. This is the "latin1 quirk" of SSB message ids.
func AppendLatin1(dst, b []byte) []byte {
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

// IsASCII reports whether b is ASCII.
func IsASCII(b []byte) bool { return asciiPrefix(b) == len(b) }

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

// bytesOf returns the bytes of s without copying them; they must not be
// modified.
func bytesOf[T Text](s T) []byte {
	switch s := any(s).(type) {
	case string:
		return unsafe.Slice(unsafe.StringData(s), len(s))
	case []byte:
		return s
	}
	panic("jsstring: unreachable")
}
