package scuttlebutt

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// An Update is one change made by one source at one time: on the wire the
// JSON array [change, timestamp, source], followed by a signature when the
// source signs.
type Update struct {
	// Change is the data type's change as canonical JSON (single line,
	// ASCII only): [key, value] for a Model, [event, args...] for Events,
	// the raw value for a Value.
	Change json.RawMessage
	// Timestamp is milliseconds since the Unix epoch, fractional parts
	// distinguishing updates made within one millisecond.
	Timestamp float64
	// Source is the id of the replica that made the change.
	Source string
	// Extra holds the array elements after the source, as received. npm
	// scuttlebutt puts the signature there; a replica without security
	// keeps and forwards them untouched.
	Extra []json.RawMessage
}

// Newer reports whether u sorts after v in history order: by timestamp,
// then by source. Two different updates never compare equal, because one
// source never uses one timestamp twice.
func (u Update) Newer(v Update) bool {
	if u.Timestamp != v.Timestamp {
		return u.Timestamp > v.Timestamp
	}
	return u.Source > v.Source
}

// String returns the update's wire form without the newline.
func (u Update) String() string { return string(u.appendJSON(nil)) }

func (u Update) appendJSON(dst []byte) []byte {
	dst = append(dst, '[')
	if len(u.Change) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, u.Change...)
	}
	dst = append(dst, ',')
	dst = jsjson.AppendFloat(dst, u.Timestamp)
	dst = append(dst, ',')
	dst = jsjson.AppendString(dst, u.Source)
	for _, x := range u.Extra {
		dst = append(dst, ',')
		dst = append(dst, x...)
	}
	return append(dst, ']')
}

// compareHistory orders updates by timestamp, then source.
func compareHistory(a, b Update) int {
	if c := cmp.Compare(a.Timestamp, b.Timestamp); c != 0 {
		return c
	}
	return strings.Compare(a.Source, b.Source)
}

// SortHistory sorts updates into history order: timestamp ascending, then
// source. Every source's updates are then in increasing timestamp order,
// which a receiving peer requires.
func SortHistory(us []Update) { slices.SortFunc(us, compareHistory) }

// A Clock maps each source to the latest timestamp seen from it. Peers
// exchange clocks so that each sends the other only what it lacks.
type Clock map[string]float64

// Lacks reports whether a peer with clock c lacks u: it has seen nothing
// from u's source, or only older updates.
func (c Clock) Lacks(u Update) bool {
	ts, ok := c[u.Source]
	return !ok || ts < u.Timestamp
}

// Clone returns a copy of c.
func (c Clock) Clone() Clock {
	out := make(Clock, len(c))
	for k, v := range c {
		out[k] = v
	}
	return out
}

// observe raises c[source] to ts if it is lower.
func (c Clock) observe(source string, ts float64) {
	if old, ok := c[source]; !ok || ts > old {
		c[source] = ts
	}
}

func (c Clock) appendJSON(dst []byte) []byte {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = jsjson.AppendString(dst, k)
		dst = append(dst, ':')
		dst = jsjson.AppendFloat(dst, c[k])
	}
	return append(dst, '}')
}

// A Header opens a stream: the sender's id, its clock, and optional
// application metadata.
type Header struct {
	ID    string
	Clock Clock
	Meta  json.RawMessage // canonical JSON, or nil when absent
}

func (h Header) appendJSON(dst []byte) []byte {
	dst = append(dst, `{"id":`...)
	dst = jsjson.AppendString(dst, h.ID)
	dst = append(dst, `,"clock":`...)
	dst = h.Clock.appendJSON(dst)
	if len(h.Meta) > 0 {
		dst = append(dst, `,"meta":`...)
		dst = append(dst, h.Meta...)
	}
	return append(dst, '}')
}

// Line kinds of the wire protocol.
type lineKind int

const (
	lineIgnored lineKind = iota // valid JSON that carries no meaning (null, numbers, other strings)
	lineUpdate
	lineHeader
	lineSync
)

// syncLine is the marker that ends a peer's history, including quotes.
const syncLine = `"SYNC"`

