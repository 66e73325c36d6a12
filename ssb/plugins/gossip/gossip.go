// Package gossip is ssb-gossip's RPC methods over the server's address
// book of known peers: gossip.connect, gossip.add, gossip.remove,
// gossip.peers, and gossip.ping (ssb-gossip's keep-alive), which anyone
// may call and which the server sends to silent peers (server.Pinger).
package gossip

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Plugin is the gossip plugin.
type Plugin struct {
	srv *server.Server
}

// New returns the gossip plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "gossip".
func (p *Plugin) Name() string { return "gossip" }

// Init keeps the server, whose address book the methods use.
func (p *Plugin) Init(s *server.Server) error {
	p.srv = s
	return nil
}

// Methods returns gossip.*; anyone may call gossip.ping.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "gossip.connect", Type: muxrpc.Async, Handler: p.connect},
		{Name: "gossip.add", Type: muxrpc.Async, Handler: p.add},
		{Name: "gossip.remove", Type: muxrpc.Async, Handler: p.remove},
		{Name: "gossip.peers", Type: muxrpc.Sync, Handler: p.peers},
		{Name: "gossip.ping", Type: muxrpc.Duplex, Perm: server.Anyone, Handler: ping},
	}
}

// Ping asks a silent peer for a sign of life: one round of ssb-gossip's
// ping (a duplex of timestamps). Any answer, even an error, is a packet
// received, which is what the idle timer watches.
func (p *Plugin) Ping(ctx context.Context, e *muxrpc.Endpoint) {
	wait := p.srv.Config().Limits.IdleTimeout / 2
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	st, err := e.Open(muxrpc.Method{"gossip", "ping"}, muxrpc.Duplex, map[string]any{"timeout": wait.Milliseconds()})
	if err != nil {
		return
	}
	defer st.Close()
	if st.Send(time.Now().UnixMilli()) == nil {
		st.Recv(ctx)
	}
}

// connect adds a peer at a multiserver address ("net:HOST:PORT~shs:KEY")
// to the known peers and dials it now; the connection replicates until it
// or the server ends (the scheduler reconnects later). It answers once the
// handshake is done.
func (p *Plugin) connect(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	addr, err := addressArg(req)
	if err != nil {
		req.Fail(err)
		return
	}
	feed, err := p.srv.Connect(ctx, addr)
	if err != nil {
		req.Fail(fmt.Errorf("gossip.connect: %w", err))
		return
	}
	req.Return(map[string]string{"id": feed.String(), "address": addr})
}

// ping answers ssb-gossip's keep-alive: each number the peer sends is
// answered with the local time in milliseconds.
func ping(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	st := req.Stream()
	for {
		if _, err := st.Recv(ctx); err != nil {
			return
		}
		if st.Send(time.Now().UnixMilli()) != nil {
			return
		}
	}
}

func (p *Plugin) add(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	addr, err := addressArg(req)
	if err == nil {
		err = p.srv.AddPeer(addr)
	}
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(true)
}

func (p *Plugin) remove(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	addr, err := addressArg(req)
	if err == nil {
		if err = p.srv.RemovePeer(addr); err != nil {
			err = fmt.Errorf("gossip.remove: %w", err)
		}
	}
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(true)
}

func (p *Plugin) peers(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.Return(p.srv.KnownPeers())
}

// addressArg reads a multiserver address given as a string or as
// {address: …}.
func addressArg(req *muxrpc.Request) (string, error) {
	arg := db.FirstArg(req)
	var addr string
	if json.Unmarshal(arg, &addr) != nil {
		var o struct{ Address string }
		json.Unmarshal(arg, &o)
		addr = o.Address
	}
	if _, _, err := server.ParseAddress(addr); err != nil {
		return "", fmt.Errorf("gossip.connect: %w", err)
	}
	return addr, nil
}
