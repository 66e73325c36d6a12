package gossip

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/scuttlego/scuttle/internal/sodium"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// Errors of the package. The errors Node.Receive returns for a dropped line
// wrap exactly one of ErrSyntax, ErrShape, ErrCurve, ErrSignature,
// ErrTooLarge and ErrReplay.
var (
	// ErrSyntax reports a line that is not JSON.
	ErrSyntax = errors.New("gossip: invalid JSON")
	// ErrShape reports JSON that is neither an envelope nor a digest: a
	// missing or mistyped field, a public key that is not canonical
	// base64 of 32 bytes, or a seq that is not an integer from 0 to 2^53-1.
	ErrShape = errors.New("gossip: not an envelope")
	// ErrCurve reports an envelope of a curve other than ed25519.
	ErrCurve = errors.New("gossip: unknown curve")
	// ErrSignature reports a signature that is malformed or does not
	// verify.
	ErrSignature = errors.New("gossip: invalid signature")
	// ErrTooLarge reports a line longer than Config.MaxMessage (an
	// envelope) or Config.MaxLine (any line).
	ErrTooLarge = errors.New("gossip: line too long")
	// ErrReplay reports an envelope whose seq is not the signed one
	// (SeqKey): a relayer re-sent a message under a new seq.
	ErrReplay = errors.New("gossip: seq differs from the signed seq")
	// ErrGarbage closes a link after Config.GarbageLimit invalid lines in
	// a row.
	ErrGarbage = errors.New("gossip: peer sends only invalid lines")
	// ErrClosed reports a use of a closed stream, link or Gossip.
	ErrClosed = errors.New("gossip: closed")
	// ErrPayload reports a payload Publish cannot send: not a JSON object,
	// or one using a reserved key ("signature", SeqKey, "__proto__").
	ErrPayload = errors.New("gossip: invalid payload")
)

// SeqKey is the member of data in which a Go publisher signs its seq. See
// the package documentation.
const SeqKey = "gossip:seq"

// maxSeq is the largest seq: JavaScript numbers are exact integers up to
// 2^53-1 (Number.MAX_SAFE_INTEGER).
const maxSeq = 1<<53 - 1

const (
	curveSuffix = ".ed25519"
	sigSuffix   = ".sig.ed25519"
)

// An ID identifies a message by its content: the SHA-256 of the
// publisher's 32-byte public key followed by the bytes the signature signs.
// The envelope's seq is not part of it, so the same signed data relayed
// under another seq has the same ID.
type ID [32]byte

// String returns the ID in base64.
func (id ID) String() string { return base64.StdEncoding.EncodeToString(id[:]) }

// A Message is a verified message as delivered to the application.
type Message struct {
	ID ID
	// Public is the publisher's key as secure-gossip writes it,
	// base64 + ".ed25519" (JavaScript's info.public).
	Public string
	// Seq is the envelope's seq. Unless SignedSeq, anyone relaying the
	// message may have changed it.
	Seq int64
	// SignedSeq reports that data carried SeqKey equal to Seq, so the
	// publisher signed it (a Go publisher).
	SignedSeq bool
	// Data is the payload, data without "signature" and SeqKey, as
	// JSON.stringify writes it: what a JavaScript peer's 'message' event
	// gets (which keeps SeqKey).
	Data json.RawMessage
	// Raw is the envelope line as received or published, without its
	// newline. It is what the node forwards.
	Raw []byte
}

// PublicKey returns the publisher's ed25519 public key.
func (m *Message) PublicKey() ed25519.PublicKey {
	var pk [32]byte
	refs.DecodeBase64(pk[:], strings.TrimSuffix(m.Public, curveSuffix))
	return pk[:]
}

// An envelope is a decoded, not yet verified, envelope line.
type envelope struct {
	public  string
	pk      [32]byte
	sig     [64]byte
	seq     int64
	signed  bool             // data carries SeqKey equal to seq
	message []byte           // what the signature signs
	payload []message.Member // data without signature and SeqKey
	id      ID
}

// digestPrefix starts every digest line; envelopes never start with it.
const digestPrefix = `{"gossip":`

// decodeLine decodes one line: an envelope, a digest, or an error.
func decodeLine(line []byte, cfg *Config) (*envelope, *digest, error) {
	if len(line) > cfg.MaxLine {
		return nil, nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(line))
	}
	if bytes.HasPrefix(line, []byte(digestPrefix)) {
		d, err := decodeDigest(line)
		return nil, d, err
	}
	if len(line) > cfg.MaxMessage {
		return nil, nil, fmt.Errorf("%w: %d-byte envelope", ErrTooLarge, len(line))
	}
	env, err := decodeEnvelope(line)
	return env, nil, err
}

