package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// twoFeeds stores 10 messages of a and 5 of b, interleaved, with receive
// timestamps 1000, 1001, ... (ms) and returns them in receive order.
func twoFeeds(t *testing.T) (*Store, *author, *author, []*message.Message) {
	s := openStore(t, WithClock(fakeClock(1000, 1)))
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	var all []*message.Message
	for i := range 10 {
		all = append(all, a.post(t, float64(100+i)))
		if i%2 == 1 {
			all = append(all, b.post(t, float64(50+i)))
		}
	}
	for _, m := range all { // one at a time: one receive timestamp each
		mustAppend(t, s, m)
	}
	return s, a, b, all
}

func sequences(items []Item) []int64 {
	seqs := make([]int64, len(items))
	for i, it := range items {
		m, err := message.Decode(it.Value)
		if err != nil {
			panic(err)
		}
		seqs[i] = m.Sequence
	}
	return seqs
}

func seqs(from, to int64) []int64 {
	var s []int64
	for i := from; i <= to; i++ {
		s = append(s, i)
	}
	return s
}

func TestHistory(t *testing.T) {
	s, a, b, _ := twoFeeds(t)
	ctx := context.Background()
	tests := []struct {
		name string
		q    HistoryQuery
		want []int64
	}{
		{"all", HistoryQuery{ID: a.id()}, seqs(1, 10)},
		{"seq is inclusive", HistoryQuery{ID: a.id(), Seq: 4}, seqs(4, 10)},
		{"seq 1", HistoryQuery{ID: a.id(), Seq: 1}, seqs(1, 10)},
		{"seq beyond the end", HistoryQuery{ID: a.id(), Seq: 11}, nil},
		{"limit", HistoryQuery{ID: a.id(), Limit: 3}, seqs(1, 3)},
		{"seq and limit", HistoryQuery{ID: a.id(), Seq: 9, Limit: 5}, seqs(9, 10)},
		{"other feed", HistoryQuery{ID: b.id(), Seq: 2}, seqs(2, 5)},
		{"unknown feed", HistoryQuery{ID: newAuthor(t, "c").id()}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items := collect(t)(s.History(ctx, tt.q))
			if got := sequences(items); !slices.Equal(got, tt.want) {
				t.Errorf("sequences %v, want %v", got, tt.want)
			}
			for _, it := range items {
				if it.Key.IsZero() || it.Timestamp < 1000 || it.Seq == 0 || it.RTS != 0 {
					t.Errorf("item %+v lacks key or metadata", it)
				}
			}
		})
	}
	t.Run("keys false", func(t *testing.T) {
		items := collect(t)(s.History(ctx, HistoryQuery{ID: a.id(), Keys: new(false), Limit: 1}))
		if len(items) != 1 || !items[0].Key.IsZero() || items[0].Value == nil {
			t.Fatalf("items %+v, want one bare value", items)
		}
		if got := string(items[0].AppendJSON(nil)); got != string(items[0].Value) {
			t.Errorf("JSON %s, want the bare value", got)
		}
	})
	t.Run("values false", func(t *testing.T) {
		items := collect(t)(s.History(ctx, HistoryQuery{ID: a.id(), Values: new(false), Limit: 1}))
		if len(items) != 1 || items[0].Key.IsZero() || items[0].Value != nil {
			t.Fatalf("items %+v, want one key", items)
		}
		if got, want := string(items[0].AppendJSON(nil)), `"`+items[0].Key.String()+`"`; got != want {
			t.Errorf("JSON %s, want %s", got, want)
		}
	})
	if _, err := s.History(ctx, HistoryQuery{}); err == nil {
		t.Error("History without a feed id succeeded")
	}
}

