package privatebox

import (
	"crypto/ecdh"
	"encoding/base64"
	"fmt"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"
)

// An Unboxer opens the content string of a private message: plain is the
// plaintext (for a message, JSON text) when ok. A message that is well
// formed but not for us gives ok false and a nil error; a malformed one
// gives an error. No plaintext is returned unless ok.
//
// *Key is the Unboxer of the private-box format (".box"); Formats picks one
// by suffix, so that another format (box2, ".box2") can be added beside it.
type Unboxer interface {
	Unbox(content string) (plain []byte, ok bool, err error)
}

// Formats is an Unboxer that hands a content string to the Unboxer of its
// suffix (the text from its last "." on, e.g. ".box").
type Formats map[string]Unboxer

// NewUnboxer returns the Unboxer of every format this package knows, for
// our key k: today ".box" only.
func NewUnboxer(k *Key) Formats { return Formats{Suffix: k} }

// A KeyUnboxer is an Unboxer that also gives the message's read key (the
// bytes that open this one message, which ssb-db shows as value.unbox).
type KeyUnboxer interface {
	Unboxer
	UnboxKey(content string) (plain, readKey []byte, ok bool, err error)
}

// Unbox implements Unboxer. A content string with no suffix, or a suffix
// with no Unboxer, gives ErrFormat.
func (f Formats) Unbox(content string) ([]byte, bool, error) {
	u, err := f.format(content)
	if err != nil {
		return nil, false, err
	}
	return u.Unbox(content)
}

// UnboxKey implements KeyUnboxer; the read key is nil for a format whose
// Unboxer does not give one.
func (f Formats) UnboxKey(content string) (plain, readKey []byte, ok bool, err error) {
	u, err := f.format(content)
	if err != nil {
		return nil, nil, false, err
	}
	if ku, isKU := u.(KeyUnboxer); isKU {
		return ku.UnboxKey(content)
	}
	plain, ok, err = u.Unbox(content)
	return plain, nil, ok, err
}

// Has reports whether content ends with the suffix of a known format.
func (f Formats) Has(content string) bool {
	_, err := f.format(content)
	return err == nil
}

func (f Formats) format(content string) (Unboxer, error) {
	i := strings.LastIndexByte(content, '.')
	if i < 0 {
		return nil, fmt.Errorf("%w: content has no suffix", ErrFormat)
	}
	u, ok := f[content[i:]]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrFormat, truncate(content[i:]))
	}
	return u, nil
}

// UnboxString opens the content string of a private-box message
// (base64(ciphertext) + ".box"); see Unbox.
func UnboxString(content string, k *Key) ([]byte, bool, error) { return k.Unbox(content) }

// Unbox implements Unboxer for the content string of a private-box message,
// base64(ciphertext) + ".box".
func (k *Key) Unbox(content string) ([]byte, bool, error) {
	ct, err := Decode(content)
	if err != nil {
		return nil, false, err
	}
	return k.Open(ct)
}

// UnboxKey implements KeyUnboxer for a private-box content string.
func (k *Key) UnboxKey(content string) (plain, readKey []byte, ok bool, err error) {
	ct, err := Decode(content)
	if err != nil {
		return nil, nil, false, err
	}
	rk, ok, err := k.OpenKey(ct)
	if !ok || err != nil {
		return nil, nil, ok, err
	}
	plain, err = OpenBody(ct, rk)
	if err != nil {
		return nil, nil, false, err
	}
	return plain, rk[:], true, nil
}

// Unbox opens a private-box ciphertext with our key k; see Key.Open.
func Unbox(ciphertext []byte, k *Key) ([]byte, bool, error) { return k.Open(ciphertext) }

