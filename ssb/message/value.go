package message

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/scuttlego/scuttle/internal/jsstring"
)

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values. The zero Value is Null.
const (
	Null Kind = iota
	Bool
	Number
	String
	Array
	Object
)

var kindNames = [...]string{"null", "boolean", "number", "string", "array", "object"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// A Value is a JSON value as a JavaScript engine (V8) holds it after
// JSON.parse: objects keep their keys in V8's property order, numbers are
// float64, and strings are sequences of UTF-16 code units that need not be
// well formed.
//
// Strings are held as WTF-8: UTF-8 that may also encode an unpaired
// surrogate (U+D800..U+DFFF, which a JSON text can write as "\ud800") as the
// three bytes ED A0 80..ED BF BF. A surrogate pair is always held as the
// four-byte UTF-8 of its code point, never as two three-byte halves, and a
// Value never holds bytes that are not WTF-8: constructors and Parse replace
// them with U+FFFD. Str returns this form; a string without lone surrogates
// is plain UTF-8.
//
// Object keys follow V8's order, which is what JSON.stringify prints: keys
// that are array indices ("0" to "4294967294" in canonical decimal) come
// first in ascending numeric order, then the other keys in the order they
// were first added. A key added twice keeps its first position and takes its
// last value.
//
// A Value is immutable once built; the slices returned by Elems and Members
// must not be modified.
type Value struct {
	kind Kind
	num  float64  // Number; 1 or 0 for Bool
	str  string   // String, as WTF-8
	arr  []Value  // Array
	obj  []Member // Object, in V8 order, keys unique
}

// A Member is one property of an object.
type Member struct {
	Key   string // WTF-8, like string values
	Value Value
}

// BoolValue returns the JSON boolean b.
func BoolValue(b bool) Value {
	v := Value{kind: Bool}
	if b {
		v.num = 1
	}
	return v
}

// NumberValue returns the JSON number f. JSON.stringify writes NaN and the
// infinities as null, and so do the printers of this package.
func NumberValue(f float64) Value { return Value{kind: Number, num: f} }

// StringValue returns the JSON string s. s is read as WTF-8 (see Value);
// bytes that are not WTF-8 become U+FFFD, as a JavaScript UTF-8 decoder
// would read them.
func StringValue(s string) Value { return Value{kind: String, str: jsstring.ToWTF8(s)} }

// ArrayValue returns a JSON array of elems.
func ArrayValue(elems ...Value) Value {
	return Value{kind: Array, arr: slices.Clone(elems)}
}

// ObjectValue returns the object a JavaScript engine builds by assigning
// the members one after another: see Value for the resulting key order and
// for duplicate keys.
func ObjectValue(members ...Member) Value {
	ms := make([]Member, len(members))
	for i, m := range members {
		ms[i] = Member{Key: jsstring.ToWTF8(m.Key), Value: m.Value}
	}
	return Value{kind: Object, obj: v8Order(dedupe(ms))}
}

// ValueOf converts a Go value into a Value: a Value is returned as is, a
// json.RawMessage or []byte is parsed with Parse, and anything else is
// encoded with encoding/json and then parsed. Note that encoding/json sorts
// map keys and replaces invalid UTF-8 (including WTF-8 lone surrogates) with
// U+FFFD; build a Value, or pass JSON text, to control key order or to
// write lone surrogates.
func ValueOf(x any) (Value, error) {
	switch x := x.(type) {
	case Value:
		return x, nil
	case *Value:
		if x == nil {
			return Value{}, nil
		}
		return *x, nil
	case json.RawMessage:
		return Parse(x)
	case []byte:
		return Parse(x)
	}
	b, err := json.Marshal(x)
	if err != nil {
		return Value{}, fmt.Errorf("message: encode %T: %w", x, err)
	}
	return Parse(b)
}

// Kind returns the type of v.
func (v Value) Kind() Kind { return v.kind }

// Bool returns the boolean v holds, or false if v is not a boolean.
func (v Value) Bool() bool { return v.kind == Bool && v.num != 0 }

// Number returns the number v holds, or 0 if v is not a number.
func (v Value) Number() float64 {
	if v.kind != Number {
		return 0
	}
	return v.num
}

// Str returns the string v holds, as WTF-8 (see Value), or "" if v is not a
// string.
func (v Value) Str() string { return v.str }

// Elems returns the elements of an array, or nil if v is not an array.
func (v Value) Elems() []Value { return v.arr }

// Members returns the members of an object in V8 order, or nil if v is not
// an object.
func (v Value) Members() []Member { return v.obj }

// Get returns the value of the member key of an object, and whether there
// is one.
func (v Value) Get(key string) (Value, bool) {
	for i := range v.obj {
		if v.obj[i].Key == key {
			return v.obj[i].Value, true
		}
	}
	return Value{}, false
}

// Equal reports whether v and w are the same value: the same kind, equal
// numbers (as float64, so 0 equals -0), equal strings, and equal elements or
// members in the same order.
func (v Value) Equal(w Value) bool {
	if v.kind != w.kind {
		return false
	}
	switch v.kind {
	case Bool, Number:
		return v.num == w.num
	case String:
		return v.str == w.str
	case Array:
		return slices.EqualFunc(v.arr, w.arr, Value.Equal)
	case Object:
		return slices.EqualFunc(v.obj, w.obj, func(a, b Member) bool {
			return a.Key == b.Key && a.Value.Equal(b.Value)
		})
	}
	return true
}

// String returns v as JSON.stringify(v) writes it.
func (v Value) String() string { return string(v.AppendCompact(nil)) }

// MarshalJSON returns v as JSON.stringify(v) writes it. (encoding/json
// then escapes <, > and & and U+2028/U+2029 in strings, which changes the
// bytes but not the value.)
func (v Value) MarshalJSON() ([]byte, error) { return v.AppendCompact(nil), nil }

// UnmarshalJSON sets *v to Parse(b).
func (v *Value) UnmarshalJSON(b []byte) error {
	x, err := Parse(b)
	if err != nil {
		return err
	}
	*v = x
	return nil
}

// dedupe removes repeated keys from ms in place: a key keeps its first
// position and its last value.
func dedupe(ms []Member) []Member {
	if len(ms) < 2 {
		return ms
	}
	if len(ms) <= 16 {
		out := ms[:0]
	next:
		for _, m := range ms {
			for i := range out {
				if out[i].Key == m.Key {
					out[i].Value = m.Value
					continue next
				}
			}
			out = append(out, m)
		}
		return out
	}
	pos := make(map[string]int, len(ms))
	out := ms[:0]
	for _, m := range ms {
		if i, ok := pos[m.Key]; ok {
			out[i].Value = m.Value
			continue
		}
		pos[m.Key] = len(out)
		out = append(out, m)
	}
	return out
}

// v8Order moves the array-index keys of ms (keys unique) to the front in
// ascending numeric order, keeping the order of the other keys.
func v8Order(ms []Member) []Member {
	if !slices.ContainsFunc(ms, func(m Member) bool { return isArrayIndex(m.Key) }) {
		return ms
	}
	type indexed struct {
		n int64
		m Member
	}
	var index []indexed
	rest := make([]Member, 0, len(ms))
	for _, m := range ms {
		if n := arrayIndex(m.Key); n >= 0 {
			index = append(index, indexed{n, m})
		} else {
			rest = append(rest, m)
		}
	}
	slices.SortFunc(index, func(a, b indexed) int { return cmp.Compare(a.n, b.n) })
	out := ms[:0]
	for _, x := range index {
		out = append(out, x.m)
	}
	return append(out, rest...)
}

// maxArrayIndex is the largest array index, 2^32 - 2.
const maxArrayIndex = math.MaxUint32 - 1

// isArrayIndex reports whether k is an array index: the canonical decimal
// form of an integer from 0 to 2^32-2.
func isArrayIndex(k string) bool { return arrayIndex(k) >= 0 }

// arrayIndex returns the array index k names, or -1.
func arrayIndex(k string) int64 {
	if len(k) == 0 || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return -1
	}
	var n int64
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c < '0' || c > '9' {
			return -1
		}
		n = n*10 + int64(c-'0')
	}
	if n > maxArrayIndex {
		return -1
	}
	return n
}
