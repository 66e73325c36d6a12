package message

import (
	"crypto/ed25519"
	"fmt"
	"strings"

	"golang.org/x/crypto/nacl/auth"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// HMACKeySize is the length of an HMAC signing key (ssb-caps' "sign").
const HMACKeySize = auth.KeySize

// SignatureSuffix ends every signature of a classic feed.
const SignatureSuffix = ".sig.ed25519"

// ParseHMACKey decodes an HMAC signing key given as base64, as ssb-validate
// accepts it: canonical standard base64 of exactly 32 bytes.
func ParseHMACKey(s string) ([]byte, error) {
	key := make([]byte, HMACKeySize)
	if err := refs.DecodeBase64(key, s); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHMACKey, err)
	}
	return key, nil
}

func checkHMACKey(key []byte) error {
	if len(key) != 0 && len(key) != HMACKeySize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrHMACKey, len(key), HMACKeySize)
	}
	return nil
}

// signedBytes returns what the signature signs: the canonical JSON of the
// unsigned message, or with an HMAC key its crypto_auth (HMAC-SHA-512-256)
// under that key, as ssb-keys signObj and verifyObj do.
func signedBytes(pretty, hmacKey []byte) []byte {
	if len(hmacKey) == 0 {
		return pretty
	}
	var k [HMACKeySize]byte
	copy(k[:], hmacKey)
	sum := auth.Sum(pretty, &k)
	return sum[:]
}

// parseSignature checks a message's signature as ssb-validate does: a
// string of canonical base64 of 64 bytes followed by ".sig.ed25519" (the
// author's curve).
func parseSignature(v *Value, sig *[ed25519.SignatureSize]byte) error {
	if v.kind != String {
		return fmt.Errorf("%w: signature is a %v, not a string", ErrSignature, v.kind)
	}
	b64, ok := strings.CutSuffix(v.str, SignatureSuffix)
	if !ok {
		return fmt.Errorf("%w: signature must end with %q", ErrSignature, SignatureSuffix)
	}
	if !decodeBase64(sig[:], b64) {
		err := refs.DecodeBase64(sig[:], b64)
		return fmt.Errorf("%w: signature: %w", ErrSignature, err)
	}
	return nil
}
