package query

import (
	"bytes"
	"fmt"

	"github.com/scuttlego/scuttle/ssb/message"
)

// An Index is one of ssb-query's views: the fields of a message item its
// keys are made of, in order. A field is a key (a string) or a path (an
// array of keys), as ssb-query writes them.
type Index struct {
	Key    string
	Fields []Value
}

func path(keys ...string) Value {
	vs := make([]Value, len(keys))
	for i, k := range keys {
		vs[i] = strValue(k)
	}
	return arrValue(vs)
}

// Indexes are ssb-query@2.4's, in its order (ties go to the first).
var Indexes = []Index{
	{"log", []Value{strValue("timestamp")}},
	{"clk", []Value{path("value", "author"), path("value", "sequence")}},
	{"typ", []Value{path("value", "content", "type"), path("timestamp")}},
	{"tya", []Value{path("value", "content", "type"), path("value", "timestamp")}},
	{"cha", []Value{path("value", "content", "channel"), path("timestamp")}},
	{"aty", []Value{path("value", "author"), path("value", "content", "type"), path("timestamp")}},
	{"ata", []Value{path("value", "author"), path("value", "content", "type"), path("value", "timestamp")}},
	{"art", []Value{path("value", "content", "root"), path("value", "timestamp")}},
	{"lor", []Value{path("rts")}},
}

// Options are the options of query.read and query.explain.
type Options struct {
	Query   Value // the query, parsed when it was a JSON string
	Reverse bool  // !!opts.reverse
	Old     bool  // opts.old !== false
	Live    bool  // opts.live === true || opts.old === false
	Sync    Value // opts.sync as given (undefined when absent)
	// Limit is the most results, 0 for all: pull.take(limit) stops at a
	// positive integer only.
	Limit int64
}

// ParseOptions reads the first argument of query.read or query.explain as
// ssb-query does: a JSON string is the query; an object's query may be
// a JSON string too.
func ParseOptions(arg Value) (Options, error) {
	if !arg.truthy() {
		arg = objValue(nil)
	}
	if arg.kind == String {
		q, err := parseQueryString(arg.str)
		if err != nil {
			return Options{}, err
		}
		arg = objValue([]member{{"query", q}})
	}
	o := Options{Query: arg.get("query"), Sync: arg.get("sync")}
	if o.Query.kind == String {
		q, err := parseQueryString(o.Query.str)
		if err != nil {
			return Options{}, err
		}
		o.Query = q
	}
	o.Reverse = arg.get("reverse").truthy()
	old := arg.get("old")
	o.Old = !strictEq(old, boolValue(false))
	o.Live = strictEq(arg.get("live"), boolValue(true)) || !o.Old
	if l := arg.get("limit"); l.truthy() {
		if l.kind != Number {
			return Options{}, fmt.Errorf("%w: TypeError: limit must be a number, not %s", ErrQuery, l.String())
		}
		if isInteger(l) && l.num >= 1 {
			o.Limit = int64(min(l.num, 1<<62))
		}
	}
	return o, nil
}

func parseQueryString(s string) (Value, error) {
	if len(s) > MaxQuerySize {
		return undefined, fmt.Errorf("%w: %d bytes of JSON, more than %d", ErrTooLarge, len(s), MaxQuerySize)
	}
	v, err := ParseJSON([]byte(s))
	if err != nil {
		return undefined, fmt.Errorf("%w: SyntaxError: %w", ErrQuery, err)
	}
	return v, nil
}

// A Plan is flumeview-query's explain: the index a query reads and the
// range of its keys, or a scan of the log.
type Plan struct {
	Index    *Index  // nil for a scan of the log
	Gte, Lte []Value // per field: the bounds (null is lowest, undefined highest)
	Reverse  bool
	Old      bool
	Live     bool
	Sync     Value
	scores   []member

	lo, hi []byte // the encoded bounds, made by Check
}

// Explain chooses the index for a query as flumeview-query@8 does: the
// $sort of the last stage names one by its fields; otherwise each index
// scores its fields from the left against the filter (exact 2, range 1,
// score = score² + field, stopping at the first field the filter lacks),
// the highest score wins, and none above 0 is a scan.
//
// It does not compile the query's stages: an unknown operator fails the
// read, not the explanation, as in JavaScript.
func Explain(o Options) (*Plan, error) {
	if err := checkSize(o.Query); err != nil {
		return nil, err
	}
	filter, sort, err := planInput(o.Query)
	if err != nil {
		return nil, err
	}
	p := &Plan{Reverse: o.Reverse, Old: o.Old, Live: o.Live, Sync: o.Sync}
	if sort.truthy() {
		p.Index = findByPath(sort)
	} else if p.Index, p.scores, err = selectIndex(filter); err != nil {
		return nil, err
	}
	if p.Index == nil {
		return p, nil
	}
	for _, f := range p.Index.Fields {
		v, err := fvqGet(f, filter)
		if err != nil {
			return nil, err
		}
		p.Gte = append(p.Gte, bound(v, lower, Value{kind: Null}))
		p.Lte = append(p.Lte, bound(v, upper, undefined))
	}
	return p, nil
}

