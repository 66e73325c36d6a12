package db

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// testServer is a server with the db plugin (and the others given), on loopback with a
// random network key, served until the test ends.
type testServer struct {
	*server.Server
	db  *Plugin
	cfg server.Config
}

func startServer(t *testing.T, others ...server.Plugin) *testServer {
	t.Helper()
	var caps [32]byte
	rand.Read(caps[:])
	cfg := server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:]), HandshakeTimeout: 2 * time.Second}
	p := New()
	srv, err := server.Open(cfg, nil, append([]server.Plugin{p}, others...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(net.Addr) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return &testServer{Server: srv, db: p, cfg: cfg}
}

// local connects to the server's local socket, with the owner's rights.
func (s *testServer) local(t *testing.T) *muxrpc.Endpoint {
	return ssbtest.DialLocal(t, server.SocketPath(s.cfg.Path))
}

// kvt is a message as the methods return it.
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

func publish(t *testing.T, e *muxrpc.Endpoint, content map[string]any) {
	t.Helper()
	var m struct{ Key string }
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"publish"}, content); err != nil {
		t.Fatalf("publish %v: %v", content, err)
	}
}
