package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/store"
)

func f64(f float64) *float64 { return &f }

func TestRawRange(t *testing.T) {
	const all = math.MaxUint64
	for _, c := range []struct {
		o    StreamOpts
		want seqRange
	}{
		{StreamOpts{}, seqRange{1, all}},
		{StreamOpts{Gt: f64(0)}, seqRange{1, all}},
		{StreamOpts{Gt: f64(-5)}, seqRange{1, all}},
		{StreamOpts{Gt: f64(2)}, seqRange{3, all}},
		{StreamOpts{Gt: f64(2.5)}, seqRange{3, all}},
		{StreamOpts{Gte: f64(2)}, seqRange{2, all}},
		{StreamOpts{Gte: f64(2.5)}, seqRange{3, all}},
		{StreamOpts{Gt: f64(2), Gte: f64(7)}, seqRange{3, all}}, // gt wins
		{StreamOpts{Lt: f64(3)}, seqRange{1, 2}},
		{StreamOpts{Lt: f64(3.5)}, seqRange{1, 3}},
		{StreamOpts{Lte: f64(3)}, seqRange{1, 3}},
		{StreamOpts{Lte: f64(3.5)}, seqRange{1, 3}},
		{StreamOpts{Lt: f64(1)}, seqRange{1, 0}},
		{StreamOpts{Lte: f64(0)}, seqRange{1, 0}},
		{StreamOpts{Lt: f64(3), Lte: f64(9)}, seqRange{1, 2}}, // lt wins
		{StreamOpts{Gt: f64(1e300), Lt: f64(1e300)}, seqRange{all, all}},
	} {
		if got := rawRange(c.o); got != c.want {
			t.Errorf("rawRange(gt %v gte %v lt %v lte %v) = %v, want %v", p(c.o.Gt), p(c.o.Gte), p(c.o.Lt), p(c.o.Lte), got, c.want)
		}
	}
}

func p(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}

// feeds returns n feeds of m messages each, with their keys.
func feeds(t *testing.T, n, m int) ([]*keys.KeyPair, [][][]byte) {
	t.Helper()
	var ks []*keys.KeyPair
	var raws [][][]byte
	for i := range n {
		k, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		r, err := ssbtest.Feed(k, m, float64(1000*(i+1))+0.25)
		if err != nil {
			t.Fatal(err)
		}
		ks, raws = append(ks, k), append(raws, r)
	}
	return ks, raws
}

func add(t *testing.T, e *muxrpc.Endpoint, raws ...[]byte) {
	t.Helper()
	for _, r := range raws {
		if _, err := e.Async(context.Background(), muxrpc.Method{"add"}, json.RawMessage(r)); err != nil {
			t.Fatalf("add: %v", err)
		}
	}
}

func source(t *testing.T, e *muxrpc.Endpoint, method string, args ...any) []string {
	t.Helper()
	st, err := e.Open(muxrpc.Method{method}, muxrpc.Source, args...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []string
	for {
		p, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s %v: %v", method, args, err)
		}
		out = append(out, string(p.Body))
	}
}

