// Package jsjson reads and writes JSON the way the JavaScript peers of this
// project expect it on the wire.
//
// Output is single-line and ASCII-only: every non-ASCII code point is written
// as a \uXXXX escape (a surrogate pair above the BMP). JSON.parse yields the
// same string, so values are unaffected, and a JavaScript reader that splits
// UTF-8 across chunks (npm stream-serializer does) cannot corrupt it. Numbers
// are written in ECMAScript's shortest round-trip form.
//
// Input is validated by a small hand-written scanner that also locates the
// elements of an array without decoding them, which keeps the hot path of a
// replication stream free of reflection.
package jsjson

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
	"unsafe"

	"github.com/scuttlego/scuttle/internal/jsstring"
)

// MaxDepth is the deepest nesting of arrays and objects the scanner accepts.
const MaxDepth = 512

// SyntaxError reports invalid JSON and where it was found.
type SyntaxError struct {
	Offset int    // byte offset in the input
	Msg    string // what was wrong
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("jsjson: %s at offset %d", e.Msg, e.Offset)
}

// AppendString appends s as an ASCII-only JSON string literal. Invalid UTF-8
// is written as U+FFFD, as a JavaScript decoder would read it.
func AppendString(dst []byte, s string) []byte { return jsstring.AppendQuoteASCII(dst, s) }

// AppendFloat appends f as ECMAScript's Number.prototype.toString writes it
// (which JSON.stringify uses): shortest round-trip digits, exponent form
// below 1e-6 and from 1e21, "0" for negative zero and "null" for NaN and
// the infinities.
func AppendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0')
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Go writes e-07 where JavaScript writes e-7.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst
}

// Marshal encodes v with encoding/json, without HTML escaping, and returns
// it in canonical wire form (see Canonical).
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("jsjson: %w", err)
	}
	return Canonical(buf.Bytes())
}

// Valid reports whether data is exactly one JSON value, with optional
// surrounding whitespace.
func Valid(data []byte) error {
	_, err := Canonical(data)
	return err
}

// Canonical validates that data holds exactly one JSON value and returns it
// as JavaScript's JSON.stringify(JSON.parse(data)) writes it, but with every
// code unit from 0x80 up escaped: no insignificant whitespace; numbers in
// ECMAScript's shortest form (-0 as 0, out of range as null); object keys in
// JavaScript's order (array indices ascending, then the others in order, a
// duplicate's last value at its first place); strings with only the escapes
// JSON.stringify uses. Every replica, Go or JavaScript, then holds the same
// bytes for a value. When data is already in that form the result aliases
// data.
func Canonical(data []byte) ([]byte, error) {
	start := skipSpace(data, 0)
	s := scanner{data: data, canon: true}
	end, err := s.value(start, 0)
	if err != nil {
		return nil, err
	}
	if rest := skipSpace(data, end); rest != len(data) {
		return nil, s.err(rest, "unexpected data after the value")
	}
	v := data[start:end]
	if s.canon {
		return v, nil
	}
	return rewrite(v), nil
}

// SplitArray validates that data holds one JSON array and returns its
// elements, each in canonical form (see Canonical).
func SplitArray(data []byte) ([][]byte, error) { return AppendSplitArray(nil, data) }

// AppendSplitArray is SplitArray appending the elements to dst, so that a
// caller can reuse a buffer.
func AppendSplitArray(dst [][]byte, data []byte) ([][]byte, error) {
	return AppendSplitArrayRaw(dst, data, -1)
}

// AppendSplitArrayRaw is AppendSplitArray, except that the element at index
// raw is validated but returned as written, not in canonical form: for a
// caller that decodes it anyway, such as a number it parses.
func AppendSplitArrayRaw(dst [][]byte, data []byte, raw int) ([][]byte, error) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return nil, &SyntaxError{Offset: i, Msg: "not an array"}
	}
	s := scanner{data: data}
	elems := dst
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == ']' {
		i++
	} else {
		for {
			s.canon = len(elems)-len(dst) != raw // no canonical checks on the raw element
			start := i
			end, err := s.value(i, 1)
			if err != nil {
				return nil, err
			}
			v := data[start:end]
			if !s.canon && len(elems)-len(dst) != raw {
				v = rewrite(v)
			}
			elems = append(elems, v)
			i = skipSpace(data, end)
			if i >= len(data) {
				return nil, s.err(i, "unexpected end of input in array")
			}
			if data[i] == ']' {
				i++
				break
			}
			if data[i] != ',' {
				return nil, s.err(i, "expected ',' or ']' in array")
			}
			i = skipSpace(data, i+1)
		}
	}
	if rest := skipSpace(data, i); rest != len(data) {
		return nil, s.err(rest, "unexpected data after the value")
	}
	return elems, nil
}

