package links

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/scuttlego/scuttle/ssb/message"
)

// The keys of ssb-db's and ssb-links' indexes are arrays encoded by npm
// charwise 3 (flumeview-level's key encoding), compared byte by byte by
// leveldb. The views here store the same encodings as bbolt keys, so they
// sort as JavaScript's do, and decode them as charwise does (its decoder
// is lossy in the same places).

// A jsv is a JavaScript value of an index key: null, undefined, a boolean,
// a number, a string or an array of them.
type jsv struct {
	kind jsKind
	s    string
	n    float64
	arr  []jsv
}

type jsKind uint8

const (
	jsNull jsKind = iota
	jsUndefined
	jsBool
	jsNumber
	jsString
	jsArray
)

func jsStr(s string) jsv      { return jsv{kind: jsString, s: s} }
func jsNum(n float64) jsv     { return jsv{kind: jsNumber, n: n} }
func jsArr(a ...jsv) jsv      { return jsv{kind: jsArray, arr: a} }
func jsBoolean(b bool) jsv    { return jsv{kind: jsBool, n: map[bool]float64{true: 1}[b]} }
func (v jsv) truthy() bool    { return v.kind == jsBool && v.n != 0 }
func (v jsv) isString() bool  { return v.kind == jsString }
func (v jsv) isNullish() bool { return v.kind == jsNull || v.kind == jsUndefined }

// fromJSON converts a JSON value; objects are refused (charwise throws on
// them).
func fromJSON(v message.Value) (jsv, error) {
	switch v.Kind() {
	case message.Null:
		return jsv{}, nil
	case message.Bool:
		return jsBoolean(v.Bool()), nil
	case message.Number:
		return jsNum(v.Number()), nil
	case message.String:
		return jsStr(v.Str()), nil
	case message.Array:
		a := make([]jsv, len(v.Elems()))
		for i, e := range v.Elems() {
			var err error
			if a[i], err = fromJSON(e); err != nil {
				return jsv{}, err
			}
		}
		return jsArr(a...), nil
	}
	return jsv{}, errors.New("an object cannot be an index key")
}

// appendJSON appends v as JSON.stringify writes it (undefined as null, as
// in an array).
func (v jsv) appendJSON(dst []byte) []byte {
	switch v.kind {
	case jsBool:
		return message.BoolValue(v.n != 0).AppendCompact(dst)
	case jsNumber:
		return message.NumberValue(v.n).AppendCompact(dst)
	case jsString:
		return message.StringValue(v.s).AppendCompact(dst)
	case jsArray:
		dst = append(dst, '[')
		for i, e := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = e.appendJSON(dst)
		}
		return append(dst, ']')
	}
	return append(dst, "null"...)
}

// toJSON returns v as a JSON value (undefined as null).
func (v jsv) toJSON() message.Value {
	switch v.kind {
	case jsBool:
		return message.BoolValue(v.n != 0)
	case jsNumber:
		return message.NumberValue(v.n)
	case jsString:
		return message.StringValue(v.s)
	case jsArray:
		a := make([]message.Value, len(v.arr))
		for i, e := range v.arr {
			a[i] = e.toJSON()
		}
		return message.ArrayValue(a...)
	}
	return message.Value{}
}

// cwEncode is charwise.encode.
func cwEncode(dst []byte, v jsv) []byte {
	switch v.kind {
	case jsNull:
		return append(dst, 'A')
	case jsUndefined:
		return append(dst, 'L')
	case jsBool:
		if v.n != 0 {
			return append(dst, 'C')
		}
		return append(dst, 'B')
	case jsNumber:
		return cwNumber(dst, v.n)
	case jsString:
		dst = append(dst, 'J')
		if !strings.ContainsAny(v.s, "\x00\x01") {
			return append(dst, v.s...)
		}
		return append(dst, ctlEscaper.Replace(v.s)...)
	}
	if len(v.arr) == 0 {
		return append(dst, "K!"...)
	}
	dst = append(dst, 'K')
	dst = cwItems(dst, v.arr)
	return append(dst, '!')
}

