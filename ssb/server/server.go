// Package server runs a Secure Scuttlebutt peer: an identity, the message
// store, and the RPC methods of ssb-server, reached by peers over TCP with
// the secret handshake and box-stream, and by the local owner over a unix
// socket.
//
// The RPC methods come from plugins (Plugin), given to Open by the
// program that runs the server; the server itself answers only manifest.
// A peer that connects with the server's own key, and anyone on the local
// socket, is the owner and may call every method. Any other peer may call
// manifest and the methods their plugins declare for anyone (Perm).
//
// What peers can make the server hold is bounded by Config.Limits, more
// strictly for strangers than for known peers (gossip.json) and the owner:
// idle and non-reading peers are closed, streams, calls, packet sizes and
// received bytes are counted, and part of the connection cap is kept for
// known peers. The data directory is made private at Open, and the local
// socket appears only with mode 0600.
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
	"github.com/scuttlego/scuttle/ssb/shs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Version is reported by the version method.
const Version = "0.1.0"

// A Server is a running peer.
type Server struct {
	cfg     Config
	log     *slog.Logger
	keys    *keys.KeyPair
	network [32]byte
	hmacKey []byte
	store   *store.Store
	peers   *peers
	fresh   bool // the identity was created by Open

	plugins []Plugin
	methods map[string]Method // by name; read-only after Open
	pinger  Pinger

	ctx        context.Context // Serve's, for outbound connections
	mu         sync.Mutex
	conns      map[*muxrpc.Endpoint]*Conn
	inbound    int // authenticated inbound TCP connections (MaxConns)
	strangers  int // of which from strangers (MaxConns − ReservedConns)
	wg         sync.WaitGroup
	handshakes chan struct{}  // bounds handshakes in progress
	handlers   *muxrpc.Budget // handler slots of all connections
	budget     *muxrpc.Budget // received bytes of all connections

	socketHook func(stage, name string) // tests: each step of creating the local socket
}

// Open prepares a server for the data directory of cfg: it validates cfg
// (before anything is written), creates the directory and the identity
// (<path>/secret, in the ssb-keys format) on first use, and opens the
// store. The data directory is made private to its owner (group and
// other permissions removed, with a warning in the log): it holds the
// secret and the local socket, which gives the owner's rights. The
// plugins are then initialised in order (see Plugin). Call Serve, then
// Close.
func Open(cfg Config, log *slog.Logger, plugins ...Plugin) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
	cfg.Limits = cfg.Limits.withDefaults(cfg.MaxConns)
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
	if err := makePrivate(cfg.Path, log); err != nil {
		return nil, err
	}
	_, err = os.Stat(filepath.Join(cfg.Path, "secret"))
	fresh := errors.Is(err, fs.ErrNotExist) // a new identity: its feed is empty
	kp, err := loadOrCreateIdentity(filepath.Join(cfg.Path, "secret"), log)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(filepath.Join(cfg.Path, "db"), store.WithLogger(log), store.WithHMACKey(hmacKey))
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s := &Server{
		cfg: cfg, log: log, keys: kp, network: network, hmacKey: hmacKey, store: st, fresh: fresh,
		conns:      make(map[*muxrpc.Endpoint]*Conn),
		handshakes: make(chan struct{}, cfg.Limits.MaxHandshakes),
		handlers:   muxrpc.NewBudget(int64(cfg.Limits.MaxHandlers), int64(cfg.Limits.MaxHandlers/4)),
		budget:     muxrpc.NewBudget(cfg.Limits.BufferBudget, cfg.Limits.BufferBudget/4),
	}
	if s.peers, err = loadPeers(peersPath(cfg.Path)); err != nil {
		st.Close()
		return nil, err
	}
	s.peers.bind(kp.ID, cfg.Outbound)
	if err := s.initPlugins(plugins); err != nil {
		st.Close()
		return nil, err
	}
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

// Keys returns the server's identity.
func (s *Server) Keys() *keys.KeyPair { return s.keys }

// HMACKey returns the key messages are signed with (caps.sign), or nil.
func (s *Server) HMACKey() []byte { return s.hmacKey }

// Config returns the configuration, with its defaults filled in.
func (s *Server) Config() Config { return s.cfg }

// Logger returns the server's logger.
func (s *Server) Logger() *slog.Logger { return s.log }

// NewIdentity reports whether Open created the identity: its feed is
// known to be empty.
func (s *Server) NewIdentity() bool { return s.fresh }

