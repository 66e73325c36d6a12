package query

import (
	"math"
	"strings"
)

// operators are map-filter-reduce 3's simple maps: {$op: argument} applied
// to a value. Comparisons are JavaScript's (<, ===, typeof...).
var operators = map[string]func(a, arg Value) (Value, error){
	"$lt":     func(a, b Value) (Value, error) { return boolValue(lessThan(a, b)), nil },
	"$gt":     func(a, b Value) (Value, error) { return boolValue(lessThan(b, a)), nil },
	"$lte":    func(a, b Value) (Value, error) { return boolValue(lessEq(a, b)), nil },
	"$gte":    func(a, b Value) (Value, error) { return boolValue(lessEq(b, a)), nil },
	"$eq":     func(a, b Value) (Value, error) { return boolValue(strictEq(a, b)), nil },
	"$ne":     func(a, b Value) (Value, error) { return boolValue(!strictEq(a, b)), nil },
	"$not":    func(a, _ Value) (Value, error) { return boolValue(!a.truthy()), nil },
	"$truthy": func(a, _ Value) (Value, error) { return boolValue(a.truthy()), nil },
	"$prefix": prefix,
	"$is":     func(a, t Value) (Value, error) { return boolValue(strictEq(strValue(a.typeOf()), t)), nil },
	"$in":     in,
	"$type":   func(a, _ Value) (Value, error) { return strValue(a.typeOf()), nil },
	"$int":    func(a, _ Value) (Value, error) { return boolValue(isInteger(a)), nil },
	"$mod":    func(a, b Value) (Value, error) { return numValue(math.Mod(toNumber(a), toNumber(b))), nil },
	"$get":    get,
}

// prefix: an array prefix of a longer array, or a string prefix (compared
// with ==, as JavaScript's code does).
func prefix(a, p Value) (Value, error) {
	if p.kind == Array {
		if a.kind != Array || len(a.arr) <= len(p.arr) {
			return boolValue(false), nil
		}
		for i, x := range p.arr {
			if !strictEq(a.arr[i], x) {
				return boolValue(false), nil
			}
		}
		return boolValue(true), nil
	}
	if a.kind != String {
		return boolValue(false), nil
	}
	if p.nullish() {
		return undefined, typeError("Cannot read properties of %s (reading 'length')", p.typeOfName())
	}
	sub := a.str
	if n := p.get("length"); n.kind != Undefined {
		f := toNumber(n)
		switch {
		case math.IsNaN(f) || f <= 0:
			sub = ""
		case f < float64(utf16Len(a.str)):
			sub = substringPrefix(a.str, int(f))
		}
	}
	return boolValue(looseEqString(sub, p)), nil
}

func (v Value) typeOfName() string {
	if v.kind == Null {
		return "null"
	}
	return "undefined"
}

// in is ~b.indexOf(a): 0 when absent, a negative number when present.
func in(a, b Value) (Value, error) {
	switch b.kind {
	case Array:
		for i, x := range b.arr {
			if strictEq(x, a) {
				return numValue(float64(-i - 1)), nil
			}
		}
		return numValue(0), nil
	case String:
		return numValue(float64(-indexUTF16(b.str, toString(a)) - 1)), nil
	case Undefined, Null:
		return undefined, typeError("Cannot read properties of %s (reading 'indexOf')", b.typeOfName())
	}
	return undefined, typeError("b.indexOf is not a function")
}

// indexUTF16 is s.indexOf(sub) in UTF-16 code units.
func indexUTF16(s, sub string) int {
	i := strings.Index(s, sub)
	if i < 0 {
		return -1
	}
	if sub == "" {
		return 0
	}
	us, ub := units(s), units(sub)
	for j := 0; j+len(ub) <= len(us); j++ {
		k := 0
		for k < len(ub) && us[j+k] == ub[k] {
			k++
		}
		if k == len(ub) {
			return j
		}
	}
	return -1
}

// get is util.get(a, path): a key, a path of keys, or true for a itself.
func get(a, path Value) (Value, error) {
	switch path.kind {
	case String:
		if a.nullish() {
			return undefined, typeError("Cannot read properties of %s (reading '%s')", a.typeOfName(), path.str)
		}
		return a.get(path.str), nil
	case Array:
		for _, k := range path.arr {
			if a.nullish() {
				return undefined, nil
			}
			a = a.get(propertyKey(k))
		}
		return a, nil
	case Bool:
		if path.num != 0 {
			return a, nil
		}
	}
	return undefined, nil
}

// propertyKey is the property name a value names (ToString).
func propertyKey(k Value) string { return toString(k) }

// reducers are map-filter-reduce 3's simple reduces, reduce(acc, value).
var reducers = map[string]func(e *env, a, b Value) (Value, error){
	"$count": func(_ *env, a, _ Value) (Value, error) {
		if !a.truthy() {
			a = numValue(0)
		}
		return add(a, numValue(1)), nil
	},
	"$sum": func(_ *env, a, b Value) (Value, error) {
		return numValue(orZero(toNumber(a)) + orZero(toNumber(b))), nil
	},
	"$product": func(_ *env, a, b Value) (Value, error) {
		if !a.truthy() {
			a = numValue(1)
		}
		if !b.truthy() {
			b = numValue(1)
		}
		return numValue(toNumber(a) * toNumber(b)), nil
	},
	"$max": func(_ *env, a, b Value) (Value, error) {
		if a.kind == Undefined {
			return b, nil
		}
		return numValue(jsMax(toNumber(a), toNumber(b))), nil
	},
	"$min": func(_ *env, a, b Value) (Value, error) {
		if a.kind == Undefined {
			return b, nil
		}
		return numValue(-jsMax(-toNumber(a), -toNumber(b))), nil
	},
	"$collect": func(e *env, a, b Value) (Value, error) {
		if err := e.charge(sizeOf(b)); err != nil {
			return undefined, err
		}
		if !a.truthy() {
			a = arrValue(nil)
		}
		if a.kind != Array {
			a = arrValue([]Value{a})
		}
		return arrValue(append(a.arr, b)), nil
	},
}

func orZero(f float64) float64 {
	if math.IsNaN(f) {
		return 0
	}
	return f
}

// jsMax is Math.max of two numbers: NaN wins, +0 is above -0.
func jsMax(a, b float64) float64 {
	if math.IsNaN(a) || math.IsNaN(b) {
		return math.NaN()
	}
	return math.Max(a, b)
}

// add is JavaScript's a + b.
func add(a, b Value) Value {
	pa, pb := toPrimitive(a), toPrimitive(b)
	if pa.kind == String || pb.kind == String {
		return strValue(toString(pa) + toString(pb))
	}
	return numValue(toNumber(pa) + toNumber(pb))
}

// sizeOf estimates the bytes a value holds.
func sizeOf(v Value) int {
	n := 16 + len(v.str)
	for _, e := range v.arr {
		n += sizeOf(e)
	}
	for _, m := range v.obj {
		n += len(m.key) + sizeOf(m.val)
	}
	return n
}
