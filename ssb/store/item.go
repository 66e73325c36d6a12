package store

import (
	"encoding/json"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// An Item is one message of a query, with what ssb-db keeps beside it.
type Item struct {
	// Key is the message id; zero when the query's Keys is false.
	Key refs.Message
	// Value is the signed message as compact JSON, in the form
	// JSON.stringify gives it; nil when the query's Values is false. The
	// Item owns it.
	Value json.RawMessage
	// Timestamp is the receive time in milliseconds since the epoch
	// (ssb-db's item timestamp). Receive timestamps strictly increase with
	// Seq: when the clock has not moved since the previous message, the
	// next gets a thousandth of a millisecond more, as npm
	// monotonic-timestamp does, so they may have a fraction.
	Timestamp float64
	// Seq is the receive sequence: the message's position in the log,
	// from 1, never given twice. A deleted message (see Delete) leaves its
	// position empty: queries skip it and GetSeq reports ErrNotFound. It
	// is the cursor for consumers that follow the log.
	Seq uint64
	// RTS is set by Feed only: the resolved timestamp the feed stream is
	// ordered by (see FeedQuery), which ssb-db adds to the item as "rts".
	// It is never 0 for a Feed item.
	RTS float64
}

// AppendJSON appends the item as ssb-server prints it: with key and
// value, {"key":…,"value":…,"timestamp":…}; with the key only, the key as
// a string; with the value only, the value; with neither, null. A Feed
// item with key and value carries "rts" beside them, as ssb-server 16's
// createFeedStream gives it; a value alone is the signed value as it is.
func (it Item) AppendJSON(dst []byte) []byte {
	keys, values := !it.Key.IsZero(), it.Value != nil
	switch {
	case keys && values:
		dst = append(dst, `{"key":"`...)
		dst = append(dst, it.Key.String()...)
		dst = append(dst, `","value":`...)
		dst = append(dst, it.Value...)
		dst = append(dst, `,"timestamp":`...)
		dst = message.NumberValue(it.Timestamp).AppendCompact(dst)
		if it.RTS != 0 {
			dst = append(dst, `,"rts":`...)
			dst = message.NumberValue(it.RTS).AppendCompact(dst)
		}
		return append(dst, '}')
	case keys:
		dst = append(dst, '"')
		dst = append(dst, it.Key.String()...)
		return append(dst, '"')
	case values:
		return append(dst, it.Value...)
	}
	return append(dst, "null"...)
}

// form says which parts of a record a query's items carry.
type form struct {
	keys, values, rts bool
}

var fullForm = form{keys: true, values: true}

// item makes the Item of the record of receive sequence seq. The value is
// copied into *arena when arena is not nil (a reader's chunk buffer), or
// into a new slice.
func (f form) item(seq uint64, rec record, arena *[]byte) Item {
	it := Item{Seq: seq, Timestamp: rec.received()}
	if f.keys {
		it.Key = rec.key()
	}
	if f.rts {
		it.RTS = rec.resolved()
	}
	if f.values {
		raw := rec.raw()
		if arena == nil {
			it.Value = append(json.RawMessage(nil), raw...)
			return it
		}
		a := *arena
		if cap(a)-len(a) < len(raw) {
			a = make([]byte, 0, max(arenaSize, len(raw)))
		}
		start := len(a)
		a = append(a, raw...)
		it.Value = json.RawMessage(a[start:len(a):len(a)])
		*arena = a
	}
	return it
}

// arenaSize is the size of the buffers that hold the values of a reader's
// chunk: values are copied out of the database's memory map before its
// read transaction ends.
const arenaSize = 64 << 10
