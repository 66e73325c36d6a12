package links

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/scuttlego/scuttle/ssb/message"
)

// A small evaluator of map-filter-reduce 3 queries, the part ssb-links and
// ssb-backlinks queries use: $filter and $map stages with the operators
// $lt, $gt, $lte, $gte, $eq, $ne, $not, $truthy, $prefix, $is, $in, $type,
// $int, $mod and $get, paths as strings, integers and arrays. $reduce is
// refused. Values are JSON values; a missing value (JavaScript's
// undefined) is ok == false.

// maxRuleDepth bounds the nesting of a query's rules.
const maxRuleDepth = 32

type valueFn func(v message.Value, ok bool) (message.Value, bool)

// A stage is a $filter (keep) or a $map (fn) of a query.
type stage struct {
	keep func(v message.Value, ok bool) bool
	fn   valueFn
}

// run passes v through the stages; ok is false when a stage drops it.
func run(stages []stage, v message.Value) (message.Value, bool) {
	ok := true
	for _, s := range stages {
		if s.keep != nil {
			if !s.keep(v, ok) {
				return message.Value{}, false
			}
			continue
		}
		v, ok = s.fn(v, ok)
		if !truthy(v, ok) { // map's pull.filter() drops falsy results
			return message.Value{}, false
		}
	}
	return v, ok
}

// compileQuery compiles a query (an array of stages) without its $sort.
func compileQuery(q message.Value) ([]stage, error) {
	if q.Kind() != message.Array {
		return nil, nil
	}
	var out []stage
	for _, st := range q.Elems() {
		if !truthy(st, true) {
			continue
		}
		if st.Kind() != message.Object || len(st.Members()) == 0 {
			return nil, fmt.Errorf("unknown function:%s", st)
		}
		first := st.Members()[0]
		switch first.Key {
		case "$filter":
			f, err := makeFilter(first.Value, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, stage{keep: func(v message.Value, ok bool) bool { r, rok := f(v, ok); return truthy(r, rok) }})
		case "$map":
			f, err := makeMap(first.Value, 0)
			if err != nil {
				return nil, err
			}
			out = append(out, stage{fn: f})
		case "$reduce":
			return nil, errors.New("links: $reduce is not supported by this server")
		case "$sort":
			return nil, errors.New("links: $sort must be the last stage")
		default:
			return nil, fmt.Errorf("unknown function:%s", first.Key)
		}
	}
	return out, nil
}

func hasDollar(v message.Value) bool {
	for _, m := range v.Members() {
		if strings.HasPrefix(m.Key, "$") {
			return true
		}
	}
	return false
}

func isContainer(v message.Value) bool {
	return v.Kind() == message.Object || v.Kind() == message.Array
}

func isBasic(v message.Value) bool { return !isContainer(v) }

func boolV(b bool) (message.Value, bool) { return message.BoolValue(b), true }

// index is o[k] for objects and arrays (k an index).
func member(v message.Value, ok bool, k string) (message.Value, bool) {
	if !ok {
		return message.Value{}, false
	}
	switch v.Kind() {
	case message.Object:
		return v.Get(k)
	case message.Array:
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 || i >= len(v.Elems()) || strconv.Itoa(i) != k {
			if k == "length" {
				return message.NumberValue(float64(len(v.Elems()))), true
			}
			return message.Value{}, false
		}
		return v.Elems()[i], true
	case message.String:
		if k == "length" {
			return message.NumberValue(float64(jsLen(v.Str()))), true
		}
	}
	return message.Value{}, false
}

func makeFilter(rule message.Value, depth int) (valueFn, error) {
	if depth > maxRuleDepth {
		return nil, errors.New("links: query nested too deep")
	}
	if isContainer(rule) && !hasDollar(rule) {
		type sub struct {
			key string
			f   valueFn
		}
		var subs []sub
		add := func(k string, r message.Value) error {
			f, err := makeFilter(r, depth+1)
			subs = append(subs, sub{k, f})
			return err
		}
		if rule.Kind() == message.Array {
			for i, e := range rule.Elems() {
				if err := add(strconv.Itoa(i), e); err != nil {
					return nil, err
				}
			}
		} else {
			for _, m := range rule.Members() {
				if err := add(m.Key, m.Value); err != nil {
					return nil, err
				}
			}
		}
		return func(v message.Value, ok bool) (message.Value, bool) {
			if !ok || v.Kind() == message.Null {
				return boolV(false)
			}
			for _, s := range subs {
				if r, rok := s.f(member(v, ok, s.key)); !truthy(r, rok) {
					return boolV(false)
				}
			}
			return boolV(true)
		}, nil
	}
	if isBasic(rule) {
		return func(v message.Value, ok bool) (message.Value, bool) { return boolV(ok && strictEqual(rule, v)) }, nil
	}
	return makeRule(rule, depth)
}