func TestLog(t *testing.T) {
	s, _, _, all := twoFeeds(t) // receive timestamps 1000 ... 1014
	ctx := context.Background()
	keys := msgKeys(all)
	rev := slices.Clone(keys)
	slices.Reverse(rev)
	tests := []struct {
		name string
		q    LogQuery
		want []refs.Message
	}{
		{"all", LogQuery{}, keys},
		{"gt", LogQuery{Gt: new(1003.0)}, keys[4:]},
		{"gte", LogQuery{Gte: new(1003.0)}, keys[3:]},
		{"lt", LogQuery{Lt: new(1003.0)}, keys[:3]},
		{"lte", LogQuery{Lte: new(1003.0)}, keys[:4]},
		{"gt wins over gte", LogQuery{Gt: new(1003.0), Gte: new(1000.0)}, keys[4:]},
		{"between", LogQuery{Gt: new(1002.5), Lte: new(1006.0)}, keys[3:7]},
		{"empty range", LogQuery{Gt: new(1005.0), Lt: new(1004.0)}, nil},
		{"before everything", LogQuery{Lt: new(10.0)}, nil},
		{"after everything", LogQuery{Gt: new(5000.0)}, nil},
		{"limit", LogQuery{Limit: 4}, keys[:4]},
		{"reverse", LogQuery{Reverse: true}, rev},
		{"reverse limit", LogQuery{Reverse: true, Limit: 2}, rev[:2]},
		{"reverse range", LogQuery{Reverse: true, Gte: new(1003.0), Lt: new(1006.0)}, rev[9:12]},
		{"old false, not live", LogQuery{Old: new(false), Live: false}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var items []Item
			if tt.q.Old != nil && !*tt.q.Old {
				// Old false implies live: it only waits for new messages.
				it, err := s.Log(ctx, tt.q)
				if err != nil {
					t.Fatal(err)
				}
				tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
				defer cancel()
				if _, err := it.Next(tctx); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Next: %v, want to wait", err)
				}
			} else {
				items = collect(t)(s.Log(ctx, tt.q))
			}
			if got := keysOf(items); !slices.Equal(got, tt.want) {
				t.Errorf("got %d items, want %d:\n%v\n%v", len(got), len(tt.want), got, tt.want)
			}
			for _, it := range items {
				if it.Timestamp != 1000+float64(it.Seq-1) {
					t.Errorf("item %d has timestamp %v", it.Seq, it.Timestamp)
				}
			}
		})
	}
	if _, err := s.Log(ctx, LogQuery{Gt: new(nan())}); err == nil {
		t.Error("a NaN bound was accepted")
	}
}

func nan() float64 { var z float64; return z / z }

// TestFeed checks createFeedStream order: by resolved timestamp, the
// claimed one unless missing or after the receive time, ties by receive
// order.
func TestFeed(t *testing.T) {
	s := openStore(t, WithClock(fakeClock(1000, 1)))
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	ctx := context.Background()
	claimed := []struct {
		a    *author
		ts   float64
		rts  float64 // resolved
		want int     // position in the feed stream
	}{
		{a, 500, 500, 2},   // received at 1000
		{b, 200, 200, 0},   // 1001
		{a, 9999, 1002, 6}, // claimed after receipt: the receive time
		{b, 500, 500, 3},   // 1003; tie with the first, received later
		{a, 300, 300, 1},   // 1004
		{b, 0, 1005, 7},    // no claimed time: the receive time
		{a, 600, 600, 4},   // 1006
		{b, 700, 700, 5},   // 1007
	}
	ms := make([]*message.Message, len(claimed))
	for i, c := range claimed {
		ms[i] = c.a.post(t, c.ts)
		mustAppend(t, s, ms[i])
	}
	want := make([]refs.Message, len(ms))
	wantRTS := make([]float64, len(ms))
	for i, c := range claimed {
		want[c.want], wantRTS[c.want] = ms[i].Key, c.rts
	}
	items := collect(t)(s.Feed(ctx, FeedQuery{}))
	if got := keysOf(items); !slices.Equal(got, want) {
		t.Fatalf("order\n%v, want\n%v", got, want)
	}
	for i, it := range items {
		if it.RTS != wantRTS[i] {
			t.Errorf("item %d: rts %v, want %v", i, it.RTS, wantRTS[i])
		}
	}
	rev := slices.Clone(want)
	slices.Reverse(rev)
	tests := []struct {
		name string
		q    FeedQuery
		want []refs.Message
	}{
		{"gt", FeedQuery{Gt: new(500.0)}, want[4:]},
		{"gte", FeedQuery{Gte: new(500.0)}, want[2:]},
		{"lt", FeedQuery{Lt: new(500.0)}, want[:2]},
		{"lte", FeedQuery{Lte: new(500.0)}, want[:4]},
		{"limit", FeedQuery{Limit: 3}, want[:3]},
		{"reverse", FeedQuery{Reverse: true}, rev},
		{"reverse range limit", FeedQuery{Reverse: true, Lte: new(600.0), Limit: 3}, rev[3:6]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keysOf(collect(t)(s.Feed(ctx, tt.q))); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%v, want\n%v", got, tt.want)
			}
		})
	}
}

