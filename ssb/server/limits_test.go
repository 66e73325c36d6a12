package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// limitedServer runs a server on loopback with a random network key and
// the given limits.
func limitedServer(t *testing.T, maxConns int, lim server.Limits) *testServer {
	t.Helper()
	var caps [32]byte
	rand.Read(caps[:])
	return startServerConfig(t, server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:]),
		HandshakeTimeout: 5 * time.Second, MaxConns: maxConns, Limits: lim})
}

// handshake dials the server and authenticates with key; the box-stream
// connection is closed when the test ends.
func (s *testServer) handshake(t *testing.T, key ed25519.PrivateKey) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", s.addr.String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, err := shs.ClientConn(ctx, c, server.Network(s.Server), key, s.Keys().Public)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	return sc
}

// strangerRPC runs a muxrpc endpoint (answering nothing) on conn until the test
// ends.
func strangerRPC(t *testing.T, conn net.Conn) *muxrpc.Endpoint {
	t.Helper()
	e := muxrpc.NewEndpoint(conn, nil)
	done := make(chan struct{})
	go func() { e.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { e.Close(); <-done })
	return e
}

func newKey(t *testing.T) ed25519.PrivateKey {
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func manifestWorks(ctx context.Context, e *muxrpc.Endpoint) error {
	var m map[string]any
	if err := e.AsyncJSON(ctx, &m, muxrpc.Method{"manifest"}); err != nil {
		return err
	}
	if m["whoami"] != "sync" {
		return errors.New("manifest without whoami")
	}
	return nil
}

// closedByServer waits until the server ends conn (a read returns an
// error), up to limit.
func closedByServer(conn net.Conn, limit time.Duration) error {
	conn.SetReadDeadline(time.Now().Add(limit))
	_, err := io.Copy(io.Discard, conn)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return errors.New("still open")
	}
	return nil
}

func TestIdleStrangersDoNotLockOutPeers(t *testing.T) {
	const maxConns, reserved = 12, 4
	idle := 2 * time.Second
	s := limitedServer(t, maxConns, server.Limits{IdleTimeout: idle, ReservedConns: reserved})
	known := newKey(t)
	addr := "net:127.0.0.1:1~shs:" + base64.StdEncoding.EncodeToString(known.Public().(ed25519.PublicKey))
	if err := s.AddPeer(addr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An honest stranger first: it answers the server's pings.
	honest := strangerRPC(t, s.handshake(t, newKey(t)))
	if err := manifestWorks(ctx, honest); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	// Then strangers that authenticate and say nothing fill what strangers
	// may use.
	var idlers []net.Conn
	for range maxConns - reserved - 1 {
		idlers = append(idlers, s.handshake(t, newKey(t)))
	}
	// One more stranger is refused once its key is known...
	if err := closedByServer(s.handshake(t, newKey(t)), 5*time.Second); err != nil {
		t.Fatalf("a stranger past MaxConns−ReservedConns: %v", err)
	}
	// ...but a known peer and the owner get in.
	for name, key := range map[string]ed25519.PrivateKey{"known peer": known, "owner": s.Keys().Private} {
		if err := manifestWorks(ctx, strangerRPC(t, s.handshake(t, key))); err != nil {
			t.Fatalf("%s while strangers fill their share: %v", name, err)
		}
	}
	// The idlers are closed after the idle timeout, the honest one is not.
	for i, c := range idlers {
		if err := closedByServer(c, 4*idle); err != nil {
			t.Fatalf("idle stranger %d: %v", i, err)
		}
	}
	if d := time.Since(start); d < idle {
		t.Errorf("idle strangers closed after %v, before the timeout %v", d, idle)
	}
	if err := manifestWorks(ctx, honest); err != nil {
		t.Fatalf("the stranger that answers pings, after the idlers were closed: %v", err)
	}
	// Their slots are free again.
	if err := manifestWorks(ctx, strangerRPC(t, s.handshake(t, newKey(t)))); err != nil {
		t.Fatalf("a new stranger after the idlers were closed: %v", err)
	}
}

func TestStrangerStreamAndBodyLimits(t *testing.T) {
	s := limitedServer(t, 0, server.Limits{MaxStreams: 5, MaxBody: 16 << 10})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e := strangerRPC(t, s.handshake(t, newKey(t)))
	live := map[string]any{"id": s.ID().String(), "live": true}
	for i := range 5 {
		if _, err := e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, live); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
	}
	over, err := e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, live)
	if err != nil {
		t.Fatal(err)
	}
	_, err = over.Recv(ctx)
	var re *muxrpc.Error
	if !errors.As(err, &re) || !strings.Contains(re.Message, "too many open streams") {
		t.Fatalf("stream past the limit: %v, want a too-many-streams error", err)
	}
	if err := manifestWorks(ctx, e); err != nil {
		t.Fatalf("the connection after a refused stream: %v", err)
	}

	// The owner may send what a stranger may not.
	big := strings.Repeat("x", 20<<10)
	owner := s.local(t)
	if _, err := owner.Async(ctx, muxrpc.Method{"whoami"}, big); err != nil {
		t.Fatalf("owner with a 20 KiB request: %v", err)
	}
	if _, err := e.Async(ctx, muxrpc.Method{"manifest"}, big); !errors.Is(err, muxrpc.ErrClosed) {
		t.Fatalf("stranger with a 20 KiB request over MaxBody 16 KiB: %v, want the connection closed", err)
	}
}

