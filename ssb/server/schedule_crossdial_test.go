package server

import (
	"context"
	"encoding/base64"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// crossDialServer runs a server without plugins on loopback until the
// test ends.
func crossDialServer(t *testing.T, caps string) (*Server, string) {
	t.Helper()
	s, err := Open(Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: caps}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan net.Addr, 1), make(chan error, 1)
	go func() { done <- s.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		s.Close()
	})
	var a net.Addr
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	port := a.(*net.TCPAddr).Port
	return s, "net:127.0.0.1:" + strconv.Itoa(port) + "~shs:" + base64.StdEncoding.EncodeToString(s.ID().PublicKey())
}

// connsWith returns the directions (Dialed) of s's connections with f.
func (s *Server) connsWith(f refs.Feed) []bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []bool
	for _, c := range s.conns {
		if c.ID == f {
			out = append(out, c.Dialed)
		}
	}
	return out
}

// Two servers that dial each other at once end with one connection, the
// one dialed by the smaller key, on both sides.
func TestCrossDialKeepsOneConnection(t *testing.T) {
	caps := base64.StdEncoding.EncodeToString(make([]byte, 32))
	a, aAddr := crossDialServer(t, caps)
	b, bAddr := crossDialServer(t, caps)
	a.EnableScheduler(false) // the dials below are the only ones
	b.EnableScheduler(false)
	ka, err := a.peers.add(bAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	kb, err := b.peers.add(aAddr, "")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, d := range []struct {
		s *Server
		k *knownPeer
	}{{a, ka}, {b, kb}} {
		if !d.s.peers.claim(d.k) {
			t.Fatal("could not claim the peer")
		}
		wg.Go(func() {
			if err := d.s.dialPeer(ctx, d.k); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	small, large := a, b
	if b.ID().Compare(a.ID()) < 0 {
		small, large = b, a
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s, l := small.connsWith(large.ID()), large.connsWith(small.ID())
		if len(s) == 1 && len(l) == 1 && s[0] && !l[0] {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("connections of the smaller key (dialed?): %v, of the larger: %v", s, l)
		case <-tick.C:
		}
	}
	for _, s := range []*Server{a, b} {
		if !s.peers.isConnected(map[*Server]refs.Feed{a: b.ID(), b: a.ID()}[s]) {
			t.Errorf("%v: the peer is not connected", s.ID())
		}
	}
}
