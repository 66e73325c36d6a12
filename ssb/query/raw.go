package query

import (
	"bytes"
	"math"
	"strconv"

	"github.com/scuttlego/scuttle/ssb/message"
)

// A RawFilter is a query's first stage, {$filter: F}, when F is made of
// what a stored message's JSON can answer without being decoded: objects
// of members matched one by one, basic values (===) and numeric ranges
// ($gt, $gte, $lt, $lte with numbers). It matches the item {key, value,
// timestamp[, rts]} of a stored message by scanning the message's JSON,
// and says when it cannot be sure (a string with escapes, a range on a
// value that is not a number...): the caller then decodes the message and
// runs the query as usual.
type RawFilter struct {
	value *rawNode // the filter of item.value; nil when F lacks it
	other []rawTop // F's other members, on the item's other fields
	only  bool     // the query is this stage alone
	src   Value    // F
	env   env      // for the filters of the other members
	rts   bool     // the items carry rts (index plans)
	uses  [2]bool  // F reads key, rts
}

type rawTop struct {
	key string
	f   fn
}

type rawKind uint8

const (
	rawObject rawKind = iota
	rawExact
	rawRange
)

type rawNode struct {
	kind     rawKind
	children []rawChild // rawObject
	exact    Value      // rawExact
	ops      []rangeOp  // rawRange, ANDed
}

type rawChild struct {
	key  string
	node *rawNode
}

type rangeOp struct {
	op  string
	arg float64
}

// maxRawChildren bounds the members of an object a RawFilter matches.
const maxRawChildren = 64

// RawFilter returns the query's first stage as a RawFilter, or nil when
// it is not one. rts says whether the items carry rts (an index plan).
// A RawFilter is for one reader: it is not safe for concurrent use.
func (q *Query) RawFilter(rts bool) *RawFilter {
	f, only, ok := q.firstFilter()
	if !ok || f.kind != Object || hasDollarKey(f) {
		return nil
	}
	rf := &RawFilter{only: only, src: f, rts: rts, env: env{maxBytes: DefaultBudget}}
	for _, m := range f.obj {
		switch m.key {
		case "value":
			n, ok := compileRaw(m.val)
			if !ok {
				return nil
			}
			rf.value = n
			continue
		case "key":
			rf.uses[0] = true
		case "rts":
			rf.uses[1] = true
		case "timestamp":
		default:
			return nil
		}
		fn, err := makeFilter(m.val)
		if err != nil {
			return nil
		}
		rf.other = append(rf.other, rawTop{m.key, fn})
	}
	return rf
}

// firstFilter returns F of a first stage {$filter: F}, and whether that
// stage is the whole query.
func (q *Query) firstFilter() (Value, bool, bool) {
	src := q.src
	if src.kind != Array || len(src.arr) == 0 || len(q.stages) == 0 || q.stages[0].kind != stageFilter {
		return undefined, false, false
	}
	s := src.arr[0]
	if s.kind != Object || len(s.obj) != 1 || s.obj[0].key != "$filter" {
		return undefined, false, false
	}
	return s.obj[0].val, len(src.arr) == 1 && len(q.stages) == 1, true
}

func compileRaw(f Value) (*rawNode, bool) {
	switch {
	case isBasic(f):
		return &rawNode{kind: rawExact, exact: f}, true
	case f.kind != Object:
		return nil, false
	case hasDollarKey(f):
		n := &rawNode{kind: rawRange}
		for _, m := range f.obj {
			switch m.key {
			case "$gt", "$gte", "$lt", "$lte":
			default:
				return nil, false
			}
			if m.val.kind != Number {
				return nil, false
			}
			n.ops = append(n.ops, rangeOp{m.key, m.val.num})
		}
		return n, true
	}
	if len(f.obj) > maxRawChildren {
		return nil, false
	}
	n := &rawNode{kind: rawObject}
	for _, m := range f.obj {
		c, ok := compileRaw(m.val)
		if !ok {
			return nil, false
		}
		n.children = append(n.children, rawChild{m.key, c})
	}
	return n, true
}

