package gossip_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/ssb/keys"
)

// The envelope secure-gossip@0.3.1 writes for publish({hello:"world",n:1})
// with keys from the seed "a"×32 (../shared/protocol/scuttlebutt.md, B1,
// seen on the wire from the real package).
const jsVector = `{"data":{"hello":"world","n":1,"signature":"NtGmr6/N7Tm+cZQ7UnhBbnJqSeWt7A/RRXdsi/4dfqKldMZ33rCw3qniz9wv/fBbKR27FmDFtbDImE6/k9DjAA==.sig.ed25519"},"public":"rwaj4ykXFOTzVsGcmxXNGVHsbmZiqne+B1R/KJODNB0=.ed25519","seq":0}`

func newNode(t testing.TB, seed string, cfg gossip.Config) *gossip.Node {
	t.Helper()
	if seed != "" {
		cfg.Keys = mustKeys(t, seed)
	}
	n, err := gossip.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestJavaScriptVector(t *testing.T) {
	kp := mustKeys(t, strings.Repeat("a", 32))
	if got := string(jsEnvelope(t, kp, `{"hello":"world","n":1}`, 0)); got != jsVector {
		t.Fatalf("our JavaScript-style envelope differs from the vector:\n got %s\nwant %s", got, jsVector)
	}
	n := newNode(t, "receiver", gossip.Config{})
	l := n.AddLink()
	m, err := n.Receive(l, []byte(jsVector))
	if err != nil || m == nil {
		t.Fatalf("Receive(vector) = %v, %v", m, err)
	}
	if m.Public != "rwaj4ykXFOTzVsGcmxXNGVHsbmZiqne+B1R/KJODNB0=.ed25519" || m.Seq != 0 || m.SignedSeq {
		t.Errorf("message = %+v", m)
	}
	if string(m.Data) != `{"hello":"world","n":1}` {
		t.Errorf("Data = %s", m.Data)
	}
	if string(m.Raw) != jsVector {
		t.Errorf("Raw = %s", m.Raw)
	}
	if !m.PublicKey().Equal(kp.Public) {
		t.Errorf("PublicKey() = %x", m.PublicKey())
	}
}

// A Go message carries its seq inside data, signed, and keeps
// secure-gossip's envelope.
func TestPublishFormat(t *testing.T) {
	now := fixedClock(1_700_000_000_000_000)
	n := newNode(t, strings.Repeat("a", 32), gossip.Config{Now: now.Now})
	m, err := n.Publish([]byte(`{"hello":"world","n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"data":{"hello":"world","n":1,"gossip:seq":1700000000000000,"signature":"`
	if !strings.HasPrefix(string(m.Raw), want) || !strings.HasSuffix(string(m.Raw), `.sig.ed25519"},"public":"rwaj4ykXFOTzVsGcmxXNGVHsbmZiqne+B1R/KJODNB0=.ed25519","seq":1700000000000000}`) {
		t.Fatalf("published %s", m.Raw)
	}
	if m.Seq != 1700000000000000 || !m.SignedSeq || string(m.Data) != `{"hello":"world","n":1}` {
		t.Errorf("message = %+v", m)
	}
	m2, _ := n.Publish(map[string]any{"hello": "world", "n": 1})
	if m2.Seq != m.Seq+1 || m2.ID == m.ID {
		t.Errorf("second message: seq %d, same ID %v", m2.Seq, m2.ID == m.ID)
	}
	for _, bad := range []string{`"text"`, `[1]`, `{"signature":"x"}`, `{"gossip:seq":1}`, `{"__proto__":{}}`, `{`} {
		if _, err := n.Publish([]byte(bad)); !errors.Is(err, gossip.ErrPayload) {
			t.Errorf("Publish(%s) = %v, want ErrPayload", bad, err)
		}
	}
	big := `{"x":"` + strings.Repeat("y", gossip.DefaultMaxMessage) + `"}`
	if _, err := n.Publish([]byte(big)); !errors.Is(err, gossip.ErrTooLarge) {
		t.Errorf("Publish(64 KiB) = %v, want ErrTooLarge", err)
	}
}

// Bad input of every kind is dropped and counted, and the link goes on.
func TestBadInput(t *testing.T) {
	pub := mustKeys(t, "publisher")
	good := jsEnvelope(t, pub, `{"a":1}`, 0)
	other := mustKeys(t, "other")
	forged := strings.Replace(string(jsEnvelope(t, pub, `{"a":2}`, 1)), `"a":2`, `"a":3`, 1)
	wrongKey := strings.Replace(string(jsEnvelope(t, other, `{"a":4}`, 1)), base64Public(other), base64Public(pub), 1)
	cases := []struct {
		line string
		want error
	}{
		{`not json`, gossip.ErrSyntax},
		{`{"data":`, gossip.ErrSyntax},
		{`123`, gossip.ErrShape},
		{`{}`, gossip.ErrShape},
		{`{"data":{},"public":"x.ed25519","seq":0}`, gossip.ErrShape},
		{strings.Replace(string(good), `"seq":0`, `"seq":-1`, 1), gossip.ErrShape},
		{strings.Replace(string(good), `"seq":0`, `"seq":0.5`, 1), gossip.ErrShape},
		{strings.Replace(string(good), `"seq":0`, `"seq":"0"`, 1), gossip.ErrShape},
		{strings.Replace(string(good), `=.ed25519","seq"`, `=.k256","seq"`, 1), gossip.ErrCurve},
		{strings.Replace(string(good), `"seq":0`, `"seq":0,"curve":"k256"`, 1), gossip.ErrCurve},
		{strings.Replace(string(good), `.sig.ed25519`, `.sig.k256`, 1), gossip.ErrSignature},
		{strings.Replace(string(good), `"signature"`, `"sig"`, 1), gossip.ErrSignature},
		{forged, gossip.ErrSignature},
		{wrongKey, gossip.ErrSignature},
		{`{"data":{"x":"` + strings.Repeat("y", gossip.DefaultMaxMessage) + `"}}`, gossip.ErrTooLarge},
	}
	n := newNode(t, "receiver", gossip.Config{})
	l := n.AddLink()
	for _, c := range cases {
		m, err := n.Receive(l, []byte(c.line))
		if m != nil || !errors.Is(err, c.want) {
			t.Errorf("Receive(%.80s) = %v, %v; want %v", c.line, m, err, c.want)
		}
	}
	s := n.Stats()
	if s.Invalid() != uint64(len(cases)) || s.BadJSON != 2 || s.BadCurve != 2 || s.BadSignature != 4 || s.TooLarge != 1 {
		t.Errorf("stats = %+v", s)
	}
	// The invalid lines were interleaved with nothing valid, but fewer than
	// GarbageLimit in a row... here 15: one more would close the link.
	if !n.HasLink(l) {
		t.Fatal("the link was closed")
	}
	if m, err := n.Receive(l, good); m == nil || err != nil {
		t.Fatalf("a good line after bad ones: %v, %v", m, err)
	}
	for i := range gossip.DefaultGarbageLimit {
		_, err := n.Receive(l, []byte("garbage"))
		if closed := errors.Is(err, gossip.ErrGarbage); closed != (i == gossip.DefaultGarbageLimit-1) {
			t.Fatalf("garbage line %d: %v", i+1, err)
		}
	}
	if n.HasLink(l) {
		t.Error("a link sending only garbage stays open")
	}
	if _, err := n.Receive(l, good); !errors.Is(err, gossip.ErrClosed) {
		t.Errorf("Receive on a closed link = %v", err)
	}
}

func base64Public(kp *keys.KeyPair) string { return base64.StdEncoding.EncodeToString(kp.Public) }

// A clock is a manual clock for Nodes.
type clock struct{ t time.Time }

func fixedClock(us int64) *clock { return &clock{time.UnixMicro(us)} }

func (c *clock) Now() time.Time          { return c.t }
func (c *clock) Advance(d time.Duration) { c.t = c.t.Add(d) }
