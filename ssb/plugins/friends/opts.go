package friends

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// opts is the first argument of a friends method as ssb-friends reads it:
// JavaScript's property reads on whatever was sent, so a missing or
// non-object argument has no fields and nothing is an error.
type opts map[string]json.RawMessage

// parseOpts reads the first element of a muxrpc argument array.
func parseOpts(args json.RawMessage) opts {
	var list []json.RawMessage
	if json.Unmarshal(args, &list) != nil || len(list) == 0 {
		return nil
	}
	var o opts
	if json.Unmarshal(list[0], &o) != nil {
		return nil
	}
	return o
}

// has reports whether the first argument was an object (JavaScript's
// opts && ...).
func (o opts) has() bool { return o != nil }

// truthy reports whether field is truthy in JavaScript.
func (o opts) truthy(field string) bool {
	v := bytes.TrimSpace(o[field])
	switch string(v) {
	case "", "null", "false", `""`:
		return false
	}
	if f, ok := number(v); ok {
		return f != 0 && !math.IsNaN(f)
	}
	return true
}

// isTrue reports whether field === true.
func (o opts) isTrue(field string) bool { return string(bytes.TrimSpace(o[field])) == "true" }

// isFalse reports whether field === false.
func (o opts) isFalse(field string) bool { return string(bytes.TrimSpace(o[field])) == "false" }

// key returns field as JavaScript uses it as a property name, and whether
// it is a string (only a string can name a feed in the graph).
func (o opts) key(field string) (string, bool) {
	var s string
	if json.Unmarshal(o[field], &s) != nil {
		return "", false
	}
	return s, true
}

// feed returns field when it is a string naming a feed exactly.
func (o opts) feed(field string) (refs.Feed, bool) {
	s, ok := o.key(field)
	if !ok {
		return refs.Feed{}, false
	}
	return parseFeed(s)
}

func parseFeed(s string) (refs.Feed, bool) {
	f, err := refs.ParseFeed(s)
	if err != nil || f.String() != s {
		return refs.Feed{}, false
	}
	return f, true
}

// num returns field converted as JavaScript's ToNumber does for a JSON
// value (NaN for objects and for strings that are not numbers).
func (o opts) num(field string) float64 {
	v := bytes.TrimSpace(o[field])
	if f, ok := number(v); ok {
		return f
	}
	switch string(v) {
	case "true":
		return 1
	case "false", "null":
		return 0
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return stringToNumber(s)
	}
	var list []json.RawMessage
	if json.Unmarshal(v, &list) == nil && len(list) < 2 { // String([]) is "", String([x]) is String(x)
		if len(list) == 0 {
			return 0
		}
		if f, ok := number(bytes.TrimSpace(list[0])); ok {
			return f
		}
		if json.Unmarshal(list[0], &s) == nil {
			return stringToNumber(s)
		}
	}
	return math.NaN()
}

// number reads a JSON number (±Inf past float64's range, as JavaScript).
func number(v []byte) (float64, bool) {
	if len(v) == 0 || !(v[0] == '-' || v[0] >= '0' && v[0] <= '9') || !json.Valid(v) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	return f, true
}

// stringToNumber is ToNumber of a string: blanks are 0, decimal forms,
// Infinity, and unsigned 0x, 0o and 0b integers; anything else NaN.
func stringToNumber(s string) float64 {
	s = strings.TrimSpace(s)
	switch s {
	case "":
		return 0
	case "Infinity", "+Infinity":
		return math.Inf(1)
	case "-Infinity":
		return math.Inf(-1)
	}
	if len(s) > 2 && s[0] == '0' && strings.ContainsRune("xXoObB", rune(s[1])) {
		if strings.ContainsRune(s, '_') {
			return math.NaN()
		}
		base := map[byte]int{'x': 16, 'X': 16, 'o': 8, 'O': 8, 'b': 2, 'B': 2}[s[1]]
		var f float64
		for _, c := range s[2:] {
			d, err := strconv.ParseUint(string(c), base, 8)
			if err != nil {
				return math.NaN()
			}
			f = f*float64(base) + float64(d)
		}
		return f
	}
	if strings.ContainsAny(s, "xXpPnN_") { // Go's hex floats, inf, nan, separators
		return math.NaN()
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return math.NaN()
	}
	return f
}

// hopsQuery is friends.hops' options: start (default our feed), max
// (default friends.hops when falsy) and reverse (=== true).
type hopsQuery struct {
	start   string  // "" for ours
	max     float64 // NaN when not a number
	reverse bool
}

func parseHops(o opts, defaultMax int) hopsQuery {
	q := hopsQuery{max: float64(defaultMax), reverse: o.isTrue("reverse")}
	if o.truthy("start") {
		if s, ok := o.key("start"); ok {
			q.start = s
		} else {
			q.start = string(bytes.TrimSpace(o["start"])) // a number or true: never a feed
		}
	}
	if o.truthy("max") {
		q.max = o.num("max")
	}
	return q
}

// expandLimit is the integer max for which v < max holds for exactly the
// same integer hops v >= 0 as v < m does.
func expandLimit(m float64) int {
	switch {
	case math.IsNaN(m) || m <= 0:
		return 0
	case m > 1<<30:
		return 1 << 30
	}
	return int(math.Ceil(m))
}