// Only reports whether the filter is the whole query: an item it matches
// is a result as it is.
func (rf *RawFilter) Only() bool { return rf.only }

// UsesKey reports whether the filter reads the item's key.
func (rf *RawFilter) UsesKey() bool { return rf.uses[0] }

// Match matches the item {key, value, timestamp} (and rts, computed from
// value, when the filter was made for items with rts) of a message whose
// value is the JSON raw. sure is false when the filter cannot tell
// without decoding the message; key is read only when UsesKey.
func (rf *RawFilter) Match(key string, raw []byte, timestamp float64) (match, sure bool) {
	for _, o := range rf.other {
		var v Value
		switch o.key {
		case "key":
			v = strValue(key)
		case "timestamp":
			v = numValue(timestamp)
		case "rts":
			if !rf.rts {
				break
			}
			r, ok := RawRTS(raw, timestamp)
			if !ok {
				return false, false
			}
			v = numValue(r)
		}
		ok, err := o.f.call1(&rf.env, v)
		if err != nil {
			return false, false
		}
		if !ok.truthy() {
			return false, true
		}
	}
	if rf.value == nil {
		return true, true
	}
	return rf.value.match(raw, 0)
}

// match matches the JSON value that starts at raw[i] (after any space).
func (n *rawNode) match(raw []byte, i int) (match, sure bool) {
	i = skipSpace(raw, i)
	if i >= len(raw) {
		return false, false
	}
	switch n.kind {
	case rawExact:
		return n.matchExact(raw, i)
	case rawRange:
		if !isNumberStart(raw[i]) {
			return false, false // null < 1, "2" > 1...: JavaScript's coercions
		}
		f, _, ok := readNumber(raw, i)
		if !ok {
			return false, false
		}
		return n.inRange(f), true
	}
	switch raw[i] {
	case '{':
	case 'n':
		return false, true // null: nullish
	case '"', '[':
		return false, false // a string or array has members of its own
	default: // numbers and booleans have no members
		return len(n.children) == 0, true
	}
	all := uint64(1)<<len(n.children) - 1
	if len(n.children) == 64 {
		all = math.MaxUint64
	}
	var found uint64
	state := scanning
	ok := eachMember(raw, i, func(key []byte, escaped bool, at int) bool {
		if escaped {
			state = unsure
			return false
		}
		for c := range n.children {
			if n.children[c].key != string(key) {
				continue
			}
			found |= 1 << c
			m, s := n.children[c].node.match(raw, at)
			switch {
			case !s:
				state = unsure
			case !m:
				state = mismatch
			case found == all:
				state = matched // V8's JSON has no key twice
			default:
				continue
			}
			return false
		}
		return true
	})
	switch {
	case state == mismatch:
		return false, true
	case state == matched:
		return true, true
	case state == unsure || !ok:
		return false, false
	}
	return found == all, true
}

// States of a scan of an object's members.
const (
	scanning = iota
	unsure
	mismatch
	matched
)

func (n *rawNode) matchExact(raw []byte, i int) (bool, bool) {
	x := n.exact
	switch raw[i] {
	case '"':
		s, _, escaped, ok := readString(raw, i)
		if !ok || escaped {
			return false, false
		}
		return x.kind == String && x.str == string(s), true
	case 'n':
		return x.kind == Null && bytes.HasPrefix(raw[i:], []byte("null")), true
	case 't':
		return x.kind == Bool && x.num == 1, true
	case 'f':
		return x.kind == Bool && x.num == 0, true
	case '{', '[':
		return false, true // objects are never ===
	}
	f, _, ok := readNumber(raw, i)
	if !ok {
		return false, false
	}
	return x.kind == Number && x.num == f, true
}

