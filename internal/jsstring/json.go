package jsstring

import "unicode/utf8"

const hexDigits = "0123456789abcdef"

// plain tells the bytes AppendQuote copies as they are: all but control
// characters, '"', '\\', and 0xED, which may begin a lone surrogate.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\' && c != 0xED
	}
	return t
}()

// AppendQuote appends the WTF-8 string s as a JSON string literal, as
// JSON.stringify writes it (ECMAScript's QuoteJSONString): '"' and '\\'
// and control characters escaped (\b \f \n \r \t, else \u00xx), lone
// surrogates as \udxxx, everything else as is.
func AppendQuote(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if plain[c] {
			i++
			continue
		}
		if c == 0xED {
			u := SurrogateAt(s, i)
			if u == 0 {
				i++
				continue
			}
			dst = appendU(append(dst, s[start:i]...), u)
			i += 3
			start = i
			continue
		}
		dst = appendEscapedASCII(append(dst, s[start:i]...), c)
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendQuoteASCII appends s as an ASCII-only JSON string literal: what
// AppendQuote writes for the string a JavaScript decoder reads from the
// bytes s (see DecodeRune), with every code unit from 0x80 up written as a
// \uxxxx escape. A WTF-8 lone surrogate is invalid UTF-8 here.
func AppendQuoteASCII(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			i++
			continue
		}
		dst = append(dst, s[start:i]...)
		if c < utf8.RuneSelf {
			dst = appendEscapedASCII(dst, c)
			i++
		} else {
			r, size := DecodeRune(s[i:])
			dst = AppendJSONRune(dst, r)
			i += size
		}
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// AppendJSONUnit appends the UTF-16 code unit u as it stands inside a
// literal written by AppendQuoteASCII.
func AppendJSONUnit(dst []byte, u rune) []byte {
	if u < utf8.RuneSelf {
		if u < 0x20 || u == '"' || u == '\\' {
			return appendEscapedASCII(dst, byte(u))
		}
		return append(dst, byte(u))
	}
	return appendU(dst, u)
}

// AppendJSONRune appends the code point r as it stands inside a literal
// written by AppendQuoteASCII: its one or two UTF-16 code units.
func AppendJSONRune(dst []byte, r rune) []byte {
	if r > 0xFFFF {
		r -= 0x10000
		return appendU(appendU(dst, 0xD800+r>>10), 0xDC00+r&0x3FF)
	}
	return AppendJSONUnit(dst, r)
}

// appendEscapedASCII appends the escape JSON.stringify writes for the ASCII
// character c, one of '"', '\\' and the control characters.
func appendEscapedASCII(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\b':
		return append(dst, '\\', 'b')
	case '\f':
		return append(dst, '\\', 'f')
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
}

// appendU appends the code unit u as a \uxxxx escape.
func appendU(dst []byte, u rune) []byte {
	return append(dst, '\\', 'u', hexDigits[u>>12&0xF], hexDigits[u>>8&0xF], hexDigits[u>>4&0xF], hexDigits[u&0xF])
}

// DecodeEscape decodes the JSON escape sequence at the start of s, which
// begins with a backslash, and returns the UTF-16 code unit it stands for
// and its length: 2, or 6 for \uxxxx. It returns n == 0 if s does not begin
// with a complete, valid escape.
func DecodeEscape[T Text](s T) (u rune, n int) {
	if len(s) < 2 {
		return 0, 0
	}
	switch c := s[1]; c {
	case '"', '\\', '/':
		return rune(c), 2
	case 'b':
		return '\b', 2
	case 'f':
		return '\f', 2
	case 'n':
		return '\n', 2
	case 'r':
		return '\r', 2
	case 't':
		return '\t', 2
	case 'u':
		if len(s) < 6 {
			return 0, 0
		}
		for i := 2; i < 6; i++ {
			d := unhex[s[i]]
			if d < 0 {
				return 0, 0
			}
			u = u<<4 | rune(d)
		}
		return u, 6
	}
	return 0, 0
}

// IsCanonicalEscape reports whether the valid escape esc, which stands for
// the code unit u, is written as AppendQuoteASCII writes u: as is for most
// of ASCII, with the short escapes for \b \f \n \r \t " \\, and \uxxxx in
// lowercase hex for the other units.
func IsCanonicalEscape[T Text](esc T, u rune) bool {
	if len(esc) == 2 {
		return esc[1] != '/'
	}
	switch {
	case u >= 0x20 && u < utf8.RuneSelf, u == '\b', u == '\f', u == '\n', u == '\r', u == '\t':
		return false
	}
	return esc[2] == hexDigits[u>>12&0xF] && esc[3] == hexDigits[u>>8&0xF] && esc[4] == hexDigits[u>>4&0xF] && esc[5] == hexDigits[u&0xF]
}

// unhex maps a hex digit to its value, any other byte to -1.
var unhex = func() (t [256]int8) {
	for c := range t {
		switch {
		case c >= '0' && c <= '9':
			t[c] = int8(c - '0')
		case c >= 'a' && c <= 'f':
			t[c] = int8(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			t[c] = int8(c - 'A' + 10)
		default:
			t[c] = -1
		}
	}
	return t
}()
