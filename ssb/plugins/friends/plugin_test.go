package friends_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/friends"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestNeedsTheGraph(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	srv, err := server.Open(server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:])}, nil, friends.New())
	if err == nil {
		srv.Close()
	}
	if !errors.Is(err, friends.ErrNoGraph) {
		t.Fatalf("Open without replication: %v, want ErrNoGraph", err)
	}
}

// Without JavaScript: onEdge refuses (ssb-server drops the connection),
// and a live stream sees a contact message published on our feed and ends
// with the caller.
func TestLiveOnOurServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	srv, rpc, _ := goServer(t, caps)
	s := &side{name: "go", rpc: rpc, self: srv.ID()}
	if _, err := rpc.Async(ctx, muxrpc.Method{"friends", "onEdge"}); err == nil || !strings.Contains(err.Error(), friends.ErrOnEdge.Error()) {
		t.Errorf("friends.onEdge: %v, want %v", err, friends.ErrOnEdge)
	}
	edges, err := rpc.Open(muxrpc.Method{"friends", "stream"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	hops, err := rpc.Open(muxrpc.Method{"friends", "hopStream"}, muxrpc.Source, map[string]any{"live": true})
	if err != nil {
		t.Fatal(err)
	}
	first := s.read(ctx, t, hops, 1)
	if d := diff([]any{map[string]any{srv.ID().String(): 0.0}}, first); d != "" {
		t.Errorf("hopStream of an empty graph:\n%s", d)
	}
	s.read(ctx, t, edges, 1)
	friend, _ := keys.Generate(nil)
	if _, err := rpc.Async(ctx, muxrpc.Method{"publish"}, map[string]any{"type": "contact", "contact": friend.ID.String(), "following": true}); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"from": srv.ID().String(), "to": friend.ID.String(), "value": true}
	if d := diff([]any{want}, s.read(ctx, t, edges, 1)); d != "" {
		t.Errorf("friends.stream after a follow:\n%s", d)
	}
	if d := diff([]any{map[string]any{friend.ID.String(): 1.0}}, s.read(ctx, t, hops, 1)); d != "" {
		t.Errorf("hopStream after a follow:\n%s", d)
	}
	edges.Close()
	hops.Close()
}