// latest and getVectorClock list the feeds in the order their first
// messages were received, as ssb-db's last index does, whatever their
// keys; getFeedState tells a feed's head.
func TestLatestOrder(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ks, raws := feeds(t, 3, 2)
	// Receive order: feed 2, feed 0, feed 1; later messages interleaved.
	add(t, e, raws[2][0], raws[0][0], raws[1][0], raws[0][1], raws[2][1])
	want := []string{
		fmt.Sprintf(`{"id":"%s","sequence":2,"ts":3001.25}`, ks[2].ID),
		fmt.Sprintf(`{"id":"%s","sequence":2,"ts":1001.25}`, ks[0].ID),
		fmt.Sprintf(`{"id":"%s","sequence":1,"ts":2000.25}`, ks[1].ID),
	}
	if got := source(t, e, "latest"); !slices.Equal(got, want) {
		t.Errorf("latest:\n got %q\nwant %q", got, want)
	}
	ctx := context.Background()
	p, err := e.Async(ctx, muxrpc.Method{"getVectorClock"})
	if want := fmt.Sprintf(`{"%s":2,"%s":2,"%s":1}`, ks[2].ID, ks[0].ID, ks[1].ID); err != nil || string(p.Body) != want {
		t.Errorf("getVectorClock = %s, %v; want %s", p.Body, err, want)
	}
	p, err = e.Async(ctx, muxrpc.Method{"getFeedState"}, ks[0].ID.String())
	var st struct {
		ID       *string
		Sequence int64
	}
	if err != nil || json.Unmarshal(p.Body, &st) != nil || st.ID == nil || st.Sequence != 2 {
		t.Errorf("getFeedState of a known feed = %s, %v", p.Body, err)
	}
	var got struct{ Key string }
	if err := e.AsyncJSON(ctx, &got, muxrpc.Method{"getLatest"}, ks[0].ID.String()); err != nil || got.Key != *st.ID {
		t.Errorf("getFeedState says %s, getLatest %s (%v)", *st.ID, got.Key, err)
	}
	p, err = e.Async(ctx, muxrpc.Method{"getFeedState"}, s.ID().String())
	if err != nil || string(p.Body) != `{"id":null,"sequence":0}` {
		t.Errorf("getFeedState of an unknown feed = %s, %v", p.Body, err)
	}
	for _, args := range [][]any{nil, {"@nonsense"}, {map[string]any{"id": ks[0].ID.String()}}} {
		if _, err := e.Async(ctx, muxrpc.Method{"getFeedState"}, args...); err == nil {
			t.Errorf("getFeedState %v succeeded", args)
		}
	}
}

