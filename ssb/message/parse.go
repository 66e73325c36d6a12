package message

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/internal/jsstring"
)

// MaxDepth is the deepest nesting of arrays and objects Parse accepts.
// JSON.stringify(v, null, 2) of a value nested this deep is longer than
// 250,000 characters, so no valid message comes near it.
const MaxDepth = 512

var (
	// ErrSyntax is wrapped by the errors of Parse for text that is not JSON.
	ErrSyntax = errors.New("message: invalid JSON")
	// ErrTooDeep is wrapped by the errors of Parse for JSON nested deeper
	// than MaxDepth.
	ErrTooDeep = errors.New("message: JSON nested too deeply")
)

// A SyntaxError reports text that is not JSON, and where. It wraps
// ErrSyntax, or ErrTooDeep.
type SyntaxError struct {
	Offset int    // byte offset in the input
	Msg    string // what is wrong
	deep   bool
}

func (e *SyntaxError) Error() string {
	if e.deep {
		return fmt.Sprintf("%v: %s at offset %d", ErrTooDeep, e.Msg, e.Offset)
	}
	return fmt.Sprintf("%v: %s at offset %d", ErrSyntax, e.Msg, e.Offset)
}

func (e *SyntaxError) Unwrap() error {
	if e.deep {
		return ErrTooDeep
	}
	return ErrSyntax
}

// Parse reads one JSON value, with optional surrounding whitespace, as
// JSON.parse does in V8 after a UTF-8 decoder (Node's Buffer#toString) has
// turned the bytes into a string:
//
//   - bytes that are not UTF-8 read as U+FFFD, one per maximal subpart;
//   - \uXXXX escapes of unpaired surrogates give lone surrogates (WTF-8,
//     see Value), and an escaped pair gives its code point;
//   - numbers are rounded to the nearest float64; those too large become
//     ±Infinity (JSON.stringify writes them as null) and "-0" is negative
//     zero;
//   - object keys are ordered and deduplicated as in V8 (see Value).
//
// Whitespace is space, tab, CR and LF only; a byte order mark is an error,
// as it is to JSON.parse.
func Parse(data []byte) (Value, error) {
	p := parserPool.Get().(*parser)
	p.src, p.i, p.depth = string(data), 0, 0
	v, err := p.parse()
	p.src = ""
	clear(p.mems) // only after an error do values remain
	clear(p.vals)
	p.mems, p.vals = p.mems[:0], p.vals[:0]
	if cap(p.mems) <= 1<<10 && cap(p.vals) <= 1<<10 && cap(p.buf) <= 1<<16 {
		parserPool.Put(p)
	}
	return v, err
}

var parserPool = sync.Pool{New: func() any { return new(parser) }}

// parser reads JSON from src. Members and elements of the objects and
// arrays being read are collected on shared stacks and copied out in one
// allocation per object or array.
type parser struct {
	src   string
	i     int
	depth int
	mems  []Member
	vals  []Value
	buf   []byte
}

func (p *parser) parse() (Value, error) {
	p.skipSpace()
	v, err := p.value()
	if err != nil {
		return Value{}, err
	}
	p.skipSpace()
	if p.i != len(p.src) {
		return Value{}, p.errorf("unexpected %s after the value", p.what())
	}
	return v, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.i, Msg: fmt.Sprintf(format, args...)}
}

// what describes the byte at p.i for an error message.
func (p *parser) what() string {
	if p.i >= len(p.src) {
		return "end of input"
	}
	return fmt.Sprintf("%q", p.src[p.i])
}

func (p *parser) skipSpace() {
	for p.i < len(p.src) {
		switch p.src[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *parser) value() (Value, error) {
	if p.i >= len(p.src) {
		return Value{}, p.errorf("unexpected end of input")
	}
	switch c := p.src[p.i]; c {
	case '{':
		return p.object()
	case '[':
		return p.array()
	case '"':
		s, err := p.string()
		return Value{kind: String, str: s}, err
	case 't':
		return BoolValue(true), p.literal("true")
	case 'f':
		return BoolValue(false), p.literal("false")
	case 'n':
		return Value{}, p.literal("null")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			return p.number()
		}
	}
	return Value{}, p.errorf("unexpected %s", p.what())
}

func (p *parser) literal(lit string) error {
	if len(p.src)-p.i < len(lit) || p.src[p.i:p.i+len(lit)] != lit {
		return p.errorf("invalid literal, want %s", lit)
	}
	p.i += len(lit)
	return nil
}

func (p *parser) enter() error {
	p.depth++
	if p.depth > MaxDepth {
		return &SyntaxError{Offset: p.i, Msg: fmt.Sprintf("arrays and objects nested deeper than %d", MaxDepth), deep: true}
	}
	return nil
}

func (p *parser) object() (Value, error) {
	if err := p.enter(); err != nil {
		return Value{}, err
	}
	p.i++ // {
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == '}' {
		p.i++
		p.depth--
		return Value{kind: Object}, nil
	}
	base := len(p.mems)
	for {
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != '"' {
			return Value{}, p.errorf("unexpected %s, want a string key", p.what())
		}
		key, err := p.string()
		if err != nil {
			return Value{}, err
		}
		p.skipSpace()
		if p.i >= len(p.src) || p.src[p.i] != ':' {
			return Value{}, p.errorf("unexpected %s, want ':'", p.what())
		}
		p.i++
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return Value{}, err
		}
		p.mems = append(p.mems, Member{Key: key, Value: v})
		p.skipSpace()
		if p.i < len(p.src) && p.src[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.src) && p.src[p.i] == '}' {
			p.i++
			break
		}
		return Value{}, p.errorf("unexpected %s, want ',' or '}'", p.what())
	}
	ms := slices.Clone(p.mems[base:])
	clear(p.mems[base:])
	p.mems = p.mems[:base]
	p.depth--
	return Value{kind: Object, obj: v8Order(dedupe(ms))}, nil
}

