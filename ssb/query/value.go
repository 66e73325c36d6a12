package query

import (
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/ssb/message"
)

// Kind is the JavaScript type of a Value.
type Kind uint8

// The kinds of values a query sees: JSON's, and undefined (a missing
// field).
const (
	Undefined Kind = iota
	Null
	Bool
	Number
	String
	Array
	Object
)

// A Value is a JavaScript value as map-filter-reduce sees it: JSON values
// and undefined. Strings are WTF-8 (see message.Value); objects keep V8's
// key order. Arrays and objects are never === to one another (each is its
// own object in JavaScript), which is all map-filter-reduce can observe.
type Value struct {
	kind Kind
	num  float64 // Number; 1 or 0 for Bool
	str  string
	arr  []Value
	obj  []member
}

type member struct {
	key string
	val Value
}

var undefined = Value{}

func boolValue(b bool) Value {
	if b {
		return Value{kind: Bool, num: 1}
	}
	return Value{kind: Bool}
}

func numValue(f float64) Value  { return Value{kind: Number, num: f} }
func strValue(s string) Value   { return Value{kind: String, str: s} }
func arrValue(a []Value) Value  { return Value{kind: Array, arr: a} }
func objValue(m []member) Value { return Value{kind: Object, obj: m} }

// Kind returns v's type.
func (v Value) Kind() Kind { return v.kind }

// Str returns the string v holds (WTF-8), or "".
func (v Value) Str() string { return v.str }

// IsFalse reports whether v is the boolean false (v === false).
func (v Value) IsFalse() bool { return v.kind == Bool && v.num == 0 }

// UTF8 returns the string v holds as UTF-8, lone surrogates replaced by
// U+FFFD, as Node encodes a string.
func (v Value) UTF8() string { return toUTF8(v.str) }

// Index returns element i of an array, or undefined.
func (v Value) Index(i int) Value {
	if i < 0 || i >= len(v.arr) {
		return undefined
	}
	return v.arr[i]
}

// FromMessage converts a JSON value.
func FromMessage(m message.Value) Value {
	switch m.Kind() {
	case message.Bool:
		return boolValue(m.Bool())
	case message.Number:
		return numValue(m.Number())
	case message.String:
		return strValue(m.Str())
	case message.Array:
		es := m.Elems()
		a := make([]Value, len(es))
		for i, e := range es {
			a[i] = FromMessage(e)
		}
		return arrValue(a)
	case message.Object:
		ms := m.Members()
		o := make([]member, len(ms))
		for i, x := range ms {
			o[i] = member{x.Key, FromMessage(x.Value)}
		}
		return objValue(o)
	}
	return Value{kind: Null}
}

// ParseJSON reads JSON text into a Value.
func ParseJSON(b []byte) (Value, error) {
	m, err := message.Parse(b)
	if err != nil {
		return undefined, err
	}
	return FromMessage(m), nil
}

// Message converts v to JSON as JSON.stringify sees it: undefined members
// are left out, undefined elements are null; undefined itself is null.
func (v Value) Message() message.Value {
	switch v.kind {
	case Bool:
		return message.BoolValue(v.num != 0)
	case Number:
		return message.NumberValue(v.num)
	case String:
		return message.StringValue(v.str)
	case Array:
		es := make([]message.Value, len(v.arr))
		for i, e := range v.arr {
			es[i] = e.Message()
		}
		return message.ArrayValue(es...)
	case Object:
		ms := make([]message.Member, 0, len(v.obj))
		for _, m := range v.obj {
			if m.val.kind != Undefined {
				ms = append(ms, message.Member{Key: m.key, Value: m.val.Message()})
			}
		}
		return message.ObjectValue(ms...)
	}
	return message.Value{}
}

// AppendJSON appends v as JSON.stringify writes it (undefined as null).
func (v Value) AppendJSON(dst []byte) []byte { return v.Message().AppendCompact(dst) }

// String returns v as JSON.
func (v Value) String() string {
	if v.kind == Undefined {
		return "undefined"
	}
	return string(v.AppendJSON(nil))
}

// lookup returns the own member key of an object.
func (v Value) lookup(key string) (Value, bool) {
	for i := range v.obj {
		if v.obj[i].key == key {
			return v.obj[i].val, true
		}
	}
	return undefined, false
}

// has is Object.hasOwnProperty.call(v, key) for a v that is not null or
// undefined.
func (v Value) has(key string) bool {
	switch v.kind {
	case Object:
		_, ok := v.lookup(key)
		return ok
	case Array:
		if key == "length" {
			return true
		}
		i, ok := arrayIndex(key)
		return ok && i < len(v.arr)
	case String:
		if key == "length" {
			return true
		}
		i, ok := arrayIndex(key)
		return ok && i < utf16Len(v.str)
	}
	return false
}

