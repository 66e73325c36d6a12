package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// The own-feed head file (<path>/own-feed.json) and states, as package db
// writes and reports them.
const ownFeedFile = "own-feed.json"

const (
	ownOK          = "ok"
	ownRecovering  = "recovering"
	ownUnconfirmed = "unconfirmed"
	ownForked      = "forked"
)

// ownHead is the head file's content.
type ownHead struct {
	Feed     string `json:"feed"`
	Sequence int64  `json:"sequence"`
	Key      string `json:"key,omitempty"` // empty at sequence 0
}

// ownFeedStatus is status.ownFeed.
type ownFeedStatus struct {
	State    string
	Stored   int64
	Expected int64
	Error    string
}

func ownStatus(t *testing.T, e rpc) ownFeedStatus {
	t.Helper()
	var st struct{ OwnFeed ownFeedStatus }
	if err := e.AsyncJSON(context.Background(), &st, muxrpc.Method{"status"}); err != nil {
		t.Fatalf("status: %v", err)
	}
	return st.OwnFeed
}

// waitOwnState waits until n's own feed is in state.
func waitOwnState(t *testing.T, n *node, state string, within time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	if err := dbOf(n.srv).WaitOwnFeed(ctx, state); err != nil {
		t.Fatalf("own feed after %v: %+v, want %q", within, ownStatus(t, n.local), state)
	}
}

// newNodeIn is newNode with prepare run on the data directory first.
func newNodeIn(t *testing.T, caps [32]byte, prepare func(dir string)) *node {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &node{t: t, cfg: server.Config{Path: t.TempDir(), Host: "127.0.0.1", Port: port,
		Caps: base64.StdEncoding.EncodeToString(caps[:]), HandshakeTimeout: 2 * time.Second}}
	prepare(n.cfg.Path)
	n.start()
	t.Cleanup(n.halt)
	return n
}

// emptyStore removes a halted node's store, as a disk failure or a bad
// restore would.
func emptyStore(t *testing.T, n *node) {
	t.Helper()
	if err := os.Remove(filepath.Join(n.cfg.Path, "db", store.FileName)); err != nil {
		t.Fatal(err)
	}
}

func gossipConnect(t *testing.T, e rpc, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res any
	if err := e.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, addr); err != nil {
		t.Fatalf("gossip.connect %s: %v", addr, err)
	}
}

// latest returns what e holds as the latest message of feed.
func latest(t *testing.T, e rpc, feed refs.Feed) kvt {
	t.Helper()
	var m kvt
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"getLatest"}, feed.String()); err != nil {
		t.Fatalf("getLatest %s: %v", feed, err)
	}
	return m
}

// publishRefused checks that publishing is refused with an error holding
// every one of want, and that nothing is stored.
func publishRefused(t *testing.T, n *node, want ...string) {
	t.Helper()
	before := n.srv.Store().Stats().Messages
	_, err := n.local.Async(context.Background(), muxrpc.Method{"publish"}, map[string]any{"type": "post", "text": "too early"})
	if err == nil {
		t.Fatal("publish succeeded")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("publish refused with %q, want it to say %q", err, w)
		}
	}
	if after := n.srv.Store().Stats().Messages; after != before {
		t.Errorf("a refused publish stored %d messages", after-before)
	}
}

func publishKVT(t *testing.T, e rpc, content map[string]any) kvt {
	t.Helper()
	var m kvt
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"publish"}, content); err != nil {
		t.Fatalf("publish %v: %v", content, err)
	}
	return m
}

// readOwnHead reads a node's head file.
func readOwnHead(t *testing.T, n *node) ownHead {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(n.cfg.Path, ownFeedFile))
	if err != nil {
		t.Fatal(err)
	}
	var h ownHead
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatalf("head file %q: %v", data, err)
	}
	return h
}