func findByPath(sort Value) *Index {
	for i := range Indexes {
		if sameJSON(arrValue(Indexes[i].Fields), sort) {
			return &Indexes[i]
		}
	}
	return nil
}

func sameJSON(a, b Value) bool {
	return a.kind == b.kind && a.Message().Equal(b.Message())
}

func selectIndex(q Value) (*Index, []member, error) {
	var scores []member
	setScore := func(key string, s float64) {
		for i := range scores {
			if scores[i].key == key {
				scores[i].val = numValue(s)
				return
			}
		}
		scores = append(scores, member{key, numValue(s)})
	}
	var best *Index
	bestScore := 0.0
	for i := range Indexes {
		ix := &Indexes[i]
		score := 0.0
		for _, f := range ix.Fields {
			v, err := fvqGet(f, q)
			if err != nil {
				return nil, nil, err
			}
			has, err := fvqHas(f, q)
			if err != nil {
				return nil, nil, err
			}
			s := 0.0
			switch {
			case !has:
			case isExact(v):
				s = 2
			case isRange(v):
				s = 1
			}
			if s == 0 {
				break
			}
			score = score*score + s
			setScore(ix.Key, score)
		}
		if score > bestScore {
			best, bestScore = ix, score
		}
	}
	return best, scores, nil
}

// fvqHas is flumeview-query's util.has: own properties along the path;
// a null on the way is a TypeError.
func fvqHas(key, obj Value) (bool, error) {
	keys := []Value{key}
	if key.kind == Array {
		keys = key.arr
	}
	for _, k := range keys {
		if obj.nullish() {
			return false, fmt.Errorf("%w: TypeError: Cannot convert undefined or null to object", ErrQuery)
		}
		name := propertyKey(k)
		if !obj.has(name) {
			return false, nil
		}
		obj = obj.get(name)
	}
	return true, nil
}

// fvqGet is flumeview-query's util.get: along the path, stopping at a
// falsy value.
func fvqGet(key, obj Value) (Value, error) {
	if key.kind != Array {
		if obj.nullish() {
			return undefined, fmt.Errorf("%w: TypeError: Cannot read properties of %s", ErrQuery, obj.typeOfName())
		}
		return obj.get(propertyKey(key)), nil
	}
	for _, k := range key.arr {
		obj = obj.get(propertyKey(k))
		if !obj.truthy() {
			return obj, nil
		}
	}
	return obj, nil
}

func isExact(v Value) bool {
	switch {
	case isBasic(v):
		return true
	case v.kind == Array:
		for _, e := range v.arr {
			if !isExact(e) {
				return false
			}
		}
		return true
	}
	return v.kind == Object && v.has("$eq")
}

var checkableTypes = map[string]bool{"string": true, "boolean": true, "array": true, "undefined": true, "null": true}

func isLtgt(v Value) bool {
	return v.has("$lt") || v.has("$gt") || v.has("$lte") || v.has("$gte")
}

func isRange(v Value) bool {
	if v.nullish() {
		return false
	}
	if v.get("$prefix").truthy() {
		return true
	}
	if is := v.get("$is"); is.truthy() && checkableTypes[toString(is)] {
		return true
	}
	if v.kind == Array {
		for _, e := range v.arr {
			if isRange(e) {
				return true
			}
		}
		return false
	}
	return isLtgt(v)
}

func bound(v Value, rangeOf func(Value) Value, sentinel Value) Value {
	switch {
	case v.nullish():
		return sentinel
	case isRange(v):
		return rangeOf(v)
	case isExact(v):
		return v
	}
	return sentinel
}

var (
	lowerByType = map[string]Value{"string": strValue(""), "boolean": boolValue(false), "array": arrValue(nil), "null": {kind: Null}}
	upperByType = map[string]Value{"string": arrValue(nil), "boolean": boolValue(true), "null": {kind: Null}}
)

func lower(v Value) Value {
	if isBasic(v) {
		return v
	}
	if v.kind == Object {
		p := v.get("$prefix")
		switch {
		case p.kind == Array:
			return arrValue(append(append([]Value(nil), p.arr...), undefined))
		case p.kind == String:
			return p
		case v.has("$gt"):
			return v.get("$gt")
		case v.has("$gte"):
			return v.get("$gte")
		case v.has("$lt"), v.has("$lte"):
			return Value{kind: Null}
		case v.has("$is"):
			return lowerByType[toString(v.get("$is"))]
		}
		return undefined
	}
	return mapArray(v, lower)
}

