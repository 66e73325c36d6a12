package wants

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// ErrMalformed is wrapped by Decode's errors: the message is not a JSON object.
var ErrMalformed = errors.New("wants: malformed want map")

// A Message is one message of a blobs.createWants stream: blob id -> n,
// where n < 0 is a want at distance -n (-1: the sender wants the blob, -2: a
// peer of the sender wants it) and n > 0 is a have, the blob's size in bytes.
// 0 means nothing (JS ignores it too).
type Message map[refs.Blob]int64

// Decode parses one createWants message as ssb-blobs' process() reads it:
// a JSON object whose entries are kept when the key is a canonical blob id
// and the value a JSON number with an integral value (Number.isInteger:
// 5, -1, 2.0 and 1e3 are integers, 1.5, "1", true and null are not). Other
// entries are ignored and counted in skipped, as JS skips them silently.
// At most limit entries are kept (limit <= 0: no limit); the rest are
// counted in skipped. A key given twice keeps its last value, as JSON.parse
// does (and a junk last value removes the entry). Integers beyond int64
// saturate: only their sign and size relative to the limits matter.
//
// The error (wrapping ErrMalformed) is for input that is not a JSON object
// at all; JS ignores such a message, and so does Core.Receive after counting
// it.
func Decode(data []byte, limit int) (m Message, skipped int, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, 0, fmt.Errorf("%w: %s is not an object", ErrMalformed, describe(tok))
	}
	m = Message{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		key, _ := tok.(string) // object keys are always strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, 0, fmt.Errorf("%w: value of %q: %w", ErrMalformed, key, err)
		}
		id, err := refs.ParseBlob(key)
		if err != nil {
			skipped++
			continue
		}
		n, ok := integer(raw)
		if !ok {
			if _, dup := m[id]; dup {
				delete(m, id)
			}
			skipped++
			continue
		}
		if _, dup := m[id]; !dup && limit > 0 && len(m) >= limit {
			skipped++
			continue
		}
		m[id] = n
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, 0, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, 0, fmt.Errorf("%w: data after the object", ErrMalformed)
	}
	return m, skipped, nil
}

func describe(tok json.Token) string {
	switch tok.(type) {
	case json.Delim:
		return "an array"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	default:
		return "null"
	}
}

// integer reports the value of a JSON number that JS's Number.isInteger
// accepts, saturated to int64.
func integer(raw json.RawMessage) (int64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	s := string(raw)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, true
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return 0, false
	}
	switch {
	case math.IsInf(f, 0) || f != math.Trunc(f):
		return 0, false // JSON.parse gives Infinity or a fraction
	case f >= math.MaxInt64:
		return math.MaxInt64, true
	case f <= math.MinInt64:
		return math.MinInt64, true
	}
	return int64(f), true
}

// MarshalJSON encodes m as JS sends it: {"&….sha256":-1,…}, ids sorted, no
// escaping (blob ids hold only base64 characters, '&' and '.').
func (m Message) MarshalJSON() ([]byte, error) {
	ids := sortedIDs(m)
	b := make([]byte, 0, 2+len(ids)*60)
	b = append(b, '{')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, id.String()...)
		b = append(b, '"', ':')
		b = strconv.AppendInt(b, m[id], 10)
	}
	return append(b, '}'), nil
}

// sortedIDs returns the keys of m in a fixed order (by hash), so that the
// core's outputs do not depend on map iteration.
func sortedIDs[V any](m map[refs.Blob]V) []refs.Blob {
	ids := make([]refs.Blob, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, compareBlobs)
	return ids
}

func compareBlobs(a, b refs.Blob) int {
	ha, hb := a.Hash(), b.Hash()
	return bytes.Compare(ha[:], hb[:])
}
