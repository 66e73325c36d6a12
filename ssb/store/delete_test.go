package store

import (
	"context"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// Deleting a feed removes its records and every index entry and its head
// in one step; the other feeds are untouched, Check passes, and the feed
// can be appended again from sequence 1, at new receive sequences.
func TestDeleteFeed(t *testing.T) {
	s, a, b, all := twoFeeds(t)
	ctx := context.Background()
	var aMsgs, bMsgs []*message.Message
	for _, m := range all {
		if m.Author == a.id() {
			aMsgs = append(aMsgs, m)
		} else {
			bMsgs = append(bMsgs, m)
		}
	}
	d, err := s.DeleteFeed(ctx, a.id())
	if err != nil {
		t.Fatal(err)
	}
	if d.Feed != a.id() || !slices.Equal(d.Keys, msgKeys(aMsgs)) || d.Head != (message.FeedState{}) {
		t.Fatalf("deletion %+v, want a's %d keys in order and no head", d, len(aMsgs))
	}
	mustCheck(t, s)
	for _, m := range aMsgs {
		if _, err := s.Get(m.Key); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get of deleted %s: %v, want ErrNotFound", m.Key, err)
		}
	}
	for seq := uint64(1); seq <= uint64(len(all)); seq++ {
		_, err := s.GetSeq(seq)
		if want := all[seq-1].Author == a.id(); want != errors.Is(err, ErrNotFound) {
			t.Fatalf("GetSeq(%d): %v", seq, err)
		}
	}
	if _, err := s.Latest(a.id()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Latest of a deleted feed: %v", err)
	}
	heads, err := s.Feeds(ctx)
	if err != nil || len(heads) != 1 || heads[0].Feed != b.id() {
		t.Fatalf("Feeds %+v, %v: want b's only", heads, err)
	}
	if got := collect(t)(s.History(ctx, HistoryQuery{ID: a.id()})); len(got) != 0 {
		t.Fatalf("history of a deleted feed: %d items", len(got))
	}
	want := msgKeys(bMsgs)
	for name, q := range map[string]func() (*Iterator, error){
		"log":          func() (*Iterator, error) { return s.Log(ctx, LogQuery{}) },
		"feed":         func() (*Iterator, error) { return s.Feed(ctx, FeedQuery{}) },
		"type":         func() (*Iterator, error) { return s.Type(ctx, TypeQuery{Type: "post"}) },
		"history of b": func() (*Iterator, error) { return s.History(ctx, HistoryQuery{ID: b.id()}) },
	} {
		got := keysOf(collect(t)(q()))
		if name == "feed" { // claimed-timestamp order: b's are earlier, in order
			slices.SortFunc(got, func(x, y refs.Message) int {
				return slices.Index(want, x) - slices.Index(want, y)
			})
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s after the deletion: %d items, want b's %d", name, len(got), len(want))
		}
	}
	last := uint64(slices.IndexFunc(all, func(m *message.Message) bool { return m.Key == bMsgs[len(bMsgs)-1].Key }) + 1)
	st := s.Stats()
	if s.Durable() != last || st.Messages != uint64(len(bMsgs)) || st.Deleted != uint64(len(aMsgs)) {
		t.Fatalf("Durable %d, stats %+v; want %d, %d messages and %d deleted", s.Durable(), st, last, len(bMsgs), len(aMsgs))
	}

	// The same messages again: a new feed to the store, at new positions.
	if err := s.AppendMessages(ctx, aMsgs...); err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	for _, m := range aMsgs {
		it, err := s.Get(m.Key)
		if err != nil || it.Seq <= uint64(len(all)) {
			t.Fatalf("re-appended %s at receive sequence %d (%v), want after %d", m.Key, it.Seq, err, len(all))
		}
	}
	// The positions of a's messages read as the nearest stored ones.
	for seq := uint64(1); seq <= uint64(len(all)); seq++ {
		for _, before := range []bool{false, true} {
			want := uint64(0)
			for i := range all {
				if p := uint64(i + 1); all[i].Author == b.id() && (p == seq || !before && p > seq && want == 0 || before && p < seq) {
					want = p
				}
				if all[i].Author == b.id() && uint64(i+1) == seq {
					break
				}
			}
			it, err := s.GetSeqNear(seq, before)
			if want == 0 && !errors.Is(err, ErrNotFound) || want != 0 && (err != nil || it.Seq != want) {
				t.Fatalf("GetSeqNear(%d, before %v): %d, %v; want %d", seq, before, it.Seq, err, want)
			}
		}
	}
	if _, err := s.DeleteFeed(ctx, newAuthor(t, "nobody").id()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a feed the store lacks: %v, want ErrNotFound", err)
	}
}

