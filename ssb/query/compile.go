package query

import (
	"errors"
	"fmt"
	"math"
)

// Bounds on a query. map-filter-reduce has none; these keep one call's
// work proportional to the messages it reads.
const (
	// MaxQuerySize is the longest query, as JSON text, in bytes.
	MaxQuerySize = 64 << 10
	// MaxDepth is the deepest nesting of arrays and objects in a query.
	MaxDepth = 32
	// MaxNodes is the most values (of any kind, nested ones included) a
	// query may hold: it bounds the work per message and what a $map can
	// copy out of one.
	MaxNodes = 4096
	// MaxStages is the most stages of a query array.
	MaxStages = 64
)

var (
	// ErrQuery is wrapped by the errors of queries map-filter-reduce refuses.
	ErrQuery = errors.New("query: invalid query")
	// ErrTooLarge is wrapped by the errors of queries past the bounds above.
	ErrTooLarge = errors.New("query: query too large")
	// ErrEval is wrapped by errors while a query runs on a message, where
	// JavaScript would throw (a TypeError, mostly).
	ErrEval = errors.New("query: evaluation failed")
	// ErrBudget is wrapped by the error of a $reduce or $sort that holds
	// more than its Budget allows.
	ErrBudget = errors.New("query: result too large")
)

// env is one run's state that compiled rules reach: the budget.
type env struct {
	bytes, maxBytes int
	groups          int
}

func (e *env) charge(n int) error {
	e.bytes += n
	if e.bytes > e.maxBytes {
		return fmt.Errorf("%w: more than %d bytes held by $reduce or $sort", ErrBudget, e.maxBytes)
	}
	return nil
}

// A fn is a compiled rule. map-filter-reduce's rules are JavaScript
// functions of one argument (maps, filters) or two (reducers); a call
// passes both and a function of one reads the first, as in JavaScript.
type fn struct {
	arity int
	f     func(e *env, a, b Value) (Value, error)
}

func (f fn) call1(e *env, v Value) (Value, error) { return f.f(e, v, undefined) }

func one(f func(e *env, v Value) (Value, error)) fn {
	return fn{1, func(e *env, a, _ Value) (Value, error) { return f(e, a) }}
}

func two(f func(e *env, a, b Value) (Value, error)) fn { return fn{2, f} }

func typeError(format string, args ...any) error {
	return fmt.Errorf("%w: TypeError: "+format, append([]any{ErrEval}, args...)...)
}

func couldNotProcess(rule Value) error {
	return fmt.Errorf("%w: could not process:%s", ErrQuery, rule.String())
}

// isInteger is Number.isInteger.
func isInteger(v Value) bool {
	return v.kind == Number && !math.IsInf(v.num, 0) && v.num == math.Trunc(v.num)
}

// isBasic is map-filter-reduce's util.isBasic.
func isBasic(v Value) bool { return v.kind <= String }

// hasDollarKey (is$) reports whether an object or array has a key starting with '$'.
func hasDollarKey(v Value) bool {
	for _, m := range v.obj {
		if len(m.key) > 0 && m.key[0] == '$' {
			return true
		}
	}
	return false
}

// makeRule is map-filter-reduce's make: a map, a compose, the $-operators,
// the reducers, the special forms, or an error.
func makeRule(rule Value) (fn, error) {
	switch {
	case rule.kind == String:
		key := rule.str
		return one(func(_ *env, v Value) (Value, error) {
			if v.nullish() {
				return undefined, nil
			}
			return v.get(key), nil
		}), nil
	case isInteger(rule):
		n := rule.num
		return one(func(_ *env, v Value) (Value, error) { return index(v, n) }), nil
	case rule.kind == Bool && rule.num != 0:
		return one(func(_ *env, v Value) (Value, error) { return v, nil }), nil
	case rule.kind == Array:
		fs := make([]fn, len(rule.arr))
		for i, r := range rule.arr {
			f, err := makeRule(r)
			if err != nil {
				return fn{}, err
			}
			fs[i] = f
		}
		return one(func(e *env, v Value) (Value, error) {
			var err error
			for _, f := range fs {
				if v, err = f.call1(e, v); err != nil {
					return undefined, err
				}
			}
			return v, nil
		}), nil
	case rule.kind != Object:
		return fn{}, couldNotProcess(rule)
	}
	if f, ok := makeMaps(rule); ok {
		return f, nil
	}
	for _, m := range rule.obj {
		if r, ok := reducers[m.key]; ok {
			get, err := makeRule(m.val)
			if err != nil {
				return fn{}, err
			}
			return two(func(e *env, a, b Value) (Value, error) {
				x, err := get.call1(e, b)
				if err != nil {
					return undefined, err
				}
				return r(e, a, x)
			}), nil
		}
	}
	for _, m := range rule.obj {
		switch m.key {
		case "$filter":
			return makeFilter(m.val)
		case "$map":
			return makeMap(m.val)
		case "$reduce":
			return makeReduce(m.val)
		}
	}
	return fn{}, couldNotProcess(rule)
}