func writeOwnHead(t *testing.T, n *node, h ownHead) {
	t.Helper()
	data, _ := json.Marshal(h)
	if err := os.WriteFile(filepath.Join(n.cfg.Path, ownFeedFile), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A server whose store lost its messages does not fork its feed: it
// refuses to publish, gets its feed back from a peer, then publishes the
// next message, which the peer accepts.
func TestOwnFeedRecoveredFromGoPeer(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := newNode(t, caps), newNode(t, caps)
	for i := range 3 {
		publish(t, a.local, map[string]any{"type": "post", "text": fmt.Sprint("a", i)})
	}
	publish(t, a.local, map[string]any{"type": "contact", "contact": b.id().String(), "following": true})
	publish(t, b.local, map[string]any{"type": "contact", "contact": a.id().String(), "following": true})
	gossipConnect(t, a.local, ssbtest.Address(b.addr(), b.id()))
	waitSeq(t, b.local, a.id(), 4, 10*time.Second)
	head := latest(t, b.local, a.id())

	a.halt()
	b.halt()
	emptyStore(t, a)
	a.start()
	if st := ownStatus(t, a.local); st.State != ownRecovering || st.Stored != 0 || st.Expected != 4 {
		t.Fatalf("own feed after losing the store: %+v, want recovering, 0 of 4", st)
	}
	publishRefused(t, a, "being recovered", "up to sequence 0", "published up to 4", "fetched from peers")
	// A message of ours signed elsewhere that would follow the real
	// head is refused too while the store is behind.
	next, err := message.Create(a.srv.Keys(), nil, &message.FeedState{ID: mustMessage(t, head.Key), Sequence: 4}, 1.7e12, map[string]any{"type": "post"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.local.Async(context.Background(), muxrpc.Method{"add"}, json.RawMessage(next.Raw)); err == nil || !strings.Contains(err.Error(), "being recovered") {
		t.Errorf("add of our message 5 while recovering: %v, want refused", err)
	}

	b.start()
	gossipConnect(t, a.local, ssbtest.Address(b.addr(), b.id()))
	waitOwnState(t, a, ownOK, 10*time.Second)
	if got := latest(t, a.local, a.id()); got.Key != head.Key || got.Value.Sequence != 4 {
		t.Fatalf("after recovery the store's head of our feed is %s (%d), want %s (4)", got.Key, got.Value.Sequence, head.Key)
	}
	m := publishKVT(t, a.local, map[string]any{"type": "post", "text": "after the recovery"})
	if m.Value.Sequence != 5 || m.Value.Previous == nil || *m.Value.Previous != head.Key {
		t.Fatalf("published sequence %d after %v, want 5 after %s", m.Value.Sequence, m.Value.Previous, head.Key)
	}
	waitSeq(t, b.local, a.id(), 5, 10*time.Second)
	if got := latest(t, b.local, a.id()); got.Key != m.Key {
		t.Errorf("the peer holds %s as our latest, want %s", got.Key, m.Key)
	}
	if h := readOwnHead(t, a); h.Sequence != 5 || h.Key != m.Key {
		t.Errorf("head file %+v, want 5 %s", h, m.Key)
	}
}

// A JavaScript ssb-server holding our feed hands it back (over EBT or
// legacy replication), and accepts what we publish after it.
func TestOwnFeedRecoveredFromJSServer(t *testing.T) {
	for _, ebt := range []bool{true, false} {
		t.Run(map[bool]string{true: "ebt", false: "legacy"}[ebt], func(t *testing.T) { recoverFromJS(t, ebt) })
	}
}

func recoverFromJS(t *testing.T, ebt bool) {
	var caps [32]byte
	rand.Read(caps[:])
	a := newNode(t, caps)
	a.halt()
	a.cfg.NoEBT = !ebt
	a.start()
	j := startJS(t, caps)
	publish(t, a.local, map[string]any{"type": "post", "text": "one"})
	publish(t, a.local, map[string]any{"type": "contact", "contact": j.Keys.ID.String(), "following": true})
	publish(t, j.Client, map[string]any{"type": "contact", "contact": a.id().String(), "following": true})
	gossipConnect(t, a.local, j.Address())
	waitSeq(t, j.Client, a.id(), 2, 20*time.Second)
	head := latest(t, j.Client, a.id())

	a.halt()
	emptyStore(t, a)
	// Forget ssb-server's address too, or the scheduler would dial it at
	// once and recover before the refusal is seen.
	if err := os.Remove(filepath.Join(a.cfg.Path, "gossip.json")); err != nil {
		t.Fatal(err)
	}
	a.cfg.NoEBT = !ebt // set before Serve: the scheduler may dial at once
	a.start()
	publishRefused(t, a, "being recovered", "published up to 2")
	gossipConnect(t, a.local, j.Address())
	waitOwnState(t, a, ownOK, 20*time.Second)
	if got := latest(t, a.local, a.id()); got.Key != head.Key {
		t.Fatalf("after recovery our latest is %s, want %s", got.Key, head.Key)
	}
	m := publishKVT(t, a.local, map[string]any{"type": "post", "text": "after the recovery"})
	if m.Value.Sequence != 3 {
		t.Fatalf("published sequence %d, want 3", m.Value.Sequence)
	}
	waitSeq(t, j.Client, a.id(), 3, 20*time.Second)
	if got := latest(t, j.Client, a.id()); got.Key != m.Key {
		t.Errorf("ssb-server holds %s as our latest, want %s", got.Key, m.Key)
	}
}

// A secret copied to a new data directory: publishing waits until a peer
// has answered about our feed, then goes on from what it had.
func TestOwnFeedRestoredIdentity(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := newNode(t, caps), newNode(t, caps)
	publish(t, a.local, map[string]any{"type": "post", "text": "before the move"})
	publish(t, a.local, map[string]any{"type": "contact", "contact": b.id().String(), "following": true})
	publish(t, b.local, map[string]any{"type": "contact", "contact": a.id().String(), "following": true})
	gossipConnect(t, a.local, ssbtest.Address(b.addr(), b.id()))
	waitSeq(t, b.local, a.id(), 2, 10*time.Second)
	aID := a.id()
	a.halt()

	secret, err := os.ReadFile(filepath.Join(a.cfg.Path, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	c := newNodeIn(t, caps, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "secret"), secret, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	if c.id() != aID {
		t.Fatalf("the copied secret is %s, want %s", c.id(), aID)
	}
	if st := ownStatus(t, c.local); st.State != ownUnconfirmed || st.Stored != 0 {
		t.Fatalf("own feed of a restored identity: %+v, want unconfirmed, 0 stored", st)
	}
	publishRefused(t, c, "unconfirmed", "ownFeed.accept")

	gossipConnect(t, c.local, ssbtest.Address(b.addr(), b.id()))
	waitOwnState(t, c, ownOK, 10*time.Second)
	m := publishKVT(t, c.local, map[string]any{"type": "post", "text": "after the move"})
	if m.Value.Sequence != 3 {
		t.Fatalf("published sequence %d, want 3", m.Value.Sequence)
	}
	waitSeq(t, b.local, aID, 3, 10*time.Second)
}

// With no peer to ask, ownFeed.accept is the way out.
func TestOwnFeedAccept(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a := newNode(t, caps)
	a.halt()
	secret, err := os.ReadFile(filepath.Join(a.cfg.Path, "secret"))
	if err != nil {
		t.Fatal(err)
	}
	c := newNodeIn(t, caps, func(dir string) {
		if err := os.WriteFile(filepath.Join(dir, "secret"), secret, 0o600); err != nil {
			t.Fatal(err)
		}
	})
	publishRefused(t, c, "unconfirmed")
	var st ownFeedStatus
	if err := c.local.AsyncJSON(context.Background(), &st, muxrpc.Method{"ownFeed", "accept"}); err != nil || st.State != ownOK {
		t.Fatalf("ownFeed.accept: %+v, %v", st, err)
	}
	if m := publishKVT(t, c.local, map[string]any{"type": "post"}); m.Value.Sequence != 1 {
		t.Fatalf("published sequence %d, want 1", m.Value.Sequence)
	}
	if h := readOwnHead(t, c); h.Sequence != 1 || h.Feed != c.id().String() {
		t.Errorf("head file %+v, want sequence 1 of %s", h, c.id())
	}
}

// The head file: written for a new identity, after every publish
// (concurrent ones too), ahead of a lagging file, never trusted torn or
// damaged, and a store that disagrees with it is a fork.
func TestOwnFeedHeadFile(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a := newNode(t, caps)
	if h := readOwnHead(t, a); h.Sequence != 0 || h.Feed != a.id().String() || h.Key != "" {
		t.Fatalf("head file of a new identity: %+v", h)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { publish(t, a.local, map[string]any{"type": "post", "n": i}) })
	}
	wg.Wait()
	m20 := latest(t, a.local, a.id())
	if h := readOwnHead(t, a); h.Sequence != 20 || h.Key != m20.Key {
		t.Fatalf("head file after 20 concurrent publishes: %+v, want 20 %s", h, m20.Key)
	}
	m21 := publishKVT(t, a.local, map[string]any{"type": "post"})
	id := a.id().String()
	a.halt()

	t.Run("lagging file and torn temporary file", func(t *testing.T) {
		// A crash after the store's commit, before the file's rename.
		writeOwnHead(t, a, ownHead{Feed: id, Sequence: 20, Key: m20.Key})
		torn := filepath.Join(a.cfg.Path, ownFeedFile+".tmp123")
		if err := os.WriteFile(torn, []byte(`{"feed":"`+id+`","sequence":99`), 0o600); err != nil {
			t.Fatal(err)
		}
		a.start()
		defer a.halt()
		if st := ownStatus(t, a.local); st.State != ownOK {
			t.Fatalf("own feed: %+v, want ok", st)
		}
		if h := readOwnHead(t, a); h.Sequence != 21 || h.Key != m21.Key {
			t.Errorf("head file not brought up to the store: %+v", h)
		}
		if _, err := os.Stat(torn); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("torn temporary file left: %v", err)
		}
		if m := publishKVT(t, a.local, map[string]any{"type": "post"}); m.Value.Sequence != 22 {
			t.Errorf("published %d, want 22", m.Value.Sequence)
		}
	})
	t.Run("store disagrees", func(t *testing.T) {
		h := readOwnHead(t, a)
		writeOwnHead(t, a, ownHead{Feed: h.Feed, Sequence: 21, Key: m20.Key})
		a.start()
		defer a.halt()
		if st := ownStatus(t, a.local); st.State != ownForked {
			t.Fatalf("own feed: %+v, want forked", st)
		}
		publishRefused(t, a, "forked", m20.Key, m21.Key)
		var st ownFeedStatus
		if err := a.local.AsyncJSON(context.Background(), &st, muxrpc.Method{"ownFeed", "accept"}); err != nil || st.State != ownOK || st.Expected != 22 {
			t.Fatalf("ownFeed.accept: %+v, %v", st, err)
		}
	})
	t.Run("damaged file", func(t *testing.T) {
		if err := os.WriteFile(filepath.Join(a.cfg.Path, ownFeedFile), []byte(`{"feed":`), 0o600); err != nil {
			t.Fatal(err)
		}
		a.start()
		defer a.halt()
		if st := ownStatus(t, a.local); st.State != ownUnconfirmed || st.Stored != 22 {
			t.Fatalf("own feed: %+v, want unconfirmed with 22 stored", st)
		}
		publishRefused(t, a, "unconfirmed")
	})
	t.Run("data directory from before the file", func(t *testing.T) {
		if err := os.Remove(filepath.Join(a.cfg.Path, ownFeedFile)); err != nil {
			t.Fatal(err)
		}
		a.start()
		defer a.halt()
		if st := ownStatus(t, a.local); st.State != ownOK || st.Expected != 22 {
			t.Fatalf("own feed: %+v, want ok at 22", st)
		}
		if h := readOwnHead(t, a); h.Sequence != 22 {
			t.Errorf("head file %+v, want 22", h)
		}
	})
}

func mustMessage(t *testing.T, s string) refs.Message {
	t.Helper()
	m, err := refs.ParseMessage(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