func TestNonReadingStrangerIsClosed(t *testing.T) {
	s := limitedServer(t, 0, server.Limits{WriteTimeout: time.Second})
	conn := s.handshake(t, newKey(t))
	// Thousands of calls whose answers are never read.
	req, _ := muxrpc.AppendPacket(nil, muxrpc.Packet{Req: 1, Type: muxrpc.JSON, Body: []byte(`{"name":["manifest"],"type":"async","args":[]}`)})
	writeErr := make(chan error, 1)
	go func() {
		for i := int32(1); ; i++ {
			req[5], req[6], req[7], req[8] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
			if _, err := conn.Write(req); err != nil {
				writeErr <- err
				return
			}
		}
	}()
	// The server closes it: a write then fails.
	deadline := time.Now().Add(20 * time.Second)
	select {
	case <-writeErr:
	case <-time.After(time.Until(deadline)):
		t.Fatal("a stranger that does not read was not closed")
	}
	// Its handlers ended: the server's handler slots are all free.
	for {
		changed := server.Handlers(s.Server).Changed()
		if server.Handlers(s.Server).InUse() == 0 {
			break
		}
		select {
		case <-changed:
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%d handler slots held after the connection ended", server.Handlers(s.Server).InUse())
		}
	}
}

func TestConfigValidatedBeforeWriting(t *testing.T) {
	good := func() server.Config {
		c, _ := server.LoadConfig(filepath.Join(t.TempDir(), "ssb"))
		return c
	}
	for name, change := range map[string]func(*server.Config){
		"port":          func(c *server.Config) { c.Port = 70000 },
		"negative port": func(c *server.Config) { c.Port = -1 },
		"caps":          func(c *server.Config) { c.Caps = "not base64" },
		"sign":          func(c *server.Config) { c.Sign = "c2hvcnQ=" },
		"log level":     func(c *server.Config) { c.LogLevel = "loud" },
		"max conns":     func(c *server.Config) { c.MaxConns = -5 },
		"reserve":       func(c *server.Config) { c.MaxConns, c.Limits.ReservedConns = 10, 10 },
		"max body":      func(c *server.Config) { c.Limits.MaxBody = 8 << 20 },
		"peer buffer":   func(c *server.Config) { c.Limits.PeerBuffer = 1 << 10 },
		"idle":          func(c *server.Config) { c.Limits.IdleTimeout = -time.Second },
	} {
		t.Run(name, func(t *testing.T) {
			cfg := good()
			if err := cfg.Validate(); err != nil {
				t.Fatalf("default config: %v", err)
			}
			change(&cfg)
			if err := cfg.Validate(); err == nil {
				t.Fatal("Validate accepted it")
			}
			if _, err := server.Open(cfg, nil, all.Default()...); err == nil {
				t.Fatal("Open accepted it")
			}
			if _, err := os.Stat(cfg.Path); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("the data directory was created: %v", err)
			}
		})
	}
}

// A JavaScript ssb-server that dials us as a stranger and then has nothing
// to say is pinged (gossip.ping), answers, and stays connected past the
// idle timeout.
func TestIdleTimeoutKeepsJSPeer(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	idle := 3 * time.Second
	peers := &connWatch{conns: make(chan *server.Conn, 4)}
	g := startServerPlugins(t, server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:]),
		Limits: server.Limits{IdleTimeout: idle}}, append(all.Default(), peers)...)
	j := startJS(t, caps)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var res any
	if err := j.Client.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, address(g.addr, g.ID())); err != nil {
		t.Fatalf("ssb-server gossip.connect to us: %v", err)
	}
	var js *muxrpc.Endpoint
	for js == nil {
		select {
		case c := <-peers.conns:
			if c.ID == j.Keys.ID {
				js = c.RPC
			}
		case <-ctx.Done():
			t.Fatal("ssb-server did not connect")
		}
	}
	select { // three idle timeouts: the peer would have been closed twice over
	case <-js.Done():
		t.Fatal("the JavaScript peer's connection was closed")
	case <-time.After(3 * idle):
	}
}

// connWatch is a plugin that reports the peers that connect.
type connWatch struct{ conns chan *server.Conn }

func (w *connWatch) Name() string                { return "connwatch" }
func (w *connWatch) Init(*server.Server) error   { return nil }
func (w *connWatch) Methods() []server.Method    { return nil }
func (w *connWatch) Disconnected(c *server.Conn) {}
func (w *connWatch) Connected(ctx context.Context, c *server.Conn) {
	if c.Peer() {
		select {
		case w.conns <- c:
		default: // the test reads only the first few
		}
	}
}