func TestType(t *testing.T) {
	s := openStore(t, WithClock(fakeClock(1000, 1)))
	a := newAuthor(t, "a")
	ctx := context.Background()
	var posts, votes []refs.Message
	for i := range 12 {
		typ := "post"
		if i%3 == 0 {
			typ = "vote"
		}
		m := a.post(t, float64(i), typ)
		mustAppend(t, s, m)
		if typ == "post" {
			posts = append(posts, m.Key)
		} else {
			votes = append(votes, m.Key)
		}
	}
	// An encrypted message has no type.
	boxed, err := message.Create(a.kp, nil, &a.state, 12, "c2VjcmV0.box")
	if err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, boxed)
	if got := keysOf(collect(t)(s.Type(ctx, TypeQuery{Type: "post"}))); !slices.Equal(got, posts) {
		t.Errorf("posts %v, want %v", got, posts)
	}
	if got := keysOf(collect(t)(s.Type(ctx, TypeQuery{Type: "vote", Reverse: true, Limit: 2}))); !slices.Equal(got, []refs.Message{votes[3], votes[2]}) {
		t.Errorf("last two votes %v, want %v", got, votes[2:])
	}
	// Receive timestamps 1000 + i: votes at 1000, 1003, 1006, 1009.
	if got := keysOf(collect(t)(s.Type(ctx, TypeQuery{Type: "vote", Gt: new(1000.0), Lte: new(1006.0)}))); !slices.Equal(got, votes[1:3]) {
		t.Errorf("votes in (1000, 1006] %v, want %v", got, votes[1:3])
	}
	if got := collect(t)(s.Type(ctx, TypeQuery{Type: "posts"})); len(got) != 0 {
		t.Errorf("%d messages of an unknown type", len(got))
	}
	if _, err := s.Type(ctx, TypeQuery{}); err == nil {
		t.Error("Type without a type succeeded")
	}
	mustCheck(t, s)
}

func TestFeeds(t *testing.T) {
	s := openStore(t)
	want := map[refs.Feed]message.FeedState{}
	for i := range 20 {
		a := newAuthor(t, fmt.Sprint(i))
		mustAppend(t, s, a.posts(t, 1+i%4, 1)...)
		want[a.id()] = a.state
	}
	heads, err := s.Feeds(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(heads) != len(want) {
		t.Fatalf("%d heads, want %d", len(heads), len(want))
	}
	for _, h := range heads {
		if want[h.Feed] != h.State {
			t.Errorf("head of %s: %+v, want %+v", h.Feed, h.State, want[h.Feed])
		}
	}
}

func TestItemJSON(t *testing.T) {
	key := refs.NewMessage([32]byte{1})
	value := json.RawMessage(`{"previous":null,"sequence":1}`)
	k := key.String()
	tests := []struct {
		item Item
		want string
	}{
		{Item{Key: key, Value: value, Timestamp: 1795315635663.001}, `{"key":"` + k + `","value":{"previous":null,"sequence":1},"timestamp":1795315635663.001}`},
		{Item{Key: key, Value: value, Timestamp: 5, RTS: 3}, `{"key":"` + k + `","value":{"previous":null,"sequence":1},"timestamp":5,"rts":3}`},
		{Item{Value: value, RTS: 2.5}, `{"previous":null,"sequence":1}`},
		{Item{Value: value, Timestamp: 4}, string(value)},
		{Item{Key: key, Timestamp: 4}, `"` + k + `"`},
		{Item{Timestamp: 4}, `null`},
	}
	for _, tt := range tests {
		if got := string(tt.item.AppendJSON(nil)); got != tt.want {
			t.Errorf("got  %s\nwant %s", got, tt.want)
		}
		if !json.Valid(tt.item.AppendJSON(nil)) {
			t.Errorf("%s is not JSON", tt.want)
		}
	}
}

// TestIteratorClose checks that a closed iterator says so.
func TestIteratorClose(t *testing.T) {
	s, a, _, _ := twoFeeds(t)
	it, err := s.History(context.Background(), HistoryQuery{ID: a.id()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := it.Next(context.Background()); err != nil {
		t.Fatal(err)
	}
	it.Close()
	if _, err := it.Next(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
	it, _ = s.History(context.Background(), HistoryQuery{ID: a.id(), Limit: 1})
	take(t, it, 1)
	for range 2 {
		if _, err := it.Next(context.Background()); !errors.Is(err, io.EOF) {
			t.Errorf("Next at the end: %v, want io.EOF", err)
		}
	}
}
