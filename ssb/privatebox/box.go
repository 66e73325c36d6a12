package privatebox

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"

	"golang.org/x/crypto/nacl/secretbox"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Box encrypts plaintext for the recipients (1 to MaxRecipients feeds),
// with a fresh random nonce, body key and one-time key, as private-box's
// multibox does. Each recipient, in the order given, gets one slot.
func Box(plaintext []byte, recipients []refs.Feed) ([]byte, error) {
	return boxWith(rand.Reader, plaintext, recipients)
}

// BoxString is Box in the form ssb-keys.box returns and a message's content
// holds: base64(ciphertext) + ".box". For a message, plaintext is
// JSON.stringify(content).
func BoxString(plaintext []byte, recipients []refs.Feed) (string, error) {
	ct, err := Box(plaintext, recipients)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(ct) + Suffix, nil
}

func boxWith(rnd io.Reader, plaintext []byte, recipients []refs.Feed) ([]byte, error) {
	n := len(recipients)
	if n < 1 || n > MaxRecipients {
		return nil, fmt.Errorf("%w: got %d", ErrRecipients, n)
	}
	curves := make([][32]byte, n)
	for i, r := range recipients {
		c, err := curvePublic(r.PublicKey())
		if err != nil {
			return nil, fmt.Errorf("privatebox: recipient %s: %w", r, err)
		}
		curves[i] = c
	}

	var nonce [nonceSize]byte
	var header [headerSize]byte // [n] ‖ body key
	var oneTime [32]byte
	if _, err := io.ReadFull(rnd, nonce[:]); err != nil {
		return nil, fmt.Errorf("privatebox: random nonce: %w", err)
	}
	if _, err := io.ReadFull(rnd, header[1:]); err != nil {
		return nil, fmt.Errorf("privatebox: random key: %w", err)
	}
	if _, err := io.ReadFull(rnd, oneTime[:]); err != nil {
		return nil, fmt.Errorf("privatebox: random one-time key: %w", err)
	}
	header[0] = byte(n)
	// crypto/ecdh computes the one-time public key once, here; each
	// recipient then costs one scalar multiplication.
	eph, err := ecdh.X25519().NewPrivateKey(oneTime[:])
	if err != nil {
		return nil, fmt.Errorf("privatebox: one-time key: %w", err)
	}

	out := make([]byte, 0, slotsStart+n*slotSize+len(plaintext)+tagSize)
	out = append(out, nonce[:]...)
	out = append(out, eph.PublicKey().Bytes()...)
	for i := range curves {
		shared, err := dh(eph, curves[i][:])
		if err != nil { // curvePublic refused small orders; kept as a guard
			return nil, fmt.Errorf("privatebox: recipient %s: %w", recipients[i], err)
		}
		out = secretbox.Seal(out, header[:], &nonce, &shared)
	}
	bodyKey := [32]byte(header[1:])
	return secretbox.Seal(out, plaintext, &nonce, &bodyKey), nil
}
