package db

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// interleaved returns n feeds of m messages, one message of each feed in
// turn, and their keys.
func interleaved(t *testing.T, n, m int) ([][]byte, []refs.Message) {
	t.Helper()
	_, fs := feeds(t, n, m)
	var raws [][]byte
	var ids []refs.Message
	for i := range m {
		for f := range n {
			raws = append(raws, fs[f][i])
			ids = append(ids, decoded(t, fs[f][i]).Key)
		}
	}
	return raws, ids
}

func decoded(t *testing.T, raw []byte) *message.Message {
	t.Helper()
	m, err := message.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// logKeys returns the keys of the store's log, in receive order.
func logKeys(t *testing.T, s *store.Store) []refs.Message {
	t.Helper()
	it, err := s.Log(context.Background(), store.LogQuery{})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var ks []refs.Message
	for {
		item, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return ks
		}
		if err != nil {
			t.Fatal(err)
		}
		ks = append(ks, item.Key)
	}
}

// writeAll opens createWriteStream and writes raws; the stream stays open.
func writeAll(t *testing.T, e *muxrpc.Endpoint, raws [][]byte) *muxrpc.Stream {
	t.Helper()
	st, err := e.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raws {
		if st.SendRaw(muxrpc.JSON, r) != nil {
			break // the server ended the stream: Recv says why
		}
	}
	return st
}

// A long stream of many feeds is stored whole, in the order written.
func TestCreateWriteStreamStoresInOrder(t *testing.T) {
	s := startServer(t)
	raws, ids := interleaved(t, 5, 600)
	st := writeAll(t, s.local(t), raws)
	st.Close()
	// The sink's end is answered at once: follow the log until all are
	// stored.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	it, err := s.Store().Log(ctx, store.LogQuery{Live: true})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var got []refs.Message
	for len(got) < len(raws) {
		item, err := it.Next(ctx)
		if err != nil {
			t.Fatalf("%d of %d messages stored: %v", len(got), len(raws), err)
		}
		got = append(got, item.Key)
	}
	if len(got) != len(ids) {
		t.Fatalf("%d messages stored, want %d", len(got), len(ids))
	}
	for i := range ids {
		if got[i] != ids[i] {
			t.Fatalf("message %d of the log is %s, want %s", i, got[i], ids[i])
		}
	}
}

// sneakernetRE is what sbot import reads in the error for a refused message.
var sneakernetRE = regexp.MustCompile(`\((%[^,]+), (@\S+) sequence (\d+)\)`)

