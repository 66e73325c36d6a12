package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// author makes the messages of one feed in order.
type author struct {
	kp    *keys.KeyPair
	state message.FeedState
	hmac  []byte
}

// newAuthor returns the author whose seed is derived from name, so a test
// and its crash child agree on keys.
func newAuthor(t testing.TB, name string) *author {
	t.Helper()
	seed := sha256.Sum256([]byte(name))
	kp, err := keys.FromSeed(seed[:])
	if err != nil {
		t.Fatal(err)
	}
	return &author{kp: kp}
}

// generated returns an author with a random key.
func generated(t testing.TB) *author {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &author{kp: kp}
}

func (a *author) id() refs.Feed { return a.kp.ID }

// post makes the next message, of type "post" unless typ is given, with
// the claimed timestamp ts, and advances the author.
func (a *author) post(t testing.TB, ts float64, typ ...string) *message.Message {
	t.Helper()
	m := a.make(t, ts, typ...)
	a.state = m.State()
	return m
}

// make makes the next message without advancing the author.
func (a *author) make(t testing.TB, ts float64, typ ...string) *message.Message {
	t.Helper()
	kind := "post"
	if len(typ) > 0 {
		kind = typ[0]
	}
	m, err := message.Create(a.kp, a.hmac, &a.state, ts, map[string]any{
		"type": kind,
		"text": fmt.Sprintf("message %d of %s", a.state.Sequence+1, a.kp.ID),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// posts makes the next n messages with timestamps ts, ts+1, ...
func (a *author) posts(t testing.TB, n int, ts float64) []*message.Message {
	t.Helper()
	ms := make([]*message.Message, n)
	for i := range ms {
		ms[i] = a.post(t, ts+float64(i))
	}
	return ms
}

func raws(ms []*message.Message) [][]byte {
	rs := make([][]byte, len(ms))
	for i, m := range ms {
		rs[i] = m.Raw
	}
	return rs
}

// quiet is a logger for tests that only shows warnings.
func quiet() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// fakeClock returns a clock that starts at start (ms) and moves by step
// ms at every call.
func fakeClock(start, step float64) func() time.Time {
	now := start
	return func() time.Time {
		t := time.UnixMicro(int64(now * 1000))
		now += step
		return t
	}
}

// openStore opens a store in a new temporary directory and closes it at
// the end of the test.
func openStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), append([]Option{WithLogger(quiet())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, ErrClosed) {
			t.Error(err)
		}
	})
	return s
}

// mustAppend appends ms and fails the test on error.
func mustAppend(t testing.TB, s *Store, ms ...*message.Message) {
	t.Helper()
	if err := s.AppendMessages(context.Background(), ms...); err != nil {
		t.Fatal(err)
	}
}

// mustCheck runs Check and fails the test on a problem.
func mustCheck(t testing.TB, s *Store) {
	t.Helper()
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// collect returns a function that reads an iterator that is not live to
// its end: collect(t)(s.Log(ctx, q)).
func collect(t testing.TB) func(*Iterator, error) []Item {
	return func(it *Iterator, err error) []Item {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return readAll(t, it)
	}
}

func readAll(t testing.TB, it *Iterator) []Item {
	t.Helper()
	defer it.Close()
	var items []Item
	for {
		item, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return items
		}
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, item)
	}
}

// take reads n items of a (live) iterator, failing after a timeout.
func take(t testing.TB, it *Iterator, n int) []Item {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	items := make([]Item, 0, n)
	for len(items) < n {
		item, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("after %d of %d items: %v", len(items), n, err)
		}
		items = append(items, item)
	}
	return items
}

// keysOf returns the message keys of items.
func keysOf(items []Item) []refs.Message {
	ks := make([]refs.Message, len(items))
	for i, it := range items {
		ks[i] = it.Key
	}
	return ks
}

func msgKeys(ms []*message.Message) []refs.Message {
	ks := make([]refs.Message, len(ms))
	for i, m := range ms {
		ks[i] = m.Key
	}
	return ks
}
