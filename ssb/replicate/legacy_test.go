package replicate

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/store"
)

// With legacy replication only (NoEBT), a peer that dialed us is not
// called before it has called us: ssb-replicate, when it dials, misses a
// createHistoryStream that arrives before its connection handlers are set
// up, and then never asks for our feeds. Once it calls (ssb-server calls
// ebt.replicate first), it is asked at once; a peer that never calls is
// asked after DefaultEBTWait.
func TestLegacyWaitsForTheDialerToCall(t *testing.T) {
	for _, calls := range []bool{true, false} {
		t.Run(map[bool]string{true: "peer calls", false: "peer silent"}[calls], func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { legacyWaitsForTheDialer(t, calls) })
		})
	}
}

func legacyWaitsForTheDialer(t *testing.T, calls bool) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	self, _ := keys.Generate(nil)
	peerKeys, _ := keys.Generate(nil)
	follow := map[string]any{"type": "contact", "contact": peerKeys.ID.String(), "following": true}
	if _, err := st.Publish(ctx, self.ID, func(prev message.FeedState) (*message.Message, error) {
		return message.Create(self, nil, &prev, 1.7e12, follow)
	}); err != nil {
		t.Fatal(err)
	}
	r := New(st, self.ID, Config{Hops: 1, NoEBT: true})
	ran := make(chan error, 1)
	go func() { ran <- r.Run(ctx) }()
	synctest.Wait()

	// The peer records when it is asked for a feed.
	var mu sync.Mutex
	var asked []time.Time
	theirs, ours := net.Pipe()
	et := muxrpc.NewEndpoint(theirs, muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		if req.Method.String() != "createHistoryStream" {
			req.Fail(errors.New("no"))
			return
		}
		mu.Lock()
		asked = append(asked, time.Now())
		mu.Unlock()
		<-ctx.Done()
	}))
	var eo *muxrpc.Endpoint
	eo = muxrpc.NewEndpoint(ours, muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		if req.Method.String() != "ebt.replicate" {
			req.Fail(errors.New("no"))
			return
		}
		if err := r.ServeEBT(ctx, req, eo, peerKeys.ID); err != nil {
			req.Fail(err)
		}
	}))
	var conns sync.WaitGroup
	conns.Go(func() { eo.Serve(ctx) })
	conns.Go(func() { et.Serve(ctx) })
	start := time.Now()
	r.AddPeer(ctx, eo, peerKeys.ID, false)

	var called time.Time
	if calls {
		time.Sleep(DefaultEBTWait / 2)
		synctest.Wait()
		mu.Lock()
		early := len(asked)
		mu.Unlock()
		if early != 0 {
			t.Fatalf("the peer was asked for %d feeds before it called", early)
		}
		called = time.Now()
		s, err := et.Open(muxrpc.Method{"ebt", "replicate"}, muxrpc.Duplex, map[string]any{"version": 3})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(ctx); err == nil {
			t.Error("ebt.replicate was answered with NoEBT")
		}
	}
	time.Sleep(2 * DefaultEBTWait)
	synctest.Wait()
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 { // our feed and the peer's
		t.Fatalf("the peer was asked for %d feeds, want 2", len(asked))
	}
	for _, at := range asked {
		if calls && !at.Equal(called) {
			t.Errorf("asked %v after the peer called, want at once", at.Sub(called))
		}
		if !calls && at.Sub(start) != DefaultEBTWait {
			t.Errorf("a silent peer was asked after %v, want Config.EBTWait's default (%v)", at.Sub(start), DefaultEBTWait)
		}
	}
	cancel()
	eo.Close()
	et.Close()
	conns.Wait()
	if err := <-ran; err != nil {
		t.Error(err)
	}
}
