package store

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// The layouts written in the meta bucket's "version"; Open refuses any
// other. A new store is formatVersion: receive sequences 1, 2, 3... without
// gaps. The first deletion (see Delete) makes it formatDeleted: the log may
// have gaps, counted by the meta entries "top" and "deleted", which older
// versions of the store would misread (they would reuse the positions of
// deleted messages at the log's end), so they refuse it.
const (
	formatVersion = 1
	formatDeleted = 2
)

// Bucket names. See the package documentation for what each holds.
var (
	bucketMeta    = []byte("meta")
	bucketLog     = []byte("log")
	bucketFeed    = []byte("feed")
	bucketID      = []byte("id")
	bucketClaimed = []byte("claimed")
	bucketType    = []byte("type")
	bucketHead    = []byte("head")

	allBuckets = [][]byte{bucketMeta, bucketLog, bucketFeed, bucketID, bucketClaimed, bucketType, bucketHead}

	metaVersion = []byte("version")
	// metaTop holds the last receive sequence ever assigned and its
	// receive timestamp (seq ‖ float64 bits), written by each deletion:
	// when the log's last messages are deleted, their positions and times
	// are still never given again.
	metaTop = []byte("top")
	// metaDeleted counts the messages deleted (uint64): the positions up
	// to top that the log lacks.
	metaDeleted = []byte("deleted")
)

// Sizes of the fixed parts of keys and values.
const (
	seqLen       = 8                      // a receive sequence, big-endian
	feedKeyLen   = 32 + 4                 // author ‖ sequence (uint32)
	claimedLen   = 8 + seqLen             // ordered float64 ‖ receive seq
	recordHeader = 8 + 8 + 32             // receive ts ‖ resolved ts ‖ message hash
	headLen      = 4 + 32 + seqLen        // sequence ‖ message hash ‖ receive seq
	maxSequence  = uint32(math.MaxInt32)  // the largest sequence ssb-validate accepts
	maxTypeLen   = math.MaxUint8          // a type key's length prefix is one byte
	maxSeq       = uint64(math.MaxUint64) // the largest receive sequence
)

func putSeq(dst []byte, seq uint64) []byte { return binary.BigEndian.AppendUint64(dst, seq) }

func getSeq(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// seqKey returns the log key of receive sequence seq.
func seqKey(seq uint64) []byte { return putSeq(make([]byte, 0, seqLen), seq) }

// feedKey appends the feed index key of (author, seq).
func feedKey(dst []byte, author refs.Feed, seq uint32) []byte {
	dst = appendFeed(dst, author)
	return binary.BigEndian.AppendUint32(dst, seq)
}

// appendFeed appends the 32-byte public key of f.
func appendFeed(dst []byte, f refs.Feed) []byte { return append(dst, f.PublicKey()...) }

// idEpochBits sets the size of the id index's epochs: 2^16 receive
// sequences. The id index is keyed by epoch, then message hash: ids are
// random, so inserting them into one B+tree of every id would dirty about
// one leaf page per message once the tree is much larger than a commit;
// inserting into the current epoch's part of the tree dirties at most that
// part, whatever the store's size. The cost is on lookups by id, which
// probe each epoch, newest first: 16 B+tree lookups (about 20 µs) at a
// million messages. It is part of the file format; it is a variable only so
// that tests can make small epochs.
var idEpochBits = 16

// idKey appends the id index key of message m with receive sequence seq.
func idKey(dst []byte, seq uint64, m refs.Message) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(seq>>idEpochBits))
	return appendHash(dst, m)
}

// appendHash appends the 32-byte hash of a message id.
func appendHash(dst []byte, m refs.Message) []byte {
	h := m.Hash()
	return append(dst, h[:]...)
}

// feedOf reads a feed id from its 32-byte public key.
func feedOf(b []byte) (refs.Feed, error) {
	f, err := refs.NewFeed(b[:32])
	if err != nil {
		return refs.Feed{}, fmt.Errorf("%w: feed key: %w", ErrCorrupt, err)
	}
	return f, nil
}

// messageOf reads a message id from its 32-byte hash.
func messageOf(b []byte) refs.Message { return refs.NewMessage([32]byte(b[:32])) }

// orderedFloat maps f to a uint64 whose unsigned order is the numeric
// order of the floats: flip the sign bit of positive numbers, all bits of
// negative ones. -0 is stored as 0. NaN never reaches it.
func orderedFloat(f float64) uint64 {
	if f == 0 {
		f = 0 // -0 sorts as 0
	}
	b := math.Float64bits(f)
	if b>>63 == 0 {
		return b | 1<<63
	}
	return ^b
}

// unorderFloat inverts orderedFloat.
func unorderFloat(u uint64) float64 {
	if u>>63 == 1 {
		return math.Float64frombits(u &^ (1 << 63))
	}
	return math.Float64frombits(^u)
}

// claimedKey appends the claimed-timestamp index key of a message with
// resolved timestamp ts and receive sequence seq.
func claimedKey(dst []byte, ts float64, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint64(dst, orderedFloat(ts))
	return putSeq(dst, seq)
}

// typePrefix appends the prefix of the type index keys of type t: its
// length in one byte, then its bytes.
func typePrefix(dst []byte, t string) []byte {
	dst = append(dst, byte(len(t)))
	return append(dst, t...)
}

// resolvedTimestamp is ssb-db's resolveTimestamp (indexes/feed.js), the
// key of createFeedStream: the claimed timestamp, unless it is missing
// (0 or not a number) or later than the receive time, then the receive
// time.
func resolvedTimestamp(claimed, received float64) float64 {
	if claimed == 0 || math.IsNaN(claimed) || claimed > received {
		return received
	}
	return claimed
}

// A record is a log value: the receive timestamp, the resolved timestamp
// (the claimed index key), the message id and the compact JSON of the
// signed message.
type record []byte

func appendRecord(dst []byte, received, resolved float64, m *message.Message) record {
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(received))
	dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(resolved))
	dst = appendHash(dst, m.Key)
	return append(dst, m.Raw...)
}

func (r record) valid() bool       { return len(r) > recordHeader }
func (r record) received() float64 { return math.Float64frombits(binary.BigEndian.Uint64(r)) }
func (r record) resolved() float64 { return math.Float64frombits(binary.BigEndian.Uint64(r[8:])) }
func (r record) key() refs.Message { return messageOf(r[16:48]) }
func (r record) raw() []byte       { return r[recordHeader:] }
func (r record) hashBytes() []byte { return r[16:48] }
func (r record) String() string    { return fmt.Sprintf("record %s", r.key()) }
func decodeHead(v []byte) (uint32, refs.Message, uint64) {
	return binary.BigEndian.Uint32(v), messageOf(v[4:36]), getSeq(v[36:])
}

func appendHead(dst []byte, state message.FeedState, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(state.Sequence))
	dst = appendHash(dst, state.ID)
	return putSeq(dst, seq)
}
