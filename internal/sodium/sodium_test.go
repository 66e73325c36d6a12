package sodium

import (
	"crypto/ed25519"
	"math/big"
	"testing"
)

// A little affine Edwards25519 arithmetic in math/big, to check the
// small-order table against the curve rather than against a copy of
// libsodium's source.
var (
	fieldP  = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	curveD  = mulMod(big.NewInt(-121665), invMod(big.NewInt(121666)))
	sqrtM1  = new(big.Int).Exp(big.NewInt(2), new(big.Int).Rsh(new(big.Int).Sub(fieldP, big.NewInt(1)), 2), fieldP)
	bigOne  = big.NewInt(1)
	bigZero = big.NewInt(0)
)

func mulMod(a, b *big.Int) *big.Int { return new(big.Int).Mod(new(big.Int).Mul(a, b), fieldP) }
func addMod(a, b *big.Int) *big.Int { return new(big.Int).Mod(new(big.Int).Add(a, b), fieldP) }
func invMod(a *big.Int) *big.Int {
	return new(big.Int).ModInverse(new(big.Int).Mod(a, fieldP), fieldP)
}

type edPoint struct{ x, y *big.Int }

func decodePoint(t *testing.T, enc [32]byte) edPoint {
	t.Helper()
	sign := enc[31] >> 7
	enc[31] &= 0x7f
	y := new(big.Int).Mod(leInt(enc[:]), fieldP)
	y2 := mulMod(y, y)
	u := addMod(y2, big.NewInt(-1))
	v := addMod(mulMod(curveD, y2), bigOne)
	x2 := mulMod(u, invMod(v))
	x := new(big.Int).Exp(x2, new(big.Int).Rsh(new(big.Int).Add(fieldP, big.NewInt(3)), 3), fieldP)
	if mulMod(x, x).Cmp(x2) != 0 {
		x = mulMod(x, sqrtM1)
	}
	if mulMod(x, x).Cmp(x2) != 0 {
		t.Fatalf("%x is not on the curve", enc)
	}
	if x.Bit(0) != uint(sign) {
		x.Sub(fieldP, x).Mod(x, fieldP)
	}
	return edPoint{x, y}
}

func (p edPoint) add(q edPoint) edPoint {
	t := mulMod(curveD, mulMod(mulMod(p.x, q.x), mulMod(p.y, q.y)))
	x := mulMod(addMod(mulMod(p.x, q.y), mulMod(p.y, q.x)), invMod(addMod(bigOne, t)))
	y := mulMod(addMod(mulMod(p.y, q.y), mulMod(p.x, q.x)), invMod(addMod(bigOne, new(big.Int).Neg(t))))
	return edPoint{x, y}
}

func (p edPoint) encode() [32]byte {
	var b [32]byte
	copy(b[:], leBytes(p.y))
	b[31] |= byte(p.x.Bit(0)) << 7
	return b
}

func (p edPoint) isIdentity() bool { return p.x.Cmp(bigZero) == 0 && p.y.Cmp(bigOne) == 0 }

// TestSmallOrderTable checks that the table holds the eight points of
// order dividing 8, whatever their sign bit, and the non-canonical
// encodings of two of them.
func TestSmallOrderTable(t *testing.T) {
	t8 := decodePoint(t, smallOrder[2])
	p := edPoint{big.NewInt(0), big.NewInt(1)}
	for k := range 8 {
		if k > 0 && p.isIdentity() {
			t.Fatalf("%x has order %d, want 8", smallOrder[2], k)
		}
		enc := p.encode()
		flipped := enc
		flipped[31] ^= 0x80
		if !hasSmallOrder(enc[:]) || !hasSmallOrder(flipped[:]) {
			t.Errorf("%d·T = %x is not in the table", k, enc)
		}
		p = p.add(t8)
	}
	if !p.isIdentity() {
		t.Fatal("8·T is not the identity")
	}
	if y := decodePoint(t, smallOrder[3]).y; addMod(y, decodePoint(t, smallOrder[2]).y).Sign() != 0 {
		t.Error("the two order-8 y coordinates are not opposite")
	}
	for i, want := range []bool{true, true, true, true, true, false, false} {
		if got := isCanonicalPoint(smallOrder[i][:]); got != want {
			t.Errorf("isCanonicalPoint(%x) = %v, want %v", smallOrder[i], got, want)
		}
	}
	// An ordinary key passes both checks, and verify still verifies.
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !isCanonicalPoint(pub) || hasSmallOrder(pub) {
		t.Fatal("an ordinary key is rejected")
	}
	sig := [64]byte(ed25519.Sign(priv, []byte("m")))
	if !Verify((*[32]byte)(pub), &sig, []byte("m")) || Verify((*[32]byte)(pub), &sig, []byte("n")) {
		t.Fatal("verify disagrees with ed25519 on an ordinary signature")
	}
}

// leInt reads a little-endian integer.
func leInt(b []byte) *big.Int {
	r := make([]byte, len(b))
	for i, c := range b {
		r[len(b)-1-i] = c
	}
	return new(big.Int).SetBytes(r)
}

// leBytes writes n as 32 little-endian bytes.
func leBytes(n *big.Int) []byte {
	b := n.FillBytes(make([]byte, 32))
	for i, j := 0, len(b)-1; i < j; i, j = i+1, j-1 {
		b[i], b[j] = b[j], b[i]
	}
	return b
}

func TestVerifyBytes(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	sig := ed25519.Sign(priv, []byte("m"))
	if !VerifyBytes(pub, []byte("m"), sig) {
		t.Error("a good signature fails")
	}
	if VerifyBytes(pub, []byte("n"), sig) || VerifyBytes(pub[:31], []byte("m"), sig) || VerifyBytes(pub, []byte("m"), sig[:63]) {
		t.Error("a wrong message, a short key or a short signature passes")
	}
	var zero [32]byte // small order: crypto/ed25519 alone would not refuse it as a key
	if VerifyBytes(zero[:], []byte("m"), sig) {
		t.Error("a small-order public key passes")
	}
}
