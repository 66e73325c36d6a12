package store

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// idle checks that a live iterator has nothing more for now.
func idle(t *testing.T, it *Iterator) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	if item, err := it.Next(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Next = %v, %v; want to wait", item.Seq, err)
	}
}

// TestLiveAndOld starts live queries on 5 stored messages, appends 3 more
// and checks what each query returns.
func TestLiveAndOld(t *testing.T) {
	s := openStore(t, WithClock(fakeClock(1000, 1)))
	a := newAuthor(t, "a")
	ctx := context.Background()
	// Claimed timestamps make the feed stream order differ from the log's.
	old := []*message.Message{a.post(t, 30), a.post(t, 10), a.post(t, 50), a.post(t, 20), a.post(t, 40)}
	mustAppend(t, s, old...)
	newer := a.posts(t, 3, 60)
	k := msgKeys(slices.Concat(old, newer))

	tests := []struct {
		name  string
		start func() (*Iterator, error)
		want  []refs.Message
	}{
		{"log", func() (*Iterator, error) { return s.Log(ctx, LogQuery{Live: true}) }, k},
		{"log, new only", func() (*Iterator, error) { return s.Log(ctx, LogQuery{Live: true, Old: new(false)}) }, k[5:]},
		{"log, old false without live", func() (*Iterator, error) { return s.Log(ctx, LogQuery{Old: new(false)}) }, k[5:]},
		{"log, limit counts old only", func() (*Iterator, error) { return s.Log(ctx, LogQuery{Live: true, Limit: 2}) }, slices.Concat(k[:2], k[5:])},
		{"log, reverse then live", func() (*Iterator, error) { return s.Log(ctx, LogQuery{Live: true, Reverse: true}) },
			[]refs.Message{k[4], k[3], k[2], k[1], k[0], k[5], k[6], k[7]}},
		{"log, range filters live", func() (*Iterator, error) { return s.Log(ctx, LogQuery{Live: true, Gte: new(1002.0), Lt: new(1006.0)}) }, k[2:6]},
		{"history from 3", func() (*Iterator, error) { return s.History(ctx, HistoryQuery{ID: a.id(), Seq: 3, Live: true}) }, k[2:]},
		{"history from 7", func() (*Iterator, error) { return s.History(ctx, HistoryQuery{ID: a.id(), Seq: 7, Live: true}) }, k[6:]},
		{"history, new only", func() (*Iterator, error) {
			return s.History(ctx, HistoryQuery{ID: a.id(), Live: true, Old: new(false)})
		}, k[5:]},
		{"feed: old by claimed time, live by receipt", func() (*Iterator, error) { return s.Feed(ctx, FeedQuery{Live: true}) },
			[]refs.Message{k[1], k[3], k[0], k[4], k[2], k[5], k[6], k[7]}},
		{"feed, range filters live", func() (*Iterator, error) { return s.Feed(ctx, FeedQuery{Live: true, Gt: new(20.0), Lte: new(60.0)}) },
			[]refs.Message{k[0], k[4], k[2], k[5]}},
		{"type", func() (*Iterator, error) { return s.Type(ctx, TypeQuery{Type: "post", Live: true}) }, k},
	}
	its := make([]*Iterator, len(tests))
	for i, tt := range tests {
		var err error
		if its[i], err = tt.start(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
	mustAppend(t, s, newer[0])
	mustAppend(t, s, newer[1:]...)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keysOf(take(t, its[i], len(tt.want))); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%v, want\n%v", got, tt.want)
			}
			idle(t, its[i])
			its[i].Close()
		})
	}
}

