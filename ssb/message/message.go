package message

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsstring"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// MaxSize is the largest message ssb-validate accepts, counted as the
// length of JSON.stringify(msg, null, 2) of the signed message in UTF-16
// code units (not bytes).
const MaxSize = 8192

// Errors of Create and the validators. Each error they return wraps exactly
// one of these or ErrSyntax (an ErrTooLarge for JSON nested deeper than
// MaxDepth also wraps ErrTooDeep), so errors.Is tells the cases apart.
var (
	// ErrShape reports a value that is not a message: not an object, keys
	// missing, extra or out of order, an author that is not a feed id, a
	// sequence that is not a 32-bit integer, a hash other than "sha256", a
	// first message whose previous is not null, or a timestamp that is not
	// a number where one is required.
	ErrShape = errors.New("message: not a valid message")
	// ErrContent reports content that is neither an object whose type is a
	// string of 3 to 52 UTF-16 code units nor an encrypted string
	// (canonical base64 followed by ".box").
	ErrContent = errors.New("message: invalid content")
	// ErrTooLarge reports a message longer than MaxSize.
	ErrTooLarge = errors.New("message: too large")
	// ErrSignature reports a signature that is malformed (not canonical
	// base64 of 64 bytes followed by ".sig.ed25519") or does not verify.
	ErrSignature = errors.New("message: invalid signature")
	// ErrSequence reports a message whose sequence does not follow the
	// feed's latest: a message already seen, or one after a gap. The
	// validators return it as a *SequenceError. ssb-validate treats this
	// case as not fatal. Create returns it for a feed at sequence 2^31-1.
	ErrSequence = errors.New("message: unexpected sequence")
	// ErrFork reports a correctly signed message with the next sequence
	// whose previous is not the feed's latest message: proof that the
	// author signed a message that conflicts with the feed as we have it,
	// typically a second message with an existing sequence number.
	ErrFork = errors.New("message: feed is forked")
	// ErrHMACKey reports an HMAC signing key that is not 32 bytes (or, for
	// ParseHMACKey, not canonical base64).
	ErrHMACKey = errors.New("message: invalid HMAC key")
)

// A SequenceError reports a message whose sequence is not the one the
// feed expects. It wraps ErrSequence.
type SequenceError struct {
	Got  int64 // the message's sequence
	Want int64 // the feed's latest sequence + 1
}

func (e *SequenceError) Error() string {
	kind := "a gap"
	if e.Got < e.Want {
		kind = "already seen"
	}
	return fmt.Sprintf("%v: got %d, want %d (%s)", ErrSequence, e.Got, e.Want, kind)
}

func (e *SequenceError) Unwrap() error { return ErrSequence }

// FeedState is what validation needs to know of a feed: its latest
// message. The zero FeedState (Sequence 0) is an empty feed.
type FeedState struct {
	ID       refs.Message // the latest message's key
	Sequence int64        // the latest message's sequence, 0 for none
}

// empty reports whether s stands for a feed without messages.
func (s *FeedState) empty() bool { return s == nil || s.Sequence == 0 }

// A Message is a signed classic SSB message, checked.
type Message struct {
	// Key is the message id: "%" + base64(sha256(latin1(Pretty()))) + ".sha256",
	// where latin1 keeps the low byte of each UTF-16 code unit (the
	// "latin1 quirk" of ssb-keys' hash).
	Key refs.Message
	// Previous is the key of the message before this one, nil for the
	// first. With ValidateOOO and Decode, which leave previous unchecked
	// as ssb-validate does, it is also nil when previous is not a message
	// id.
	Previous *refs.Message
	Author   refs.Feed
	Sequence int64
	// Timestamp is the author's claimed time in milliseconds since the
	// epoch. ssb-validate only requires a number in a feed's first message
	// (and out of order); Timestamp is 0 when the message has no number
	// there. A number too large for a float64 is ±Inf.
	Timestamp float64
	// Type is content.type, or "" when the content is encrypted.
	Type string
	// Content is the content as compact JSON (a string when encrypted); it
	// shares Raw's memory.
	Content json.RawMessage
	// Signature is the signature field, base64 + ".sig.ed25519".
	Signature string
	// Raw is the whole signed message as compact JSON, the form sent over
	// the wire: JSON.stringify(value) in V8 key order. It may differ from
	// the bytes that were validated (whitespace, escapes, number forms,
	// duplicate keys), never from their value.
	Raw []byte
}

// State returns the feed state after m: m is the feed's latest message.
func (m *Message) State() FeedState { return FeedState{ID: m.Key, Sequence: m.Sequence} }

// Encrypted reports whether the content is an encrypted string.
func (m *Message) Encrypted() bool { return len(m.Content) > 0 && m.Content[0] == '"' }

// Pretty returns the canonical form of the signed message,
// JSON.stringify(value, null, 2), whose hash is the key.
func (m *Message) Pretty() []byte { return reindent(make([]byte, 0, len(m.Raw)*3/2), m.Raw) }

// ID returns the id ssb-validate's id() gives a value: the SHA-256 of the
// latin1 bytes of its pretty form, as a message id. For a message it is
// its key.
func ID(v Value) refs.Message {
	sc := getScratch()
	defer sc.put()
	sc.pretty = v.AppendPretty(sc.pretty[:0])
	return sc.hash(sc.pretty)
}

