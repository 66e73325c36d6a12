package message

import (
	"crypto/ed25519"
	"math/big"
	"testing"

	"github.com/scuttlego/scuttle/ssb/refs"
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
	if !verify((*[32]byte)(pub), &sig, []byte("m")) || verify((*[32]byte)(pub), &sig, []byte("n")) {
		t.Fatal("verify disagrees with ed25519 on an ordinary signature")
	}
}

func TestDecodeRune(t *testing.T) {
	for _, c := range []struct {
		in   string
		r    rune
		size int
	}{
		{"a", 'a', 1}, {"é", 'é', 2}, {"\xe2\x82A", 0xfffd, 2}, {"\xf0\x9f\x98", 0xfffd, 3}, {"\xed\xa0\x80", 0xfffd, 1},
		{"\xe0\x80", 0xfffd, 1}, {"\xf4\x90", 0xfffd, 1}, {"\xc2", 0xfffd, 1}, {"\xff", 0xfffd, 1}, {"\ufffd", 0xfffd, 3},
	} {
		if r, n := decodeRune(c.in); r != c.r || n != c.size {
			t.Errorf("decodeRune(%q) = %U, %d; want %U, %d", c.in, r, n, c.r, c.size)
		}
	}
}

func TestLooseEquals(t *testing.T) {
	const id = "%J9EdQmDUR9+p8SN250e3ZHOCvrBvOql9ilHUdm0rn6s=.sha256"
	for in, want := range map[string]bool{
		`"` + id + `"`: true, `["` + id + `"]`: true, `[["` + id + `"]]`: true, `[null,"x"]`: false,
		`{}`: false, `1`: false, `null`: false, `true`: false, `["` + id + `",null]`: false, `[]`: false,
	} {
		v, err := Parse([]byte(in))
		if err != nil {
			t.Fatal(err)
		}
		ref, err := refs.ParseMessage(id)
		if err != nil {
			t.Fatal(err)
		}
		if got := looseEqualsMessageID(&v, ref); got != want {
			t.Errorf("%s == id: %v, want %v", in, got, want)
		}
	}
	v, _ := Parse([]byte(`[null,true,1e21,1e400,-1e400,"s",[1,[2]],{}]`))
	if got, want := string(appendJSString(nil, &v)), ",true,1e+21,Infinity,-Infinity,s,1,2,[object Object]"; got != want {
		t.Errorf("String(v) = %q, want %q", got, want)
	}
	if got := string(appendJSString(nil, &Value{kind: Number, num: nan()})); got != "NaN" {
		t.Errorf("String(NaN) = %q", got)
	}
}