// index is value[n] for an integer n; a negative n counts from the end
// (value[value.length + n]).
func index(v Value, n float64) (Value, error) {
	if v.nullish() {
		return undefined, typeError("Cannot read properties of %s (reading '%s')", v.String(), jsNumber(n))
	}
	if n >= 0 {
		return v.get(jsNumber(n)), nil
	}
	return v.get(jsNumber(toNumber(v.get("length")) + n)), nil
}

// makeMaps ANDs the map operators ($lt, $eq, $prefix...) of an object, in
// key order: JavaScript's && returns the first falsy result or the last.
func makeMaps(rule Value) (fn, bool) {
	var fs []func(Value) (Value, error)
	for _, m := range rule.obj {
		if op, ok := operators[m.key]; ok {
			arg := m.val
			fs = append(fs, func(v Value) (Value, error) { return op(v, arg) })
		}
	}
	if len(fs) == 0 {
		return fn{}, false
	}
	return one(func(_ *env, v Value) (Value, error) {
		var r Value
		for _, f := range fs {
			var err error
			if r, err = f(v); err != nil || !r.truthy() {
				return r, err
			}
		}
		return r, nil
	}), true
}

// makeFilter is special.filter: objects and arrays without $-keys match
// member by member, basic values by ===, the rest is a rule.
func makeFilter(rule Value) (fn, error) {
	if (rule.kind == Object || rule.kind == Array) && !hasDollarKey(rule) {
		type child struct {
			key string
			f   fn
		}
		var cs []child
		add := func(key string, r Value) error {
			f, err := makeFilter(r)
			cs = append(cs, child{key, f})
			return err
		}
		for i, e := range rule.arr {
			if err := add(jsNumber(float64(i)), e); err != nil {
				return fn{}, err
			}
		}
		for _, m := range rule.obj {
			if err := add(m.key, m.val); err != nil {
				return fn{}, err
			}
		}
		return one(func(e *env, v Value) (Value, error) {
			if v.nullish() {
				return boolValue(false), nil
			}
			for _, c := range cs {
				r, err := c.f.call1(e, v.get(c.key))
				if err != nil || !r.truthy() {
					return boolValue(false), err
				}
			}
			return boolValue(true), nil
		}), nil
	}
	if isBasic(rule) {
		return one(func(_ *env, v Value) (Value, error) { return boolValue(strictEq(rule, v)), nil }), nil
	}
	return makeRule(rule)
}

// makeMap is special.map: an object without $-keys builds an object with
// the same keys (true copies value[key]; the rest maps the whole value).
func makeMap(rule Value) (fn, error) {
	if rule.kind != Object || hasDollarKey(rule) {
		return makeRule(rule)
	}
	type child struct {
		key  string
		copy bool
		f    fn
	}
	cs := make([]child, len(rule.obj))
	for i, m := range rule.obj {
		f, err := makeMap(m.val)
		if err != nil {
			return fn{}, err
		}
		cs[i] = child{m.key, m.val.kind == Bool && m.val.num != 0, f}
	}
	return one(func(e *env, v Value) (Value, error) {
		if v.nullish() || len(cs) == 0 {
			return undefined, nil
		}
		out := make([]member, len(cs))
		for i, c := range cs {
			var r Value
			if c.copy {
				r = v
				if v.truthy() {
					r = v.get(c.key)
				}
			} else {
				var err error
				if r, err = c.f.call1(e, v); err != nil {
					return undefined, err
				}
			}
			out[i] = member{c.key, r}
		}
		return objValue(out), nil
	}), nil
}