// TestLiveReadersExactlyOnce runs live readers, some started before and
// some during concurrent appends to many feeds: each sees every message
// once, in receive order, each feed in sequence order.
func TestLiveReadersExactlyOnce(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	const feeds, perFeed = 8, 50
	const total = feeds * perFeed
	authors := make([]*author, feeds)
	for i := range authors {
		authors[i] = generated(t)
	}
	type reader struct {
		it   *Iterator
		want int
		feed *author
	}
	var readers []reader
	start := func() {
		it, err := s.Log(ctx, LogQuery{Live: true})
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, reader{it: it, want: total})
		a := authors[len(readers)%feeds]
		it, err = s.History(ctx, HistoryQuery{ID: a.id(), Live: true})
		if err != nil {
			t.Fatal(err)
		}
		readers = append(readers, reader{it: it, want: perFeed, feed: a})
	}
	start()
	var wg sync.WaitGroup
	for i, a := range authors {
		wg.Go(func() {
			for j := 0; j < perFeed; {
				n := min(1+(i+j)%4, perFeed-j) // batches of 1 to 4
				if err := s.AppendMessages(ctx, a.posts(t, n, float64(j))...); err != nil {
					t.Error(err)
					return
				}
				j += n
			}
		})
	}
	for range 3 { // more readers while the appends run
		time.Sleep(5 * time.Millisecond)
		start()
	}
	var rwg sync.WaitGroup
	for _, r := range readers {
		rwg.Go(func() {
			defer r.it.Close()
			items := take(t, r.it, r.want)
			last := map[refs.Feed]int64{}
			for i, it := range items {
				m, err := message.Decode(it.Value)
				if err != nil {
					t.Error(err)
					return
				}
				if r.feed == nil && it.Seq != uint64(i+1) {
					t.Errorf("log reader: item %d has receive sequence %d", i, it.Seq)
					return
				}
				if m.Sequence != last[m.Author]+1 {
					t.Errorf("item %d: %s sequence %d after %d", i, m.Author, m.Sequence, last[m.Author])
					return
				}
				last[m.Author] = m.Sequence
			}
			idle(t, r.it)
		})
	}
	wg.Wait()
	rwg.Wait()
	mustCheck(t, s)
}

// TestSlowLiveReader appends many messages while a live reader reads
// nothing: the store's memory does not grow with what the reader has not
// read, and the reader then gets it all.
func TestSlowLiveReader(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	it, err := s.Log(ctx, LogQuery{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	a := generated(t)
	const batches, batch = 40, 200
	heap := func() uint64 {
		runtime.GC() // twice: pooled buffers survive one
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var base uint64
	var bytes int
	for i := range batches {
		ms := a.posts(t, batch, float64(i*batch))
		for _, m := range ms {
			bytes += len(m.Raw)
		}
		mustAppend(t, s, ms...)
		if i == 4 {
			base = heap() // after the store's buffers have warmed up
		}
	}
	grown := int64(heap()) - int64(base)
	t.Logf("heap grew by %d bytes while %d bytes of messages waited for the reader", grown, bytes)
	if grown > int64(bytes)/20 {
		t.Errorf("heap grew by %d bytes for %d bytes of unread messages", grown, bytes)
	}
	items := take(t, it, batches*batch)
	for i, item := range items {
		if item.Seq != uint64(i+1) {
			t.Fatalf("item %d has receive sequence %d", i, item.Seq)
		}
	}
	idle(t, it)
}

func TestCloseEndsLiveReaders(t *testing.T) {
	s := openStore(t)
	it, err := s.Log(context.Background(), LogQuery{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	go func() {
		_, err := it.Next(context.Background())
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Next: %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a live reader outlived Close")
	}
}

// TestLiveNextContext checks that a cancelled wait leaves the iterator
// usable.
func TestLiveNextContext(t *testing.T) {
	s := openStore(t)
	a := newAuthor(t, "a")
	it, err := s.History(context.Background(), HistoryQuery{ID: a.id(), Live: true})
	if err != nil {
		t.Fatal(err)
	}
	idle(t, it)
	m := a.post(t, 1)
	mustAppend(t, s, m)
	if got := take(t, it, 1); got[0].Key != m.Key {
		t.Errorf("got %s, want %s", got[0].Key, m.Key)
	}
}