// Go runs fn in a goroutine that Serve waits for before it returns: work a
// plugin starts for a connection must end when the connection or the
// server's context ends.
func (s *Server) Go(fn func()) { s.wg.Go(fn) }

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
	unixLn, err := listenPrivate(sock, s.socketHook)
	if err != nil {
		ln.Close()
		return err
	}
	s.log.Info("listening", "id", s.keys.ID.String(), "addr", ln.Addr().String(), "socket", sock)
	s.peers.listening(ln.Addr())
	if ready != nil {
		ready(ln.Addr())
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	var accepting sync.WaitGroup
	for _, p := range s.plugins {
		if r, ok := p.(Runner); ok {
			accepting.Go(func() {
				if err := r.Run(ctx); err != nil {
					s.log.Error("plugin stopped", "plugin", p.Name(), "err", err)
				}
			})
		}
	}
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
// peer's key. Handshakes in progress are bounded by Limits.MaxHandshakes,
// established connections by MaxConns, of which strangers may use all but
// Limits.ReservedConns.
func (s *Server) peer(ctx context.Context, c net.Conn) {
	select {
	case s.handshakes <- struct{}{}:
	default:
		s.log.Warn("too many handshakes in progress: refused", "remote", c.RemoteAddr().String(), "max", s.cfg.Limits.MaxHandshakes)
		c.Close()
		return
	}
	hctx, cancel := context.WithTimeout(ctx, s.cfg.HandshakeTimeout)
	conn, remote, err := shs.ServerConn(hctx, c, s.network, s.keys.Private, nil)
	cancel()
	<-s.handshakes
	if err != nil {
		s.log.Info("handshake failed", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	kind := s.kindOf(remote)
	release, ok := s.admit(kind)
	if !ok {
		s.log.Warn("too many connections: refused", "remote", c.RemoteAddr().String(), "kind", kind.String(),
			"max", s.cfg.MaxConns, "reserved", s.cfg.Limits.ReservedConns)
		conn.Close()
		return
	}
	defer release()
	var served net.Conn = conn
	if tcp, ok := c.(*net.TCPConn); ok {
		served = resettable{conn, tcp}
	}
	s.servePeer(ctx, served, remote, false)
}

// resettable is a box-stream connection whose TCP connection muxrpc may
// reset when it drops a hostile peer (see muxrpc's abort).
type resettable struct {
	net.Conn
	tcp *net.TCPConn
}

// SetLinger sets the TCP connection's linger time.
func (r resettable) SetLinger(sec int) error { return r.tcp.SetLinger(sec) }

// servePeer serves an authenticated connection to a peer, inbound or
// outbound, and replicates with it.
func (s *Server) servePeer(ctx context.Context, conn net.Conn, remote ed25519.PublicKey, dialer bool) {
	id, _ := refs.NewFeed(remote)
	c := &Conn{ID: id, Kind: s.kindOf(remote), Dialed: dialer}
	s.confine(c)
	if !c.Confined() {
		cid, keep := s.peers.opened(id, dialer, "", func() { conn.Close() })
		defer s.peers.closed(cid)
		if !keep { // the losing side of a cross-dial
			conn.Close()
			return
		}
	}
	s.serveRPC(ctx, conn, "peer", c)
}

// local serves a connection on the local socket with the owner's rights.
func (s *Server) local(ctx context.Context, c net.Conn) {
	if err := sameUser(c); err != nil {
		s.log.Warn("local socket: connection refused", "err", err)
		c.Close()
		return
	}
	s.serveRPC(ctx, c, "local", &Conn{ID: s.keys.ID, Kind: Owner, Local: true})
}

// serveRPC serves c's RPC until it ends, telling the plugins that are
// Connectors when it starts and ends.
func (s *Server) serveRPC(ctx context.Context, nc net.Conn, name string, c *Conn) {
	log := s.log.With("conn", name, "remote", c.ID.String())
	e := muxrpc.NewEndpoint(nc, s.handler(c), muxrpc.WithLogger(log), muxrpc.WithLimits(s.endpointLimits(c.Kind)))
	c.RPC = e
	s.mu.Lock()
	s.conns[e] = c
	s.mu.Unlock()
	log.Debug("connected", "confined", c.Confined())
	for _, p := range s.plugins {
		if h, ok := p.(Connector); ok && !c.Confined() {
			h.Connected(ctx, c)
		}
	}
	err := e.Serve(ctx)
	s.mu.Lock()
	delete(s.conns, e)
	s.mu.Unlock()
	for _, p := range s.plugins {
		if h, ok := p.(Connector); ok && !c.Confined() {
			h.Disconnected(c)
		}
	}
	if err != nil {
		log.Info("connection ended", "err", err)
	} else {
		log.Debug("disconnected")
	}
}

// makePrivate removes the group's and others' permissions from the data
// directory, saying so in the log; it refuses a directory it cannot
// change.
func makePrivate(dir string, log *slog.Logger) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("server: data directory: %w", err)
	}
	perm := fi.Mode().Perm()
	if perm&0o077 == 0 {
		return nil
	}
	if err := os.Chmod(dir, perm&0o700); err != nil {
		return fmt.Errorf("server: data directory %s is open to other users (mode %04o) and cannot be made private: %w", dir, perm, err)
	}
	log.Warn("data directory was open to other users: made private", "path", dir, "was", fmt.Sprintf("%04o", perm), "now", fmt.Sprintf("%04o", perm&0o700))
	return nil
}

// listenPrivate listens on the unix socket path so that no other user can
// ever connect to it: the socket is bound inside a new directory of mode
// 0700 beside it (mkdir's mode is only narrowed by the umask), chmodded to
// 0600, and only then renamed to path. Connections that arrive meanwhile
// can only come from this user. The data directory is private too
// (makePrivate), and the server checks who connects (local).
func listenPrivate(path string, hook func(stage, name string)) (net.Listener, error) {
	tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".socket-")
	if err != nil {
		return nil, fmt.Errorf("server: local socket: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	if err := os.Chmod(tmpDir, 0o700); err != nil { // MkdirTemp gives 0700 already; be sure
		return nil, fmt.Errorf("server: local socket: %w", err)
	}
	tmp := filepath.Join(tmpDir, "socket")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("server: local socket: %w", err)
	}
	ln.SetUnlinkOnClose(false) // it is removed under its final name
	if hook != nil {
		hook("bound", tmp)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("server: local socket: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil { // replaces a socket left by a server that died
		ln.Close()
		return nil, fmt.Errorf("server: local socket: %w", err)
	}
	if hook != nil {
		hook("renamed", path)
	}
	return ln, nil
}