func (n *rawNode) inRange(f float64) bool {
	for _, o := range n.ops {
		var ok bool
		switch o.op {
		case "$gt":
			ok = f > o.arg
		case "$gte":
			ok = f >= o.arg
		case "$lt":
			ok = f < o.arg
		case "$lte":
			ok = f <= o.arg
		}
		if !ok {
			return false
		}
	}
	return true
}

// Implies reports whether every item the filter matches is in the plan's
// range, so that the range need not be checked: each field of the index
// is either held by the filter (a basic value or a numeric range at the
// field's path, which the plan's bounds were made from) or unbounded and
// present in every message item.
func (p *Plan) Implies(rf *RawFilter) bool {
	if p.Index == nil {
		return true
	}
	if p.lo == nil {
		return false
	}
	for i, f := range p.Index.Fields {
		keys := fieldPath(f)
		if keys == nil {
			return false
		}
		node, ok := rf.nodeAt(keys)
		switch {
		case ok && (node.kind == rawExact || node.kind == rawRange):
		case p.Gte[i].kind == Null && p.Lte[i].kind == Undefined && alwaysPresent(keys):
		default:
			return false
		}
	}
	return true
}

func fieldPath(f Value) []string {
	if f.kind == String {
		return []string{f.str}
	}
	var keys []string
	for _, k := range f.arr {
		if k.kind != String {
			return nil
		}
		keys = append(keys, k.str)
	}
	return keys
}

// nodeAt returns the filter's node at a path of the item: within value,
// or a top-level member's basic value or numeric range.
func (rf *RawFilter) nodeAt(keys []string) (*rawNode, bool) {
	if len(keys) == 0 {
		return nil, false
	}
	if keys[0] != "value" {
		if len(keys) != 1 {
			return nil, false
		}
		n, ok := compileRaw(rf.src.get(keys[0]))
		return n, ok && rf.src.has(keys[0]) && n.kind != rawObject
	}
	n := rf.value
	for _, k := range keys[1:] {
		if n == nil || n.kind != rawObject {
			return nil, false
		}
		var next *rawNode
		for _, c := range n.children {
			if c.key == k {
				next = c.node
			}
		}
		n = next
	}
	return n, n != nil
}

// alwaysPresent reports whether a path of the item is a number or a
// string in every message item.
func alwaysPresent(keys []string) bool {
	switch len(keys) {
	case 1:
		return keys[0] == "timestamp" || keys[0] == "rts"
	case 2:
		return keys[0] == "value" && (keys[1] == "author" || keys[1] == "sequence" || keys[1] == "timestamp")
	}
	return false
}

// RawRTS returns the rts of the item of a message with value raw and
// receive time timestamp, as Item computes it, or false when the value's
// timestamp is not a number.
func RawRTS(raw []byte, timestamp float64) (float64, bool) {
	claimed := math.NaN()
	i := skipSpace(raw, 0)
	if i >= len(raw) || raw[i] != '{' {
		return 0, false
	}
	state := scanning
	ok := eachMember(raw, i, func(key []byte, escaped bool, at int) bool {
		if escaped {
			state = unsure
			return false
		}
		if string(key) != "timestamp" {
			return true
		}
		f, _, ok := readNumber(raw, skipSpace(raw, at))
		claimed, state = f, matched
		if !ok {
			state = unsure
		}
		return false
	})
	if state == unsure || (!ok && state != matched) {
		return 0, false
	}
	r := -jsMax(-timestamp, -claimed)
	if r == 0 || r != r {
		r = timestamp
	}
	return r, true
}