// SplitCanonical returns the elements of data, which must be a JSON array
// already validated (as Canonical or SplitArray output is). It does not
// validate, so it is faster than SplitArray; given anything else, its result
// is unspecified but it does not panic.
func SplitCanonical(dst [][]byte, data []byte) [][]byte {
	if len(data) < 2 || data[0] != '[' {
		return dst
	}
	depth, start, inString := 0, 1, false
	for i := 1; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
		case ']', '}':
			if depth == 0 {
				if i > start {
					dst = append(dst, data[start:i])
				}
				return dst
			}
			depth--
		case ',':
			if depth == 0 {
				dst = append(dst, data[start:i])
				start = i + 1
			}
		}
	}
	return dst
}

// Unquote decodes a JSON string literal (as returned by SplitArray).
// Lone surrogate escapes decode to U+FFFD.
func Unquote(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", &SyntaxError{Msg: "not a string"}
	}
	inner := lit[1 : len(lit)-1]
	if bytes.IndexByte(inner, '\\') < 0 && isPlain(inner) {
		return string(inner), nil
	}
	var s string
	if err := json.Unmarshal(lit, &s); err != nil {
		return "", fmt.Errorf("jsjson: %w", err)
	}
	return s, nil
}

func isPlain(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' {
			return false
		}
	}
	return true
}