// Open decrypts a private-box ciphertext. It computes one shared secret
// with the message's one-time key and tries it on each slot (at most
// MaxRecipients) until one opens. ok is false and err nil when no slot is
// ours. A ciphertext too short for one slot and a body, a one-time key of
// small order, a slot of ours whose header claims no recipients or more
// than MaxRecipients or more slots than the ciphertext holds, and a body
// that does not open are errors (ErrMalformed).
//
// JS private-box tries one slot more (up to 8) and takes any count; the
// difference matters only for a box made with more than 7 recipients, which
// ssb-keys refuses to make.
func (k *Key) Open(ct []byte) ([]byte, bool, error) {
	rk, ok, err := k.OpenKey(ct)
	if !ok || err != nil {
		return nil, ok, err
	}
	plain, err := OpenBody(ct, rk)
	if err != nil {
		return nil, false, err
	}
	return plain, true, nil
}

// A ReadKey opens the body of one message: the recipient count and the
// body key, the 33 bytes of a slot (ssb-keys' unboxKey; ssb-db shows them
// in base64 as value.unbox). Whoever holds it reads that message.
type ReadKey [headerSize]byte

// OpenKey finds our slot of a ciphertext and returns the message's read
// key; see Open for ok and the errors.
func (k *Key) OpenKey(ct []byte) (ReadKey, bool, error) {
	if len(ct) < minSize {
		return ReadKey{}, false, fmt.Errorf("%w: %d bytes, want at least %d", ErrMalformed, len(ct), minSize)
	}
	nonce := (*[nonceSize]byte)(ct[:nonceSize])
	shared, err := dh(k.priv, ct[nonceSize:slotsStart])
	if err != nil {
		return ReadKey{}, false, fmt.Errorf("%w: one-time key: %w", ErrMalformed, err)
	}
	var buf [headerSize]byte
	for i := range MaxRecipients {
		s := slotsStart + i*slotSize
		if s+slotSize > len(ct)-tagSize {
			break // as JS: a slot must leave room for the body's tag
		}
		if h, ok := secretbox.Open(buf[:0], ct[s:s+slotSize], nonce, &shared); ok {
			return ReadKey(h), true, nil
		}
	}
	return ReadKey{}, false, nil
}

// OpenBody decrypts a ciphertext's body with its read key.
func OpenBody(ct []byte, rk ReadKey) ([]byte, error) {
	n := int(rk[0])
	if n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: header claims %d recipients", ErrMalformed, n)
	}
	body := slotsStart + n*slotSize
	if body+tagSize > len(ct) {
		return nil, fmt.Errorf("%w: header claims %d recipients, the box has room for fewer", ErrMalformed, n)
	}
	nonce := (*[nonceSize]byte)(ct[:nonceSize])
	bodyKey := [keySize]byte(rk[1:])
	plain, ok := secretbox.Open(nil, ct[body:], nonce, &bodyKey)
	if !ok {
		return nil, fmt.Errorf("%w: the body does not open with the key of our slot", ErrMalformed)
	}
	if plain == nil {
		plain = []byte{}
	}
	return plain, nil
}

// Decode returns the ciphertext of a private-box content string,
// base64(ciphertext) + ".box".
func Decode(content string) ([]byte, error) {
	b64, ok := strings.CutSuffix(content, Suffix)
	if !ok {
		return nil, fmt.Errorf("%w: content does not end with %q", ErrMalformed, Suffix)
	}
	ct, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %w", ErrMalformed, err)
	}
	return ct, nil
}

// dh returns the X25519 shared secret of priv and point, refusing a point
// of small order (an all-zero secret).
func dh(priv *ecdh.PrivateKey, point []byte) ([32]byte, error) {
	var out [32]byte
	pub, err := ecdh.X25519().NewPublicKey(point)
	if err != nil {
		return out, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	s, err := priv.ECDH(pub)
	if err != nil {
		return out, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return [32]byte(s), nil
}

func truncate(s string) string {
	if len(s) > 16 {
		return s[:16] + "…"
	}
	return s
}

// PublicKey returns the X25519 public key of k, what senders compute from
// our Ed25519 public key.
func (k *Key) PublicKey() []byte { return k.priv.PublicKey().Bytes() }
