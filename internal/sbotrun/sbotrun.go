// Package sbotrun runs this project's SSB server in the process, for the
// programs under bench/. (It is not in internal/ssbtest because the
// server's own tests import ssbtest.)
package sbotrun

import (
	"context"
	"fmt"
	"net"
	"path/filepath"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/server"
)

// A Running server: its TCP address and owner identity.
type Running struct {
	*server.Server
	Addr  string
	Owner *keys.KeyPair
	stop  func()
}

// Start opens a server for cfg (Host and Port 0 if unset: loopback, any
// port) and serves it until Stop.
func Start(ctx context.Context, cfg server.Config) (*Running, error) {
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	srv, err := server.Open(cfg, nil, all.Default()...)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	ready := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(sctx, func(a net.Addr) { ready <- a }) }()
	halt := func() { cancel(); <-served; srv.Close() }
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-served:
		cancel()
		srv.Close()
		return nil, fmt.Errorf("sbotrun: %w", err)
	}
	owner, err := keys.Load(filepath.Join(cfg.Path, "secret"))
	if err != nil {
		halt()
		return nil, fmt.Errorf("sbotrun: %w", err)
	}
	return &Running{Server: srv, Addr: addr.String(), Owner: owner, stop: halt}, nil
}

// Stop stops serving and closes the store.
func (r *Running) Stop() { r.stop() }
