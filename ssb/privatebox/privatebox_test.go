package privatebox_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"testing"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// identity is a keypair and its opening key.
type identity struct {
	kp  *keys.KeyPair
	key *privatebox.Key
}

func newIdentity(t testing.TB) identity {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := privatebox.NewKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	return identity{kp, k}
}

func newIdentities(t testing.TB, n int) ([]identity, []refs.Feed) {
	t.Helper()
	ids := make([]identity, n)
	feeds := make([]refs.Feed, n)
	for i := range ids {
		ids[i] = newIdentity(t)
		feeds[i] = ids[i].kp.ID
	}
	return ids, feeds
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// mustOpen opens ct with k and fails unless it gives want.
func mustOpen(t *testing.T, what string, k *privatebox.Key, ct, want []byte) {
	t.Helper()
	got, ok, err := privatebox.Unbox(ct, k)
	if err != nil || !ok {
		t.Fatalf("%s: Unbox = ok %v, err %v; want the plaintext", what, ok, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: plaintext of %d bytes differs from the %d boxed", what, len(got), len(want))
	}
}

// mustNotOpen fails unless opening ct with k gives no plaintext, and, if
// wantErr, an error wrapping ErrMalformed, else none.
func mustNotOpen(t *testing.T, what string, k *privatebox.Key, ct []byte, wantErr bool) {
	t.Helper()
	got, ok, err := privatebox.Unbox(ct, k)
	if ok || got != nil {
		t.Fatalf("%s: Unbox = %d bytes, ok %v; want nothing", what, len(got), ok)
	}
	if wantErr && !errors.Is(err, privatebox.ErrMalformed) {
		t.Fatalf("%s: err = %v, want ErrMalformed", what, err)
	}
	if !wantErr && err != nil {
		t.Fatalf("%s: err = %v, want none (not for us)", what, err)
	}
}

func TestBoxOpensForEachRecipientOnly(t *testing.T) {
	stranger := newIdentity(t)
	for n := 1; n <= privatebox.MaxRecipients; n++ {
		ids, feeds := newIdentities(t, n)
		for _, size := range []int{0, 1, 1000, 100 << 10} {
			plain := randomBytes(t, size)
			ct, err := privatebox.Box(plain, feeds)
			if err != nil {
				t.Fatal(err)
			}
			if want := privatebox.SlotsStart + n*privatebox.SlotSize + size + 16; len(ct) != want {
				t.Fatalf("%d recipients, %d bytes: box of %d bytes, want %d", n, size, len(ct), want)
			}
			for i, id := range ids {
				mustOpen(t, fmt.Sprintf("%d recipients, %d bytes, recipient %d", n, size, i), id.key, ct, plain)
			}
			mustNotOpen(t, fmt.Sprintf("%d recipients: stranger", n), stranger.key, ct, false)
		}
	}
}

func TestBoxIsFreshEachTime(t *testing.T) {
	_, feeds := newIdentities(t, 1)
	a, err := privatebox.Box([]byte("same"), feeds)
	if err != nil {
		t.Fatal(err)
	}
	b, err := privatebox.Box([]byte("same"), feeds)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[:privatebox.NonceSize], b[:privatebox.NonceSize]) {
		t.Fatal("two boxes share a nonce")
	}
	if bytes.Equal(a[privatebox.NonceSize:privatebox.SlotsStart], b[privatebox.NonceSize:privatebox.SlotsStart]) {
		t.Fatal("two boxes share a one-time key")
	}
}

func TestBoxStringOpens(t *testing.T) {
	ids, feeds := newIdentities(t, 2)
	plain := []byte(`{"type":"post","text":"hi"}`)
	s, err := privatebox.BoxString(plain, feeds)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []privatebox.Unboxer{ids[1].key, privatebox.NewUnboxer(ids[1].key)} {
		got, ok, err := u.Unbox(s)
		if err != nil || !ok || !bytes.Equal(got, plain) {
			t.Fatalf("%T.Unbox = %q, %v, %v", u, got, ok, err)
		}
	}
	got, ok, err := privatebox.UnboxString(s, ids[0].key)
	if err != nil || !ok || !bytes.Equal(got, plain) {
		t.Fatalf("UnboxString = %q, %v, %v", got, ok, err)
	}
}

func TestBoxRecipientCount(t *testing.T) {
	_, feeds := newIdentities(t, privatebox.MaxRecipients+1)
	for _, n := range []int{0, privatebox.MaxRecipients + 1} {
		if ct, err := privatebox.Box([]byte("x"), feeds[:n]); !errors.Is(err, privatebox.ErrRecipients) || ct != nil {
			t.Errorf("%d recipients: err = %v, want ErrRecipients", n, err)
		}
		if s, err := privatebox.BoxString([]byte("x"), feeds[:n]); !errors.Is(err, privatebox.ErrRecipients) || s != "" {
			t.Errorf("BoxString, %d recipients: err = %v, want ErrRecipients", n, err)
		}
	}
}

// order8 is a point of order 8 (libsodium's small-order list).
var order8 = [32]byte{0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98, 0xf0,
	0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05}

// badFeeds returns feed ids that libsodium will not convert to X25519: the
// zero key (small order), an order-8 point, a real key plus an order-8
// point (outside the prime-order subgroup), and an encoding that is not a
// point.
func badFeeds(t testing.TB) map[string]refs.Feed {
	t.Helper()
	good := newIdentity(t).kp.Public
	p, err := new(edwards25519.Point).SetBytes(good)
	if err != nil {
		t.Fatal(err)
	}
	tor, err := new(edwards25519.Point).SetBytes(order8[:])
	if err != nil {
		t.Fatal(err)
	}
	notPoint := make([]byte, 32)
	notPoint[0] = 2 // y = 2 has no x on the curve
	feed := func(b []byte) refs.Feed {
		f, err := refs.ParseFeed("@" + base64.StdEncoding.EncodeToString(b) + ".ed25519")
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	if _, err := new(edwards25519.Point).SetBytes(notPoint); err == nil {
		t.Fatal("y = 2 decoded as a point")
	}
	return map[string]refs.Feed{
		"zero":          feed(make([]byte, 32)),
		"order 8":       feed(order8[:]),
		"mixed torsion": feed(new(edwards25519.Point).Add(p, tor).Bytes()),
		"not a point":   feed(notPoint),
	}
}

func TestBoxRefusesBadRecipientKeys(t *testing.T) {
	_, feeds := newIdentities(t, 1)
	for name, bad := range badFeeds(t) {
		if _, err := privatebox.Box([]byte("x"), []refs.Feed{feeds[0], bad}); !errors.Is(err, privatebox.ErrBadKey) {
			t.Errorf("%s: err = %v, want ErrBadKey", name, err)
		}
	}
}

func TestNewKey(t *testing.T) {
	id := newIdentity(t)
	fromSeed, err := privatebox.NewKey(id.kp.Private.Seed())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fromSeed.PublicKey(), id.key.PublicKey()) {
		t.Fatal("the seed and the 64-byte key give different X25519 keys")
	}
	// The X25519 public key is the Montgomery form of the Ed25519 one.
	p, err := new(edwards25519.Point).SetBytes(id.kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.BytesMontgomery(), id.key.PublicKey()) {
		t.Fatal("X25519 public key is not the Montgomery form of the Ed25519 key")
	}
	for _, n := range []int{0, 31, 33, 63, 65} {
		if _, err := privatebox.NewKey(make([]byte, n)); !errors.Is(err, privatebox.ErrBadKey) {
			t.Errorf("key of %d bytes: err = %v, want ErrBadKey", n, err)
		}
	}
}

func TestOpenTruncated(t *testing.T) {
	ids, feeds := newIdentities(t, 2)
	plain := []byte("a short secret")
	ct, err := privatebox.Box(plain, feeds)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(ct) {
		what := fmt.Sprintf("first %d of %d bytes", n, len(ct))
		got, ok, err := privatebox.Unbox(ct[:n], ids[1].key)
		if ok || got != nil {
			t.Fatalf("%s: opened", what)
		}
		if n < privatebox.MinSize && !errors.Is(err, privatebox.ErrMalformed) {
			t.Fatalf("%s: err = %v, want ErrMalformed", what, err)
		}
	}
	mustOpen(t, "whole", ids[1].key, ct, plain)
}

func TestOpenBitFlips(t *testing.T) {
	ids, feeds := newIdentities(t, 2)
	plain := []byte("0123456789")
	ct, err := privatebox.Box(plain, feeds)
	if err != nil {
		t.Fatal(err)
	}
	body := privatebox.SlotsStart + 2*privatebox.SlotSize
	// X25519 ignores the top bit of a public key (RFC 7748), libsodium as
	// well: flipping that bit of the one-time key changes nothing.
	ignored := 8*privatebox.SlotsStart - 1
	for i := range len(ct) * 8 {
		bad := bytes.Clone(ct)
		bad[i/8] ^= 1 << (i % 8)
		what := fmt.Sprintf("bit %d flipped", i)
		for j, id := range ids {
			slot := (i/8 - privatebox.SlotsStart) / privatebox.SlotSize
			if i == ignored || i/8 >= privatebox.SlotsStart && i/8 < body && slot != j {
				mustOpen(t, what+" (ignored bit or another's slot)", id.key, bad, plain)
				continue
			}
			got, ok, err := privatebox.Unbox(bad, id.key)
			if ok || got != nil {
				t.Fatalf("%s: opened", what)
			}
			if i/8 >= body && !errors.Is(err, privatebox.ErrMalformed) {
				t.Fatalf("%s (in the body): err = %v, want ErrMalformed", what, err)
			}
		}
	}
}

func TestOpenSmallOrderOneTimeKey(t *testing.T) {
	ids, feeds := newIdentities(t, 1)
	ct, err := privatebox.Box([]byte("x"), feeds)
	if err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string][]byte{"zero": make([]byte, 32), "one": {1}} {
		bad := bytes.Clone(ct)
		copy(bad[privatebox.NonceSize:privatebox.SlotsStart], make([]byte, 32))
		copy(bad[privatebox.NonceSize:], key)
		_, ok, err := privatebox.Unbox(bad, ids[0].key)
		if ok || !errors.Is(err, privatebox.ErrMalformed) || !errors.Is(err, privatebox.ErrBadKey) {
			t.Errorf("one-time key %s: ok %v, err %v; want ErrMalformed and ErrBadKey", name, ok, err)
		}
	}
	mustNotOpen(t, "all zero", ids[0].key, make([]byte, 300), true)
}

