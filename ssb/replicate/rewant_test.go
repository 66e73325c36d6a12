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

// ebtPeer answers ebt.replicate as epidemic-broadcast-trees does for its
// own feed f. It sends first the note first; it keeps our last note of f
// (across sessions, as ssb-ebt stores the clock of each peer); when it
// appends to f, it sends the new messages if we asked to receive f, notes
// its sequence if we replicate f without receiving it, and tells nothing
// if we noted -1 (epidemic-broadcast-trees' append: isAhead is false for a
// peer at -1) or nothing at all.
type ebtPeer struct {
	f    refs.Feed
	feed [][]byte // its messages, of which has are appended

	mu    sync.Mutex
	first map[string]int64 // the first note of the next session
	has   int
	ours  int64 // our last note of f; -2 before one
	sent  int   // messages of f we have (we said, or were sent)
	s     *muxrpc.Stream
	notes []int64 // our notes of f, in order
}

func (p *ebtPeer) handle(ctx context.Context, req *muxrpc.Request) {
	if req.Method.String() != "ebt.replicate" {
		req.Fail(errors.New("no"))
		return
	}
	s := req.Stream()
	p.mu.Lock()
	p.s = s
	err := s.Send(p.first)
	p.mu.Unlock()
	if err != nil {
		return
	}
	for {
		pkt, err := s.Recv(ctx)
		if err != nil {
			return
		}
		var n map[string]int64
		if _, isMsg := asMessage(pkt.Body); isMsg || json.Unmarshal(pkt.Body, &n) != nil {
			continue
		}
		v, ok := n[p.f.String()]
		if !ok {
			continue
		}
		p.mu.Lock()
		p.ours = v
		p.notes = append(p.notes, v)
		if v >= 0 && v&1 == 0 {
			p.sent = min(int(v>>1), p.has)
			p.sendLocked()
		}
		p.mu.Unlock()
	}
}

// sendLocked sends the messages appended beyond what we have.
func (p *ebtPeer) sendLocked() {
	for ; p.sent < p.has; p.sent++ {
		if p.s.SendRaw(muxrpc.JSON, p.feed[p.sent]) != nil {
			return
		}
	}
}

// appendTo appends messages of f up to n, as epidemic-broadcast-trees'
// append does.
func (p *ebtPeer) appendTo(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.has = n
	switch {
	case p.ours >= 0 && p.ours&1 == 0:
		p.sendLocked()
	case p.ours >= 0:
		p.s.Send(map[string]int64{p.f.String(): ebt.Value(int64(n), false)})
	}
}

func (p *ebtPeer) ourNotes() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.notes...)
}

// A feed we noted -1 to a peer (not wanted when the peer noted it, or
// given up) and that becomes wanted again is noted to the peer, even when
// the peer's sequence of it equals ours: request skipping would leave the
// peer taking us for not replicating the feed, and it would never tell us
// of its new messages. Found with ssb-invite: a JS server connects to our
// pub with nothing in its feed, before it uses its invite and the pub
// follows it; the pub answered -1 to its note of its own feed, then
// skipped the feed once followed, and never received it.
func TestRewantedFeedIsNoted(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h *rewantHarness)
	}{
		{"noted before followed", func(t *testing.T, h *rewantHarness) {
			h.connect(map[string]int64{h.peer.f.String(): ebt.Value(0, true)})
			h.wantNotes(t, -1) // not wanted yet
			h.follow(t, true)
		}},
		{"given up and followed again", func(t *testing.T, h *rewantHarness) {
			h.follow(t, true)
			h.connect(map[string]int64{h.peer.f.String(): ebt.Value(0, true)})
			h.follow(t, false)
			h.wantNotes(t, ebt.Value(0, true), -1)
			h.follow(t, true)
		}},
		{"noted -1 in the last session", func(t *testing.T, h *rewantHarness) {
			h.connect(map[string]int64{h.peer.f.String(): ebt.Value(0, true)})
			h.wantNotes(t, -1)
			h.disconnect()
			h.follow(t, true)
			// The peer stored our -1: its first note leaves f out.
			h.connect(map[string]int64{})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := newRewantHarness(t)
				tc.run(t, h)
				time.Sleep(time.Second) // announce ticks
				synctest.Wait()
				h.peer.appendTo(3)
				time.Sleep(time.Second)
				synctest.Wait()
				if got := h.r.latest(h.peer.f); got != 3 {
					t.Errorf("stored %d messages of the peer's feed, want 3; our notes of it: %v", got, h.peer.ourNotes())
				}
				h.close(t)
			})
		})
	}
}

