package replicate

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// policyReplicator returns a replicator over a new store whose own feed
// follows followed, with its policy in dir, loaded.
func policyReplicator(t *testing.T, dir string, self *keys.KeyPair, followed refs.Feed) *Replicator {
	t.Helper()
	st, err := store.Open(t.TempDir(), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Publish(context.Background(), self.ID, func(prev message.FeedState) (*message.Message, error) {
		return message.Create(self, nil, &prev, 1.7e12, map[string]any{"type": "contact", "contact": followed.String(), "following": true})
	}); err != nil {
		t.Fatal(err)
	}
	r := New(st, self.ID, Config{Hops: 2, PolicyFile: filepath.Join(dir, "replication.json")})
	if err := r.LoadPolicy(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	waitFor(t, func() bool { _, ok := r.Graph().Edge(self.ID, followed); return ok })
	return r
}

// waitFor waits until cond holds, at most ten seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	if err := oracle.Poll(10*time.Second, func() error {
		if !cond() {
			return errors.New("condition not met")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func newFeed(t *testing.T) *keys.KeyPair {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// The wanted feeds are the graph's, plus those requested, minus those
// refused; our own feed stays. Requests and blocks survive a restart (a new
// replicator reading the same policy file); unblocking takes back the
// owner's block only, not one from a contact message.
func TestPolicy(t *testing.T) {
	dir := t.TempDir()
	self, followed, extra, peer := newFeed(t), newFeed(t), newFeed(t), newFeed(t)
	r := policyReplicator(t, dir, self, followed.ID)

	if err := r.Request(extra.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := r.Request(followed.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := r.Request(self.ID, false); err != nil {
		t.Fatal(err)
	}
	wantSet := func(r *Replicator, want ...refs.Feed) {
		t.Helper()
		got := r.Wanted()
		slices.SortFunc(got, func(a, b refs.Feed) int { return strings.Compare(a.String(), b.String()) })
		slices.SortFunc(want, func(a, b refs.Feed) int { return strings.Compare(a.String(), b.String()) })
		if !slices.Equal(got, want) {
			t.Errorf("wanted %v, want %v", got, want)
		}
	}
	wantSet(r, self.ID, extra.ID)
	if err := r.Block(extra.ID, peer.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := r.Block(self.ID, peer.ID, true); err != nil {
		t.Fatal(err)
	}
	if !r.Excludes(extra.ID, peer.ID) || !r.IsBlocked(peer.ID) || r.Excludes(followed.ID, peer.ID) {
		t.Errorf("blocks: extra→peer %v, self→peer %v, followed→peer %v; want true, true, false",
			r.Excludes(extra.ID, peer.ID), r.IsBlocked(peer.ID), r.Excludes(followed.ID, peer.ID))
	}

	again := policyReplicator(t, dir, self, followed.ID)
	wantSet(again, self.ID, extra.ID)
	if !again.Excludes(extra.ID, peer.ID) || !again.IsBlocked(peer.ID) {
		t.Error("the blocks did not survive a restart")
	}
	if err := again.Request(followed.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := again.Block(self.ID, peer.ID, false); err != nil {
		t.Fatal(err)
	}
	wantSet(again, self.ID, extra.ID, followed.ID)
	if again.IsBlocked(peer.ID) {
		t.Error("unblocked, and still blocked")
	}

	// A block published in a contact message is not taken back by Block.
	again.graph.Set(followed.ID, peer.ID, -1)
	if err := again.Block(followed.ID, peer.ID, false); err != nil {
		t.Fatal(err)
	}
	if !again.Excludes(followed.ID, peer.ID) {
		t.Error("Block(false) took back a contact message's block")
	}
}

// A policy file that cannot be read stops the start: going on without the
// owner's blocks would serve feeds to the peers they exclude.
func TestPolicyFileDamaged(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replication.json")
	if err := os.WriteFile(path, []byte(`{"blocks":{"@x":["@y"]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	r := New(nil, newFeed(t).ID, Config{Hops: 1, PolicyFile: path})
	if err := r.LoadPolicy(); err == nil {
		t.Error("a policy file with a bad feed id was loaded")
	}
}

// WatchWanted reports feeds as they become wanted (with their stored
// sequence) and as they are given up (-1).
func TestWatchWanted(t *testing.T) {
	self, followed, extra := newFeed(t), newFeed(t), newFeed(t)
	r := policyReplicator(t, t.TempDir(), self, followed.ID)
	ch, stop := r.WatchWanted()
	defer stop()
	r.Request(extra.ID, true)
	r.Request(extra.ID, false)
	r.Request(followed.ID, false)
	want := []Upto{{extra.ID.String(), 0}, {extra.ID.String(), -1}, {followed.ID.String(), -1}}
	for i, w := range want {
		if got := <-ch; got != w {
			t.Errorf("change %d: %+v, want %+v", i, got, w)
		}
	}
	up := r.Upto()
	if len(up) != 1 || up[0] != (Upto{self.ID.String(), 1}) {
		t.Errorf("Upto = %+v, want our feed at 1", up)
	}
}

// FuzzPolicyFile: a policy file is read whole or refused; what is read
// holds feeds only, within the bounds.
func FuzzPolicyFile(f *testing.F) {
	f.Add([]byte(`{"requests":{"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519":false},"blocks":{"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519":["@AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"]}}`))
	f.Add([]byte(`{"requests":{"@x":true}}`))
	f.Add([]byte(`{"blocks":{"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519":[1]}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, blocks, err := parsePolicy(b)
		if err != nil {
			return
		}
		n := 0
		for _, to := range blocks {
			n += len(to)
		}
		if len(req) > maxRequests || n > maxBlocks {
			t.Fatalf("%d requests and %d blocks kept", len(req), n)
		}
	})
}
