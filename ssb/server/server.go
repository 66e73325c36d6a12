// Package server runs a Secure Scuttlebutt peer: an identity, the message
// store, and the RPC methods of ssb-server, reached by peers over TCP with
// the secret handshake and box-stream, and by the local owner over a unix
// socket.
//
// A peer that connects with the server's own key, and anyone on the local
// socket, is the owner and may call every method. Any other peer gets the
// anonymous set of ssb-server: manifest and createHistoryStream (and the
// replication methods as they are added).
package server

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/scuttlego/scuttle/ssb/graph"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/shs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Version is reported by the version method.
const Version = "0.1.0"

// anonymous is what a peer that is not the owner may call (ssb-server's
// anonymous permissions, restricted to the methods this server has).
var anonymous = []string{"manifest", "createHistoryStream", "gossip.ping", "ebt.replicate"}

// A Server is a running peer.
type Server struct {
	cfg     Config
	log     *slog.Logger
	keys    *keys.KeyPair
	network [32]byte
	hmacKey []byte
	store   *store.Store
	repl    *replicate.Replicator
	peers   *peers
	mux     muxrpc.Mux

	ctx   context.Context // Serve's, for outbound connections
	mu    sync.Mutex
	conns map[*muxrpc.Endpoint]struct{}
	wg    sync.WaitGroup
	sem   chan struct{} // bounds TCP connections
}

// Open prepares a server for the data directory of cfg: it creates the
// directory and the identity (<path>/secret, in the ssb-keys format) on
// first use, and opens the store. Call Serve, then Close.
func Open(cfg Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Path == "" {
		cfg.Path = DefaultPath()
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = shs.DefaultTimeout
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.Hops == 0 {
		cfg.Hops = graph.DefaultHops
	}
	if cfg.Outbound == 0 {
		cfg.Outbound = DefaultOutbound
	}
	network, err := cfg.networkKey()
	if err != nil {
		return nil, err
	}
	hmacKey, err := cfg.hmacKey()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Path, 0o700); err != nil {
		return nil, fmt.Errorf("server: data directory: %w", err)
	}
	kp, err := loadOrCreateIdentity(filepath.Join(cfg.Path, "secret"), log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(cfg.Path, "db"), store.WithLogger(log), store.WithHMACKey(hmacKey))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		cfg: cfg, log: log, keys: kp, network: network, hmacKey: hmacKey, store: st,
		conns: make(map[*muxrpc.Endpoint]struct{}),
		sem:   make(chan struct{}, cfg.MaxConns),
	}
	s.repl = replicate.New(st, kp.ID, cfg.Hops, log)
	s.repl.NoEBT = cfg.NoEBT
	s.repl.ClockDir = filepath.Join(cfg.Path, "ebt")
	if s.peers, err = loadPeers(peersPath(cfg.Path)); err != nil {
		st.Close()
		return nil, err
	}
	s.register()
	return s, nil
}

func loadOrCreateIdentity(path string, log *slog.Logger) (*keys.KeyPair, error) {
	kp, err := keys.Load(path)
	if err == nil {
		return kp, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("server: identity: %w", err)
	}
	if kp, err = keys.Generate(nil); err != nil {
		return nil, fmt.Errorf("server: identity: %w", err)
	}
	if err := keys.Save(path, kp); err != nil {
		return nil, fmt.Errorf("server: identity: %w", err)
	}
	log.Info("created a new identity", "id", kp.ID.String(), "secret", path)
	return kp, nil
}

// ID returns the server's feed id.
func (s *Server) ID() refs.Feed { return s.keys.ID }

// Store returns the server's store.
func (s *Server) Store() *store.Store { return s.store }

