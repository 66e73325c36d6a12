package store

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

func TestAppendStoresAndGets(t *testing.T) {
	s := openStore(t)
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	ms := []*message.Message{a.post(t, 1), b.post(t, 2), a.post(t, 3)}
	got, err := s.Append(context.Background(), raws(ms)...)
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range got {
		if m.Key != ms[i].Key || !bytes.Equal(m.Raw, ms[i].Raw) {
			t.Errorf("message %d: Append returned %s, want %s", i, m.Key, ms[i].Key)
		}
		item, err := s.Get(m.Key)
		if err != nil {
			t.Fatal(err)
		}
		if item.Key != m.Key || !bytes.Equal(item.Value, m.Raw) || item.Seq != uint64(i+1) || item.Timestamp <= 0 {
			t.Errorf("Get(%s) = %+v", m.Key, item)
		}
	}
	h, err := s.Latest(a.id())
	if err != nil {
		t.Fatal(err)
	}
	if h.State != a.state || h.Seq != 3 || h.Feed != a.id() {
		t.Errorf("Latest(a) = %+v, want %+v at 3", h, a.state)
	}
	if _, err := s.Latest(newAuthor(t, "c").id()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Latest of an unknown feed: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(refs.NewMessage([32]byte{1})); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown message: %v, want ErrNotFound", err)
	}
	if st := s.Stats(); st.Messages != 3 || st.Appended != 3 || st.Commits != 1 {
		t.Errorf("Stats = %+v, want 3 messages in 1 commit", st)
	}
	mustCheck(t, s)
}

// TestAppendRejects appends one bad message after a good feed of two and
// checks the error and that nothing was written.
func TestAppendRejects(t *testing.T) {
	a := newAuthor(t, "a")
	m1, m2 := a.post(t, 1), a.post(t, 2)
	// twin signs with a's key from m1 on: a fork of a's feed.
	twin := &author{kp: a.kp, state: m1.State()}
	t2 := twin.post(t, 2, "vote")
	t3 := twin.post(t, 3)
	m3 := a.make(t, 3)
	m4 := (&author{kp: a.kp, state: m3.State()}).post(t, 4)
	tampered := bytes.Replace(m3.Raw, []byte("message 3"), []byte("message 9"), 1)
	first := newAuthor(t, "b")
	first.state = message.FeedState{ID: m1.Key, Sequence: 1} // pretend b has a message 1
	second := first.make(t, 5)

	tests := []struct {
		name string
		raw  []byte
		is   []error
		seq  *message.SequenceError
	}{
		{"gap", m4.Raw, []error{message.ErrSequence}, &message.SequenceError{Got: 4, Want: 3}},
		{"fork at the next sequence", t3.Raw, []error{message.ErrFork}, nil},
		{"fork at a stored sequence", t2.Raw, []error{message.ErrFork, message.ErrSequence}, &message.SequenceError{Got: 2, Want: 3}},
		{"duplicate", m2.Raw, []error{ErrDuplicate, message.ErrSequence}, &message.SequenceError{Got: 2, Want: 3}},
		{"duplicate of the first", m1.Raw, []error{ErrDuplicate}, &message.SequenceError{Got: 1, Want: 3}},
		{"bad signature", tampered, []error{message.ErrSignature}, nil},
		{"not JSON", []byte(`{"previous":`), []error{message.ErrSyntax}, nil},
		{"new feed without message 1", second.Raw, []error{message.ErrSequence}, &message.SequenceError{Got: 2, Want: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			mustAppend(t, s, m1, m2)
			_, err := s.Append(context.Background(), tt.raw)
			var ae *AppendError
			if !errors.As(err, &ae) || ae.Index != 0 {
				t.Fatalf("Append: %v, want an *AppendError for message 0", err)
			}
			for _, want := range tt.is {
				if !errors.Is(err, want) {
					t.Errorf("Append: %v, want it to wrap %v", err, want)
				}
			}
			var se *message.SequenceError
			if tt.seq != nil && (!errors.As(err, &se) || *se != *tt.seq) {
				t.Errorf("Append: %v, want %+v", err, tt.seq)
			}
			if got := s.Durable(); got != 2 {
				t.Errorf("%d messages stored, want 2", got)
			}
			if h, _ := s.Latest(a.id()); h.State != m2.State() {
				t.Errorf("head moved to %+v", h.State)
			}
			mustCheck(t, s)
		})
	}
}

