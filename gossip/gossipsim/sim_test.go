package gossipsim_test

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/gossip/gossipsim"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
)

// outcome is what a scenario ends with.
type outcome struct {
	sim       *gossipsim.Sim
	want      []gossip.ID // every message published, Go and JavaScript
	forged    int         // forged lines injected
	replays   int         // replayed lines injected
	rejected  int         // injected lines a node refused
	published []gossip.Message
}

// scenario runs n nodes on a random graph of degree 3 to 8 with 1% line
// loss for 30 s of virtual time (300 rounds):
//   - 6 Go messages from random nodes (1 s to 16 s) and one JavaScript-style
//     message (unsigned seq) handed to a random node at 3 s;
//   - churn from 2 s to 18 s: every 250 ms a random node leaves and comes
//     back 1 to 8 s later with its state; 2% of the nodes leave for good;
//   - 2% more nodes join fresh between 8 s and 24 s, after most messages;
//   - from 5 s to 14 s, forged envelopes (payload changed, or a new message
//     signed by another key) and replays (a message under a new seq) are
//     handed to random nodes.
func scenario(t testing.TB, n int, seed uint64) *outcome {
	t.Helper()
	s, err := gossipsim.New(gossipsim.Config{Nodes: n, Seed: seed, Loss: 0.01})
	if err != nil {
		t.Fatal(err)
	}
	rng := s.Rand()
	o := &outcome{sim: s}
	nodes := s.Nodes()
	protected := map[*gossipsim.Node]bool{}
	for i := range 6 {
		p := nodes[rng.IntN(len(nodes))]
		protected[p] = true
		s.At(time.Second+time.Duration(i)*3*time.Second, func() {
			m, err := s.Publish(p, map[string]any{"from": p.Index, "i": i})
			if err != nil {
				t.Fatal(err)
			}
			o.published = append(o.published, m)
			o.want = append(o.want, m.ID)
		})
	}
	jsKeys, _ := keys.FromSeedString("javascript publisher")
	jsLine := jsEnvelope(jsKeys, `{"from":"js"}`, 0)
	target := nodes[rng.IntN(len(nodes))]
	protected[target] = true
	s.At(3*time.Second, func() {
		m, err := s.Inject(target, jsLine)
		if m == nil {
			t.Fatalf("the JavaScript message was refused: %v", err)
		}
		o.want = append(o.want, m.ID)
	})

	// Churn.
	for at := 2 * time.Second; at < 18*time.Second; at += 250 * time.Millisecond {
		s.At(at, func() {
			on := s.Online()
			v := on[rng.IntN(len(on))]
			s.Leave(v)
			back := time.Second + time.Duration(rng.Int64N(int64(7*time.Second)))
			s.At(s.Now()+back, func() { s.Rejoin(v, 3+rng.IntN(6)) })
		})
	}
	for range n / 50 {
		at := 2*time.Second + time.Duration(rng.Int64N(int64(16*time.Second)))
		v := nodes[rng.IntN(len(nodes))]
		if protected[v] {
			continue
		}
		protected[v] = true // chosen once
		s.At(at, func() {
			if v.Online {
				s.Leave(v)
			} else { // it is away and will rejoin: make it leave for good then
				s.At(s.Now()+9*time.Second, func() { s.Leave(v) })
			}
		})
	}
	for range n / 50 {
		at := 8*time.Second + time.Duration(rng.Int64N(int64(16*time.Second)))
		s.At(at, func() {
			if _, err := s.Join(3 + rng.IntN(6)); err != nil {
				t.Fatal(err)
			}
		})
	}

	// Attacks.
	forger, _ := keys.FromSeedString("forger")
	for at := 5 * time.Second; at < 14*time.Second; at += 500 * time.Millisecond {
		s.At(at, func() {
			if len(o.published) == 0 {
				return
			}
			m := o.published[rng.IntN(len(o.published))]
			raw := string(m.Raw)
			seq := fmt.Sprint(m.Seq)
			lines := []struct {
				line   string
				forged bool
			}{
				{strings.Replace(raw, `"seq":`+seq+`}`, `"seq":`+fmt.Sprint(m.Seq+1+rng.Int64N(1000))+`}`, 1), false},
				{strings.Replace(raw, `"i":`, `"i":1`, 1), true},
				{forgedBy(forger, m), true},
				{string(jsEnvelope(jsKeys, `{"from":"js"}`, 1+rng.Int64N(100))), false},
			}
			for _, l := range lines {
				on := s.Online()
				v := on[rng.IntN(len(on))]
				if v.Public() == m.Public {
					continue // a node drops its own messages unchecked
				}
				got, err := s.Inject(v, []byte(l.line))
				if got != nil {
					t.Errorf("node %d accepted an injected line: %s", v.Index, l.line)
				}
				if l.forged {
					o.forged++
					// A node that has seen the seq refuses the forgery as a
					// replay, before checking the signature.
					if !errors.Is(err, gossip.ErrSignature) && !errors.Is(err, gossip.ErrReplay) {
						t.Errorf("forged line: %v", err)
					}
				} else {
					o.replays++
				}
				if err != nil {
					o.rejected++
				}
			}
		})
	}
	s.RunUntil(30 * time.Second)
	return o
}

