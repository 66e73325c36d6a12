package privatebox

import (
	"crypto/ed25519"
	"crypto/sha512"
	"fmt"

	"filippo.io/edwards25519"
)

// lMinusOne is the group order L minus one, little-endian: multiplying a
// point by it and adding the point gives L·P, the identity exactly when P
// lies in the prime-order subgroup.
var lMinusOne = func() *edwards25519.Scalar {
	b := [32]byte{
		0xec, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
	}
	s, err := edwards25519.NewScalar().SetCanonicalBytes(b[:])
	if err != nil {
		panic(err) // a constant
	}
	return s
}()

// curvePublic converts an Ed25519 public key to X25519 and refuses what
// libsodium's crypto_sign_ed25519_pk_to_curve25519 refuses (the function
// ssb-keys.box calls): an encoding that is not a point, a point of small
// order, or one outside the prime-order subgroup.
func curvePublic(pub ed25519.PublicKey) ([32]byte, error) {
	var out [32]byte
	if len(pub) != ed25519.PublicKeySize {
		return out, fmt.Errorf("%w: public key of %d bytes", ErrBadKey, len(pub))
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return out, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	id := edwards25519.NewIdentityPoint()
	if new(edwards25519.Point).MultByCofactor(p).Equal(id) == 1 {
		return out, fmt.Errorf("%w: public key of small order", ErrBadKey)
	}
	// Variable time is fine: the key is public.
	l := new(edwards25519.Point).VarTimeDoubleScalarBaseMult(lMinusOne, p, edwards25519.NewScalar())
	if l.Add(l, p).Equal(id) != 1 {
		return out, fmt.Errorf("%w: public key outside the prime-order subgroup", ErrBadKey)
	}
	copy(out[:], p.BytesMontgomery())
	return out, nil
}

// curvePrivate converts an Ed25519 seed to its X25519 scalar: the clamped
// first half of SHA-512(seed).
func curvePrivate(seed []byte) [32]byte {
	h := sha512.Sum512(seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return [32]byte(h[:32])
}
