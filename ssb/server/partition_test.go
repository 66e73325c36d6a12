package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// node is a server that can be stopped and started again on the same data
// directory and port.
type node struct {
	t     *testing.T
	cfg   server.Config
	srv   *server.Server
	stop  context.CancelFunc
	done  chan error
	local *muxrpc.Endpoint
	ldone chan struct{}
}

func newNode(t *testing.T, caps [32]byte) *node {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	n := &node{t: t, cfg: server.Config{Path: t.TempDir(), Host: "127.0.0.1", Port: port,
		Caps: base64.StdEncoding.EncodeToString(caps[:]), HandshakeTimeout: 2 * time.Second}}
	n.start()
	t.Cleanup(n.halt)
	return n
}

func (n *node) start() {
	srv, err := server.Open(n.cfg, nil, all.Default()...)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	n.srv, n.stop, n.done = srv, cancel, make(chan error, 1)
	go func() { n.done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	select {
	case <-ready:
	case err := <-n.done:
		n.t.Fatal(err)
	}
	conn, err := net.Dial("unix", server.SocketPath(n.cfg.Path))
	if err != nil {
		n.t.Fatal(err)
	}
	n.local, n.ldone = muxrpc.NewEndpoint(conn, nil), make(chan struct{})
	go func() { n.local.Serve(context.Background()); close(n.ldone) }()
}

func (n *node) halt() {
	if n.srv == nil {
		return
	}
	n.local.Close()
	<-n.ldone
	n.stop()
	if err := <-n.done; err != nil {
		n.t.Error(err)
	}
	if err := n.srv.Close(); err != nil {
		n.t.Error(err)
	}
	n.srv = nil
}

func (n *node) id() refs.Feed { return n.srv.ID() }

func (n *node) addr() string { return "127.0.0.1:" + strconv.Itoa(n.cfg.Port) }

// proxy forwards TCP connections to target until cut closes them all.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	p.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			p.wg.Go(func() { io.Copy(up, c); up.Close() })
			p.wg.Go(func() { io.Copy(c, up); c.Close() })
		}
	})
	t.Cleanup(func() { ln.Close(); p.cut(); p.wg.Wait() })
	return p
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// Three peers in a line, A - B - C, each knowing only its neighbour,
// converge; then through a cut connection and a restart of B, with
// messages published meanwhile, they converge again: nothing lost, nothing
// duplicated (every chain checks).
func TestPartitionsConverge(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b, c := newNode(t, caps), newNode(t, caps), newNode(t, caps)
	nodes := []*node{a, b, c}
	for _, x := range nodes { // everyone follows everyone
		for _, y := range nodes {
			if x != y {
				publish(t, x.local, map[string]any{"type": "contact", "contact": y.id().String(), "following": true})
			}
		}
	}
	pAB := newProxy(t, b.addr())
	var ok any // the peer's record
	if err := a.local.AsyncJSON(context.Background(), &ok, muxrpc.Method{"gossip", "add"}, address(pAB.ln.Addr(), b.id())); err != nil {
		t.Fatal(err)
	}
	if err := b.local.AsyncJSON(context.Background(), &ok, muxrpc.Method{"gossip", "add"}, ssbtest.Address(c.addr(), c.id())); err != nil {
		t.Fatal(err)
	}
	count := map[*node]int64{a: 2, b: 2, c: 2}
	post := func(x *node, n int) {
		for range n {
			publish(t, x.local, map[string]any{"type": "post", "n": count[x]})
			count[x]++
		}
	}
	converged := func(within time.Duration) {
		t.Helper()
		for _, x := range nodes {
			for _, y := range nodes {
				waitSeq(t, x.local, y.id(), count[y], within)
			}
		}
		for _, x := range nodes {
			if err := x.srv.Store().Check(context.Background()); err != nil {
				t.Fatalf("store check: %v", err)
			}
		}
	}
	post(a, 5)
	post(c, 5)
	converged(15 * time.Second)

	pAB.cut() // the A - B connection breaks; A's scheduler restores it
	post(a, 3)
	post(c, 3)
	converged(15 * time.Second)

	b.halt() // B goes away; A and C go on
	post(a, 4)
	post(c, 4)
	time.Sleep(200 * time.Millisecond)
	b.start()
	post(b, 2)
	converged(20 * time.Second)
}
