package message

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/internal/jsstring"
	"github.com/scuttlego/scuttle/internal/sodium"
)

// mode selects the checks of check.
type mode uint8

const (
	modeChain  mode = iota // ssb-validate append: everything
	modeOOO                // checkInvalidOOO: no sequence or previous checks
	modeDecode             // trusted input: no signature or chain checks
)

// Validate checks raw, a message in JSON (compact or not), as the next
// message of a feed whose latest message is prev (nil or the zero
// FeedState for an empty feed), with the rules of ssb-validate@4.1.4
// append, and returns it. hmacKey is the HMAC signing key of the network
// (ssb-caps' "sign"), or nil for none.
//
// A message is valid exactly when ssb-validate accepts it; only the
// classification of an invalid message differs, because the checks run in
// a different order: the cheap sequence check first (a *SequenceError,
// ErrSequence, costs no signature check), then the shape, content, size
// and signature, and only then previous against prev.ID, so that ErrFork
// always means a correctly signed conflicting message.
//
// As in ssb-validate, previous is compared with JavaScript's loose
// equality (so ["%…"] equals "%…"), and a timestamp is only required to be
// a number in a feed's first message.
func Validate(prev *FeedState, raw []byte, hmacKey []byte) (*Message, error) {
	return check(prev, raw, hmacKey, modeChain)
}

// ValidateValue is Validate for a message already parsed.
func ValidateValue(prev *FeedState, v Value, hmacKey []byte) (*Message, error) {
	if err := checkHMACKey(hmacKey); err != nil {
		return nil, err
	}
	return checkValue(prev, &v, hmacKey, modeChain)
}

// ValidateOOO checks raw as ssb-validate's checkInvalidOOO does, for a
// message received out of order (ssb-ooo, partial replication): as
// Validate without the sequence and previous checks, and with a timestamp
// that must be a number. The sequence need only be a 32-bit integer, and
// previous may be any value.
func ValidateOOO(raw []byte, hmacKey []byte) (*Message, error) {
	return check(nil, raw, hmacKey, modeOOO)
}

// Decode reads a message that was validated before, for example from the
// store's own log: it checks the shape, content and size as Validate does
// and computes the key, but neither verifies the signature nor checks
// sequence, previous or timestamp. Never use it on messages from peers.
func Decode(raw []byte) (*Message, error) {
	return check(nil, raw, nil, modeDecode)
}

func check(prev *FeedState, raw, hmacKey []byte, mode mode) (*Message, error) {
	if err := checkHMACKey(hmacKey); err != nil {
		return nil, err
	}
	v, err := Parse(raw)
	if err != nil {
		if errors.Is(err, ErrTooDeep) {
			return nil, fmt.Errorf("%w: %w", ErrTooLarge, err)
		}
		return nil, err
	}
	return checkValue(prev, &v, hmacKey, mode)
}

func checkValue(prev *FeedState, v *Value, hmacKey []byte, mode mode) (*Message, error) {
	if v.kind != Object {
		return nil, fmt.Errorf("%w: a message is an object, not %s", ErrShape, article(v.kind))
	}
	ms := v.obj
	if err := checkOrder(ms); err != nil {
		return nil, err
	}
	previous, seqV, authorV := &ms[0].Value, &ms[1].Value, &ms[2].Value
	if ms[1].Key == "author" {
		seqV, authorV = authorV, seqV
	}
	timestamp, hash, content, signature := &ms[3].Value, &ms[4].Value, &ms[5].Value, &ms[6].Value

	if authorV.kind != String {
		return nil, fmt.Errorf("%w: author is %s, not a feed id", ErrShape, article(authorV.kind))
	}
	author, err := parseFeed(authorV.str)
	if err != nil {
		return nil, fmt.Errorf("%w: author: %w", ErrShape, err)
	}
	if seqV.kind != Number || !isInt32(seqV.num) {
		return nil, fmt.Errorf("%w: sequence %s is not a 32-bit integer", ErrShape, brief(seqV))
	}
	seq := int64(seqV.num)
	switch mode {
	case modeChain:
		if err := checkSequence(prev, seq, previous, timestamp); err != nil {
			return nil, err
		}
	case modeOOO:
		if timestamp.kind != Number {
			return nil, fmt.Errorf("%w: timestamp is %s, not a number", ErrShape, article(timestamp.kind))
		}
	}
	if hash.kind != String || hash.str != "sha256" {
		return nil, fmt.Errorf("%w: hash is %s, want \"sha256\"", ErrShape, brief(hash))
	}
	var sig [ed25519.SignatureSize]byte
	if err := parseSignature(signature, &sig); err != nil {
		return nil, err
	}
	typ, err := checkContent(content)
	if err != nil {
		return nil, err
	}

	sc := getScratch()
	defer sc.put()
	sc.pretty = appendPrettyMembers(sc.pretty[:0], ms[:6], 0)
	if err := checkSize(sc.pretty, signature.str); err != nil {
		return nil, err
	}
	if mode != modeDecode {
		pub := [32]byte(author.PublicKey())
		if !sodium.Verify(&pub, &sig, signedBytes(sc.pretty, hmacKey)) {
			return nil, fmt.Errorf("%w: the signature does not verify", ErrSignature)
		}
	}
	sc.pretty = appendSignature(sc.pretty, signature.str)
	chained := mode == modeChain && !prev.empty()
	if chained && !looseEqualsMessageID(previous, prev.ID) {
		return nil, fmt.Errorf("%w: %s has sequence %d and previous %s, but the feed's message %d is %s",
			ErrFork, author, seq, brief(previous), prev.Sequence, prev.ID)
	}

	m := &Message{Author: author, Sequence: seq, Type: typ, Signature: signature.str}
	if timestamp.kind == Number {
		m.Timestamp = timestamp.num
	}
	switch {
	case chained: // previous is prev.ID, or equal to it to JavaScript
		id := prev.ID
		m.Previous = &id
	case previous.kind == String:
		if id, ok := parseMessageID(previous.str); ok {
			m.Previous = &id
		}
	}
	m.finish(ms, sc)
	return m, nil
}

