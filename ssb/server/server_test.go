package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/plugins/replication"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/shs"
)

func TestMain(m *testing.M) {
	if path := os.Getenv("SBOT_TEST_DIAL_UNIX"); path != "" {
		dialUnixChild(path) // a child process of TestLocalSocketRefusesOtherUsers
		return
	}
	goleak.VerifyTestMain(m)
}

// testServer runs a server on loopback with a random network key.
type testServer struct {
	*server.Server
	addr net.Addr
	caps string
	cfg  server.Config
	stop func() // stops the server (also at the end of the test)
}

// replOf returns the replicator of a server's replication plugin.
func replOf(s *server.Server) *replicate.Replicator {
	for _, p := range s.Plugins() {
		if r, ok := p.(*replication.Plugin); ok {
			return r.Replicator()
		}
	}
	panic("no replication plugin")
}

// dbOf returns a server's db plugin.
func dbOf(s *server.Server) *db.Plugin {
	for _, p := range s.Plugins() {
		if d, ok := p.(*db.Plugin); ok {
			return d
		}
	}
	panic("no db plugin")
}

func (s *testServer) repl() *replicate.Replicator { return replOf(s.Server) }

func startServer(t *testing.T) *testServer {
	t.Helper()
	var caps [32]byte
	rand.Read(caps[:])
	return startServerWith(t, caps)
}

func startServerWith(t *testing.T, caps [32]byte) *testServer {
	return startServerTimeout(t, caps, 2*time.Second)
}

func startServerTimeout(t *testing.T, caps [32]byte, handshake time.Duration) *testServer {
	t.Helper()
	return startServerConfig(t, server.Config{Path: t.TempDir(), Host: "127.0.0.1", Port: 0, Caps: base64.StdEncoding.EncodeToString(caps[:]),
		HandshakeTimeout: handshake})
}

// startServerEBT is startServerWith with EBT on or off.
func startServerEBT(t *testing.T, caps [32]byte, ebt bool) *testServer {
	t.Helper()
	return startServerConfig(t, server.Config{Path: t.TempDir(), Host: "127.0.0.1", Port: 0, Caps: base64.StdEncoding.EncodeToString(caps[:]),
		HandshakeTimeout: 2 * time.Second, NoEBT: !ebt})
}

// startServerConfig runs a server with cfg and the default plugins until
// the test ends.
func startServerConfig(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	return startServerPlugins(t, cfg, all.Default()...)
}