// AppendRawItem appends the JSON of the item {key, value, timestamp[,
// rts]} of a message whose value is the JSON raw (in JSON.stringify's
// form, as the store keeps it), or returns false when rts cannot be
// computed without decoding the value.
func AppendRawItem(dst []byte, key string, raw []byte, timestamp float64, rts bool) ([]byte, bool) {
	dst = append(dst, `{"key":`...)
	dst = message.StringValue(key).AppendCompact(dst)
	dst = append(dst, `,"value":`...)
	dst = append(dst, raw...)
	dst = append(dst, `,"timestamp":`...)
	dst = message.NumberValue(timestamp).AppendCompact(dst)
	if rts {
		r, ok := RawRTS(raw, timestamp)
		if !ok {
			return dst, false
		}
		dst = append(dst, `,"rts":`...)
		dst = message.NumberValue(r).AppendCompact(dst)
	}
	return append(dst, '}'), true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

func isNumberStart(c byte) bool { return c == '-' || c >= '0' && c <= '9' }

// readString reads the string at b[i] (a quote): its bytes between the
// quotes, undecoded, and the index after it.
func readString(b []byte, i int) (s []byte, end int, escaped, ok bool) {
	start := i + 1
	for j := start; j < len(b); j++ {
		switch b[j] {
		case '\\':
			escaped = true
			j++
		case '"':
			return b[start:j], j + 1, escaped, true
		}
	}
	return nil, 0, false, false
}

func readNumber(b []byte, i int) (float64, int, bool) {
	j := i
	for j < len(b) && (isNumberStart(b[j]) || b[j] == '.' || b[j] == 'e' || b[j] == 'E' || b[j] == '+') {
		j++
	}
	f, err := strconv.ParseFloat(string(b[i:j]), 64)
	return f, j, err == nil && j > i
}

// skipValue returns the index after the JSON value at b[i].
func skipValue(b []byte, i int) (int, bool) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		_, end, _, ok := readString(b, i)
		return end, ok
	case c == '{' || c == '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			case '"':
				_, end, _, ok := readString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			}
		}
		return 0, false
	case isNumberStart(c):
		_, end, ok := readNumber(b, i)
		return end, ok
	case bytes.HasPrefix(b[i:], []byte("true")):
		return i + 4, true
	case bytes.HasPrefix(b[i:], []byte("false")):
		return i + 5, true
	case bytes.HasPrefix(b[i:], []byte("null")):
		return i + 4, true
	}
	return 0, false
}

// eachMember calls fn with each member of the object at b[i] (a brace):
// its key, undecoded, and where its value starts. It stops when fn
// returns false, and reports false then or when the JSON is malformed.
func eachMember(b []byte, i int, fn func(key []byte, escaped bool, at int) bool) bool {
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return true
	}
	for i < len(b) {
		if b[i] != '"' {
			return false
		}
		key, end, escaped, ok := readString(b, i)
		if !ok {
			return false
		}
		i = skipSpace(b, end)
		if i >= len(b) || b[i] != ':' {
			return false
		}
		at := i + 1
		if !fn(key, escaped, at) {
			return false
		}
		if i, ok = skipValue(b, at); !ok {
			return false
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
	return false
}

// RawChannel returns content.channel of a message whose value is the JSON
// raw, when it is a string (WTF-8, as Value holds strings).
func RawChannel(raw []byte) (string, bool) {
	content, ok := rawMember(raw, skipSpace(raw, 0), "content")
	if !ok {
		return "", false
	}
	at, ok := rawMember(raw, content, "channel")
	if !ok || at >= len(raw) || raw[at] != '"' {
		return "", false
	}
	s, end, escaped, ok := readString(raw, at)
	if !ok {
		return "", false
	}
	if !escaped {
		return string(s), true
	}
	v, err := ParseJSON(raw[at:end])
	return v.str, err == nil && v.kind == String
}

// rawMember returns where the value of an object's member starts (after
// any space), for the object at raw[i]. A key with escapes is never one
// of the plain names asked for in JSON.stringify's form, which escapes
// only quotes, backslashes, control characters and lone surrogates.
func rawMember(raw []byte, i int, key string) (int, bool) {
	if i >= len(raw) || raw[i] != '{' {
		return 0, false
	}
	found := -1
	eachMember(raw, i, func(k []byte, escaped bool, at int) bool {
		if !escaped && string(k) == key {
			found = skipSpace(raw, at)
			return false
		}
		return true
	})
	return found, found >= 0
}