func TestBatchIsAtomic(t *testing.T) {
	a, b := newAuthor(t, "a"), newAuthor(t, "b")
	good := []*message.Message{a.post(t, 1), b.post(t, 1), a.post(t, 2), b.post(t, 2)}
	gap := (&author{kp: a.kp, state: message.FeedState{ID: good[2].Key, Sequence: 3}}).make(t, 5)
	bad := a.make(t, 3)
	tampered := bytes.Replace(bad.Raw, []byte(`"post"`), []byte(`"pots"`), 1)

	tests := []struct {
		name  string
		batch [][]byte
		index int
		is    error
	}{
		{"bad signature in the middle", [][]byte{good[0].Raw, good[1].Raw, tampered, good[2].Raw}, 2, message.ErrSignature},
		{"gap at the end", append(raws(good), gap.Raw), 4, message.ErrSequence},
		{"out of order within the batch", [][]byte{good[0].Raw, good[2].Raw, good[1].Raw, good[1].Raw}, 3, ErrDuplicate},
		{"second message first", [][]byte{good[2].Raw, good[0].Raw}, 0, message.ErrSequence},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t)
			_, err := s.Append(context.Background(), tt.batch...)
			var ae *AppendError
			if !errors.As(err, &ae) || ae.Index != tt.index || !errors.Is(err, tt.is) {
				t.Fatalf("Append: %v, want message %d to fail with %v", err, tt.index, tt.is)
			}
			if s.Durable() != 0 {
				t.Errorf("%d messages stored, want none", s.Durable())
			}
			if feeds, err := s.Feeds(context.Background()); err != nil || len(feeds) != 0 {
				t.Errorf("Feeds = %v, %v; want none", feeds, err)
			}
			mustCheck(t, s)
		})
	}
	s := openStore(t)
	if _, err := s.Append(context.Background(), raws(good)...); err != nil {
		t.Fatalf("the good batch: %v", err)
	}
	mustCheck(t, s)
}

