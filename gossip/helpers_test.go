package gossip_test

import (
	"encoding/base64"
	"encoding/json"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
)

// A peer is a Gossip that records what it delivers.
type peer struct {
	*gossip.Gossip
	mu   sync.Mutex
	msgs []gossip.Message
}

// newPeer starts a Gossip with opts (keys from seed unless opts has some),
// closed when the test ends.
func newPeer(t *testing.T, seed string, opts gossip.Options) *peer {
	t.Helper()
	p := &peer{}
	if opts.Keys == nil && seed != "" {
		opts.Keys = mustKeys(t, seed)
	}
	opts.OnMessage = func(m gossip.Message) {
		p.mu.Lock()
		p.msgs = append(p.msgs, m)
		p.mu.Unlock()
	}
	g, err := gossip.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	p.Gossip = g
	t.Cleanup(func() { g.Close() })
	return p
}

func mustKeys(t testing.TB, seed string) *keys.KeyPair {
	t.Helper()
	kp, err := keys.FromSeedString(seed)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func (p *peer) messages() []gossip.Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]gossip.Message(nil), p.msgs...)
}

// pipe connects two streams: what one outputs the other reads, in chunks
// of at most chunk bytes (0: as they come). When either side ends, both are
// closed. The goroutines end when both streams are closed.
func pipe(a, b *gossip.Stream, chunk int) {
	run := func(dst, src *gossip.Stream) {
		defer dst.Close()
		defer src.Close()
		if chunk == 0 {
			io.Copy(dst, src)
			return
		}
		buf := make([]byte, chunk)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}
	go run(a, b)
	go run(b, a)
}

// connect links two peers with a new stream each.
func connect(a, b *peer) (*gossip.Stream, *gossip.Stream) {
	sa, sb := a.PeerStream(), b.PeerStream()
	pipe(sa, sb, 0)
	return sa, sb
}

// jsEnvelope returns the line npm secure-gossip's publish writes: data is
// ssb-keys signObj(payload) (no signed seq), seq is outside the signature.
func jsEnvelope(t testing.TB, kp *keys.KeyPair, payload string, seq int64) []byte {
	t.Helper()
	v, err := message.Parse([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	sig := base64.StdEncoding.EncodeToString(kp.Sign(v.AppendPretty(nil))) + ".sig.ed25519"
	data := message.ObjectValue(append(v.Members()[:len(v.Members()):len(v.Members())],
		message.Member{Key: "signature", Value: message.StringValue(sig)})...)
	return message.ObjectValue(
		message.Member{Key: "data", Value: data},
		message.Member{Key: "public", Value: message.StringValue(base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519")},
		message.Member{Key: "seq", Value: message.NumberValue(float64(seq))},
	).AppendCompact(nil)
}

// jsonEqual reports whether two JSON texts hold the same value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	xs, _ := json.Marshal(x)
	ys, _ := json.Marshal(y)
	return string(xs) == string(ys)
}

// settle lets a bubble run for d of virtual time.
func settle(d time.Duration) { time.Sleep(d) }