// The first invalid message of a long stream ends it with its error;
// what is stored is a prefix of what was written, before that message.
func TestCreateWriteStreamStopsAtTheFirstInvalid(t *testing.T) {
	const bad = 2000
	stranger, _ := keys.Generate(nil)
	gapFeed, err := ssbtest.Feed(stranger, 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	gap := decoded(t, gapFeed[1]) // sequence 2 of a feed no one has
	for _, tc := range []struct {
		name  string
		raw   func(raws [][]byte) []byte
		wants []string
	}{
		{"bad signature", func(raws [][]byte) []byte {
			return bytes.Replace(raws[bad], []byte(`"message `), []byte(`"massage `), 1)
		}, []string{"createWriteStream: store: append", "signature"}},
		{"gap", func([][]byte) []byte { return gapFeed[1] }, []string{
			"(" + gap.Key.String() + ", " + stranger.ID.String() + " sequence 2)", "sequence"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			raws, ids := interleaved(t, 4, 800)
			raws[bad] = tc.raw(raws)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			st := writeAll(t, s.local(t), raws)
			_, err := st.Recv(ctx)
			if err == nil || errors.Is(err, io.EOF) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("the stream ended with %v, want the refusal", err)
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if tc.name == "gap" {
				if m := sneakernetRE.FindStringSubmatch(err.Error()); m == nil || m[3] != "2" {
					t.Errorf("error %q does not name the message as sbot import reads it", err)
				}
			}
			got := logKeys(t, s.Store())
			if len(got) >= bad {
				t.Fatalf("%d messages stored, want fewer than %d", len(got), bad)
			}
			for i := range got {
				if got[i] != ids[i] {
					t.Fatalf("message %d of the log is %s, want %s (a prefix of the stream)", i, got[i], ids[i])
				}
			}
		})
	}
}

// runPipeline verifies all of batches before it commits any, so that every
// batch is judged before the ones ahead of it are stored, and returns the
// committer's error.
func runPipeline(t *testing.T, p *Plugin, batches ...*writeBatch) error {
	t.Helper()
	ctx := context.Background()
	in, out := make(chan *writeBatch, len(batches)), make(chan *writeBatch, len(batches))
	for _, b := range batches {
		in <- b
	}
	close(in)
	p.verifyBatches(ctx, in, out)
	var failed error
	p.commitBatches(ctx, out, func(err error) {
		if failed != nil {
			t.Error("fail called twice")
		}
		failed = err
	})
	return failed
}

func batchOf(raws ...[]byte) *writeBatch { return &writeBatch{raws: raws} }

// A batch that fails verification stops the stream once the batches
// before it are stored; nothing after it is stored. A batch the
// committer refuses (the chain) stops it too, though the next one was
// verified.
func TestWriteBatchesInOrder(t *testing.T) {
	_, fs := feeds(t, 2, 6)
	a, b := fs[0], fs[1]
	tampered := bytes.Replace(a[3], []byte(`"message `), []byte(`"massage `), 1)

	s := startServer(t)
	err := runPipeline(t, s.db, batchOf(a[0], b[0], a[1]), batchOf(b[1], tampered), batchOf(b[2]))
	if !errors.Is(err, message.ErrSignature) {
		t.Fatalf("pipeline: %v, want the bad signature", err)
	}
	if got := logKeys(t, s.Store()); len(got) != 3 {
		t.Errorf("%d messages stored, want the first batch's 3", len(got))
	}

	s = startServer(t)
	err = runPipeline(t, s.db, batchOf(a[0], b[0]), batchOf(a[2]), batchOf(b[1]))
	var ae *store.AppendError
	if !errors.As(err, &ae) || !errors.Is(err, message.ErrSequence) || ae.Sequence != 3 {
		t.Fatalf("pipeline: %v, want a's message 3 refused", err)
	}
	if got := logKeys(t, s.Store()); len(got) != 2 {
		t.Errorf("%d messages stored, want the first batch's 2", len(got))
	}
}

// While our feed is recovering, a batch of our messages beyond the
// remembered head is refused when it is verified (the batch before it,
// which reaches the head, is not stored yet); it is judged again once
// that batch is stored, and stored.
func TestWriteBatchOwnFeedRecheck(t *testing.T) {
	s := startServer(t)
	own, err := ssbtest.Feed(s.Keys(), 8, 1)
	if err != nil {
		t.Fatal(err)
	}
	head := decoded(t, own[4])
	o := s.db.own
	o.mu.Lock()
	o.state, o.expected = ownRecovering, head.State()
	o.mu.Unlock()

	first, second := batchOf(own[:5]...), batchOf(own[5:]...)
	if err := runPipeline(t, s.db, first, second); err != nil {
		t.Fatal(err)
	}
	if !second.recheck || first.recheck {
		t.Errorf("recheck: first %v, second %v; want only the second", first.recheck, second.recheck)
	}
	if got := logKeys(t, s.Store()); len(got) != 8 {
		t.Errorf("%d messages stored, want 8", len(got))
	}
	if !o.ready() {
		t.Error("own feed is not ok after the store reached its head")
	}
	if h, err := s.Store().Latest(s.Keys().ID); err != nil || h.State.Sequence != 8 {
		t.Errorf("our feed's head: %+v, %v; want 8", h, err)
	}

	// Beyond the remembered head, not preceded by it: refused for good.
	s = startServer(t)
	if own, err = ssbtest.Feed(s.Keys(), 8, 1); err != nil {
		t.Fatal(err)
	}
	o = s.db.own
	o.mu.Lock()
	o.state, o.expected = ownRecovering, decoded(t, own[4]).State()
	o.mu.Unlock()
	err = runPipeline(t, s.db, batchOf(own[:2]...), batchOf(own[2:7]...))
	if err == nil || !strings.Contains(err.Error(), "being recovered") {
		t.Fatalf("pipeline: %v, want refused while recovering", err)
	}
	if got := logKeys(t, s.Store()); len(got) != 2 {
		t.Errorf("%d messages stored, want 2", len(got))
	}
}