// An empty log's sequence stream starts at -1; each commit gives the
// receive sequence of the last message, increasing, ending at the last.
func TestCreateSequenceStream(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.Open(muxrpc.Method{"createSequenceStream"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	next := func() int64 {
		t.Helper()
		var v int64
		if err := st.RecvJSON(ctx, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := next(); v != -1 {
		t.Fatalf("empty log: %d, want -1", v)
	}
	_, raws := feeds(t, 1, 40)
	add(t, e, raws[0][0])
	if v := next(); v != 1 {
		t.Fatalf("after one add: %d, want 1", v)
	}
	w, err := e.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raws[0][1:] {
		w.SendRaw(muxrpc.JSON, r)
	}
	w.Close()
	for last := int64(1); last < 40; {
		v := next()
		if v <= last || v > 40 {
			t.Fatalf("after %d: %d", last, v)
		}
		last = v
	}
	st2, err := e.Open(muxrpc.Method{"createSequenceStream"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	var v int64
	if err := st2.RecvJSON(ctx, &v); err != nil || v != 40 {
		t.Errorf("a new stream starts at %d, %v; want 40", v, err)
	}
}

// rawSeqs returns the seqs of createRawLogStream's items, checking that
// each value is the message at that receive sequence.
func rawSeqs(t *testing.T, s *testServer, items []string) []uint64 {
	t.Helper()
	var out []uint64
	for _, raw := range items {
		var it struct {
			Seq   uint64
			Value json.RawMessage
		}
		if err := json.Unmarshal([]byte(raw), &it); err != nil {
			t.Fatalf("%s: %v", raw, err)
		}
		stored, err := s.Store().GetSeq(it.Seq)
		if err != nil || string(stored.AppendJSON(nil)) != string(it.Value) {
			t.Errorf("item %d is %s, the store holds %s (%v)", it.Seq, it.Value, stored.AppendJSON(nil), err)
		}
		out = append(out, it.Seq)
	}
	return out
}

func TestCreateRawLogStream(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	_, raws := feeds(t, 1, 8)
	add(t, e, raws[0][:5]...)
	for _, c := range []struct {
		opts map[string]any
		want []uint64
	}{
		{map[string]any{}, []uint64{1, 2, 3, 4, 5}},
		{nil, []uint64{1, 2, 3, 4, 5}}, // ssb-server fails here (it crashes)
		{map[string]any{"gt": 2}, []uint64{3, 4, 5}},
		{map[string]any{"gte": 2, "lt": 4}, []uint64{2, 3}},
		{map[string]any{"gt": 1, "lte": 4, "reverse": true}, []uint64{4, 3, 2}},
		{map[string]any{"reverse": true, "limit": 2}, []uint64{5, 4}},
		{map[string]any{"limit": 2}, []uint64{1, 2}},
		{map[string]any{"gt": 9}, nil},
		{map[string]any{"lt": 1}, nil},
		{map[string]any{"gt": 3, "lt": 3}, nil},
		{map[string]any{"lte": 2, "live": true}, []uint64{1, 2}}, // ends at its bound
		{map[string]any{"lt": 9, "gt": 9, "live": true}, nil},
	} {
		var got []uint64
		if c.opts == nil {
			got = rawSeqs(t, s, source(t, e, "createRawLogStream"))
		} else {
			got = rawSeqs(t, s, source(t, e, "createRawLogStream", c.opts))
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("createRawLogStream %v = %v, want %v", c.opts, got, c.want)
		}
	}

	// Live: bounds beyond the log apply to new messages, limit counts
	// them, and the stream ends at its upper bound.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type live struct {
		opts map[string]any
		want []uint64
		st   *muxrpc.Stream
	}
	lives := []*live{
		{opts: map[string]any{"live": true, "gt": 5, "lte": 7}, want: []uint64{6, 7}},
		{opts: map[string]any{"live": true, "gte": 7}, want: []uint64{7, 8}},
		{opts: map[string]any{"live": true, "gt": 3, "limit": 4}, want: []uint64{4, 5, 6, 7}},
		{opts: map[string]any{"live": true, "old": false, "lt": 8}, want: []uint64{6, 7}},
	}
	for _, l := range lives {
		var err error
		if l.st, err = e.Open(muxrpc.Method{"createRawLogStream"}, muxrpc.Source, l.opts); err != nil {
			t.Fatal(err)
		}
	}
	add(t, e, raws[0][5:]...)
	for _, l := range lives {
		var items []string
		for range l.want {
			p, err := l.st.Recv(ctx)
			if err != nil {
				t.Fatalf("%v: %v", l.opts, err)
			}
			items = append(items, string(p.Body))
		}
		if got := rawSeqs(t, s, items); !slices.Equal(got, l.want) {
			t.Errorf("live createRawLogStream %v = %v, want %v", l.opts, got, l.want)
		}
		if _, ok := l.opts["gte"]; ok {
			l.st.Close() // open-ended: it waits for more
			continue
		}
		if p, err := l.st.Recv(ctx); !errors.Is(err, io.EOF) {
			t.Errorf("live createRawLogStream %v did not end: %s, %v", l.opts, p.Body, err)
		}
	}
}

func TestHelpAndRebuild(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx := context.Background()
	var help struct {
		Description string
		Commands    map[string]struct{ Type string }
	}
	if err := e.AsyncJSON(ctx, &help, muxrpc.Method{"help"}); err != nil || help.Commands["createHistoryStream"].Type != "source" || help.Commands["whoami"].Type != "sync" {
		t.Errorf("help = %+v, %v", help, err)
	}
	_, raws := feeds(t, 2, 3)
	add(t, e, raws[0]...)
	add(t, e, raws[1]...)
	p, err := e.Async(ctx, muxrpc.Method{"rebuild"})
	if err != nil || string(p.Body) != "false" {
		t.Errorf("rebuild = %s, %v; want false", p.Body, err)
	}
}

// BenchmarkLatest is latest's reads over 5000 feeds of one message each:
// two record reads per feed.
func BenchmarkLatest(b *testing.B) {
	st, err := store.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var raws [][]byte
	for i := range 5000 {
		k, err := keys.Generate(nil)
		if err != nil {
			b.Fatal(err)
		}
		r, err := ssbtest.Feed(k, 1, float64(i))
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, r[0])
	}
	if _, err := st.Append(context.Background(), raws...); err != nil {
		b.Fatal(err)
	}
	p := &Plugin{store: st}
	b.ResetTimer()
	for b.Loop() {
		heads, err := p.headsInLogOrder(context.Background(), true)
		if err != nil || len(heads) != 5000 {
			b.Fatal(len(heads), err)
		}
	}
}