// DeleteMessage takes a feed's latest message only: one in the middle is
// refused with ErrGap and changes nothing. Repeated, it empties a feed.
func TestDeleteMessage(t *testing.T) {
	s, a, _, all := twoFeeds(t)
	ctx := context.Background()
	var aMsgs []*message.Message
	for _, m := range all {
		if m.Author == a.id() {
			aMsgs = append(aMsgs, m)
		}
	}
	for _, m := range aMsgs[:len(aMsgs)-1] {
		_, err := s.DeleteMessage(ctx, m.Key)
		if !errors.Is(err, ErrGap) {
			t.Fatalf("deleting message %d of 10: %v, want ErrGap", m.Sequence, err)
		}
	}
	if st := s.Stats(); st.Deleted != 0 || st.Messages != uint64(len(all)) {
		t.Fatalf("refused deletions changed the store: %+v", st)
	}
	if _, err := s.DeleteMessage(ctx, refs.NewMessage([32]byte{1})); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleting a message the store lacks: %v, want ErrNotFound", err)
	}
	for i := len(aMsgs) - 1; i >= 0; i-- {
		d, err := s.DeleteMessage(ctx, aMsgs[i].Key)
		if err != nil {
			t.Fatalf("deleting the latest, %d: %v", i+1, err)
		}
		want := message.FeedState{}
		if i > 0 {
			want = aMsgs[i-1].State()
		}
		if !slices.Equal(d.Keys, []refs.Message{aMsgs[i].Key}) || d.Head != want {
			t.Fatalf("deletion %+v, want %s and head %+v", d, aMsgs[i].Key, want)
		}
		h, err := s.Latest(a.id())
		switch {
		case i == 0 && !errors.Is(err, ErrNotFound):
			t.Fatalf("the feed's last message deleted, Latest: %+v, %v", h, err)
		case i > 0 && (err != nil || h.State != want):
			t.Fatalf("Latest %+v, %v; want %+v", h.State, err, want)
		}
		mustCheck(t, s)
	}
	// The feed takes a new message 1.
	a.state = message.FeedState{}
	mustAppend(t, s, a.post(t, 5000))
	mustCheck(t, s)
}