func makeMap(rule message.Value, depth int) (valueFn, error) {
	if depth > maxRuleDepth {
		return nil, errors.New("links: query nested too deep")
	}
	if rule.Kind() == message.Object && !hasDollar(rule) {
		type sub struct {
			key  string
			self bool
			f    valueFn
		}
		var subs []sub
		for _, m := range rule.Members() {
			f, err := makeMap(m.Value, depth+1)
			if err != nil {
				return nil, err
			}
			subs = append(subs, sub{m.Key, m.Value.Kind() == message.Bool && m.Value.Bool(), f})
		}
		return func(v message.Value, ok bool) (message.Value, bool) {
			if !ok || v.Kind() == message.Null {
				return message.Value{}, false
			}
			var ms []message.Member
			for _, s := range subs {
				var r message.Value
				var rok bool
				if s.self {
					r, rok = member(v, ok, s.key)
				} else {
					r, rok = s.f(v, ok)
				}
				if rok { // JSON.stringify leaves undefined members out
					ms = append(ms, message.Member{Key: s.key, Value: r})
				}
			}
			if len(subs) == 0 {
				return message.Value{}, false
			}
			return message.ObjectValue(ms...), true
		}, nil
	}
	return makeRule(rule, depth)
}

// makeRule is map-filter-reduce's make: a path (string, integer, true, or
// an array of them composed), or an object of operators.
func makeRule(rule message.Value, depth int) (valueFn, error) {
	switch rule.Kind() {
	case message.String:
		k := rule.Str()
		return func(v message.Value, ok bool) (message.Value, bool) { return member(v, ok, k) }, nil
	case message.Number:
		n := rule.Number()
		if n == math.Trunc(n) && !math.IsInf(n, 0) {
			return func(v message.Value, ok bool) (message.Value, bool) {
				if n < 0 {
					l, lok := member(v, ok, "length")
					if !lok {
						return message.Value{}, false
					}
					return member(v, ok, strconv.FormatFloat(l.Number()+n, 'f', -1, 64))
				}
				return member(v, ok, strconv.FormatFloat(n, 'f', -1, 64))
			}, nil
		}
	case message.Bool:
		if rule.Bool() {
			return func(v message.Value, ok bool) (message.Value, bool) { return v, ok }, nil
		}
	case message.Array:
		var fs []valueFn
		for _, e := range rule.Elems() {
			f, err := makeRule(e, depth+1)
			if err != nil {
				return nil, err
			}
			fs = append(fs, f)
		}
		return func(v message.Value, ok bool) (message.Value, bool) {
			for _, f := range fs {
				v, ok = f(v, ok)
			}
			return v, ok
		}, nil
	case message.Object:
		return makeOps(rule)
	}
	return nil, fmt.Errorf("could not process:%s", rule)
}

// makeOps ANDs the operators of an object rule.
func makeOps(rule message.Value) (valueFn, error) {
	var fs []valueFn
	for _, m := range rule.Members() {
		arg := m.Value
		var f valueFn
		switch m.Key {
		case "$lt", "$gt", "$lte", "$gte":
			op := m.Key
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(compare(op, v, ok, arg)) }
		case "$eq":
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(ok && strictEqual(v, arg)) }
		case "$ne":
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(!ok || !strictEqual(v, arg)) }
		case "$not":
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(!truthy(v, ok)) }
		case "$truthy":
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(truthy(v, ok)) }
		case "$prefix":
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(hasPrefix(v, ok, arg)) }
		case "$is":
			f = func(v message.Value, ok bool) (message.Value, bool) {
				return boolV(arg.Kind() == message.String && typeOf(v, ok) == arg.Str())
			}
		case "$in":
			f = func(v message.Value, ok bool) (message.Value, bool) { return boolV(in(v, ok, arg)) }
		case "$type":
			f = func(v message.Value, ok bool) (message.Value, bool) { return message.StringValue(typeOf(v, ok)), true }
		case "$int":
			f = func(v message.Value, ok bool) (message.Value, bool) {
				return boolV(ok && v.Kind() == message.Number && v.Number() == math.Trunc(v.Number()) && !math.IsInf(v.Number(), 0))
			}
		case "$mod":
			f = func(v message.Value, ok bool) (message.Value, bool) {
				return message.NumberValue(math.Mod(toNumber(v, ok), toNumber(arg, true))), true
			}
		case "$get":
			g, err := makeRule(arg, 1)
			if err != nil {
				return nil, err
			}
			f = g
		default:
			continue
		}
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		return nil, fmt.Errorf("could not process:%s", rule)
	}
	return func(v message.Value, ok bool) (message.Value, bool) {
		var r message.Value
		var rok bool
		for _, f := range fs {
			if r, rok = f(v, ok); !truthy(r, rok) {
				return r, rok
			}
		}
		return r, rok
	}, nil
}