// decodeLine parses one line of the wire protocol. A line that is not JSON,
// an array that is not an update, or an object that is not a header is an
// error; npm scuttlebutt ignores some of these, but a peer sending them is
// broken and the stream is better closed.
//
// maxSources bounds the entries of a header's clock (0: no bound); a
// header with more fails with ErrTooManySources before the clock is built.
func decodeLine(line []byte, sources *sourceCache, maxSources int) (lineKind, Update, Header, error) {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r') {
		i++
	}
	if i == len(line) {
		return 0, Update{}, Header{}, fmt.Errorf("%w: blank line", ErrProtocol)
	}
	switch line[i] {
	case '[':
		u, err := decodeUpdate(line, sources)
		return lineUpdate, u, Header{}, err
	case '{':
		h, err := decodeHeader(line, maxSources)
		return lineHeader, Update{}, h, err
	}
	v, err := jsjson.Canonical(line)
	if err != nil {
		return 0, Update{}, Header{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if string(v) == syncLine {
		return lineSync, Update{}, Header{}, nil
	}
	return lineIgnored, Update{}, Header{}, nil
}

// sourceCache remembers the last source decoded on a stream, so that a run
// of updates from one source shares one string.
type sourceCache struct {
	lit []byte
	s   string
}

func (c *sourceCache) unquote(lit []byte) (string, error) {
	if c != nil && c.lit != nil && bytes.Equal(lit, c.lit) {
		return c.s, nil
	}
	s, err := jsjson.Unquote(lit)
	if err == nil && c != nil {
		c.lit, c.s = append(c.lit[:0], lit...), s
	}
	return s, err
}

func decodeUpdate(line []byte, sources *sourceCache) (Update, error) {
	var buf [4][]byte
	elems, err := jsjson.AppendSplitArrayRaw(buf[:0], line, 1) // the timestamp is parsed below
	if err != nil {
		return Update{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	if len(elems) < 3 {
		return Update{}, fmt.Errorf("%w: update has %d elements, want at least 3", ErrProtocol, len(elems))
	}
	ts, err := jsjson.ParseNumber(elems[1])
	if err != nil {
		return Update{}, fmt.Errorf("%w: update timestamp: %w", ErrProtocol, err)
	}
	if !validTimestamp(ts) {
		return Update{}, fmt.Errorf("%w: update timestamp %v is out of range", ErrProtocol, ts)
	}
	src, err := sources.unquote(elems[2])
	if err != nil {
		return Update{}, fmt.Errorf("%w: update source: %w", ErrProtocol, err)
	}
	u := Update{Change: elems[0], Timestamp: ts, Source: src}
	if len(elems) > 3 {
		u.Extra = make([]json.RawMessage, len(elems)-3)
		for i, e := range elems[3:] {
			u.Extra[i] = e
		}
	}
	return u, nil
}

func decodeHeader(line []byte, maxSources int) (Header, error) {
	// Count first: canonicalizing a clock of a million entries would cost
	// far more memory than the line itself.
	if n := clockEntries(line); maxSources > 0 && n > maxSources {
		return Header{}, fmt.Errorf("%w: the peer's clock has %d sources, more than %d", ErrTooManySources, n, maxSources)
	}
	canon, err := jsjson.Canonical(line)
	if err != nil {
		return Header{}, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	// Field names match exactly, as in JavaScript (encoding/json would
	// take "CLOCK" for "clock").
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(canon, &raw); err != nil || len(raw["clock"]) == 0 || raw["clock"][0] != '{' {
		return Header{}, fmt.Errorf("%w: header without a clock object", ErrProtocol)
	}
	h := Header{}
	// The id is informational; npm scuttlebutt sends a string.
	_ = json.Unmarshal(raw["id"], &h.ID)
	if h.Clock, err = decodeClock(raw["clock"], maxSources); err != nil {
		return Header{}, err
	}
	if m := raw["meta"]; len(m) > 0 && string(m) != "null" {
		h.Meta = m
	}
	return h, nil
}

// clockEntries counts the members of the "clock" object of a header line,
// without decoding anything. It returns -1 if the line is not an object
// with a "clock" object, whose errors the full decoder then reports.
func clockEntries(line []byte) int {
	i := skipWS(line, 0)
	if i >= len(line) || line[i] != '{' {
		return -1
	}
	for i = skipWS(line, i+1); i < len(line) && line[i] == '"'; {
		end := skipValue(line, i)
		if end < 0 {
			return -1
		}
		key := line[i:end]
		i = skipWS(line, end)
		if i >= len(line) || line[i] != ':' {
			return -1
		}
		i = skipWS(line, i+1)
		if k, err := jsjson.Unquote(key); err == nil && k == "clock" && i < len(line) && line[i] == '{' {
			n := 0
			for j := skipWS(line, i+1); j < len(line) && line[j] != '}'; n++ {
				if j = skipValue(line, j); j < 0 { // the key
					return -1
				}
				if j = skipWS(line, j); j >= len(line) || line[j] != ':' {
					return -1
				}
				if j = skipValue(line, skipWS(line, j+1)); j < 0 {
					return -1
				}
				if j = skipWS(line, j); j < len(line) && line[j] == ',' {
					j = skipWS(line, j+1)
				}
			}
			return n
		}
		if i = skipValue(line, i); i < 0 {
			return -1
		}
		if i = skipWS(line, i); i < len(line) && line[i] == ',' {
			i = skipWS(line, i+1)
		}
	}
	return -1
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
		i++
	}
	return i
}

// skipValue returns the index after the JSON value at b[i:], judged by its
// brackets and string quotes only, or -1.
func skipValue(b []byte, i int) int {
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
			if i >= len(b) {
				return -1
			}
			if depth == 0 {
				return i + 1
			}
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return i // the end of a number or literal
			}
			if depth--; depth == 0 {
				return i + 1
			}
		case ',', ':':
			if depth == 0 {
				return i
			}
		}
	}
	if depth == 0 {
		return i
	}
	return -1
}

// decodeClock decodes the canonical JSON object of a header's clock,
// counting its entries before it keeps them.
func decodeClock(obj []byte, maxSources int) (Clock, error) {
	n := 0
	dec := json.NewDecoder(bytes.NewReader(obj))
	dec.Token() // {
	for dec.More() {
		dec.Token() // the key
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("%w: header clock: %w", ErrProtocol, err)
		}
		n++
	}
	if maxSources > 0 && n > maxSources {
		return nil, fmt.Errorf("%w: the peer's clock has %d sources, more than %d", ErrTooManySources, n, maxSources)
	}
	clock := make(Clock, n)
	dec = json.NewDecoder(bytes.NewReader(obj))
	dec.Token()
	for dec.More() {
		tok, _ := dec.Token()
		src, _ := tok.(string)
		var v json.RawMessage
		dec.Decode(&v)
		// A null or non-number entry means "send everything", which is what
		// leaving it out of the clock means. (A 0 is kept: it means the peer
		// has the update at 0; see the package documentation.)
		ts, err := jsjson.ParseNumber(v)
		if err != nil {
			continue
		}
		clock[src] = ts
	}
	return clock, nil
}

// validTimestamp reports whether ts can be accepted from a peer: finite, and
// below the largest float64, so that a later local timestamp (see
// Replica.LocalUpdate) is still finite.
func validTimestamp(ts float64) bool {
	return !math.IsNaN(ts) && !math.IsInf(ts, 0) && ts < math.MaxFloat64
}
