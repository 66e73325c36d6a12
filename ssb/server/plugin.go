package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// A Plugin is one capability of the server: the RPC methods it answers,
// with the permission of each, and optionally a config section
// (Configurable), per-connection hooks (Connector), a background task
// (Runner), a part of the status answer (StatusReporter), the idle
// keep-alive (Pinger) and the confinement of some peers to a few methods
// (Confiner). The server is given its plugins by Open and names
// none of them: the manifest and the permission table are built from what
// they declare.
type Plugin interface {
	// Name is the plugin's name ("gossip", "blobs").
	Name() string
	// Init is called once by Open, in the order of the plugins, after the
	// identity and the store are open and before anything is served. A
	// plugin that keeps state sets it up here.
	Init(s *Server) error
	// Methods are the RPC methods of the plugin; called once, after Init.
	Methods() []Method
}

// A Configurable plugin reads its own section of <path>/config.
type Configurable interface {
	Plugin
	// ConfigSection is the top-level key of the section in <path>/config.
	ConfigSection() string
	// ReadConfig is given the section's JSON (nil when the file or the
	// section is absent) before Init; an error stops Open.
	ReadConfig(section json.RawMessage) error
}

// A Connector plugin is told when a peer connects and disconnects (the
// owner's connections included; Conn.Kind tells them apart). Connected is
// called before the connection is served, in the order of the plugins; it
// must not block (start goroutines with Server.Go). ctx ends with the
// server.
type Connector interface {
	Plugin
	Connected(ctx context.Context, c *Conn)
	Disconnected(c *Conn)
}

// A Runner plugin has work that runs while the server serves: Run is
// started by Serve and must return when ctx ends.
type Runner interface {
	Plugin
	Run(ctx context.Context) error
}

// A StatusReporter plugin contributes fields to the answer of the status
// method (the top-level keys it returns).
type StatusReporter interface {
	Plugin
	Status(ctx context.Context) (map[string]any, error)
}

// A ProgressReporter plugin contributes sections to the answer of the
// progress method (ssb-server's progress: {indexes, ooo, ...}), each a
// top-level key, usually {start, current, target}.
type ProgressReporter interface {
	Plugin
	Progress(ctx context.Context) map[string]any
}

// An IndexReporter plugin keeps a view of the log (an index) that follows
// it: IndexProgress says how far it has read (current, a receive
// sequence) of the log's length (target). progress's indexes section
// averages the views, as ssb-db averages its flumedb views.
type IndexReporter interface {
	Plugin
	IndexProgress() (current, target uint64)
}

// A Pinger plugin provides the keep-alive the server sends to a peer that
// has been silent for half of Limits.IdleTimeout (any answer counts as a
// sign of life). The first plugin that is a Pinger is used.
type Pinger interface {
	Plugin
	Ping(ctx context.Context, c *muxrpc.Endpoint)
}

// A Confiner plugin may confine a peer's connection to a few of its
// methods (ssb-invite's guests, which connect with an invite's key, may
// call invite.use and nothing else). Confine is asked about every
// connection from a peer that is not the owner, after the handshake and
// before anything is served (c.RPC is still nil); it must not block. It
// returns the names of the methods the connection may call and true to
// confine it: then the connection may call those and nothing else (not
// manifest, not the methods for anyone), and the Connectors are not told
// of it. false leaves the connection to the usual permissions. The first
// Confiner that confines a connection decides.
type Confiner interface {
	Plugin
	Confine(c *Conn) (methods []string, ok bool)
}

// Perm is who may call a method.
type Perm int

const (
	// OwnerOnly methods are called by the owner only (the local socket,
	// or a peer with the server's own key).
	OwnerOnly Perm = iota
	// Anyone may call the method: also known peers and strangers
	// (ssb-server's anonymous permissions).
	Anyone
)

// A Method is one RPC method of a plugin.
type Method struct {
	// Name is the dotted name ("gossip.ping").
	Name string
	// Type is the call type; a Sync method is called as Async.
	Type muxrpc.CallType
	// Perm says who may call it.
	Perm Perm
	// Handler answers a request that came on connection c.
	Handler func(ctx context.Context, c *Conn, req *muxrpc.Request)
}

// PeerKind is how much the server trusts a connection.
type PeerKind int

// The kinds of peers.
const (
	// Stranger is any peer with the network key that is neither known nor
	// the owner.
	Stranger PeerKind = iota
	// Known peers are in the address book (gossip.json).
	Known
	// Owner is the local socket, or a peer with the server's own key.
	Owner
)

func (k PeerKind) String() string { return [...]string{"stranger", "known", "owner"}[k] }

