// Package sodium checks ed25519 signatures as libsodium 1.0.18 does
// (crypto_sign_verify_detached), which the JavaScript peers use through
// chloride and sodium-native: a Go peer must reject what they reject, or it
// would accept and relay what they drop.
package sodium

import "crypto/ed25519"

// Verify reports whether sig is pub's signature of msg under the rules of
// libsodium's crypto_sign_verify_detached. On top of what crypto/ed25519
// checks (a canonical S, a public key that decodes, the cofactorless
// equation), libsodium rejects a public key with a non-canonical encoding,
// and a public key or R of small order.
func Verify(pub *[32]byte, sig *[ed25519.SignatureSize]byte, msg []byte) bool {
	if !isCanonicalPoint(pub[:]) || hasSmallOrder(pub[:]) || hasSmallOrder(sig[:32]) {
		return false
	}
	return ed25519.Verify(pub[:], msg, sig[:])
}

// isCanonicalPoint reports whether the encoded y of a point is below the
// field prime 2^255-19 (libsodium ge25519_is_canonical).
func isCanonicalPoint(s []byte) bool {
	if s[31]&0x7F != 0x7F || s[0] < 0xED {
		return true
	}
	for _, c := range s[1:31] {
		if c != 0xFF {
			return true
		}
	}
	return false
}

// smallOrder lists the encodings libsodium's ge25519_has_small_order
// rejects, sign bit aside: the points of order 1, 2, 4 and 8, and the
// non-canonical encodings of order 1 and 4.
var smallOrder = [7][32]byte{
	{},     // 0 (order 4)
	{0x01}, // 1 (order 1)
	{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0, // order 8
		0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
	{0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67, 0x0f, // order 8
		0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
	ff(0xec), // p-1 (order 2)
	ff(0xed), // p (order 4)
	ff(0xee), // p+1 (order 1)
}

// ff returns the little-endian encoding of 2^255 - 256 + low.
func ff(low byte) [32]byte {
	var b [32]byte
	for i := range b {
		b[i] = 0xFF
	}
	b[0], b[31] = low, 0x7F
	return b
}

func hasSmallOrder(s []byte) bool {
	for i := range smallOrder {
		bad := &smallOrder[i]
		if [31]byte(s[:31]) == [31]byte(bad[:31]) && s[31]&0x7F == bad[31] {
			return true
		}
	}
	return false
}

// VerifyBytes is Verify for slices: a public key that is not 32 bytes or a
// signature that is not 64 fails.
func VerifyBytes(pub, msg, sig []byte) bool {
	if len(pub) != 32 || len(sig) != ed25519.SignatureSize {
		return false
	}
	return Verify((*[32]byte)(pub), (*[ed25519.SignatureSize]byte)(sig), msg)
}