// cwItems appends the items of an array, separated by '"', without the
// array's 'K' and '!': the key of an index entry within its index.
func cwItems(dst []byte, items []jsv) []byte {
	for i, it := range items {
		if i > 0 {
			dst = append(dst, '"')
		}
		dst = cwItem(dst, it)
	}
	return dst
}

// storedItems is cwItems with storedItem.
func storedItems(dst []byte, items []jsv) []byte {
	for i, it := range items {
		if i > 0 {
			dst = append(dst, '"')
		}
		dst = storedItem(dst, it)
	}
	return dst
}

func cwItem(dst []byte, v jsv) []byte {
	if v.kind == jsArray || v.kind == jsNull {
		return cwEncode(dst, v)
	}
	start := len(dst)
	dst = cwEncode(dst, v)
	if bytes.IndexByte(dst[start:], '!') < 0 && bytes.IndexByte(dst[start:], '"') < 0 {
		return dst
	}
	enc := string(dst[start:])
	return append(dst[:start], itemEscaper.Replace(enc)...)
}

var numberPad = []byte("00000000000000000000")

var (
	ctlEscaper    = strings.NewReplacer("\x01", "\x01\x01", "\x00", "\x01")
	itemEscaper   = strings.NewReplacer("?", "?@", "!", "??", "\"", "?%")
	itemUnescaper = strings.NewReplacer("?@", "?", "??", "!", "?%", "\"")
)

// storedItem is cwItem as index keys hold it: a positive number at the top
// level of the key without the 20 zeros charwise pads its mantissa with.
// Distinct numbers differ before them, and what follows a number in a key
// ('"', '!') sorts below '0', so keys sort as the full encodings do and
// are a fifth shorter. (Negative numbers need their padding: nines, after
// the flip.)
func storedItem(dst []byte, v jsv) []byte {
	dst = cwItem(dst, v)
	if v.kind == jsNumber {
		dst = bytes.TrimSuffix(dst, numberPad)
	}
	return dst
}

// cwKey is the key of an index entry: the encoding of [name, items...]
// without the array's 'K' and the name, so entries of one index sort as
// the whole arrays do.
func cwKey(items ...jsv) []byte {
	return append(storedItems(nil, items), '!')
}

// cwNumber is charwise's number codec: a sign, the exponent offset by 500,
// and the mantissa of Number.prototype.toExponential padded with zeros;
// negative numbers in nines' complement.
func cwNumber(dst []byte, n float64) []byte {
	switch {
	case math.IsNaN(n):
		return append(dst, "DaN"...)
	case n == 0:
		return append(dst, "FE  0M0"...)
	case math.IsInf(n, 1):
		return append(dst, 'F', 'F')
	case math.IsInf(n, -1):
		return append(dst, 'D', 'D')
	}
	var buf [32]byte
	s := strconv.AppendFloat(buf[:0], n, 'e', -1, 64)
	i := bytes.IndexByte(s, 'e')
	mant := s[:i]
	exp, _ := strconv.Atoi(string(s[i+1:]))
	// A float64's exponent is within [-324, 308]: exp + 500 has three
	// digits (charwise pads it with spaces to three).
	e := exp + 500
	start := len(dst)
	dst = append(dst, 'F', 'E', byte('0'+e/100), byte('0'+e/10%10), byte('0'+e%10), 'M')
	dst = append(dst, mant...)
	if bytes.IndexByte(mant, '.') < 0 {
		dst = append(dst, '.')
	}
	dst = append(dst, numberPad...)
	if n > 0 {
		return dst
	}
	// Negative: 'D', the digits in nines' complement, the sign dropped.
	dst[start] = 'D'
	out := start + 1
	for _, c := range dst[start+1:] {
		switch {
		case c >= '0' && c <= '9':
			dst[out] = '9' - c + '0'
		case c == '-':
			continue
		default:
			dst[out] = c
		}
		out++
	}
	return dst[:out]
}