// ParseNumber decodes a JSON number literal (as returned by SplitArray).
func ParseNumber(lit []byte) (float64, error) {
	if len(lit) == 0 || !(lit[0] == '-' || lit[0] >= '0' && lit[0] <= '9') {
		return 0, &SyntaxError{Msg: "not a number"}
	}
	// strconv copies the text into any error it returns, so the bytes need
	// not be copied into a string first.
	f, err := strconv.ParseFloat(unsafe.String(&lit[0], len(lit)), 64)
	if err != nil {
		return 0, fmt.Errorf("jsjson: number %s: %w", lit, err)
	}
	return f, nil
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// scanner validates JSON. canon stays true while the scanned text has no
// insignificant whitespace and no non-ASCII byte.
type scanner struct {
	data  []byte
	canon bool
}

func (s *scanner) err(i int, msg string) error { return &SyntaxError{Offset: i, Msg: msg} }

func (s *scanner) space(i int) int {
	j := skipSpace(s.data, i)
	if j != i {
		s.canon = false
	}
	return j
}

func (s *scanner) value(i, depth int) (int, error) {
	if i >= len(s.data) {
		return i, s.err(i, "unexpected end of input")
	}
	switch c := s.data[i]; {
	case c == '{':
		return s.object(i, depth+1)
	case c == '[':
		return s.array(i, depth+1)
	case c == '"':
		return s.str(i)
	case c == '-' || c >= '0' && c <= '9':
		return s.number(i)
	case c == 't':
		return s.literal(i, "true")
	case c == 'f':
		return s.literal(i, "false")
	case c == 'n':
		return s.literal(i, "null")
	default:
		return i, s.err(i, fmt.Sprintf("invalid character %q", c))
	}
}

func (s *scanner) object(i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, s.err(i, "nesting too deep")
	}
	i = s.space(i + 1)
	if i < len(s.data) && s.data[i] == '}' {
		return i + 1, nil
	}
	var keys objectKeys
	for {
		if i >= len(s.data) || s.data[i] != '"' {
			return i, s.err(i, "expected a string key in object")
		}
		end, err := s.str(i)
		if err != nil {
			return end, err
		}
		if s.canon && !keys.add(s.data[i:end]) {
			s.canon = false
		}
		i = s.space(end)
		if i >= len(s.data) || s.data[i] != ':' {
			return i, s.err(i, "expected ':' in object")
		}
		if i, err = s.value(s.space(i+1), depth); err != nil {
			return i, err
		}
		i = s.space(i)
		if i >= len(s.data) {
			return i, s.err(i, "unexpected end of input in object")
		}
		switch s.data[i] {
		case '}':
			return i + 1, nil
		case ',':
			i = s.space(i + 1)
		default:
			return i, s.err(i, "expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array(i, depth int) (int, error) {
	if depth > MaxDepth {
		return i, s.err(i, "nesting too deep")
	}
	i = s.space(i + 1)
	if i < len(s.data) && s.data[i] == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if i, err = s.value(i, depth); err != nil {
			return i, err
		}
		i = s.space(i)
		if i >= len(s.data) {
			return i, s.err(i, "unexpected end of input in array")
		}
		switch s.data[i] {
		case ']':
			return i + 1, nil
		case ',':
			i = s.space(i + 1)
		default:
			return i, s.err(i, "expected ',' or ']' in array")
		}
	}
}

func (s *scanner) str(i int) (int, error) {
	for i++; i < len(s.data); i++ {
		c := s.data[i]
		switch {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			u, n := jsstring.DecodeEscape(s.data[i:])
			if n == 0 {
				return i + 1, s.escapeError(i)
			}
			if s.canon && !jsstring.IsCanonicalEscape(s.data[i:i+n], u) {
				s.canon = false
			}
			i += n - 1
		case c < 0x20:
			return i, s.err(i, "control character in string")
		case c >= utf8.RuneSelf:
			s.canon = false
		}
	}
	return i, s.err(i, "unexpected end of input in string")
}

// escapeError returns the error for the invalid escape at s.data[i], a
// backslash.
func (s *scanner) escapeError(i int) error {
	i++
	switch {
	case i >= len(s.data):
		return s.err(i, "unexpected end of input in string escape")
	case s.data[i] != 'u':
		return s.err(i, "invalid escape in string")
	case i+4 >= len(s.data):
		return s.err(i, "unexpected end of input in \\u escape")
	}
	return s.err(i, "invalid \\u escape")
}

func (s *scanner) number(i int) (int, error) {
	end, err := s.scanNumber(i)
	if err == nil && s.canon && !isJSNumber(s.data[i:end]) {
		s.canon = false
	}
	return end, err
}

// isJSNumber reports whether lit, a valid JSON number, is written as
// JavaScript's JSON.stringify writes the float64 it denotes.
func isJSNumber(lit []byte) bool {
	digits := lit
	if len(digits) > 0 && digits[0] == '-' {
		digits = digits[1:]
	}
	if len(digits) <= 15 && !bytes.ContainsAny(digits, ".eE") {
		// An integer below 10^15: exact, and written as is, but for -0.
		return string(lit) != "-0"
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		return false // out of range: JavaScript reads Infinity and writes null
	}
	var buf [32]byte
	return bytes.Equal(AppendFloat(buf[:0], f), lit)
}

func (s *scanner) scanNumber(i int) (int, error) {
	d := s.data
	if d[i] == '-' {
		i++
	}
	switch {
	case i < len(d) && d[i] == '0':
		i++
	case i < len(d) && d[i] >= '1' && d[i] <= '9':
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	default:
		return i, s.err(i, "invalid number")
	}
	if i < len(d) && d[i] == '.' {
		i++
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return i, s.err(i, "invalid number: digit expected after '.'")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	if i < len(d) && (d[i] == 'e' || d[i] == 'E') {
		i++
		if i < len(d) && (d[i] == '+' || d[i] == '-') {
			i++
		}
		if i >= len(d) || d[i] < '0' || d[i] > '9' {
			return i, s.err(i, "invalid number: digit expected in exponent")
		}
		for i < len(d) && d[i] >= '0' && d[i] <= '9' {
			i++
		}
	}
	return i, nil
}

func (s *scanner) literal(i int, lit string) (int, error) {
	if len(s.data)-i < len(lit) || string(s.data[i:i+len(lit)]) != lit {
		return i, s.err(i, "invalid literal")
	}
	return i + len(lit), nil
}

// objectKeys checks that the keys of an object come in the order
// JavaScript keeps them: array indices ascending, then the other keys, and
// no key twice (JSON.parse keeps the last value at the first position).
type objectKeys struct {
	small   [8][]byte // the first keys, while there are few
	n       int       // keys in small
	set     map[string]struct{}
	lastIdx int64 // the last array index seen plus one, 0 if none
	named   bool  // a key that is not an array index was seen
}

// add takes the next key, a canonical string literal, and reports whether
// the keys are still in JavaScript order.
func (k *objectKeys) add(lit []byte) bool {
	if idx, ok := arrayIndex(lit); ok {
		if k.named || idx+1 <= k.lastIdx {
			return false
		}
		k.lastIdx = idx + 1
	} else {
		k.named = true
	}
	if k.set != nil {
		if _, dup := k.set[string(lit)]; dup {
			return false
		}
		k.set[string(lit)] = struct{}{}
		return true
	}
	for _, l := range k.small[:k.n] {
		if bytes.Equal(l, lit) {
			return false
		}
	}
	if k.n < len(k.small) {
		k.small[k.n] = lit
		k.n++
		return true
	}
	k.set = make(map[string]struct{}, 2*len(k.small))
	for _, l := range k.small {
		k.set[string(l)] = struct{}{}
	}
	k.set[string(lit)] = struct{}{}
	return true
}

// arrayIndex reports whether the string literal lit (quotes included, no
// escapes) is an array index in JavaScript: "0", or digits without a leading
// zero below 2^32-1.
func arrayIndex(lit []byte) (int64, bool) {
	d := lit[1 : len(lit)-1]
	if len(d) == 0 || len(d) > 10 || len(d) > 1 && d[0] == '0' {
		return 0, false
	}
	var n int64
	for _, c := range d {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n < 1<<32-1
}

// rewrite returns valid JSON v in canonical form: what JSON.stringify
// writes for JSON.parse(v), with every non-ASCII code unit escaped.
func rewrite(v []byte) []byte {
	out, _ := appendCanonical(make([]byte, 0, len(v)+16), v, 0)
	return out
}

// appendCanonical appends the canonical form of the valid JSON value at
// v[i:] and returns the index after the value.
func appendCanonical(dst, v []byte, i int) ([]byte, int) {
	i = skipSpace(v, i)
	switch c := v[i]; c {
	case '"':
		end := stringEnd(v, i)
		return appendCanonicalString(dst, v[i:end]), end
	case '[':
		dst = append(dst, '[')
		if i = skipSpace(v, i+1); v[i] == ']' {
			return append(dst, ']'), i + 1
		}
		for {
			dst, i = appendCanonical(dst, v, i)
			if i = skipSpace(v, i); v[i] == ']' {
				return append(dst, ']'), i + 1
			}
			dst = append(dst, ',')
			i++
		}
	case '{':
		type member struct{ key, val []byte }
		var ms []member
		at := map[string]int{}
		if i = skipSpace(v, i+1); v[i] == '}' {
			return append(dst, '{', '}'), i + 1
		}
		for {
			end := stringEnd(v, i)
			key := appendCanonicalString(nil, v[i:end])
			i = skipSpace(v, end) + 1 // the ':'
			var val []byte
			val, i = appendCanonical(nil, v, i)
			// JSON.parse keeps the last value of a key at its first place.
			if j, dup := at[string(key)]; dup {
				ms[j].val = val
			} else {
				at[string(key)] = len(ms)
				ms = append(ms, member{key, val})
			}
			if i = skipSpace(v, i); v[i] == '}' {
				i++
				break
			}
			i = skipSpace(v, i+1)
		}
		// JavaScript lists array indices first, ascending, then the other
		// keys in the order they were added.
		slices.SortStableFunc(ms, func(a, b member) int {
			ia, oka := arrayIndex(a.key)
			ib, okb := arrayIndex(b.key)
			switch {
			case oka && okb:
				return cmp.Compare(ia, ib)
			case oka:
				return -1
			case okb:
				return 1
			}
			return 0
		})
		dst = append(dst, '{')
		for j, m := range ms {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = append(append(append(dst, m.key...), ':'), m.val...)
		}
		return append(dst, '}'), i
	case 't':
		return append(dst, "true"...), i + 4
	case 'f':
		return append(dst, "false"...), i + 5
	case 'n':
		return append(dst, "null"...), i + 4
	}
	end := i
	for end < len(v) && bytes.IndexByte([]byte("+-.0123456789eE"), v[end]) >= 0 {
		end++
	}
	// Out of range reads as an infinity, which JSON.stringify writes as null.
	f, _ := strconv.ParseFloat(string(v[i:end]), 64)
	return AppendFloat(dst, f), end
}

// stringEnd returns the index after the valid string literal at v[i:].
func stringEnd(v []byte, i int) int {
	for i++; v[i] != '"'; i++ {
		if v[i] == '\\' {
			i++
		}
	}
	return i + 1
}

// appendCanonicalString appends the valid string literal lit as
// JSON.stringify writes the string it denotes, with every code unit from
// 0x80 up escaped. Lone surrogates survive, as in JavaScript; invalid UTF-8
// reads as U+FFFD.
func appendCanonicalString(dst, lit []byte) []byte {
	dst = append(dst, '"')
	for i := 1; i < len(lit)-1; {
		c := lit[i]
		switch {
		case c == '\\':
			u, n := jsstring.DecodeEscape(lit[i:])
			dst = jsstring.AppendJSONUnit(dst, u)
			i += n
		case c < utf8.RuneSelf:
			dst = jsstring.AppendJSONUnit(dst, rune(c))
			i++
		default:
			r, n := jsstring.DecodeRune(lit[i:])
			dst = jsstring.AppendJSONRune(dst, r)
			i += n
		}
	}
	return append(dst, '"')
}
