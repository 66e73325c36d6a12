package gossip_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/gossip"
)

// signed returns n envelope lines of Go messages from 100 publishers, about
// 420 bytes each.
func signed(b *testing.B, n int) [][]byte {
	b.Helper()
	pubs := make([]*gossip.Node, 100)
	for i := range pubs {
		pubs[i] = newNode(b, fmt.Sprint("publisher ", i), gossip.Config{MaxRetained: 1, MaxSeen: 1})
	}
	lines := make([][]byte, n)
	for i := range lines {
		m, err := pubs[i%len(pubs)].Publish(map[string]any{"type": "post", "i": i, "text": strings.Repeat("lorem ipsum ", 12)})
		if err != nil {
			b.Fatal(err)
		}
		lines[i] = m.Raw
	}
	return lines
}

// BenchmarkReceiveNew: a new message, verified, delivered and queued for
// three other links, on one core.
func BenchmarkReceiveNew(b *testing.B) {
	lines := signed(b, b.N)
	n := newNode(b, "receiver", gossip.Config{MaxRetained: b.N + 1, MaxRetainedBytes: 1 << 30, MaxQueue: b.N + 1, MaxBuffered: 1 << 30})
	in := n.AddLink()
	for range 3 {
		n.AddLink()
	}
	b.SetBytes(int64(len(lines[0])))
	b.ResetTimer()
	for i := range b.N {
		if m, err := n.Receive(in, lines[i]); m == nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	n.Round()
}

// BenchmarkReceiveDuplicate: the same bytes again, as a neighbour forwards
// them (the common case: about three per message on a graph of degree 3
// to 8).
func BenchmarkReceiveDuplicate(b *testing.B) {
	lines := signed(b, 1000)
	n := newNode(b, "receiver", gossip.Config{})
	in := n.AddLink()
	for _, l := range lines {
		n.Receive(in, l)
	}
	other := n.AddLink()
	b.SetBytes(int64(len(lines[0])))
	b.ResetTimer()
	for i := range b.N {
		if m, err := n.Receive(other, lines[i%len(lines)]); m != nil || err != nil {
			b.Fatal("not a duplicate")
		}
	}
}