// maxKeyDepth bounds the nesting of decoded keys (ours are two deep).
const maxKeyDepth = 8

// cwDecodeItems decodes a key made by cwKey into its items, as charwise's
// array decoder does (split on '"', 'K' opens and '!' closes arrays,
// items unescaped, strings not).
func cwDecodeItems(key []byte) ([]jsv, error) {
	if len(key) == 0 {
		return nil, errors.New("links: empty index key")
	}
	root, err := cwDecodeArray("K" + string(key))
	if err != nil {
		return nil, err
	}
	return root.arr, nil
}

func cwDecodeArray(enc string) (jsv, error) {
	if enc == "K!" {
		return jsArr(), nil
	}
	stack := []*jsv{{kind: jsArray}}
	for _, item := range strings.Split(enc, "\"") {
		open := 0
		for open < len(item) && item[open] == 'K' {
			open++
		}
		closeN := 0
		for closeN < len(item)-open && item[len(item)-closeN-1] == '!' {
			closeN++
		}
		content := item[open : len(item)-closeN]
		for range open {
			if len(stack) > maxKeyDepth {
				return jsv{}, errors.New("links: index key nested too deep")
			}
			stack = append(stack, &jsv{kind: jsArray})
		}
		if len(stack) < 2 {
			return jsv{}, fmt.Errorf("links: index key item %q outside an array", item)
		}
		if content != "" {
			v, err := cwDecodeScalar(cwUnescape(content))
			if err != nil {
				return jsv{}, err
			}
			top := stack[len(stack)-1]
			top.arr = append(top.arr, v)
		}
		for range closeN {
			if len(stack) < 2 {
				return jsv{}, errors.New("links: index key closes more arrays than it opens")
			}
			done := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			parent := stack[len(stack)-1]
			parent.arr = append(parent.arr, *done)
		}
	}
	if len(stack) != 1 || len(stack[0].arr) != 1 {
		return jsv{}, errors.New("links: index key arrays are not closed")
	}
	return stack[0].arr[0], nil
}

func cwUnescape(s string) string {
	if !strings.Contains(s, "?%") && !strings.Contains(s, "??") && !strings.Contains(s, "?@") {
		return s
	}
	return itemUnescaper.Replace(s)
}

func cwDecodeScalar(s string) (jsv, error) {
	switch s[0] {
	case 'A':
		return jsv{}, nil
	case 'B':
		return jsBoolean(false), nil
	case 'C':
		return jsBoolean(true), nil
	case 'L':
		return jsv{kind: jsUndefined}, nil
	case 'J':
		return jsStr(s[1:]), nil
	case 'D', 'F':
		return cwDecodeNumber(s)
	}
	return jsv{}, fmt.Errorf("links: no decoder for index key item %q", s)
}

func cwDecodeNumber(s string) (jsv, error) {
	switch s {
	case "DaN":
		return jsNum(math.NaN()), nil
	case "FF":
		return jsNum(math.Inf(1)), nil
	case "DD":
		return jsNum(math.Inf(-1)), nil
	}
	neg := s[0] == 'D'
	body := s
	if neg {
		b := []byte(s)
		for i, c := range b {
			if c >= '0' && c <= '9' {
				b[i] = '9' - c + '0'
			}
		}
		body = string(b)
	}
	if len(body) < 3 {
		return jsv{}, fmt.Errorf("links: bad number %q in an index key", s)
	}
	exp, mant, ok := strings.Cut(body[2:], "M")
	if !ok {
		return jsv{}, fmt.Errorf("links: bad number %q in an index key", s)
	}
	e, err := strconv.Atoi(strings.TrimSpace(exp))
	if err != nil {
		return jsv{}, fmt.Errorf("links: bad number %q in an index key", s)
	}
	if neg {
		mant = "-" + mant
	}
	f, err := strconv.ParseFloat(mant+"e"+strconv.Itoa(e-500), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return jsv{}, fmt.Errorf("links: bad number %q in an index key", s)
	}
	return jsNum(f), nil
}