// makeReduce is special.reduce: an object without $-keys reduces member by
// member; members whose rule is a map (of one argument) are the group
// keys, and then the result is an array of groups sorted by them.
func makeReduce(rule Value) (fn, error) {
	var gets []fn
	var sets [][]string
	var build func(rule Value, path []string) (fn, error)
	build = func(rule Value, path []string) (fn, error) {
		if rule.kind != Object || hasDollarKey(rule) {
			f, err := makeRule(rule)
			if err == nil && f.arity == 1 {
				gets = append(gets, f)
				sets = append(sets, append([]string(nil), path...))
			}
			return f, err
		}
		keys := make([]string, len(rule.obj))
		fs := make([]fn, len(rule.obj))
		for i, m := range rule.obj {
			f, err := build(m.val, append(path, m.key))
			if err != nil {
				return fn{}, err
			}
			keys[i], fs[i] = m.key, f
		}
		return two(func(e *env, a, b Value) (Value, error) {
			out := make([]member, len(fs))
			for i, f := range fs {
				var prev Value
				if a.truthy() && !a.nullish() {
					prev = a.get(keys[i])
				}
				var r Value
				var err error
				if f.arity == 1 {
					r, err = f.call1(e, b)
				} else {
					r, err = f.f(e, prev, b)
				}
				if err != nil {
					return undefined, err
				}
				out[i] = member{keys[i], r}
			}
			return objValue(out), nil
		}), nil
	}
	reduce, err := build(rule, nil)
	if err != nil || len(gets) == 0 {
		return reduce, err
	}
	return arrayGroup(sets, gets, reduce), nil
}

// getPath is util.get of a group's key: a path of one key is the key.
func getPath(v Value, path []string) Value {
	for _, k := range path {
		if v.nullish() {
			return undefined
		}
		v = v.get(k)
	}
	return v
}

// arrayGroup keeps the groups of a reduce in an array sorted by their keys
// (typewiselite's order), found by binary search.
func arrayGroup(sets [][]string, gets []fn, reduce fn) fn {
	return two(func(e *env, a, b Value) (Value, error) {
		if a.truthy() && a.kind != Array {
			return undefined, typeError("a grouped $reduce got a non-array accumulator")
		}
		needle := make([]Value, len(gets))
		for i, g := range gets {
			x, err := g.call1(e, b)
			if err != nil {
				return undefined, err
			}
			needle[i] = x
		}
		groups := a.arr
		lo, hi := 0, len(groups)-1
		for lo <= hi {
			mid := lo + (hi-lo)/2
			c := 0
			for i, path := range sets {
				x := getPath(groups[mid], path)
				if !strictEq(x, needle[i]) {
					var err error
					if c, err = typewiseCompare(x, needle[i]); err != nil {
						return undefined, err
					}
					break
				}
			}
			switch {
			case c < 0:
				lo = mid + 1
			case c > 0:
				hi = mid - 1
			default:
				r, err := reduce.f(e, groups[mid], b)
				groups[mid] = r
				return arrValue(groups), err
			}
		}
		e.groups++
		if err := e.charge(64); err != nil {
			return undefined, err
		}
		r, err := reduce.f(e, undefined, b)
		if err != nil {
			return undefined, err
		}
		groups = append(groups, Value{})
		copy(groups[lo+1:], groups[lo:])
		groups[lo] = r
		return arrValue(groups), nil
	})
}

// typewiseCompare is npm typewiselite: null < booleans < numbers < strings
// < arrays < undefined; objects cannot be compared.
func typewiseCompare(a, b Value) (int, error) {
	rank := func(v Value) (int, error) {
		switch v.kind {
		case Null:
			return 0, nil
		case Bool:
			return 1, nil
		case Number:
			return 2, nil
		case String:
			return 4, nil
		case Array:
			return 6, nil
		case Undefined:
			return 7, nil
		}
		return 0, fmt.Errorf("%w: comparing objects or functions is not supported", ErrEval)
	}
	ra, err := rank(a)
	if err != nil {
		return 0, err
	}
	rb, err := rank(b)
	if err != nil {
		return 0, err
	}
	if ra != rb {
		return inequality(numValue(float64(ra)), numValue(float64(rb))), nil
	}
	if a.kind != Array {
		return inequality(a, b), nil
	}
	for i := 0; i < len(a.arr) && i < len(b.arr); i++ {
		if c, err := typewiseCompare(a.arr[i], b.arr[i]); c != 0 || err != nil {
			return c, err
		}
	}
	return inequality(numValue(float64(len(a.arr))), numValue(float64(len(b.arr)))), nil
}

// inequality is a === b ? 0 : a < b ? -1 : 1.
func inequality(a, b Value) int {
	switch {
	case strictEq(a, b):
		return 0
	case lessThan(a, b):
		return -1
	}
	return 1
}
