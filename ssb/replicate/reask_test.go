package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate/ebt"
	"github.com/scuttlego/scuttle/ssb/store"
)

// disorderly is a peer that always sends feed f out of order: asked from
// sequence s, it sends s, s+2, s+1, s+3, …, so each ask stores one message
// more. It serves createHistoryStream or, if ebt, ebt.replicate (answering
// each note that asks for f, as ssb-ebt does), and records the sequences f
// is asked from.
type disorderly struct {
	f    refs.Feed
	feed [][]byte
	ebt  bool

	mu   sync.Mutex
	asks []int64
}

func (d *disorderly) from(seq int64) [][]byte {
	d.mu.Lock()
	d.asks = append(d.asks, seq)
	d.mu.Unlock()
	out := slices.Clone(d.feed[min(max(seq, 1)-1, int64(len(d.feed))):])
	if len(out) >= 3 {
		out[1], out[2] = out[2], out[1]
	}
	return out
}

func (d *disorderly) handle(ctx context.Context, req *muxrpc.Request) {
	switch {
	case req.Method.String() == "createHistoryStream" && !d.ebt:
		var args []struct {
			ID  string
			Seq int64
		}
		if json.Unmarshal(req.Args, &args) != nil || len(args) != 1 || args[0].ID != d.f.String() {
			req.Fail(errors.New("no such feed"))
			return
		}
		for _, raw := range d.from(args[0].Seq) {
			req.Stream().SendRaw(muxrpc.JSON, raw)
		}
		<-ctx.Done()
	case req.Method.String() == "ebt.replicate" && d.ebt:
		s := req.Stream()
		if s.Send(map[string]int64{d.f.String(): ebt.Value(int64(len(d.feed)), false)}) != nil {
			return
		}
		for {
			pkt, err := s.Recv(ctx)
			if err != nil {
				return
			}
			var n map[string]int64
			if json.Unmarshal(pkt.Body, &n) != nil {
				continue
			}
			if v, ok := n[d.f.String()]; ok && v >= 0 && v&1 == 0 {
				for _, raw := range d.from(v>>1 + 1) {
					s.SendRaw(muxrpc.JSON, raw)
				}
			}
		}
	default:
		req.Fail(errors.New("no"))
	}
}

// A peer that keeps sending a feed out of order is asked for it again
// from where it stopped, after a back-off, 1+maxReasks times in all on
// the connection: not in a loop. Each bad message is counted.
func TestReasksAreBounded(t *testing.T) {
	for _, ebt := range []bool{false, true} {
		t.Run(map[bool]string{false: "legacy", true: "ebt"}[ebt], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { reasksAreBounded(t, ebt) })
		})
	}
}

func reasksAreBounded(t *testing.T, ebt bool) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	self, _ := keys.Generate(nil)
	author, _ := keys.Generate(nil)
	feed, err := ssbtest.Feed(author, 10, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	follow := map[string]any{"type": "contact", "contact": author.ID.String(), "following": true}
	if _, err := st.Publish(ctx, self.ID, func(prev message.FeedState) (*message.Message, error) {
		return message.Create(self, nil, &prev, 1.7e12, follow)
	}); err != nil {
		t.Fatal(err)
	}
	r := New(st, self.ID, Config{Hops: 1, NoEBT: !ebt})
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	synctest.Wait() // the follow is read: author is wanted

	peer := &disorderly{f: author.ID, feed: feed, ebt: ebt}
	ours, theirs := net.Pipe()
	eo := muxrpc.NewEndpoint(ours, muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) { req.Fail(errors.New("no")) }))
	et := muxrpc.NewEndpoint(theirs, muxrpc.HandlerFunc(peer.handle))
	var conns sync.WaitGroup
	conns.Go(func() { eo.Serve(ctx) })
	conns.Go(func() { et.Serve(ctx) })
	peerKeys, _ := keys.Generate(nil)
	start := time.Now()
	r.AddPeer(ctx, eo, peerKeys.ID, true)

	// The back-offs add up to under 2 s; a re-ask after them would come
	// 2 s after the last.
	time.Sleep(10 * time.Second)
	synctest.Wait()
	peer.mu.Lock()
	asks := slices.Clone(peer.asks)
	peer.mu.Unlock()
	if want := []int64{1, 2, 3, 4}; !slices.Equal(asks, want) {
		t.Errorf("asked from %v within %v, want %v", asks, time.Since(start), want)
	}
	if h, err := st.Latest(author.ID); err != nil || h.State.Sequence != 4 {
		t.Errorf("stored up to %d (%v), want 4", h.State.Sequence, err)
	}
	if got := r.Stats().InvalidBatches; got != 1+maxReasks {
		t.Errorf("%d invalid batches counted, want %d", got, 1+maxReasks)
	}
	if r.Forked()[author.ID] != nil {
		t.Errorf("messages out of order taken for a fork")
	}

	cancel()
	eo.Close()
	et.Close()
	conns.Wait()
	if err := <-ran; err != nil {
		t.Error(err)
	}
}