// Serve listens on the TCP address of the configuration and on the local
// socket, and serves until ctx ends. Then it says goodbye to every
// connection, waits for them, and returns nil. It calls ready, if not nil,
// with the TCP address once both listeners are up.
func (s *Server) Serve(ctx context.Context, ready func(addr net.Addr)) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(s.cfg.Host, strconv.Itoa(s.cfg.Port)))
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	sock := SocketPath(s.cfg.Path)
	os.Remove(sock) // a socket left by a server that died
	unixLn, err := net.Listen("unix", sock)
	if err != nil {
		ln.Close()
		return fmt.Errorf("server: local socket: %w", err)
	}
	os.Chmod(sock, 0o600)
	s.log.Info("listening", "id", s.keys.ID.String(), "addr", ln.Addr().String(), "socket", sock)
	if ready != nil {
		ready(ln.Addr())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	var accepting sync.WaitGroup
	accepting.Go(func() {
		if err := s.repl.Run(ctx); err != nil {
			s.log.Error("replication stopped", "err", err)
		}
	})
	accepting.Go(func() { s.schedule(ctx) })
	accepting.Go(func() { s.accept(ctx, ln, s.peer) })
	accepting.Go(func() { s.accept(ctx, unixLn, s.local) })
	<-ctx.Done()
	ln.Close()
	unixLn.Close()
	accepting.Wait()
	s.mu.Lock()
	for e := range s.conns {
		e.Close() // goodbye
	}
	s.mu.Unlock()
	s.wg.Wait()
	os.Remove(sock)
	s.log.Info("stopped")
	return nil
}

// Close closes the store. Call it after Serve has returned.
func (s *Server) Close() error { return s.store.Close() }

func (s *Server) accept(ctx context.Context, ln net.Listener, handle func(context.Context, net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("accept", "err", err)
			}
			return
		}
		s.wg.Go(func() { handle(ctx, c) })
	}
}

// peer serves a TCP connection: handshake, then RPC with the rights of the
// peer's key.
func (s *Server) peer(ctx context.Context, c net.Conn) {
	select {
	case s.sem <- struct{}{}:
		defer func() { <-s.sem }()
	default:
		s.log.Warn("too many connections: refused", "remote", c.RemoteAddr().String(), "max", s.cfg.MaxConns)
		c.Close()
		return
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	conn, remote, err := shs.ServerConn(hctx, c, s.network, s.keys.Private, nil)
	cancel()
	if err != nil {
		s.log.Info("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	s.servePeer(ctx, conn, remote, false)
}

// servePeer serves an authenticated connection to a peer, inbound or
// outbound, and replicates with it.
func (s *Server) servePeer(ctx context.Context, conn net.Conn, remote ed25519.PublicKey, dialer bool) {
	owner := remote.Equal(s.keys.Public)
	var allow func(string) bool
	if !owner {
		allow = muxrpc.AllowList(anonymous...)
	}
	id, _ := refs.NewFeed(remote)
	s.peers.up(id)
	defer s.peers.down(id)
	s.serveRPC(ctx, conn, allow, "peer", id, dialer)
}

// local serves a connection on the local socket with the owner's rights.
func (s *Server) local(ctx context.Context, c net.Conn) {
	s.serveRPC(ctx, c, nil, "local", s.keys.ID, false)
}

// remoteKey is the context key of the feed id of a request's caller.
type remoteKey struct{}

// caller returns the feed id of the peer a request came from (the server's
// own id on the local socket).
func caller(ctx context.Context) refs.Feed {
	id, _ := ctx.Value(remoteKey{}).(refs.Feed)
	return id
}

// endpointKey is the context key of the connection a request came on.
type endpointKey struct{}

func (s *Server) serveRPC(ctx context.Context, c net.Conn, allow func(string) bool, kind string, id refs.Feed, dialer bool) {
	log := s.log.With("conn", kind, "remote", id.String())
	h := s.mux.Handler(allow)
	var e *muxrpc.Endpoint
	withCaller := muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		ctx = context.WithValue(ctx, remoteKey{}, id)
		h.HandleCall(context.WithValue(ctx, endpointKey{}, e), req)
	})
	e = muxrpc.NewEndpoint(c, withCaller, muxrpc.WithLogger(log))
	s.mu.Lock()
	s.conns[e] = struct{}{}
	s.mu.Unlock()
	log.Debug("connected")
	if kind == "peer" && id != s.keys.ID {
		// A client with the server's own key (sbot's, ssb-client's) is
		// the owner, not a peer: nothing to replicate with it, as in
		// ssb-server.
		s.repl.AddPeer(ctx, e, id, dialer)
	}
	err := e.Serve(ctx)
	s.mu.Lock()
	delete(s.conns, e)
	s.mu.Unlock()
	if err != nil {
		log.Info("connection ended", "err", err)
	} else {
		log.Debug("disconnected")
	}
}
