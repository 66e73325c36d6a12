// Package privatebox encrypts and decrypts SSB private messages in the
// private-box format (npm private-box 0.3, as ssb-keys box/unbox and
// ssb-server use it): a message is sealed for 1 to 7 recipients, and each
// of them, and nobody else, can open it.
//
// The wire layout (ciphertext bytes, before base64):
//
//	nonce (24) ‖ one-time X25519 public key (32) ‖ n slots of 49 ‖ body
//
// A slot is secretbox([n] ‖ y, nonce, X25519(one-time secret, recipient)),
// where y is a random 32-byte body key; the body is
// secretbox(plaintext, nonce, y). Recipients' Ed25519 keys are converted to
// X25519. In a message, the content is the string base64(ciphertext) +
// ".box", and the plaintext is JSON.stringify(content).
//
// Decrypting costs one X25519 scalar multiplication per message whoever it
// is for; the conversion of our own key is done once, by NewKey.
package privatebox

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"errors"
	"fmt"
)

// Sizes of the wire layout.
const (
	// MaxRecipients is private-box's DEFAULT_MAX, which ssb-keys uses.
	MaxRecipients = 7

	nonceSize  = 24
	keySize    = 32
	tagSize    = 16                              // secretbox overhead
	headerSize = 1 + keySize                     // [n] ‖ y
	slotSize   = headerSize + tagSize            // 49
	slotsStart = nonceSize + keySize             // 56
	minSize    = slotsStart + slotSize + tagSize // one slot and an empty body
)

// Suffix ends the content string of a private-box message.
const Suffix = ".box"

var (
	// ErrRecipients reports a recipient list that is empty or longer than
	// MaxRecipients.
	ErrRecipients = errors.New("privatebox: need 1 to 7 recipients")
	// ErrBadKey reports a key that cannot take part in X25519: an Ed25519
	// public key that is not a point, of small order or outside the prime
	// order subgroup (libsodium's crypto_sign_ed25519_pk_to_curve25519
	// refuses the same), or a one-time key of small order.
	ErrBadKey = errors.New("privatebox: invalid key")
	// ErrMalformed reports a ciphertext or content string that is not a
	// well-formed private box.
	ErrMalformed = errors.New("privatebox: malformed box")
	// ErrFormat reports a content string whose suffix names no format the
	// Unboxer knows.
	ErrFormat = errors.New("privatebox: unknown format")
)

// A Key is our X25519 secret, converted once from the Ed25519 identity, for
// opening any number of messages. It is safe for concurrent use.
type Key struct {
	// priv is made once: crypto/ecdh computes the public key of a new
	// private key, a scalar multiplication Open must not repeat.
	priv *ecdh.PrivateKey
}

// NewKey converts an Ed25519 private key (64 bytes, seed ‖ public, or the
// 32-byte seed) into its X25519 secret, as libsodium's
// crypto_sign_ed25519_sk_to_curve25519 does.
func NewKey(priv ed25519.PrivateKey) (*Key, error) {
	var seed []byte
	switch len(priv) {
	case ed25519.PrivateKeySize:
		seed = priv.Seed()
	case ed25519.SeedSize:
		seed = priv
	default:
		return nil, fmt.Errorf("%w: private key of %d bytes", ErrBadKey, len(priv))
	}
	c := curvePrivate(seed)
	x, err := ecdh.X25519().NewPrivateKey(c[:])
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return &Key{priv: x}, nil
}
