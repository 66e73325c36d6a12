// Package servertest runs this project's SSB server in tests: opened with
// the plugins a test chooses, served on loopback, stopped and closed when
// the test ends. (It is not in internal/ssbtest, which the server's own
// tests import.)
package servertest

import (
	"context"
	"encoding/base64"
	"net"
	"sync"
	"testing"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// A Running server: its listening address and data directory.
type Running struct {
	*server.Server
	Addr net.Addr
	Path string
	t    testing.TB
	once sync.Once
	stop func()
}

// Caps is a network key as server.Config takes it.
func Caps(caps [32]byte) string { return base64.StdEncoding.EncodeToString(caps[:]) }

// Start opens a server for cfg (Host 127.0.0.1 if unset) with plugins and
// serves it until Stop or the end of the test, which reports its errors.
func Start(t testing.TB, cfg server.Config, plugins ...server.Plugin) *Running {
	t.Helper()
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	srv, err := server.Open(cfg, nil, plugins...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	r := &Running{Server: srv, Path: cfg.Path, t: t}
	r.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}
	select {
	case r.Addr = <-ready:
	case err := <-done:
		cancel()
		srv.Close()
		t.Fatal(err)
	}
	t.Cleanup(r.Stop)
	return r
}

// Stop stops serving and closes the server; later calls do nothing.
func (r *Running) Stop() { r.once.Do(r.stop) }

// Owner connects to the server's local socket, with the owner's rights,
// until the test ends.
func (r *Running) Owner(t testing.TB) *muxrpc.Endpoint {
	t.Helper()
	return ssbtest.DialLocal(t, server.SocketPath(r.Path))
}
