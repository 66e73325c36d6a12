package server_test

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// confiner confines the peer with one key to echo.owner.
type confiner struct {
	key   refs.Feed
	asked chan server.Conn
}

func (*confiner) Name() string              { return "confiner" }
func (*confiner) Init(*server.Server) error { return nil }
func (*confiner) Methods() []server.Method  { return nil }
func (p *confiner) Confine(c *server.Conn) ([]string, bool) {
	p.asked <- *c
	if c.ID != p.key {
		return nil, false
	}
	return []string{"echo.owner"}, true
}

// A Confiner's connection may call the methods it was confined to (even
// the owner's) and nothing else, not the manifest nor the methods for
// anyone; the Connectors are not told of it. Other peers are not
// confined, and the owner is never asked about.
func TestConfiner(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	guestID, _ := refs.NewFeed(key.Public().(ed25519.PublicKey))
	cf := &confiner{key: guestID, asked: make(chan server.Conn, 8)}
	p := newEcho()
	s := startServerPlugins(t, server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: randomCaps(), HandshakeTimeout: 5 * time.Second}, p, cf)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	local := s.local(t)
	var got map[string]any
	if err := local.AsyncJSON(ctx, &got, muxrpc.Method{"manifest"}); err != nil {
		t.Fatal(err)
	}
	if c := <-p.connected; c.Kind != server.Owner || c.Confined() {
		t.Errorf("owner: %+v", c)
	}

	guest := strangerRPC(t, s.handshake(t, key))
	if err := guest.AsyncJSON(ctx, &got, muxrpc.Method{"echo", "owner"}); err != nil {
		t.Fatalf("echo.owner from the confined guest: %v", err)
	}
	if got["id"] != guestID.String() || got["kind"] != "stranger" {
		t.Errorf("echo.owner from the guest: %v", got)
	}
	for _, m := range []muxrpc.Method{{"manifest"}, {"echo", "anyone"}, {"nothing"}} {
		_, err := guest.Async(ctx, m)
		if want := "method:" + strings.Join(m, ",") + " is not in list of allowed methods"; err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s from the guest: %v, want %q", m, err, want)
		}
	}
	if c := <-cf.asked; c.ID != guestID || c.RPC != nil {
		t.Errorf("asked about %+v", c)
	}
	select {
	case c := <-p.connected:
		t.Errorf("a Connector was told of the confined guest: %+v", c)
	default:
	}

	_, other, _ := ed25519.GenerateKey(nil)
	stranger := strangerRPC(t, s.handshake(t, other))
	if err := stranger.AsyncJSON(ctx, &got, muxrpc.Method{"echo", "anyone"}); err != nil {
		t.Errorf("echo.anyone from a stranger: %v", err)
	}
	if _, err := stranger.Async(ctx, muxrpc.Method{"echo", "owner"}); err == nil {
		t.Error("a stranger called echo.owner")
	}
	if c := <-p.connected; c.Confined() || c.Kind != server.Stranger {
		t.Errorf("stranger: %+v", c)
	}
	if c := <-cf.asked; c.ID == guestID {
		t.Errorf("asked about %+v, want the stranger", c)
	}
	select {
	case c := <-cf.asked:
		t.Errorf("asked again: %+v", c)
	default:
	}
}

// The scheduler dials an unreachable pub with growing back-off, not in a
// loop: over 3 s, at most five tries (0.5 s, 1 s, 2 s… plus jitter).
func TestSchedulerBacksOffUnreachablePub(t *testing.T) {
	s := startServerPlugins(t, server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: randomCaps(), HandshakeTimeout: 5 * time.Second})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // refused from now on
	_, key, _ := ed25519.GenerateKey(nil)
	w := s.WatchPeers()
	defer w.Stop()
	peer := "net:" + addr + "~shs:" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
	if err := s.AddPeerFrom(peer, server.SourcePub); err != nil {
		t.Fatal(err)
	}
	failures := 0
	window := time.After(3 * time.Second)
	for done := false; !done; {
		select {
		case ev := <-w.C():
			if ev.Type == server.PeerConnectFailure {
				failures++
			}
		case <-window:
			done = true
		}
	}
	if failures < 1 || failures > 5 {
		t.Errorf("%d dials of an unreachable pub in 3 s", failures)
	}
	// The record may count a failure whose event the window ended before.
	if k := s.KnownPeers(); len(k) != 1 || k[0]["source"] != "pub" || k[0]["failure"].(int) < failures || k[0]["failure"].(int) > failures+1 {
		t.Errorf("known peers: %v", k)
	}
}
