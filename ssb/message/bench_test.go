package message_test

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// benchMessage is a message of the median size of real SSB messages
// (about 530 bytes of compact JSON, see shared/protocol/numbers.md): a
// reply post with some non-ASCII text, in the middle of its feed.
type benchMessage struct {
	state   message.FeedState
	raw     []byte
	pub     ed25519.PublicKey
	signed  []byte // the bytes the signature signs
	sig     []byte
	message *message.Message
}

func newBenchMessage(b testing.TB) *benchMessage {
	b.Helper()
	kp, err := keys.FromSeed([]byte(strings.Repeat("b", 32)))
	if err != nil {
		b.Fatal(err)
	}
	root, _ := refs.ParseMessage("%VBfEJjeNUlxLuK0eyRzVha3TLu5PPWLwsvGgnmAdPas=.sha256")
	state := message.FeedState{ID: root, Sequence: 41}
	content := map[string]any{
		"type":   "post",
		"root":   root.String(),
		"branch": root.String(),
		"text":   "Thanks for the write-up! It works on my pub — much faster now ☕",
	}
	m, err := message.Create(kp, nil, &state, 1700000000123, content)
	if err != nil {
		b.Fatal(err)
	}
	pretty := m.Pretty()
	sigField := ",\n  \"signature\": \"" + m.Signature + "\"\n}"
	signed := append([]byte(strings.TrimSuffix(string(pretty), sigField)), "\n}"...)
	sig := kp.Sign(signed)
	if !ed25519.Verify(kp.Public, signed, sig) || string(sig) != string(mustDecodeSig(b, m.Signature)) {
		b.Fatal("benchmark message: unsigned form not recovered")
	}
	return &benchMessage{state: state, raw: m.Raw, pub: kp.Public, signed: signed, sig: sig, message: m}
}

func mustDecodeSig(b testing.TB, s string) []byte {
	b.Helper()
	sig := make([]byte, 64)
	if err := refs.DecodeBase64(sig, strings.TrimSuffix(s, message.SignatureSuffix)); err != nil {
		b.Fatal(err)
	}
	return sig
}

func reportRate(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkValidate is the full validation of one median-size message:
// parse, shape checks, canonical form, signature, id, compact form.
// Compare it with BenchmarkEd25519Verify, the bound.
func BenchmarkValidate(b *testing.B) {
	bm := newBenchMessage(b)
	b.SetBytes(int64(len(bm.raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := message.Validate(&bm.state, bm.raw, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

// BenchmarkEd25519Verify is crypto/ed25519.Verify alone on the same
// message's signed bytes.
func BenchmarkEd25519Verify(b *testing.B) {
	bm := newBenchMessage(b)
	b.SetBytes(int64(len(bm.raw)))
	for b.Loop() {
		if !ed25519.Verify(bm.pub, bm.signed, bm.sig) {
			b.Fatal("verify failed")
		}
	}
	reportRate(b)
}

// BenchmarkValidateParallel and BenchmarkEd25519VerifyParallel run on
// every core (GOMAXPROCS goroutines).
func BenchmarkValidateParallel(b *testing.B) {
	bm := newBenchMessage(b)
	b.SetBytes(int64(len(bm.raw)))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := message.Validate(&bm.state, bm.raw, nil); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b)
}

func BenchmarkEd25519VerifyParallel(b *testing.B) {
	bm := newBenchMessage(b)
	b.SetBytes(int64(len(bm.raw)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if !ed25519.Verify(bm.pub, bm.signed, bm.sig) {
				b.Error("verify failed")
				return
			}
		}
	})
	reportRate(b)
}

// BenchmarkDecode is everything Validate does but the signature check.
func BenchmarkDecode(b *testing.B) {
	bm := newBenchMessage(b)
	b.SetBytes(int64(len(bm.raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := message.Decode(bm.raw); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkCreate(b *testing.B) {
	bm := newBenchMessage(b)
	kp, _ := keys.FromSeed([]byte(strings.Repeat("b", 32)))
	content := message.Value{}
	_ = content.UnmarshalJSON(bm.message.Content)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := message.Create(kp, nil, &bm.state, 1700000000123, content); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b)
}

func BenchmarkParse(b *testing.B) {
	bm := newBenchMessage(b)
	b.SetBytes(int64(len(bm.raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := message.Parse(bm.raw); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBenchMessageSize(t *testing.T) {
	bm := newBenchMessage(t)
	if n := len(bm.raw); n < 480 || n > 580 {
		t.Fatalf("benchmark message has %d bytes, want about 530", n)
	}
}