// checkSequence does the chain checks of ssb-validate's checkInvalidCheap,
// but for previous of a feed with messages, which is checked last.
func checkSequence(prev *FeedState, seq int64, previous, timestamp *Value) error {
	if !prev.empty() {
		if seq != prev.Sequence+1 {
			return &SequenceError{Got: seq, Want: prev.Sequence + 1}
		}
		return nil
	}
	if seq != 1 {
		return &SequenceError{Got: seq, Want: 1}
	}
	if previous.kind != Null {
		return fmt.Errorf("%w: the first message of a feed has previous null, not %s", ErrShape, brief(previous))
	}
	if timestamp.kind != Number {
		return fmt.Errorf("%w: timestamp of the first message is %s, not a number", ErrShape, article(timestamp.kind))
	}
	return nil
}

// fieldOrders are the two key orders ssb-validate allows.
var fieldOrders = [2][7]string{
	{"previous", "sequence", "author", "timestamp", "hash", "content", "signature"},
	{"previous", "author", "sequence", "timestamp", "hash", "content", "signature"},
}

func checkOrder(ms []Member) error {
	if len(ms) == 7 {
	orders:
		for _, order := range fieldOrders {
			for i, k := range order {
				if ms[i].Key != k {
					continue orders
				}
			}
			return nil
		}
	}
	keys := make([]string, 0, 8)
	for i, m := range ms {
		if i == 8 {
			keys = append(keys, "…")
			break
		}
		keys = append(keys, strconv.Quote(m.Key))
	}
	return fmt.Errorf("%w: the keys must be previous, sequence, author (or author, sequence), timestamp, hash, content, signature, in that order; found %s",
		ErrShape, strings.Join(keys, ", "))
}

// isInt32 is ssb-validate's isInteger: ~~n === n.
func isInt32(f float64) bool {
	return f == math.Trunc(f) && f >= math.MinInt32 && f <= math.MaxInt32
}

// checkContent checks content as ssb-validate's isInvalidShape does and
// returns its type ("" when encrypted).
func checkContent(c *Value) (string, error) {
	switch c.kind {
	case Object:
		t, ok := c.Get("type")
		if !ok {
			return "", fmt.Errorf("%w: content has no type", ErrContent)
		}
		if t.kind != String {
			return "", fmt.Errorf("%w: content type is %s, not a string", ErrContent, article(t.kind))
		}
		if n := jsstring.UTF16Len(t.str); n < 3 || n > 52 {
			return "", fmt.Errorf("%w: content type %s has %d UTF-16 code units, want 3 to 52", ErrContent, brief(&t), n)
		}
		return t.str, nil
	case String:
		if !isBoxed(c.str) {
			return "", fmt.Errorf("%w: content string is not canonical base64 followed by \".box\"", ErrContent)
		}
		return "", nil
	}
	return "", fmt.Errorf("%w: content is %s, want an object or an encrypted string", ErrContent, article(c.kind))
}

// isBoxed reports whether s is encrypted content to ssb-validate: it
// matches /^<canonical base64>\.box.*$/, so the base64 may be empty and
// whatever follows ".box" must not hold a JavaScript line terminator.
func isBoxed(s string) bool {
	i := strings.IndexByte(s, '.')
	if i < 0 || !strings.HasPrefix(s[i:], ".box") || !isCanonicalBase64(s[:i]) {
		return false
	}
	rest := s[i+4:]
	return !strings.ContainsAny(rest, "\n\r\u2028\u2029")
}

// isCanonicalBase64 reports whether s is padded standard base64 without
// stray bits, of any length (is-canonical-base64's pattern).
func isCanonicalBase64(s string) bool {
	if len(s)%4 != 0 {
		return false
	}
	body := s
	switch {
	case strings.HasSuffix(s, "=="):
		if !strings.ContainsRune("AQgw", rune(s[len(s)-3])) {
			return false
		}
		body = s[:len(s)-2]
	case strings.HasSuffix(s, "="):
		if !strings.ContainsRune("AEIMQUYcgkosw048", rune(s[len(s)-2])) {
			return false
		}
		body = s[:len(s)-1]
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// article names a kind for an error message.
func article(k Kind) string {
	switch k {
	case Null:
		return "null"
	case Array, Object:
		return "an " + k.String()
	}
	return "a " + k.String()
}

// brief returns v as compact JSON for an error message, shortened.
func brief(v *Value) string {
	const limit = 80
	b := v.AppendCompact(nil)
	if len(b) <= limit {
		return string(b)
	}
	n := limit
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return string(b[:n]) + "…"
}