// craft builds a box by hand: slots for recipients (X25519 public keys),
// each holding header count n, and the body.
func craft(t testing.TB, recipients [][]byte, n byte, plain []byte) []byte {
	t.Helper()
	eph, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var nonce [24]byte
	var y [32]byte
	copy(nonce[:], randomBytes(t, 24))
	copy(y[:], randomBytes(t, 32))
	out := append(nonce[:], eph.PublicKey().Bytes()...)
	for _, r := range recipients {
		pub, err := ecdh.X25519().NewPublicKey(r)
		if err != nil {
			t.Fatal(err)
		}
		shared, err := eph.ECDH(pub)
		if err != nil {
			t.Fatal(err)
		}
		out = secretbox.Seal(out, append([]byte{n}, y[:]...), &nonce, (*[32]byte)(shared))
	}
	return secretbox.Seal(out, plain, &nonce, &y)
}

func TestOpenHeaderCount(t *testing.T) {
	ids, _ := newIdentities(t, 2)
	two := [][]byte{ids[0].key.PublicKey(), ids[1].key.PublicKey()}
	plain := []byte("hello")
	mustOpen(t, "crafted, count 2", ids[1].key, craft(t, two, 2, plain), plain)
	for _, n := range []byte{0, 3, 7, 8, 255} {
		ct := craft(t, two, n, plain)
		for i, id := range ids {
			mustNotOpen(t, fmt.Sprintf("count %d, slot %d", n, i), id.key, ct, true)
		}
	}
	// A count that puts the body past the end of the box.
	ct := craft(t, two[:1], 7, nil)
	mustNotOpen(t, "count 7, one slot, empty body", ids[0].key, ct, true)
}