// decodeEnvelope parses an envelope the way secure-gossip reads it
// (JSON.parse, then ssb-keys verifyObj), accepting only canonical
// encodings, so that whatever it accepts a JavaScript peer accepts too.
func decodeEnvelope(line []byte) (*envelope, error) {
	v, err := message.Parse(line)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSyntax, err)
	}
	if v.Kind() != message.Object {
		return nil, fmt.Errorf("%w: a JSON %v", ErrShape, v.Kind())
	}
	env := new(envelope)
	// ssb-keys takes the curve from an envelope's "curve" field, else
	// from the public key's suffix.
	if c, ok := v.Get("curve"); ok && (c.Kind() != message.String || c.Str() != keys.Curve) {
		return nil, fmt.Errorf("%w: curve %v", ErrCurve, c)
	}
	pub, ok := v.Get("public")
	if !ok || pub.Kind() != message.String {
		return nil, fmt.Errorf("%w: no public key", ErrShape)
	}
	env.public = pub.Str()
	b64, ok := strings.CutSuffix(env.public, curveSuffix)
	if !ok {
		return nil, fmt.Errorf("%w: public key %q", ErrCurve, env.public)
	}
	if err := refs.DecodeBase64(env.pk[:], b64); err != nil {
		return nil, fmt.Errorf("%w: public key: %w", ErrShape, err)
	}
	seq, ok := v.Get("seq")
	if !ok || !isSeq(seq) {
		return nil, fmt.Errorf("%w: seq %v", ErrShape, seq)
	}
	env.seq = int64(seq.Number())
	data, ok := v.Get("data")
	if !ok || data.Kind() != message.Object {
		return nil, fmt.Errorf("%w: data is not an object", ErrShape)
	}
	if err := env.readData(data.Members()); err != nil {
		return nil, err
	}
	return env, nil
}

// isSeq reports whether v is an integer from 0 to 2^53-1.
func isSeq(v message.Value) bool {
	f := v.Number()
	return v.Kind() == message.Number && f >= 0 && f <= maxSeq && f == math.Trunc(f)
}

// readData takes the signature and the signed seq out of data and computes
// the signed bytes and the ID.
func (env *envelope) readData(ms []message.Member) error {
	unsigned := make([]message.Member, 0, len(ms))
	var sig *message.Value
	for i := range ms {
		switch ms[i].Key {
		case "signature":
			sig = &ms[i].Value
			continue
		case SeqKey:
			if s := ms[i].Value; s.Kind() != message.Number || s.Number() != float64(env.seq) {
				return fmt.Errorf("%w: envelope seq %d, signed %v", ErrReplay, env.seq, s)
			}
			env.signed = true
		default:
			env.payload = append(env.payload, ms[i])
		}
		unsigned = append(unsigned, ms[i])
	}
	if sig == nil || sig.Kind() != message.String {
		return fmt.Errorf("%w: no signature string", ErrSignature)
	}
	b64, ok := strings.CutSuffix(sig.Str(), sigSuffix)
	if !ok {
		return fmt.Errorf("%w: signature must end with %q", ErrSignature, sigSuffix)
	}
	if err := refs.DecodeBase64(env.sig[:], b64); err != nil {
		return fmt.Errorf("%w: %w", ErrSignature, err)
	}
	env.message = message.ObjectValue(unsigned...).AppendPretty(nil)
	env.id = messageID(&env.pk, env.message)
	return nil
}

func messageID(pk *[32]byte, signed []byte) ID {
	h := sha256.New()
	h.Write(pk[:])
	h.Write(signed)
	var id ID
	h.Sum(id[:0])
	return id
}

// verify checks the signature as libsodium does.
func (env *envelope) verify() bool { return sodium.Verify(&env.pk, &env.sig, env.message) }

// toMessage returns the delivered form of env, received as line.
func (env *envelope) toMessage(line []byte) *Message {
	return &Message{
		ID:        env.id,
		Public:    env.public,
		Seq:       env.seq,
		SignedSeq: env.signed,
		Data:      message.ObjectValue(env.payload...).AppendCompact(nil),
		Raw:       bytes.Clone(line),
	}
}

// seal signs payload, a JSON object, as publisher kp's message number seq:
// data is the payload, then SeqKey, then the signature, as ssb-keys signObj
// appends it; the envelope is {"data","public","seq"} in secure-gossip's
// order, written as JSON.stringify writes it.
func seal(kp *keys.KeyPair, payload any, seq int64) ([]byte, *envelope, error) {
	v, err := message.ValueOf(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrPayload, err)
	}
	if v.Kind() != message.Object {
		return nil, nil, fmt.Errorf("%w: a JSON %v, not an object", ErrPayload, v.Kind())
	}
	ms := v.Members()
	for _, m := range ms {
		if m.Key == "signature" || m.Key == SeqKey || m.Key == "__proto__" {
			return nil, nil, fmt.Errorf("%w: reserved key %q", ErrPayload, m.Key)
		}
	}
	env := &envelope{seq: seq, signed: true, payload: ms}
	copy(env.pk[:], kp.Public)
	env.public = base64.StdEncoding.EncodeToString(kp.Public) + curveSuffix
	unsigned := append(ms[:len(ms):len(ms)], message.Member{Key: SeqKey, Value: message.NumberValue(float64(seq))})
	env.message = message.ObjectValue(unsigned...).AppendPretty(nil)
	copy(env.sig[:], kp.Sign(env.message))
	env.id = messageID(&env.pk, env.message)
	sig := base64.StdEncoding.EncodeToString(env.sig[:]) + sigSuffix
	data := message.ObjectValue(append(unsigned, message.Member{Key: "signature", Value: message.StringValue(sig)})...)
	line := message.ObjectValue(
		message.Member{Key: "data", Value: data},
		message.Member{Key: "public", Value: message.StringValue(env.public)},
		message.Member{Key: "seq", Value: message.NumberValue(float64(seq))},
	).AppendCompact(nil)
	return line, env, nil
}