// The positions and receive times of deleted messages at the end of the
// log are never given again, after a reopen too; a store with deletions
// cannot be opened as the old format, and Repair keeps what is left.
func TestDeleteAtTheEndSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	mustAppend(t, s, a.posts(t, 3, 1)...)
	mustAppend(t, s, b.posts(t, 4, 1)...)
	top, err := s.Latest(b.id())
	if err != nil {
		t.Fatal(err)
	}
	deletedTS, err := s.GetSeq(top.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteFeed(ctx, b.id()); err != nil {
		t.Fatal(err)
	}
	if s.Durable() != 3 {
		t.Fatalf("Durable %d after deleting the last 4 of 7, want 3", s.Durable())
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, WithLogger(quiet()), WithClock(fakeClock(1, 0))) // a clock far behind
	if err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	if st := s.Stats(); s.Durable() != 3 || st.Messages != 3 || st.Deleted != 4 {
		t.Fatalf("after reopening: Durable %d, %+v", s.Durable(), st)
	}
	m := a.post(t, 10)
	mustAppend(t, s, m)
	it, err := s.Get(m.Key)
	if err != nil || it.Seq != top.Seq+1 || it.Timestamp <= deletedTS.Timestamp {
		t.Fatalf("next message at %d, ts %v (%v); want %d, after %v", it.Seq, it.Timestamp, err, top.Seq+1, deletedTS.Timestamp)
	}
	mustCheck(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Repair(ctx, dir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Kept != 4 || rep.Dropped != 0 || rep.Unreadable != 0 || len(rep.Lost) != 0 {
		t.Fatalf("repair of a healthy store with deletions: %s", rep)
	}
}

// An iterator in the middle of a range, and a live one, go on past
// positions deleted under them, without error.
func TestDeleteUnderIterators(t *testing.T) {
	s := openStore(t, WithClock(fakeClock(1000, 1)))
	ctx := context.Background()
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	var bKeys []refs.Message
	for i := range 3 * chunk {
		m := a.post(t, float64(i))
		mustAppend(t, s, m)
		if i%3 == 0 {
			mb := b.post(t, float64(i))
			mustAppend(t, s, mb)
			bKeys = append(bKeys, mb.Key)
		}
	}
	// What each iterator may have read in its first two chunks (the
	// second is read, whole, by the item after the first): items read
	// before the deletion.
	inWindow := func(items []Item) []refs.Message { return keysOf(items[:2*chunk]) }
	fwWindow := inWindow(collect(t)(s.Log(ctx, LogQuery{})))
	rvWindow := inWindow(collect(t)(s.Type(ctx, TypeQuery{Type: "post", Reverse: true})))
	forward, err := s.Log(ctx, LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	reverse, err := s.Type(ctx, TypeQuery{Type: "post", Reverse: true})
	if err != nil {
		t.Fatal(err)
	}
	no := false
	live, err := s.Log(ctx, LogQuery{Live: true, Old: &no})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	head := take(t, forward, chunk+1) // the first chunk read, and into the second
	tail := take(t, reverse, chunk+1)
	if _, err := s.DeleteFeed(ctx, b.id()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		it        *Iterator
		window    []refs.Message
		before, n int
	}{{"forward", forward, fwWindow, len(head), 0}, {"reverse", reverse, rvWindow, len(tail), 0}} {
		rest := readAll(t, c.it)
		var beyond int
		for _, it := range rest {
			if slices.Contains(bKeys, it.Key) && !slices.Contains(c.window, it.Key) {
				t.Fatalf("%s: a deleted message (%s at %d) read after its deletion", c.name, it.Key, it.Seq)
			}
		}
		for _, k := range bKeys {
			if !slices.Contains(c.window, k) {
				beyond++
			}
		}
		if got, want := c.before+len(rest), 3*chunk+len(bKeys)-beyond; got != want {
			t.Fatalf("%s: read %d items, want %d: a's %d and b's %d read before the deletion", c.name, got, want, 3*chunk, len(bKeys)-beyond)
		}
	}
	m := a.post(t, 9999)
	mustAppend(t, s, m)
	if got := take(t, live, 1); got[0].Key != m.Key {
		t.Fatalf("live iterator after a deletion: %s, want the next message %s", got[0].Key, m.Key)
	}
}

// The store after random appends and deletions reads as a model of it
// says, through every query, with and without bounds, across reopens.
func TestDeleteModel(t *testing.T) {
	authors := []*author{newAuthor(t, "m0"), newAuthor(t, "m1"), newAuthor(t, "m2")}
	rapid.Check(t, func(rt *rapid.T) {
		dir, err := os.MkdirTemp(t.TempDir(), "model")
		if err != nil {
			rt.Fatal(err)
		}
		clock := WithClock(fakeClock(1000, 1))
		s, err := Open(dir, WithLogger(quiet()), clock)
		if err != nil {
			rt.Fatal(err)
		}
		defer func() { s.Close() }()
		ctx := context.Background()
		type entry struct {
			m   *message.Message
			seq uint64
		}
		var model []entry // in receive order
		var top uint64
		heads := make([]message.FeedState, len(authors))
		of := func(f int) []entry {
			var out []entry
			for _, e := range model {
				if e.m.Author == authors[f].id() {
					out = append(out, e)
				}
			}
			return out
		}
		drop := func(keys []refs.Message) {
			model = slices.DeleteFunc(model, func(e entry) bool { return slices.Contains(keys, e.m.Key) })
		}
		for step := range rapid.IntRange(1, 25).Draw(rt, "steps") {
			f := rapid.IntRange(0, len(authors)-1).Draw(rt, "feed")
			switch op := rapid.IntRange(0, 5).Draw(rt, "op"); op {
			case 0, 1, 2: // append 1 to 4 messages
				a := authors[f]
				a.state = heads[f]
				var ms []*message.Message
				for i := range rapid.IntRange(1, 4).Draw(rt, "n") {
					ms = append(ms, a.post(t, float64(step*10+i), []string{"post", "vote"}[i%2]))
				}
				if err := s.AppendMessages(ctx, ms...); err != nil {
					rt.Fatal(err)
				}
				for _, m := range ms {
					top++
					model = append(model, entry{m, top})
				}
				heads[f] = a.state
			case 3: // the whole feed
				d, err := s.DeleteFeed(ctx, authors[f].id())
				want := of(f)
				if len(want) == 0 {
					if !errors.Is(err, ErrNotFound) {
						rt.Fatalf("deleting an empty feed: %v", err)
					}
					continue
				}
				if err != nil || len(d.Keys) != len(want) {
					rt.Fatalf("DeleteFeed: %+v, %v; want %d keys", d, err, len(want))
				}
				drop(d.Keys)
				heads[f] = message.FeedState{}
			case 4: // a message: the latest, or another (refused)
				msgs := of(f)
				if len(msgs) == 0 {
					continue
				}
				i := rapid.IntRange(0, len(msgs)-1).Draw(rt, "message")
				d, err := s.DeleteMessage(ctx, msgs[i].m.Key)
				if i < len(msgs)-1 {
					if !errors.Is(err, ErrGap) {
						rt.Fatalf("deleting message %d of %d: %v, want ErrGap", i+1, len(msgs), err)
					}
					continue
				}
				if err != nil {
					rt.Fatal(err)
				}
				drop(d.Keys)
				heads[f] = message.FeedState{}
				if i > 0 {
					heads[f] = msgs[i-1].m.State()
				}
			case 5:
				if err := s.Close(); err != nil {
					rt.Fatal(err)
				}
				if s, err = Open(dir, WithLogger(quiet()), WithClock(fakeClock(float64(2000+top), 1))); err != nil {
					rt.Fatal(err)
				}
			}
			checkModel(rt, s, func() ([]refs.Message, []uint64) {
				var keys []refs.Message
				var seqs []uint64
				for _, e := range model {
					keys, seqs = append(keys, e.m.Key), append(seqs, e.seq)
				}
				return keys, seqs
			})
		}
		if err := s.Check(ctx); err != nil {
			rt.Fatal(err)
		}
		var stored uint64
		for f := range authors {
			stored += uint64(len(of(f)))
			h, err := s.Latest(authors[f].id())
			if heads[f].Sequence == 0 && !errors.Is(err, ErrNotFound) || heads[f].Sequence > 0 && h.State != heads[f] {
				rt.Fatalf("head of feed %d: %+v, %v; want %+v", f, h.State, err, heads[f])
			}
		}
		if st := s.Stats(); st.Messages != stored || st.Messages+st.Deleted != top {
			rt.Fatalf("stats %+v, want %d messages of %d positions", st, stored, top)
		}
	})
}

// checkModel compares the log, and ranges of it by receive timestamp, with
// the model's keys and receive sequences.
func checkModel(rt *rapid.T, s *Store, model func() ([]refs.Message, []uint64)) {
	ctx := context.Background()
	keys, seqs := model()
	all, err := s.Log(ctx, LogQuery{})
	if err != nil {
		rt.Fatal(err)
	}
	items := drain(rt, all)
	if got := keysOf(items); !slices.Equal(got, keys) {
		rt.Fatalf("log %v, want %v", got, keys)
	}
	var last uint64
	for i, it := range items {
		if it.Seq != seqs[i] {
			rt.Fatalf("item %d at receive sequence %d, want %d", i, it.Seq, seqs[i])
		}
		last = it.Seq
	}
	if s.Durable() != last {
		rt.Fatalf("Durable %d, want the last stored %d", s.Durable(), last)
	}
	if len(items) == 0 {
		return
	}
	// A bound at a stored timestamp or between two.
	bound := func(label string) float64 {
		i := rapid.IntRange(0, len(items)-1).Draw(rt, label)
		return items[i].Timestamp + []float64{0, 0.5, -0.5}[rapid.IntRange(0, 2).Draw(rt, label+" offset")]
	}
	lo, hi := bound("lo"), bound("hi")
	reverse := rapid.Bool().Draw(rt, "reverse")
	var want []refs.Message
	for _, it := range items {
		if it.Timestamp > lo && it.Timestamp <= hi {
			want = append(want, it.Key)
		}
	}
	if reverse {
		slices.Reverse(want)
	}
	it, err := s.Log(ctx, LogQuery{Gt: &lo, Lte: &hi, Reverse: reverse})
	if err != nil {
		rt.Fatal(err)
	}
	if got := keysOf(drain(rt, it)); !slices.Equal(got, want) {
		rt.Fatalf("log (%v, %v] reverse %v: %v, want %v", lo, hi, reverse, got, want)
	}
	var votes []refs.Message
	for _, it := range items {
		if typeOf(rt, it) == "vote" && it.Timestamp >= lo && it.Timestamp < hi {
			votes = append(votes, it.Key)
		}
	}
	vt, err := s.Type(ctx, TypeQuery{Type: "vote", Gte: &lo, Lt: &hi})
	if err != nil {
		rt.Fatal(err)
	}
	if got := keysOf(drain(rt, vt)); !slices.Equal(got, votes) {
		rt.Fatalf("votes [%v, %v): %v, want %v", lo, hi, got, votes)
	}
}

func typeOf(t fataler, it Item) string {
	m, err := message.Decode(it.Value)
	if err != nil {
		t.Fatal(err)
	}
	return m.Type
}

// A deletion waits its turn behind the appends queued before it and
// ahead of those after: appending to a feed while it is deleted leaves
// the store consistent either way.
func TestDeleteWhileAppending(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	a := newAuthor(t, "a")
	mustAppend(t, s, a.posts(t, 50, 1)...)
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < 20 && err == nil; i++ {
			_, err = s.DeleteFeed(ctx, a.id())
			if errors.Is(err, ErrNotFound) {
				err = nil
			}
		}
		done <- err
	}()
	var appended int
	for range 40 {
		h, err := s.Latest(a.id())
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		a.state = h.State
		err = s.AppendMessages(ctx, a.post(t, 2))
		var seqErr *message.SequenceError
		if err != nil && !errors.As(err, &seqErr) && !errors.Is(err, message.ErrFork) {
			t.Fatalf("append: %v", err)
		}
		if err == nil {
			appended++
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mustCheck(t, s)
	if appended == 0 {
		t.Fatal("no append went through")
	}
	t.Logf("%d appends stored, %d messages left, %d deleted", appended, s.Stats().Messages, s.Stats().Deleted)
}

// fataler is what checkModel needs of a *testing.T or a *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// drain reads an iterator that is not live to its end.
func drain(t fataler, it *Iterator) []Item {
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
