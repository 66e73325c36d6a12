package query

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// errEncode is charwise's refusal of plain objects.
var errEncode = errors.New("can only encode arrays")

// charwiseArray appends the charwise@3 encoding of an array (npm
// charwise, flumeview-level's key encoding) as the UTF-8 bytes LevelDB
// compares.
func charwiseArray(dst []byte, vs []Value) ([]byte, error) {
	if len(vs) == 0 {
		return append(dst, "K!"...), nil
	}
	dst = append(dst, 'K')
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, '"')
		}
		var err error
		switch v.kind {
		case Null:
			dst = append(dst, 'A')
		case Array:
			dst, err = charwiseArray(dst, v.arr)
		case Object:
			err = errEncode
		default:
			dst = append(dst, escapeItem(charwiseScalar(v))...)
		}
		if err != nil {
			return nil, err
		}
	}
	return append(dst, '!'), nil
}

func charwiseScalar(v Value) string {
	switch v.kind {
	case Bool:
		if v.num != 0 {
			return "C"
		}
		return "B"
	case Number:
		return charwiseNumber(v.num)
	case String:
		s := toUTF8(v.str)
		if strings.ContainsAny(s, "\x00\x01") {
			s = strings.ReplaceAll(s, "\x01", "\x01\x01")
			s = strings.ReplaceAll(s, "\x00", "\x01")
		}
		return "J" + s
	}
	return "L" // undefined
}

func escapeItem(s string) string {
	if !strings.ContainsAny(s, "!\"") {
		return s
	}
	return strings.NewReplacer("?", "?@", "!", "??", "\"", "?%").Replace(s)
}

// charwiseNumber: sign (D or F), exponent + 500 in three characters,
// then the mantissa of toExponential padded with 20 zeros; negative
// numbers in nines' complement.
func charwiseNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "DaN"
	case f == 0:
		return "FE  0M0"
	case math.IsInf(f, 1):
		return "FF"
	case math.IsInf(f, -1):
		return "DD"
	}
	e := strconv.FormatFloat(f, 'e', -1, 64) // -1.5e+06
	mant, exp, _ := strings.Cut(e, "e")
	n, _ := strconv.Atoi(exp)
	if !strings.Contains(mant, ".") {
		mant += "."
	}
	exps := strconv.Itoa(n + 500)
	enc := "E" + strings.Repeat(" ", 3-len(exps)) + exps + "M" + mant + strings.Repeat("0", 20)
	if f > 0 {
		return "F" + enc
	}
	var b strings.Builder
	b.WriteByte('D')
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte('9' - c + '0')
		case c != '-':
			b.WriteByte(c)
		}
	}
	return b.String()
}

// toUTF8 replaces the lone surrogates of a WTF-8 string with U+FFFD, as
// encoding a JavaScript string to UTF-8 does.
func toUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := decodeWTF8(s[i:])
		if r >= 0xd800 && r < 0xe000 {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		i += n
	}
	return b.String()
}
