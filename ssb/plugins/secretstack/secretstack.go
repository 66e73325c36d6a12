// Package secretstack is the RPC methods of secret-stack's core that
// ssb-server@16 has besides manifest: address and multiserver.address
// (our multiserver address for a scope), multiserver.parse (an address as
// secret-stack's multiserver parses it) and auth (the rights a feed
// would get if it connected). All are the owner's: secret-stack lets
// strangers call only manifest.
package secretstack

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"strconv"
	"strings"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Plugin is secret-stack's core methods.
type Plugin struct {
	srv *server.Server
}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "secret-stack".
func (p *Plugin) Name() string { return "secret-stack" }

// Init keeps the server.
func (p *Plugin) Init(s *server.Server) error {
	p.srv = s
	return nil
}

// Methods returns address, auth, multiserver.parse and multiserver.address.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "address", Type: muxrpc.Sync, Handler: p.address},
		{Name: "auth", Type: muxrpc.Async, Handler: p.auth},
		{Name: "multiserver.parse", Type: muxrpc.Sync, Handler: parse},
		{Name: "multiserver.address", Type: muxrpc.Sync, Handler: p.address},
	}
}

// address answers our multiserver address for a scope ("device" by
// default), or null when we have none in that scope.
func (p *Plugin) address(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	if a := p.Address(scopeArg(db.FirstArg(req))); a != "" {
		req.Return(a)
		return
	}
	req.Return(nil)
}

// Address returns the server's multiserver address in scope ("device",
// "local" or "public"), as secret-stack's stringify builds it from
// ssb-server's transports: net~shs (every scope) and, on the device, the
// local socket as unix~noauth; "" if there is none. The net host is the
// configured one; when the server listens on every interface, it is
// localhost on the device and the first private (local) or public IPv4
// address of an interface.
func (p *Plugin) Address(scope string) string {
	var parts []string
	if la, ok := p.srv.ListenAddr().(*net.TCPAddr); ok {
		if host := p.host(scope); host != "" {
			key := base64.StdEncoding.EncodeToString(p.srv.ID().PublicKey())
			parts = append(parts, "net:"+host+":"+strconv.Itoa(la.Port)+"~shs:"+key)
		}
	}
	if scope == "device" && p.srv.ListenAddr() != nil {
		parts = append(parts, "unix:"+escape(server.SocketPath(p.srv.Config().Path))+"~noauth")
	}
	return strings.Join(parts, ";")
}

// host is the net host of scope, or "".
func (p *Plugin) host(scope string) string {
	if scope != "device" && scope != "local" && scope != "public" {
		return ""
	}
	h := p.srv.Config().Host
	if ip := net.ParseIP(h); h != "" && (ip == nil || !ip.IsUnspecified()) {
		return h
	}
	if scope == "device" {
		return "localhost"
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		n, ok := a.(*net.IPNet)
		if !ok || n.IP.To4() == nil || n.IP.IsLoopback() || n.IP.IsLinkLocalUnicast() {
			continue
		}
		if n.IP.IsPrivate() == (scope == "local") {
			return n.IP.String()
		}
	}
	return ""
}

// escape escapes multiserver's separators ('~' and the escape '!') in
// an address part, as separator-escape does.
func escape(s string) string {
	return strings.NewReplacer("!", "!!", "~", "!~").Replace(s)
}

// scopeArg reads the scope as multiserver's stringify does: a falsy value
// is "device"; a scope that is not a string matches none ("").
func scopeArg(arg json.RawMessage) string {
	var v any
	if json.Unmarshal(arg, &v) != nil {
		return "device"
	}
	switch v := v.(type) {
	case nil:
		return "device"
	case string:
		if v == "" {
			return "device"
		}
		return v
	case bool:
		if !v {
			return "device"
		}
	case float64:
		if v == 0 {
			return "device"
		}
	}
	return ""
}

// errBlocked is ssb-friends' answer for a feed we block.
var errBlocked = errors.New("client is blocked")

// auth answers what ssb-server@16's auth hooks give a feed: full rights
// ({allow: null, deny: null}, ssb-master) for our own id, ssb-friends'
// error for a feed we block, and otherwise nothing (no rights beyond the
// anonymous ones), which muxrpc sends as false.
func (p *Plugin) auth(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var id string
	json.Unmarshal(db.FirstArg(req), &id)
	f, err := refs.ParseFeed(id)
	switch {
	case err == nil && p.blocks(f):
		req.Fail(errBlocked)
	case err == nil && f == p.srv.ID():
		req.Return(map[string]any{"allow": nil, "deny": nil})
	default:
		req.Return(false)
	}
}

// blocks reports whether our latest contact message about f blocks it.
func (p *Plugin) blocks(f refs.Feed) bool {
	for _, pl := range p.srv.Plugins() {
		if r, ok := pl.(interface{ Replicator() *replicate.Replicator }); ok && r.Replicator() != nil {
			return r.Replicator().Graph().IsBlocking(p.srv.ID(), f)
		}
	}
	return false
}