// startServerPlugins runs a server with cfg and plugins until the test
// ends.
func startServerPlugins(t *testing.T, cfg server.Config, plugins ...server.Plugin) *testServer {
	t.Helper()
	srv, err := server.Open(cfg, nil, plugins...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
			if err := srv.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	t.Cleanup(stop)
	return &testServer{Server: srv, addr: addr, caps: cfg.Caps, cfg: cfg, stop: stop}
}

// local connects to the server's local socket, with the owner's rights.
func (s *testServer) local(t *testing.T) *muxrpc.Endpoint {
	return ssbtest.DialLocal(t, server.SocketPath(s.cfg.Path))
}

func collect(t *testing.T, e *muxrpc.Endpoint, method string, opts any) []json.RawMessage {
	t.Helper()
	s, err := e.Open(muxrpc.ParseMethod(method), muxrpc.Source, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out []json.RawMessage
	for {
		p, err := s.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		out = append(out, json.RawMessage(p.Body))
	}
}

type kvt struct {
	Key   string `json:"key"`
	Value struct {
		Previous *string
		Sequence int64
		Author   string
		Content  json.RawMessage
	} `json:"value"`
	Timestamp float64 `json:"timestamp"`
}

func TestLocalMethods(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx := context.Background()

	var who struct{ ID string }
	if err := e.AsyncJSON(ctx, &who, muxrpc.Method{"whoami"}); err != nil || who.ID != s.ID().String() {
		t.Fatalf("whoami: %+v, %v", who, err)
	}
	var published []kvt
	for i, content := range []string{
		`{"type":"post","text":"one"}`,
		`{"type":"vote","vote":{"value":1}}`,
		`{"type":"post","text":"three","b":1,"a":2}`,
	} {
		var m kvt
		if err := e.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, json.RawMessage(content)); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if m.Value.Sequence != int64(i+1) || m.Value.Author != s.ID().String() || string(m.Value.Content) != content {
			t.Fatalf("publish %d returned %+v", i, m)
		}
		published = append(published, m)
	}
	if *published[1].Value.Previous != published[0].Key {
		t.Error("the second message does not point to the first")
	}

	var seq int64
	if err := e.AsyncJSON(ctx, &seq, muxrpc.Method{"latestSequence"}, s.ID().String()); err != nil || seq != 3 {
		t.Errorf("latestSequence = %d, %v", seq, err)
	}
	var latest kvt
	if err := e.AsyncJSON(ctx, &latest, muxrpc.Method{"getLatest"}, s.ID().String()); err != nil || latest.Key != published[2].Key {
		t.Errorf("getLatest = %s, %v", latest.Key, err)
	}
	var value struct{ Sequence int64 }
	if err := e.AsyncJSON(ctx, &value, muxrpc.Method{"get"}, published[1].Key); err != nil || value.Sequence != 2 {
		t.Errorf("get = %+v, %v", value, err)
	}
	var remote *muxrpc.Error
	if _, err := e.Async(ctx, muxrpc.Method{"get"}, "%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"); !errors.As(err, &remote) {
		t.Errorf("get of an unknown message: %v", err)
	}

	hist := collect(t, e, "createHistoryStream", map[string]any{"id": s.ID().String(), "seq": 2})
	if len(hist) != 2 || !strings.Contains(string(hist[0]), published[1].Key) {
		t.Errorf("createHistoryStream seq 2 (inclusive): %d items", len(hist))
	}
	bare := collect(t, e, "createHistoryStream", map[string]any{"id": s.ID().String(), "keys": false})
	if len(bare) != 3 || strings.Contains(string(bare[0]), `"key"`) {
		t.Errorf("createHistoryStream keys:false: %s", bare)
	}
	if got := collect(t, e, "createLogStream", map[string]any{"limit": 2, "reverse": true}); len(got) != 2 || !strings.Contains(string(got[0]), published[2].Key) {
		t.Errorf("createLogStream reverse limit 2: %s", got)
	}
	if got := collect(t, e, "createFeedStream", nil); len(got) != 3 {
		t.Errorf("createFeedStream: %d items", len(got))
	}
	if got := collect(t, e, "messagesByType", "post"); len(got) != 2 {
		t.Errorf("messagesByType post: %d items", len(got))
	}
	if got := collect(t, e, "createUserStream", map[string]any{"id": s.ID().String(), "gt": 1, "reverse": true}); len(got) != 2 || !strings.Contains(string(got[0]), published[2].Key) {
		t.Errorf("createUserStream gt 1 reverse: %s", got)
	}

	// Every published message validates as a JavaScript peer would check it.
	var prev message.FeedState
	for _, raw := range bare {
		m, err := message.Validate(&prev, raw, nil)
		if err != nil {
			t.Fatalf("a published message does not validate: %v", err)
		}
		prev = m.State()
	}
}

// A live createHistoryStream delivers messages as they are published, and
// stops when the caller ends it.
func TestLiveHistory(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	live, err := e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, map[string]any{"id": s.ID().String(), "live": true})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.Async(ctx, muxrpc.Method{"publish"}, map[string]any{"type": "post", "n": i})
		var m kvt
		if err := live.RecvJSON(ctx, &m); err != nil || m.Value.Sequence != int64(i+1) {
			t.Fatalf("live item %d: %+v, %v", i, m, err)
		}
	}
	live.Close()
}