// A Conn is one connection the server serves, as handlers and hooks see it.
type Conn struct {
	// ID is the peer's feed id (the server's own on the local socket).
	ID refs.Feed
	// Kind is the peer's kind, which decided its permissions and limits.
	Kind PeerKind
	// Local is true on the local socket.
	Local bool
	// Dialed is true when this server dialed the connection.
	Dialed bool
	// RPC is the connection's endpoint: it calls the peer's methods.
	RPC *muxrpc.Endpoint

	allowed map[string]bool // non-nil: a confined connection (Confiner)
}

// Confined reports whether a Confiner confined the connection to a few
// methods.
func (c *Conn) Confined() bool { return c.allowed != nil }

// confine asks the Confiner plugins about a peer's connection and records
// the methods it may call.
func (s *Server) confine(c *Conn) {
	if c.Kind == Owner {
		return
	}
	for _, p := range s.plugins {
		cf, ok := p.(Confiner)
		if !ok {
			continue
		}
		if methods, ok := cf.Confine(c); ok {
			c.allowed = make(map[string]bool, len(methods))
			for _, m := range methods {
				c.allowed[m] = true
			}
			return
		}
	}
}

// Peer reports whether the connection is to another peer: not the local
// socket and not a client with the server's own key.
func (c *Conn) Peer() bool { return c.Kind != Owner }

// manifestMethod is the core's one method: the manifest of all others.
const manifestMethod = "manifest"

// initPlugins reads the plugins' config sections, initialises them, and
// builds the method table.
func (s *Server) initPlugins(plugins []Plugin) error {
	sections, err := readSections(s.cfg.Path)
	if err != nil {
		return err
	}
	s.plugins = plugins
	s.methods = map[string]Method{
		manifestMethod: {Name: manifestMethod, Type: muxrpc.Sync, Perm: Anyone, Handler: func(ctx context.Context, c *Conn, req *muxrpc.Request) {
			req.Return(s.Manifest())
		}},
	}
	names := make(map[string]bool)
	for _, p := range plugins {
		if names[p.Name()] {
			return fmt.Errorf("server: plugin %q given twice", p.Name())
		}
		names[p.Name()] = true
		if c, ok := p.(Configurable); ok {
			if err := c.ReadConfig(sections[c.ConfigSection()]); err != nil {
				return fmt.Errorf("server: config section %q: %w", c.ConfigSection(), err)
			}
		}
		if err := p.Init(s); err != nil {
			return fmt.Errorf("server: plugin %s: %w", p.Name(), err)
		}
		for _, m := range p.Methods() {
			if _, dup := s.methods[m.Name]; dup {
				return fmt.Errorf("server: plugin %s: method %s is registered twice", p.Name(), m.Name)
			}
			s.methods[m.Name] = m
		}
		if pg, ok := p.(Pinger); ok && s.pinger == nil {
			s.pinger = pg
		}
	}
	return nil
}

// readSections reads the top-level sections of <path>/config.
func readSections(path string) (map[string]json.RawMessage, error) {
	b, err := os.ReadFile(filepath.Join(path, "config"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("server: config: %w", err)
	}
	var sections map[string]json.RawMessage
	if err := json.Unmarshal(b, &sections); err != nil {
		return nil, fmt.Errorf("server: config %s: %w", filepath.Join(path, "config"), err)
	}
	return sections, nil
}

// Plugins returns the server's plugins, in order.
func (s *Server) Plugins() []Plugin { return slices.Clone(s.plugins) }

// Manifest returns the methods as ssb-server's manifest: a nested object of
// call types, {"whoami":"async","gossip":{"ping":"duplex"}}.
func (s *Server) Manifest() map[string]any {
	types := make(map[string]muxrpc.CallType, len(s.methods))
	for name, m := range s.methods {
		types[name] = m.Type
	}
	return muxrpc.Manifest(types)
}

// handler returns the request handler of connection c. The errors are those
// ssb-server sends: "method:NAME is not in list of allowed methods" for a
// method the caller may not call (whether or not it exists), and
// "no TYPE:NAME" for an unknown method or a wrong call type.
func (s *Server) handler(c *Conn) muxrpc.Handler {
	return muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		name := req.Method.String()
		m, ok := s.methods[name]
		allowed := c.Kind == Owner || ok && m.Perm == Anyone
		if c.allowed != nil {
			allowed = ok && c.allowed[name]
		}
		if !allowed {
			req.Fail(fmt.Errorf("method:%s is not in list of allowed methods", strings.Join(req.Method, ",")))
			return
		}
		typ := m.Type
		if typ == muxrpc.Sync {
			typ = muxrpc.Async
		}
		if !ok || typ != req.Type {
			req.Fail(fmt.Errorf("no %s:%s", req.Type, name))
			return
		}
		m.Handler(ctx, c, req)
	})
}