// strictEqual is === on JSON values: scalars by value; objects and arrays
// are never equal (they are distinct objects).
func strictEqual(a, b message.Value) bool {
	if a.Kind() != b.Kind() {
		return false
	}
	switch a.Kind() {
	case message.Null:
		return true
	case message.Bool:
		return a.Bool() == b.Bool()
	case message.Number:
		return a.Number() == b.Number()
	case message.String:
		return a.Str() == b.Str()
	}
	return false
}

func typeOf(v message.Value, ok bool) string {
	if !ok {
		return "undefined"
	}
	switch v.Kind() {
	case message.Bool:
		return "boolean"
	case message.Number:
		return "number"
	case message.String:
		return "string"
	}
	return "object"
}

// toNumber is JavaScript's Number(v) for scalars; NaN for the rest.
func toNumber(v message.Value, ok bool) float64 {
	if !ok {
		return math.NaN()
	}
	switch v.Kind() {
	case message.Null:
		return 0
	case message.Bool:
		if v.Bool() {
			return 1
		}
		return 0
	case message.Number:
		return v.Number()
	case message.String:
		s := strings.TrimSpace(v.Str())
		if s == "" {
			return 0
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || strings.ContainsAny(s, "_xXpP") {
			return math.NaN()
		}
		return f
	}
	return math.NaN()
}

// compare is JavaScript's < > <= >= for scalars: strings by UTF-16 code
// units, everything else as numbers.
func compare(op string, a message.Value, aok bool, b message.Value) bool {
	var c int
	if aok && a.Kind() == message.String && b.Kind() == message.String {
		c = compareUTF16(a.Str(), b.Str())
	} else {
		x, y := toNumber(a, aok), toNumber(b, true)
		if x != x || y != y {
			return false
		}
		switch {
		case x < y:
			c = -1
		case x > y:
			c = 1
		}
	}
	switch op {
	case "$lt":
		return c < 0
	case "$gt":
		return c > 0
	case "$lte":
		return c <= 0
	}
	return c >= 0
}

func compareUTF16(a, b string) int {
	x, y := utf16.Encode([]rune(a)), utf16.Encode([]rune(b))
	for i := 0; i < len(x) && i < len(y); i++ {
		if x[i] != y[i] {
			if x[i] < y[i] {
				return -1
			}
			return 1
		}
	}
	return len(x) - len(y)
}

func hasPrefix(v message.Value, ok bool, p message.Value) bool {
	if !ok {
		return false
	}
	if p.Kind() == message.Array {
		if v.Kind() != message.Array || len(v.Elems()) <= len(p.Elems()) {
			return false
		}
		for i, e := range p.Elems() {
			if !strictEqual(v.Elems()[i], e) {
				return false
			}
		}
		return true
	}
	if v.Kind() != message.String || p.Kind() != message.String {
		return false
	}
	x, y := utf16.Encode([]rune(v.Str())), utf16.Encode([]rune(p.Str()))
	if len(y) > len(x) {
		return false
	}
	for i := range y {
		if x[i] != y[i] {
			return false
		}
	}
	return true
}

func in(v message.Value, ok bool, set message.Value) bool {
	switch set.Kind() {
	case message.Array:
		if !ok {
			return false
		}
		for _, e := range set.Elems() {
			if strictEqual(e, v) {
				return true
			}
		}
	case message.String:
		if ok && v.Kind() == message.String {
			return strings.Contains(set.Str(), v.Str())
		}
	}
	return false
}