// Create makes and signs the next message of kp's feed, whose latest
// message is prev (nil or the zero FeedState for the first), as
// ssb-validate@4.1.4 create() does. The fields come in ssb-server 16's
// order: previous, sequence, author, timestamp, hash, content, signature.
//
// content is a Value, JSON text (json.RawMessage or []byte), an encrypted
// string (canonical base64 + ".box…"), or any Go value encoding/json
// encodes (see ValueOf). With a non-empty hmacKey (32 bytes, ssb-caps'
// "sign") the signature signs the HMAC of the canonical JSON instead of
// the JSON itself.
//
// Create fails, rather than making a message the validators would reject,
// on content of the wrong shape (ErrContent), a message longer than
// MaxSize (ErrTooLarge), a timestamp that is not finite (ErrShape), or a
// sequence beyond 2^31-1 (ErrSequence).
func Create(kp *keys.KeyPair, hmacKey []byte, prev *FeedState, timestamp float64, content any) (*Message, error) {
	if kp == nil || len(kp.Private) != ed25519.PrivateKeySize {
		return nil, errors.New("message: create: no private key")
	}
	return create(kp.ID, kp.Sign, hmacKey, prev, timestamp, content, true)
}

// create is Create for any signer; limit false skips the size check, for
// tests that need oversized messages.
func create(author refs.Feed, sign func([]byte) []byte, hmacKey []byte, prev *FeedState, timestamp float64, content any, limit bool) (*Message, error) {
	if err := checkHMACKey(hmacKey); err != nil {
		return nil, err
	}
	if math.IsNaN(timestamp) || math.IsInf(timestamp, 0) {
		return nil, fmt.Errorf("%w: timestamp %v is not a finite number", ErrShape, timestamp)
	}
	cv, err := ValueOf(content)
	if err != nil {
		return nil, err
	}
	if _, err := checkContent(&cv); err != nil {
		return nil, err
	}
	seq, previous := int64(1), Value{}
	if !prev.empty() {
		if prev.Sequence < 1 || prev.Sequence >= math.MaxInt32 {
			return nil, fmt.Errorf("%w: no message can follow sequence %d (the limit is 2^31-1)", ErrSequence, prev.Sequence)
		}
		seq, previous = prev.Sequence+1, Value{kind: String, str: prev.ID.String()}
	}
	ms := []Member{
		{"previous", previous},
		{"sequence", NumberValue(float64(seq))},
		{"author", Value{kind: String, str: author.String()}},
		{"timestamp", NumberValue(timestamp)},
		{"hash", Value{kind: String, str: "sha256"}},
		{"content", cv},
		{"signature", Value{}},
	}
	sc := getScratch()
	defer sc.put()
	sc.pretty = appendPrettyMembers(sc.pretty[:0], ms[:6], 0)
	sig := sign(signedBytes(sc.pretty, hmacKey))
	ms[6].Value = Value{kind: String, str: base64.StdEncoding.EncodeToString(sig) + SignatureSuffix}
	if err := checkSize(sc.pretty, ms[6].Value.str); err != nil && limit {
		return nil, err
	}
	sc.pretty = appendSignature(sc.pretty, ms[6].Value.str)
	m := &Message{Author: author, Sequence: seq, Timestamp: timestamp, Signature: ms[6].Value.str}
	if !prev.empty() {
		id := prev.ID
		m.Previous = &id
	}
	m.Type = typeOf(&cv)
	m.finish(ms, sc)
	return m, nil
}

// typeOf returns content.type of checked content, or "".
func typeOf(content *Value) string {
	t, _ := content.Get("type")
	return t.str
}

// appendSignature turns the pretty form of an unsigned message into that
// of the signed message by adding the signature field last.
func appendSignature(pretty []byte, sig string) []byte {
	pretty = append(pretty[:len(pretty)-2], ",\n  \"signature\": "...) // drop "\n}"
	pretty = jsstring.AppendQuote(pretty, sig)
	return append(pretty, '\n', '}')
}

// checkSize checks the length of the signed message whose unsigned pretty
// form is unsigned and whose signature, checked ASCII without escapes, is
// sig.
func checkSize(unsigned []byte, sig string) error {
	// appendSignature replaces "\n}" with these, the quoted sig and "\n}".
	const field = len(",\n  \"signature\": ")
	if n := jsstring.UTF16Len(unsigned) + field + len(sig) + 2; n > MaxSize {
		return fmt.Errorf("%w: %d UTF-16 code units, the limit is %d", ErrTooLarge, n, MaxSize)
	}
	return nil
}

// finish sets m's Key from the signed pretty form in sc, and Raw and
// Content from the members.
func (m *Message) finish(ms []Member, sc *scratch) {
	m.Key = sc.hash(sc.pretty)
	raw := make([]byte, 0, len(sc.pretty)) // the compact form is shorter
	raw = append(raw, '{')
	var start, end int
	for i := range ms {
		if i > 0 {
			raw = append(raw, ',')
		}
		raw = jsstring.AppendQuote(raw, ms[i].Key)
		raw = append(raw, ':')
		if i == 5 {
			start = len(raw)
		}
		raw = appendCompact(raw, &ms[i].Value)
		if i == 5 {
			end = len(raw)
		}
	}
	m.Raw = append(raw, '}')
	m.Content = json.RawMessage(m.Raw[start:end:end])
}

// scratch holds the buffers of one validation, reused across calls.
type scratch struct {
	pretty []byte
	latin1 []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func (sc *scratch) put() {
	const keep = 64 << 10 // let the pool drop buffers grown by huge inputs
	if cap(sc.pretty) > keep || cap(sc.latin1) > keep {
		return
	}
	scratchPool.Put(sc)
}

// hash returns the message id of the pretty form text.
func (sc *scratch) hash(text []byte) refs.Message {
	if jsstring.IsASCII(text) {
		return refs.NewMessage(sha256.Sum256(text))
	}
	sc.latin1 = jsstring.AppendLatin1(sc.latin1[:0], text)
	return refs.NewMessage(sha256.Sum256(sc.latin1))
}