// get is v[key] for a v that is not null or undefined (the caller checks:
// in JavaScript that is a TypeError). Inherited properties (methods) are
// not values of a query: they read as undefined.
func (v Value) get(key string) Value {
	switch v.kind {
	case Object:
		x, _ := v.lookup(key)
		return x
	case Array:
		if key == "length" {
			return numValue(float64(len(v.arr)))
		}
		if i, ok := arrayIndex(key); ok && i < len(v.arr) {
			return v.arr[i]
		}
	case String:
		if key == "length" {
			return numValue(float64(utf16Len(v.str)))
		}
		if i, ok := arrayIndex(key); ok {
			if u, ok := utf16At(v.str, i); ok {
				return strValue(u)
			}
		}
	}
	return undefined
}

func (v Value) nullish() bool { return v.kind == Undefined || v.kind == Null }

// set assigns o[key] = val on an object, keeping V8's key order.
func (v *Value) set(key string, val Value) {
	for i := range v.obj {
		if v.obj[i].key == key {
			v.obj[i].val = val
			return
		}
	}
	n, isIndex := arrayIndex(key)
	if !isIndex {
		v.obj = append(v.obj, member{key, val})
		return
	}
	at := len(v.obj)
	for i, m := range v.obj {
		if j, ok := arrayIndex(m.key); !ok || j > n {
			at = i
			break
		}
	}
	v.obj = append(v.obj, member{})
	copy(v.obj[at+1:], v.obj[at:])
	v.obj[at] = member{key, val}
}

// arrayIndex returns the index a key names (its canonical decimal form).
func arrayIndex(k string) (int, bool) {
	if len(k) == 0 || len(k) > 10 || (k[0] == '0' && len(k) > 1) {
		return 0, false
	}
	n := 0
	for i := 0; i < len(k); i++ {
		if k[i] < '0' || k[i] > '9' {
			return 0, false
		}
		n = n*10 + int(k[i]-'0')
	}
	return n, n <= math.MaxUint32-1
}

// truthy is JavaScript's ToBoolean.
func (v Value) truthy() bool {
	switch v.kind {
	case Undefined, Null:
		return false
	case Bool:
		return v.num != 0
	case Number:
		return v.num != 0 && !math.IsNaN(v.num)
	case String:
		return v.str != ""
	}
	return true
}

// typeOf is JavaScript's typeof.
func (v Value) typeOf() string {
	switch v.kind {
	case Undefined:
		return "undefined"
	case Bool:
		return "boolean"
	case Number:
		return "number"
	case String:
		return "string"
	}
	return "object"
}

// strictEq is ===.
func strictEq(a, b Value) bool {
	if a.kind != b.kind {
		return false
	}
	switch a.kind {
	case Undefined, Null:
		return true
	case Bool, Number:
		return a.num == b.num
	case String:
		return a.str == b.str
	}
	return false // distinct objects
}

// toPrimitive is ToPrimitive with the default hint for JSON values.
func toPrimitive(v Value) Value {
	switch v.kind {
	case Array:
		return strValue(toString(v))
	case Object:
		return strValue("[object Object]")
	}
	return v
}

// toString is JavaScript's ToString.
func toString(v Value) string {
	switch v.kind {
	case Undefined:
		return "undefined"
	case Null:
		return "null"
	case Bool:
		if v.num != 0 {
			return "true"
		}
		return "false"
	case Number:
		return jsNumber(v.num)
	case String:
		return v.str
	case Array:
		var b strings.Builder
		for i, e := range v.arr {
			if i > 0 {
				b.WriteByte(',')
			}
			if !e.nullish() {
				b.WriteString(toString(e))
			}
		}
		return b.String()
	}
	return "[object Object]"
}

func jsNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	}
	return string(message.NumberValue(f).AppendCompact(nil))
}

// toNumber is JavaScript's ToNumber.
func toNumber(v Value) float64 {
	switch v.kind {
	case Undefined:
		return math.NaN()
	case Null:
		return 0
	case Bool, Number:
		return v.num
	case String:
		return stringToNumber(v.str)
	}
	return toNumber(toPrimitive(v))
}