// rewantHarness is a replicator (hops 1, clocks kept) and an ebtPeer that
// connects to it.
type rewantHarness struct {
	ctx    context.Context
	cancel context.CancelFunc
	st     *store.Store
	self   *keys.KeyPair
	r      *Replicator
	ran    chan error
	peer   *ebtPeer
	peerID refs.Feed
	conn   func() // closes the connection and waits for it to end
}

func newRewantHarness(t *testing.T) *rewantHarness {
	h := &rewantHarness{ran: make(chan error, 1)}
	h.ctx, h.cancel = context.WithCancel(t.Context())
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	h.st = st
	h.self, _ = keys.Generate(nil)
	author, _ := keys.Generate(nil)
	feed, err := ssbtest.Feed(author, 3, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	h.peer = &ebtPeer{f: author.ID, feed: feed, ours: -2}
	h.peerID = author.ID
	h.r = New(st, h.self.ID, Config{Hops: 1, ClockDir: t.TempDir()})
	go func() { h.ran <- h.r.Run(h.ctx) }()
	synctest.Wait()
	return h
}

// follow publishes our follow (or unfollow) of the peer, and waits for
// the replicator to act on it.
func (h *rewantHarness) follow(t *testing.T, following bool) {
	t.Helper()
	c := map[string]any{"type": "contact", "contact": h.peerID.String(), "following": following}
	if _, err := h.st.Publish(h.ctx, h.self.ID, func(prev message.FeedState) (*message.Message, error) {
		return message.Create(h.self, nil, &prev, 1.7e12, c)
	}); err != nil {
		t.Error(err)
	}
	time.Sleep(time.Second) // announce ticks
	synctest.Wait()
}

// connect starts a connection we dialed; the peer's first note is first.
func (h *rewantHarness) connect(first map[string]int64) {
	h.peer.mu.Lock()
	h.peer.first = first
	h.peer.mu.Unlock()
	ctx, cancel := context.WithCancel(h.ctx)
	ours, theirs := net.Pipe()
	eo := muxrpc.NewEndpoint(ours, muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) { req.Fail(errors.New("no")) }))
	et := muxrpc.NewEndpoint(theirs, muxrpc.HandlerFunc(h.peer.handle))
	var conns sync.WaitGroup
	conns.Go(func() { eo.Serve(ctx) })
	conns.Go(func() { et.Serve(ctx) })
	h.r.AddPeer(ctx, eo, h.peerID, true)
	h.conn = func() {
		cancel()
		eo.Close()
		et.Close()
		conns.Wait()
	}
	time.Sleep(time.Second)
	synctest.Wait()
}

func (h *rewantHarness) disconnect() {
	h.conn()
	h.conn = nil
	synctest.Wait() // the session has ended and stored the peer's clock
}

// wantNotes checks our notes of the peer's feed so far.
func (h *rewantHarness) wantNotes(t *testing.T, want ...int64) {
	t.Helper()
	if got := h.peer.ourNotes(); !slices.Equal(got, want) {
		t.Errorf("our notes of the peer's feed: %v, want %v", got, want)
	}
}

func (h *rewantHarness) close(t *testing.T) {
	if h.conn != nil {
		h.conn()
	}
	h.cancel()
	if err := <-h.ran; err != nil {
		t.Error(err)
	}
	h.st.Close()
}