// TestConcurrentAppendGroupCommit appends one message at a time from many
// goroutines, some of them bad, and checks that commits were shared and
// that each call was judged alone.
func TestConcurrentAppendGroupCommit(t *testing.T) {
	s := openStore(t)
	const feeds, perFeed = 16, 60
	var wg sync.WaitGroup
	errs := make(chan error, feeds)
	for f := range feeds {
		wg.Go(func() {
			a := generated(t)
			for i := range perFeed {
				m := a.post(t, float64(i))
				if _, err := s.Append(context.Background(), m.Raw); err != nil {
					errs <- err
					return
				}
				// A gap, rejected, sharing transactions with good calls.
				if f%4 == 0 {
					gap := (&author{kp: a.kp, state: message.FeedState{ID: m.Key, Sequence: m.Sequence + 1}}).make(t, 0)
					if _, err := s.Append(context.Background(), gap.Raw); !errors.Is(err, message.ErrSequence) {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Messages != feeds*perFeed || st.Appended != feeds*perFeed {
		t.Fatalf("Stats = %+v, want %d messages", st, feeds*perFeed)
	}
	if st.Commits >= feeds*perFeed {
		t.Errorf("%d commits for %d single-message appends from %d goroutines: no group commit", st.Commits, st.Appended, feeds)
	}
	t.Logf("%d messages in %d commits", st.Appended, st.Commits)
	heads, err := s.Feeds(context.Background())
	if err != nil || len(heads) != feeds {
		t.Fatalf("Feeds: %d heads, %v", len(heads), err)
	}
	for _, h := range heads {
		if h.State.Sequence != perFeed {
			t.Errorf("feed %s at %d, want %d", h.Feed, h.State.Sequence, perFeed)
		}
	}
	mustCheck(t, s)
}

// TestPublishNeverForks publishes to one feed from many goroutines.
func TestPublishNeverForks(t *testing.T) {
	s := openStore(t)
	a := newAuthor(t, "a")
	const goroutines, each = 8, 25
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				_, err := s.Publish(context.Background(), a.id(), func(prev message.FeedState) (*message.Message, error) {
					return message.Create(a.kp, nil, &prev, 1, map[string]any{"type": "post"})
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	h, err := s.Latest(a.id())
	if err != nil || h.State.Sequence != goroutines*each {
		t.Fatalf("Latest = %+v, %v; want sequence %d", h, err, goroutines*each)
	}
	mustCheck(t, s)

	other := newAuthor(t, "other")
	_, err = s.Publish(context.Background(), a.id(), func(prev message.FeedState) (*message.Message, error) {
		return message.Create(other.kp, nil, &prev, 1, map[string]any{"type": "post"})
	})
	if err == nil {
		t.Error("Publish stored a message of another feed")
	}
	wantErr := errors.New("no")
	_, err = s.Publish(context.Background(), a.id(), func(message.FeedState) (*message.Message, error) { return nil, wantErr })
	if !errors.Is(err, wantErr) {
		t.Errorf("Publish: %v, want the create function's error", err)
	}
}

func TestHMACKey(t *testing.T) {
	key := bytes.Repeat([]byte{7}, message.HMACKeySize)
	s := openStore(t, WithHMACKey(key))
	a := newAuthor(t, "a")
	a.hmac = key
	signed := a.post(t, 1)
	if _, err := s.Append(context.Background(), signed.Raw); err != nil {
		t.Fatal(err)
	}
	plain := newAuthor(t, "b").post(t, 1)
	if _, err := s.Append(context.Background(), plain.Raw); !errors.Is(err, message.ErrSignature) {
		t.Errorf("a message signed without the HMAC key: %v, want ErrSignature", err)
	}
	if _, err := Open(t.TempDir(), WithHMACKey([]byte{1, 2})); !errors.Is(err, message.ErrHMACKey) {
		t.Errorf("Open with a 2-byte HMAC key: %v, want ErrHMACKey", err)
	}
}

func TestAppendContextAndClose(t *testing.T) {
	s := openStore(t)
	a := newAuthor(t, "a")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, a.make(t, 1).Raw); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with a cancelled context: %v", err)
	}
	if s.Durable() != 0 {
		t.Error("a cancelled Append stored its message")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(context.Background(), a.make(t, 1).Raw); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Log(context.Background(), LogQuery{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Log after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}

func TestSecondOpenIsLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	_, err = Open(dir, WithLogger(quiet()), WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("second Open took %v", d)
	}
}

// TestReopen closes and opens a store with a clock that went back: all is
// there, appends continue, and receive timestamps keep increasing.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	a := newAuthor(t, "a")
	s, err := Open(dir, WithLogger(quiet()), WithClock(fakeClock(5000, 1)))
	if err != nil {
		t.Fatal(err)
	}
	first := a.posts(t, 10, 1)
	mustAppend(t, s, first...)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, WithLogger(quiet()), WithClock(fakeClock(100, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if h, err := s.Latest(a.id()); err != nil || h.State != a.state || h.Seq != 10 {
		t.Fatalf("Latest after reopen = %+v, %v", h, err)
	}
	if _, err := s.Append(context.Background(), first[9].Raw); !errors.Is(err, ErrDuplicate) {
		t.Errorf("the last message again after reopen: %v, want ErrDuplicate", err)
	}
	mustAppend(t, s, a.posts(t, 5, 11)...)
	items := collect(t)(s.Log(context.Background(), LogQuery{}))
	if len(items) != 15 {
		t.Fatalf("%d items, want 15", len(items))
	}
	for i := 1; i < len(items); i++ {
		if items[i].Timestamp <= items[i-1].Timestamp || items[i].Seq != items[i-1].Seq+1 {
			t.Errorf("item %d: seq %d ts %v after seq %d ts %v", i, items[i].Seq, items[i].Timestamp, items[i-1].Seq, items[i-1].Timestamp)
		}
	}
	mustCheck(t, s)
}

// TestGetAcrossEpochs finds messages in every epoch of the id index, with
// epochs of 4 messages.
func TestGetAcrossEpochs(t *testing.T) {
	defer func(bits int) { idEpochBits = bits }(idEpochBits)
	idEpochBits = 2
	s := openStore(t)
	a := newAuthor(t, "a")
	ms := a.posts(t, 23, 1)
	mustAppend(t, s, ms[:5]...)
	mustAppend(t, s, ms[5:]...)
	for i, m := range ms {
		it, err := s.Get(m.Key)
		if err != nil || it.Seq != uint64(i+1) {
			t.Errorf("Get(message %d) = seq %d, %v", i+1, it.Seq, err)
		}
	}
	if _, err := s.Get(a.make(t, 99).Key); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a message not stored: %v, want ErrNotFound", err)
	}
	mustCheck(t, s)
}

// TestTransactionJudgesEachCall applies calls to one transaction as the
// committer does: a rejected call leaves no trace, and the calls after it
// see the heads as the accepted calls left them.
func TestTransactionJudgesEachCall(t *testing.T) {
	s := openStore(t)
	a := newAuthor(t, "a")
	ms := a.posts(t, 5, 1)
	fork := (&author{kp: a.kp, state: ms[2].State()}).make(t, 99, "vote") // a second message 4
	tx, err := s.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	w := newWriter(tx, 0, 0, s.cfg.nowMS)
	calls := []struct {
		msgs []*message.Message
		want error
	}{
		{ms[:2], nil},
		// Message 5 does not follow the fork: the call, with its good
		// message 3 and the fork, is rejected.
		{[]*message.Message{ms[2], fork, ms[4]}, message.ErrFork},
		{ms[2:4], nil},
		{ms[3:4], ErrDuplicate},
		{ms[4:], nil},
	}
	for i, c := range calls {
		err := w.apply(s, &request{ctx: context.Background(), msgs: c.msgs})
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Fatalf("call %d: %v, want %v", i, err, c.want)
		}
	}
	if err := w.flush(); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if h, err := s.Latest(a.id()); err != nil || h.State != ms[4].State() || h.Seq != 5 {
		t.Fatalf("Latest = %+v, %v; want message 5 at 5", h, err)
	}
	mustCheck(t, s)
}