func stringToNumber(s string) float64 {
	s = strings.TrimFunc(s, isJSSpace)
	if s == "" {
		return 0
	}
	switch s {
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if len(s) > 2 && s[0] == '0' {
		base := 0
		switch s[1] {
		case 'x', 'X':
			base = 16
		case 'o', 'O':
			base = 8
		case 'b', 'B':
			base = 2
		}
		if base != 0 {
			return parseRadix(s[2:], base)
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return math.NaN()
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if e, ok := err.(*strconv.NumError); ok && e.Err == strconv.ErrRange {
			return f
		}
		return math.NaN()
	}
	return f
}

// parseRadix reads the digits of a 0x, 0o or 0b literal, to the nearest
// float64 for long ones.
func parseRadix(s string, base int) float64 {
	f := 0.0
	for i := 0; i < len(s); i++ {
		d, err := strconv.ParseUint(s[i:i+1], base, 8)
		if err != nil {
			return math.NaN()
		}
		f = f*float64(base) + float64(d)
	}
	return f
}

func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}

// lessThan is JavaScript's a < b (false when undefined, as for NaN).
func lessThan(a, b Value) bool {
	pa, pb := toPrimitive(a), toPrimitive(b)
	if pa.kind == String && pb.kind == String {
		return compareUTF16(pa.str, pb.str) < 0
	}
	x, y := toNumber(pa), toNumber(pb)
	return x < y
}

// lessEq is a <= b: !(b < a), false when either side is NaN.
func lessEq(a, b Value) bool {
	pa, pb := toPrimitive(a), toPrimitive(b)
	if pa.kind == String && pb.kind == String {
		return compareUTF16(pa.str, pb.str) <= 0
	}
	x, y := toNumber(pa), toNumber(pb)
	return x <= y
}

// looseEqString is s == v for a string s.
func looseEqString(s string, v Value) bool {
	switch v.kind {
	case Undefined, Null:
		return false
	case String:
		return s == v.str
	case Number, Bool:
		return stringToNumber(s) == v.num
	}
	return looseEqString(s, toPrimitive(v))
}

// units returns the UTF-16 code units of a WTF-8 string.
func units(s string) []uint16 {
	out := make([]uint16, 0, len(s))
	for i := 0; i < len(s); {
		r, n := decodeWTF8(s[i:])
		i += n
		if r >= 0x10000 {
			r -= 0x10000
			out = append(out, uint16(0xd800+(r>>10)), uint16(0xdc00+(r&0x3ff)))
			continue
		}
		out = append(out, uint16(r))
	}
	return out
}

// decodeWTF8 decodes one code point, lone surrogates included.
func decodeWTF8(s string) (rune, int) {
	if len(s) >= 3 && s[0] == 0xed && s[1] >= 0xa0 && s[1] <= 0xbf && s[2] >= 0x80 && s[2] <= 0xbf {
		return rune(s[0]&0x0f)<<12 | rune(s[1]&0x3f)<<6 | rune(s[2]&0x3f), 3
	}
	r, n := utf8.DecodeRuneInString(s)
	return r, n
}

func utf16Len(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, w := decodeWTF8(s[i:])
		i += w
		n++
		if r >= 0x10000 {
			n++
		}
	}
	return n
}

// utf16At returns the code unit at index i as a one-unit string.
func utf16At(s string, i int) (string, bool) {
	u := units(s)
	if i >= len(u) {
		return "", false
	}
	return fromUnits(u[i : i+1]), true
}

// fromUnits encodes UTF-16 code units as WTF-8.
func fromUnits(u []uint16) string {
	var b []byte
	for i := 0; i < len(u); i++ {
		r := rune(u[i])
		if r >= 0xd800 && r < 0xdc00 && i+1 < len(u) && u[i+1] >= 0xdc00 && u[i+1] < 0xe000 {
			r = 0x10000 + (r-0xd800)<<10 + rune(u[i+1]-0xdc00)
			i++
		}
		if r >= 0xd800 && r < 0xe000 {
			b = append(b, 0xe0|byte(r>>12), 0x80|byte(r>>6)&0x3f, 0x80|byte(r)&0x3f)
			continue
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}

// substringPrefix is s.substring(0, n) for n >= 0.
func substringPrefix(s string, n int) string {
	u := units(s)
	if n >= len(u) {
		return s
	}
	return fromUnits(u[:n])
}

// compareUTF16 compares strings as JavaScript does: by UTF-16 code units.
func compareUTF16(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	if i == len(a) || i == len(b) {
		return len(a) - len(b)
	}
	// back up to the start of the code point that differs
	for i > 0 && (a[i]&0xc0 == 0x80) {
		i--
	}
	ua, ub := units(a[i:]), units(b[i:])
	for j := 0; j < len(ua) && j < len(ub); j++ {
		if ua[j] != ub[j] {
			return int(ua[j]) - int(ub[j])
		}
	}
	return len(ua) - len(ub)
}
