package privatebox_test

import (
	"crypto/ecdh"
	"crypto/rand"
	"testing"

	"golang.org/x/crypto/curve25519"

	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// benchContent is the size of a typical private post's JSON.
var benchContent = make([]byte, 300)

func BenchmarkBox7(b *testing.B) {
	_, feeds := newIdentities(b, 7)
	b.SetBytes(int64(len(benchContent)))
	for b.Loop() {
		if _, err := privatebox.Box(benchContent, feeds); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnbox opens a 7-recipient box: not for us (what an index scan
// meets nearly always), and for us at the first and the last slot.
func BenchmarkUnbox(b *testing.B) {
	us := newIdentity(b)
	_, feeds := newIdentities(b, 7)
	box := func(at int) []byte {
		recps := append([]refs.Feed(nil), feeds...)
		if at >= 0 {
			recps[at] = us.kp.ID
		}
		ct, err := privatebox.Box(benchContent, recps)
		if err != nil {
			b.Fatal(err)
		}
		return ct
	}
	for _, c := range []struct {
		name string
		at   int
	}{{"notForUs", -1}, {"slot1", 0}, {"slot7", 6}} {
		ct := box(c.at)
		content := b64(ct) + privatebox.Suffix
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := privatebox.Unbox(ct, us.key); ok != (c.at >= 0) || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run(c.name+"/string", func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := us.key.Unbox(content); ok != (c.at >= 0) || err != nil {
					b.Fatal(ok, err)
				}
			}
		})
	}
}

// BenchmarkX25519 is the bound of Unbox: one X25519 scalar multiplication
// per message. "ecdh" is one multiplication with a prepared private key,
// as Unbox does it. "curve25519.X25519" is the x/crypto function, which
// (in x/crypto v0.58, over crypto/ecdh) also computes the public key of
// its scalar: two multiplications.
func BenchmarkX25519(b *testing.B) {
	priv, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	other, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	point := other.PublicKey().Bytes()
	b.Run("ecdh", func(b *testing.B) {
		for b.Loop() {
			pub, err := ecdh.X25519().NewPublicKey(point)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := priv.ECDH(pub); err != nil {
				b.Fatal(err)
			}
		}
	})
	scalar := priv.Bytes()
	b.Run("curve25519.X25519", func(b *testing.B) {
		for b.Loop() {
			if _, err := curve25519.X25519(scalar, point); err != nil {
				b.Fatal(err)
			}
		}
	})
}