// TestOpenTriesSevenSlots: a box with 8 slots (private-box makes one only
// with an explicit max) is refused by the first seven recipients, whose
// header claims 8, and the eighth slot is not tried.
func TestOpenTriesSevenSlots(t *testing.T) {
	ids, _ := newIdentities(t, 8)
	var pubs [][]byte
	for _, id := range ids {
		pubs = append(pubs, id.key.PublicKey())
	}
	ct := craft(t, pubs, 8, []byte("x"))
	for i, id := range ids[:7] {
		mustNotOpen(t, fmt.Sprintf("slot %d of 8", i), id.key, ct, true)
	}
	mustNotOpen(t, "slot 8 of 8", ids[7].key, ct, false)
}

func TestUnboxStringMalformed(t *testing.T) {
	id := newIdentity(t)
	s, err := privatebox.BoxString([]byte("x"), []refs.Feed{id.kp.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", ".box", "abc", s[:len(s)-4], s + "x", "!!!!" + s, s[:5] + "*" + s[6:], "AAAA.box"} {
		got, ok, err := id.key.Unbox(bad)
		if ok || got != nil || !errors.Is(err, privatebox.ErrMalformed) {
			t.Errorf("%.20q: %d bytes, ok %v, err %v; want ErrMalformed", bad, len(got), ok, err)
		}
	}
	u := privatebox.NewUnboxer(id.key)
	for _, bad := range []string{"", "abc", s + "2", "x.box2", "x.cloaked"} {
		got, ok, err := u.Unbox(bad)
		if ok || got != nil || !errors.Is(err, privatebox.ErrFormat) {
			t.Errorf("Formats %.20q: %d bytes, ok %v, err %v; want ErrFormat", bad, len(got), ok, err)
		}
	}
}

// box2 is a stand-in second format: it "opens" any content ending in
// ".box2" to its text before the suffix, and gives no read key.
type box2 struct{}

func (box2) Unbox(content string) ([]byte, bool, error) {
	return []byte(content[:len(content)-len(".box2")]), true, nil
}

// A second format plugs in beside ".box" by its suffix: Formats routes
// each content string to its format, and UnboxKey gives private-box's
// read key (the 33 bytes of our slot, which open the body) and none for a
// format without one.
func TestFormatsSecondFormat(t *testing.T) {
	id := newIdentity(t)
	s, err := privatebox.BoxString([]byte(`{"a":1}`), []refs.Feed{id.kp.ID})
	if err != nil {
		t.Fatal(err)
	}
	u := privatebox.NewUnboxer(id.key)
	u[".box2"] = box2{}
	plain, rk, ok, err := u.UnboxKey(s)
	if !ok || err != nil || string(plain) != `{"a":1}` || len(rk) != 33 || rk[0] != 1 {
		t.Fatalf("UnboxKey of a box: %q %x %v %v", plain, rk, ok, err)
	}
	ct, _ := privatebox.Decode(s)
	if body, err := privatebox.OpenBody(ct, privatebox.ReadKey(rk)); err != nil || string(body) != `{"a":1}` {
		t.Errorf("OpenBody with the read key: %q %v", body, err)
	}
	plain, rk, ok, err = u.UnboxKey("hello.box2")
	if !ok || err != nil || string(plain) != "hello" || rk != nil {
		t.Errorf("UnboxKey of the second format: %q %x %v %v", plain, rk, ok, err)
	}
	if !u.Has("x.box2") || !u.Has(s) || u.Has("x.box3") {
		t.Error("Has does not follow the formats")
	}
}