func upper(v Value) Value {
	if isBasic(v) {
		return v
	}
	if v.kind == Object {
		p := v.get("$prefix")
		switch {
		case p.kind == Array:
			return arrValue(append(append([]Value(nil), p.arr...), Value{kind: Null}))
		case p.kind == String:
			return strValue(p.str + "\uffff")
		case v.has("$lt"):
			return v.get("$lt")
		case v.has("$lte"):
			return v.get("$lte")
		case v.has("$gt"), v.has("$gte"):
			return undefined
		case v.has("$is"):
			return upperByType[toString(v.get("$is"))]
		}
		return undefined
	}
	return mapArray(v, upper)
}

func mapArray(v Value, f func(Value) Value) Value {
	out := make([]Value, len(v.arr))
	for i, e := range v.arr {
		out[i] = f(e)
	}
	return arrValue(out)
}

// JSON is explain's answer as ssb-query@2 gives it (its createStream
// function left out, as JSON leaves it out).
func (p *Plan) JSON() message.Value {
	if p.Index == nil {
		return objValue([]member{
			{"scan", boolValue(true)},
			{"reverse", boolValue(p.Reverse)},
			{"live", boolValue(p.Live)},
			{"old", boolValue(p.Old)},
			{"sync", boolValue(p.Sync.truthy())},
		}).Message()
	}
	return objValue([]member{
		{"gte", arrValue(p.Gte)},
		{"lte", arrValue(p.Lte)},
		{"reverse", boolValue(p.Reverse)},
		{"old", boolValue(p.Old)},
		{"live", boolValue(p.Live)},
		{"sync", p.Sync},
		{"index", strValue(p.Index.Key)},
		{"scores", objValue(p.scores)},
	}).Message()
}

// Check makes the encoded bounds of an index plan: flumeview-level's keys
// are charwise-encoded arrays, and a bound charwise cannot encode (an
// object, such as {$eq: x}) fails the read, as in JavaScript.
func (p *Plan) Check() error {
	if p.Index == nil || p.lo != nil {
		return nil
	}
	lo, err := p.encode(p.Gte)
	if err != nil {
		return err
	}
	hi, err := p.encode(p.Lte)
	if err != nil {
		return err
	}
	p.lo, p.hi = lo, hi
	return nil
}

func (p *Plan) encode(vs []Value) ([]byte, error) {
	key := append([]Value{strValue(p.Index.Key)}, vs...)
	b, err := charwiseArray(nil, key)
	if err != nil {
		return nil, fmt.Errorf("%w: index %s: %w", ErrQuery, p.Index.Key, err)
	}
	return b, nil
}

// Key returns the item's key in the plan's index, or false when the index
// leaves the item out (a field is missing, or cannot be encoded).
func (p *Plan) Key(item Value) ([]byte, bool) {
	if p.Index == nil {
		return nil, false
	}
	vs := make([]Value, len(p.Index.Fields))
	for i, f := range p.Index.Fields {
		has, err := fvqHas(f, item)
		if err != nil || !has {
			return nil, false
		}
		if vs[i], err = fvqGet(f, item); err != nil {
			return nil, false
		}
	}
	b, err := p.encode(vs)
	return b, err == nil
}

// Contains reports whether the item is in the plan's range: always for a
// scan. Check must have succeeded.
func (p *Plan) Contains(item Value) bool {
	if p.Index == nil {
		return true
	}
	k, ok := p.Key(item)
	return ok && p.InRange(k)
}

// InRange reports whether an index key is within the plan's bounds.
func (p *Plan) InRange(k []byte) bool {
	return bytes.Compare(p.lo, k) <= 0 && bytes.Compare(k, p.hi) <= 0
}

// Pinned returns the value of field i when the plan's range holds that
// field to one value (its bounds are equal).
func (p *Plan) Pinned(i int) (Value, bool) {
	if p.Index == nil || i >= len(p.Gte) {
		return undefined, false
	}
	a, err1 := charwiseArray(nil, []Value{p.Gte[i]})
	b, err2 := charwiseArray(nil, []Value{p.Lte[i]})
	return p.Gte[i], err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// NumberRange returns the numeric bounds of field i, when they are numbers
// (nil for unbounded): what the store's indexes can narrow a read with.
func (p *Plan) NumberRange(i int) (lo, hi *float64) {
	if p.Index == nil || i >= len(p.Gte) {
		return nil, nil
	}
	if v := p.Gte[i]; v.kind == Number {
		lo = &v.num
	}
	if v := p.Lte[i]; v.kind == Number {
		hi = &v.num
	}
	return lo, hi
}

// Item builds a message item as ssb-query's indexes give it: {key, value,
// timestamp} and, when rts is set, rts = Math.min(timestamp,
// value.timestamp) || timestamp.
func Item(key string, value Value, timestamp float64, rts bool) Value {
	ms := []member{{"key", strValue(key)}, {"value", value}, {"timestamp", numValue(timestamp)}}
	if rts {
		claimed := toNumber(value.get("timestamp"))
		if value.nullish() {
			claimed = toNumber(undefined)
		}
		r := -jsMax(-timestamp, -claimed)
		if r == 0 || r != r {
			r = timestamp
		}
		ms = append(ms, member{"rts", numValue(r)})
	}
	return objValue(ms)
}
