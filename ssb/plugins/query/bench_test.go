package query_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// benchStore fills a server's store with n messages of the given number
// of authors, round by round (about 2/3 posts, some in a channel), and
// returns the owner's connection and the authors' ids.
func benchStore(b *testing.B, n, authors int) (*muxrpc.Endpoint, []string) {
	var caps [32]byte
	rand.Read(caps[:])
	srv, rpc := goServer(b, caps)
	kps := make([]*keys.KeyPair, authors)
	ids := make([]string, authors)
	prev := make([]message.FeedState, authors)
	for i := range kps {
		kp, err := keys.Generate(nil)
		if err != nil {
			b.Fatal(err)
		}
		kps[i], ids[i] = kp, kp.ID.String()
	}
	types := []string{"post", "post", "vote", "post", "contact", "post"}
	var batch []*message.Message
	for i := range n {
		a := i % authors
		content := map[string]any{"type": types[(i/authors)%len(types)], "text": fmt.Sprintf("message %d, some words of text that make a post as long as a short one", i)}
		if i%7 == 0 {
			content["channel"] = fmt.Sprintf("chan%d", i%13)
		}
		m, err := message.Create(kps[a], nil, &prev[a], 1.5e12+float64(i)*1000, content)
		if err != nil {
			b.Fatal(err)
		}
		prev[a] = m.State()
		batch = append(batch, m)
		if len(batch) == 1000 || i == n-1 {
			if err := srv.Store().AppendMessages(context.Background(), batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	return rpc, ids
}

func readAll(ctx context.Context, rpc *muxrpc.Endpoint, arg any) (int, error) {
	st, err := rpc.Open(muxrpc.Method{"query", "read"}, muxrpc.Source, arg)
	if err != nil {
		return 0, err
	}
	defer st.Close()
	n := 0
	for {
		_, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// BenchmarkRead reads the queries apps make from a store of 200,000
// messages of 200 authors.
func BenchmarkRead(b *testing.B) {
	ctx := context.Background()
	rpc, ids := benchStore(b, 200_000, 200)
	filter := func(f any) []any { return []any{map[string]any{"$filter": f}} }
	cases := []struct {
		name string
		arg  func(i int) any
	}{
		{"aty", func(i int) any {
			return map[string]any{"query": filter(map[string]any{"value": map[string]any{"author": ids[i%len(ids)], "content": map[string]any{"type": "post"}}})}
		}},
		{"aty-reverse-limit", func(i int) any {
			return map[string]any{"query": filter(map[string]any{"value": map[string]any{"author": ids[i%len(ids)], "content": map[string]any{"type": "post"}}}), "reverse": true, "limit": 20}
		}},
		{"clk", func(i int) any {
			return map[string]any{"query": filter(map[string]any{"value": map[string]any{"author": ids[i%len(ids)]}})}
		}},
		{"typ-limit", func(i int) any {
			return map[string]any{"query": filter(map[string]any{"value": map[string]any{"content": map[string]any{"type": "vote"}}}), "reverse": true, "limit": 100}
		}},
		{"typ-range", func(i int) any {
			return map[string]any{"query": filter(map[string]any{"value": map[string]any{"content": map[string]any{"type": "contact"}}, "timestamp": map[string]any{"$gt": 0}}), "limit": 500}
		}},
		{"cha", func(i int) any {
			return map[string]any{"query": filter(map[string]any{"value": map[string]any{"content": map[string]any{"channel": fmt.Sprintf("chan%d", i%13)}}}), "reverse": true, "limit": 100}
		}},
	}
	if _, err := readAll(ctx, rpc, cases[len(cases)-1].arg(0)); err != nil { // the channel view catches up
		b.Fatal(err)
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			i, total := 0, 0
			for b.Loop() {
				n, err := readAll(ctx, rpc, c.arg(i))
				if err != nil || n == 0 {
					b.Fatalf("%d results, %v", n, err)
				}
				i++
				total += n
			}
			b.ReportMetric(float64(total)/float64(i), "results/op")
		})
	}
}