func TestConfigFile(t *testing.T) {
	dir := t.TempDir()
	cfg, err := server.LoadConfig(dir)
	if err != nil || cfg.Port != server.DefaultPort || cfg.Caps != server.MainNetCaps {
		t.Fatalf("defaults: %+v, %v", cfg, err)
	}
	writeFile(t, dir+"/config", `{"port": 9009, "host": "127.0.0.1", "caps": {"shs": "abc"}, "logging": {"level": "debug"},
		"timers": {"inactivity": 120000, "handshake": 5000}}`)
	cfg, err = server.LoadConfig(dir)
	if err != nil || cfg.Port != 9009 || cfg.Host != "127.0.0.1" || cfg.Caps != "abc" || cfg.LogLevel != "debug" ||
		cfg.Limits.IdleTimeout != 2*time.Minute || cfg.HandshakeTimeout != 5*time.Second {
		t.Fatalf("from the file: %+v, %v", cfg, err)
	}
	if _, err := server.Open(cfg, nil, all.Default()...); err == nil || !strings.Contains(err.Error(), "caps.shs") {
		t.Errorf("a bad network key: %v", err)
	}
}

// Hostile and broken clients are dropped; the server keeps serving: 200
// connections at once, a quarter of them hostile.
func TestHostileConnections(t *testing.T) {
	// 150 handshakes at once with -race on two cores can take seconds:
	// the timeout is for the stallers, not for them.
	var caps [32]byte
	rand.Read(caps[:])
	s := startServerTimeout(t, caps, 6*time.Second)
	hostile := []func(c net.Conn){
		func(c net.Conn) { c.Write(make([]byte, 64)) },                            // a hello that does not authenticate
		func(c net.Conn) { c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")) }, // the wrong protocol
		func(c net.Conn) { buf := make([]byte, 300); rand.Read(buf); c.Write(buf) },
		func(c net.Conn) {}, // stalls until the handshake timeout
	}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			c, err := net.Dial("tcp", s.addr.String())
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if i%4 != 0 { // a stranger that handshakes and reads the manifest
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, key, _ := ed25519.GenerateKey(nil)
				sc, err := shs.ClientConn(ctx, c, server.Network(s.Server), key, s.Keys().Public)
				if err != nil {
					t.Errorf("client %d: %v", i, err)
					return
				}
				e := muxrpc.NewEndpoint(sc, nil)
				done := make(chan struct{})
				go func() { e.Serve(ctx); close(done) }()
				var manifest map[string]any
				if err := e.AsyncJSON(ctx, &manifest, muxrpc.Method{"manifest"}); err != nil || manifest["whoami"] != "sync" {
					t.Errorf("client %d: manifest %v, %v", i, manifest, err)
				}
				e.Close()
				<-done
				return
			}
			hostile[(i/4)%len(hostile)](c)
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if n, _ := io.Copy(io.Discard, c); n > 64 {
				t.Errorf("hostile client %d got %d bytes", i, n)
			}
		})
	}
	// Meanwhile the owner is served.
	e := s.local(t)
	var who struct{ ID string }
	if err := e.AsyncJSON(context.Background(), &who, muxrpc.Method{"whoami"}); err != nil || who.ID != s.ID().String() {
		t.Fatalf("whoami during the attack: %v", err)
	}
	wg.Wait()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// add and createWriteStream append messages signed elsewhere, validated.
func TestAddAndWriteStream(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx := context.Background()
	author, _ := keys.Generate(nil)
	raws, err := ssbtest.Feed(author, 300, 1700000000000)
	if err != nil {
		t.Fatal(err)
	}
	var added kvt
	if err := e.AsyncJSON(ctx, &added, muxrpc.Method{"add"}, json.RawMessage(raws[0])); err != nil || added.Value.Sequence != 1 {
		t.Fatalf("add: %+v, %v", added, err)
	}
	if _, err := e.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(raws[5])); err == nil {
		t.Error("add of a message after a gap succeeded")
	}
	sink, err := e.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range raws[1:] {
		if err := sink.SendRaw(muxrpc.JSON, raw); err != nil {
			t.Fatal(err)
		}
	}
	sink.Close()
	waitSeq(t, e, author.ID, 300, 10*time.Second)
}