// forgedBy makes a new message in the name of m's publisher, with the next
// seq and a changed payload, signed by another key.
func forgedBy(kp *keys.KeyPair, m gossip.Message) string {
	v, _ := message.Parse(m.Raw)
	data, _ := v.Get("data")
	seq := message.NumberValue(float64(m.Seq + 500))
	var ms []message.Member
	for _, mb := range data.Members() {
		switch mb.Key {
		case "signature":
		case "i":
			ms = append(ms, message.Member{Key: "i", Value: message.NumberValue(mb.Value.Number() + 100)})
		case gossip.SeqKey:
			ms = append(ms, message.Member{Key: gossip.SeqKey, Value: seq})
		default:
			ms = append(ms, mb)
		}
	}
	sig := base64.StdEncoding.EncodeToString(kp.Sign(message.ObjectValue(ms...).AppendPretty(nil))) + ".sig.ed25519"
	ms = append(ms, message.Member{Key: "signature", Value: message.StringValue(sig)})
	pub, _ := v.Get("public")
	return message.ObjectValue(
		message.Member{Key: "data", Value: message.ObjectValue(ms...)},
		message.Member{Key: "public", Value: pub},
		message.Member{Key: "seq", Value: seq},
	).String()
}

// jsEnvelope is the line npm secure-gossip's publish writes.
func jsEnvelope(kp *keys.KeyPair, payload string, seq int64) []byte {
	v, _ := message.Parse([]byte(payload))
	sig := base64.StdEncoding.EncodeToString(kp.Sign(v.AppendPretty(nil))) + ".sig.ed25519"
	ms := append(v.Members()[:len(v.Members()):len(v.Members())], message.Member{Key: "signature", Value: message.StringValue(sig)})
	return message.ObjectValue(
		message.Member{Key: "data", Value: message.ObjectValue(ms...)},
		message.Member{Key: "public", Value: message.StringValue(base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519")},
		message.Member{Key: "seq", Value: message.NumberValue(float64(seq))},
	).AppendCompact(nil)
}

// Every message reaches every live peer exactly once, despite loss, churn
// and late joiners; forged and replayed messages reach no one.
func TestThousandPeers(t *testing.T) {
	start := time.Now()
	o := scenario(t, 1000, 1)
	s := o.sim
	t.Logf("%v; %d lines, %d lost; %d forged and %d replayed lines injected; ran in %v",
		s, s.Lines, s.Lost, o.forged, o.replays, time.Since(start).Round(time.Millisecond))
	if len(o.want) != 7 {
		t.Fatalf("%d messages published, want 7", len(o.want))
	}
	own := map[gossip.ID]string{} // publisher of each Go message
	for _, m := range o.published {
		own[m.ID] = m.Public
	}
	want := map[gossip.ID]bool{}
	for _, id := range o.want {
		want[id] = true
	}
	live, joined, away := 0, 0, 0
	var total gossip.Stats
	for _, n := range s.Nodes() {
		st := n.Stats()
		total.Replayed += st.Replayed
		total.BadSignature += st.BadSignature
		total.Resent += st.Resent
		total.Duplicates += st.Duplicates
		if n.Errors != 0 {
			t.Errorf("node %d: %d invalid lines from honest neighbours", n.Index, n.Errors)
		}
		for id, c := range n.Got {
			if !want[id] {
				t.Errorf("node %d delivered a message nobody published", n.Index)
			} else if c != 1 {
				t.Errorf("node %d delivered a message %d times", n.Index, c)
			}
		}
		if !n.Online {
			away++
			continue
		}
		live++
		if n.Index >= 1000 {
			joined++
		}
		for _, id := range o.want {
			if own[id] == n.Public() {
				if n.Got[id] != 0 {
					t.Errorf("node %d delivered its own message", n.Index)
				}
			} else if n.Got[id] != 1 {
				t.Errorf("live node %d (degree %d) got message %v %d times", n.Index, n.Degree(), id, n.Got[id])
			}
		}
	}
	t.Logf("%d live nodes (%d joined late), %d gone; %d replays and %d bad signatures refused, %d resent after loss, %.1f duplicates per node per message",
		live, joined, away, total.Replayed, total.BadSignature, total.Resent, float64(total.Duplicates)/float64(live)/7)
	if away == 0 || joined == 0 || total.Resent == 0 || total.BadSignature == 0 || total.Replayed == 0 {
		t.Errorf("the scenario did not exercise churn (%d away), late joins (%d), loss repair (%d), forgery (%d) or replays (%d)",
			away, joined, total.Resent, total.BadSignature, total.Replayed)
	}
	if o.rejected < o.forged {
		t.Errorf("%d injected lines refused, want at least the %d forged", o.rejected, o.forged)
	}
}

// The same seed gives the same run, to the line.
func TestDeterministic(t *testing.T) {
	fingerprint := func() [32]byte {
		o := scenario(t, 100, 7)
		h := sha256.New()
		fmt.Fprint(h, o.sim.Lines, o.sim.Lost, o.forged, o.replays, o.rejected)
		for _, n := range o.sim.Nodes() {
			fmt.Fprintf(h, "%d %v %+v;", n.Index, n.Online, n.Stats())
			for _, id := range o.want {
				fmt.Fprint(h, n.At[id], n.Got[id])
			}
		}
		return [32]byte(h.Sum(nil))
	}
	if a, b := fingerprint(), fingerprint(); a != b {
		t.Error("two runs with the same seed differ")
	}
}