func (p *parser) array() (Value, error) {
	if err := p.enter(); err != nil {
		return Value{}, err
	}
	p.i++ // [
	p.skipSpace()
	if p.i < len(p.src) && p.src[p.i] == ']' {
		p.i++
		p.depth--
		return Value{kind: Array}, nil
	}
	base := len(p.vals)
	for {
		p.skipSpace()
		v, err := p.value()
		if err != nil {
			return Value{}, err
		}
		p.vals = append(p.vals, v)
		p.skipSpace()
		if p.i < len(p.src) && p.src[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.src) && p.src[p.i] == ']' {
			p.i++
			break
		}
		return Value{}, p.errorf("unexpected %s, want ',' or ']'", p.what())
	}
	elems := slices.Clone(p.vals[base:])
	clear(p.vals[base:])
	p.vals = p.vals[:base]
	p.depth--
	return Value{kind: Array, arr: elems}, nil
}

// string reads a string literal at p.i and returns its value as WTF-8. A
// literal without escapes or invalid UTF-8 is returned as a substring of
// the input, without copying.
func (p *parser) string() (string, error) {
	start := p.i + 1
	i := start
	for i < len(p.src) {
		c := p.src[i]
		if c == '"' {
			p.i = i + 1
			return p.src[start:i], nil
		}
		if c == '\\' || c < 0x20 {
			break
		}
		if c < utf8.RuneSelf {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(p.src[i:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		i += n
	}
	p.buf = append(p.buf[:0], p.src[start:i]...)
	for i < len(p.src) {
		c := p.src[i]
		switch {
		case c == '"':
			p.i = i + 1
			return string(p.buf), nil
		case c < 0x20:
			p.i = i
			return "", p.errorf("control character %q in a string", c)
		case c == '\\':
			u, n, err := p.escape(i)
			if err != nil {
				return "", err
			}
			i += n
			p.buf = jsstring.AppendUnit(p.buf, u)
			continue
		case c < utf8.RuneSelf:
			p.buf = append(p.buf, c)
			i++
		default:
			r, n := jsstring.DecodeRune(p.src[i:])
			p.buf = utf8.AppendRune(p.buf, r)
			i += n
		}
	}
	p.i = i
	return "", p.errorf("unterminated string")
}

// escape reads the escape sequence at p.src[i] and returns the code unit it
// stands for and its length.
func (p *parser) escape(i int) (rune, int, error) {
	if u, n := jsstring.DecodeEscape(p.src[i:]); n > 0 {
		return u, n, nil
	}
	p.i = i
	switch {
	case i+1 >= len(p.src):
		return 0, 0, p.errorf("unterminated string")
	case p.src[i+1] != 'u':
		return 0, 0, p.errorf("invalid escape \\%c", p.src[i+1])
	case i+6 > len(p.src):
		return 0, 0, p.errorf("truncated \\u escape")
	}
	return 0, 0, p.errorf("invalid \\u escape")
}

// number reads a number literal at p.i.
func (p *parser) number() (Value, error) {
	s, start := p.src, p.i
	i := start
	neg := s[i] == '-'
	if neg {
		i++
	}
	digits := func() int {
		j := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		return i - j
	}
	switch {
	case i < len(s) && s[i] == '0':
		i++
	case i < len(s) && s[i] >= '1' && s[i] <= '9':
		digits()
	default:
		p.i = i
		return Value{}, p.errorf("invalid number: want a digit, found %s", p.what())
	}
	intEnd := i
	if i < len(s) && s[i] == '.' {
		i++
		if digits() == 0 {
			p.i = i
			return Value{}, p.errorf("invalid number: want a digit after '.', found %s", p.what())
		}
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digits() == 0 {
			p.i = i
			return Value{}, p.errorf("invalid number: want a digit in the exponent, found %s", p.what())
		}
	}
	p.i = i
	if intStart := start + btoi(neg); i == intEnd && i-intStart <= 15 {
		var n int64 // at most 15 digits: exact in a float64
		for _, c := range []byte(s[intStart:i]) {
			n = n*10 + int64(c-'0')
		}
		f := float64(n)
		if neg {
			f = -f
		}
		return NumberValue(f), nil
	}
	f, err := strconv.ParseFloat(s[start:i], 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) { // ±Inf on overflow, like JSON.parse
		p.i = start
		return Value{}, p.errorf("invalid number %q", s[start:i])
	}
	return NumberValue(f), nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
