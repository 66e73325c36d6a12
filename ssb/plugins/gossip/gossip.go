// Package gossip is ssb-gossip's RPC methods over the server's address
// book of known peers and its connection scheduler: gossip.connect,
// disconnect, add, remove, get, peers, changes (a stream of the known
// peers' changes), reconnect, enable, disable and help, and gossip.ping
// (ssb-gossip's keep-alive), which anyone may call and which the server
// sends to silent peers (server.Pinger). The rest are the owner's, as in
// ssb-gossip's permissions.
//
// gossip.enable and gossip.disable record the gossip type in the gossip
// section of <path>/config, as ssb-gossip does; of the types, "global"
// (the default) is the one that governs the known peers the server dials,
// so disabling it pauses the scheduler (connections open stay).
//
// As ssb-gossip, the plugin adds the addresses of the pub messages in the
// store to the known peers (source "pub"; see Run and server.SourcePub),
// unless the gossip section says "pub": false.
package gossip

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Plugin is the gossip plugin.
type Plugin struct {
	srv *server.Server

	mu      sync.Mutex     // serialises writes of <path>/config
	section map[string]any // the gossip section read at Open
}

// New returns the gossip plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "gossip".
func (p *Plugin) Name() string { return "gossip" }

// ConfigSection returns "gossip".
func (p *Plugin) ConfigSection() string { return "gossip" }

// ReadConfig reads the gossip section: {"global": false} keeps the
// scheduler from dialing (gossip.disable).
func (p *Plugin) ReadConfig(section json.RawMessage) error {
	if section == nil {
		return nil
	}
	if err := json.Unmarshal(section, &p.section); err != nil {
		return fmt.Errorf("gossip: %w", err)
	}
	return nil
}

// Init keeps the server, whose address book the methods use, and pauses
// its scheduler if the config disables global gossip.
func (p *Plugin) Init(s *server.Server) error {
	p.srv = s
	s.EnableScheduler(enabled(p.section["global"]))
	return nil
}

// enabled is ssb-gossip's conf(name, true): absent, null and "" are the
// default (true), anything else by JavaScript truthiness.
func enabled(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case bool:
		return v
	case float64:
		return v != 0 && v == v
	case string:
		return true // "" is the default, any other string is truthy
	}
	return true
}

// Methods returns gossip.*; anyone may call gossip.ping.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "gossip.connect", Type: muxrpc.Async, Handler: p.connect},
		{Name: "gossip.disconnect", Type: muxrpc.Async, Handler: p.disconnect},
		{Name: "gossip.add", Type: muxrpc.Sync, Handler: p.add},
		{Name: "gossip.remove", Type: muxrpc.Sync, Handler: p.remove},
		{Name: "gossip.get", Type: muxrpc.Sync, Handler: p.get},
		{Name: "gossip.peers", Type: muxrpc.Sync, Handler: p.peers},
		{Name: "gossip.changes", Type: muxrpc.Source, Handler: p.changes},
		{Name: "gossip.reconnect", Type: muxrpc.Sync, Handler: p.reconnect},
		{Name: "gossip.enable", Type: muxrpc.Sync, Handler: p.enable},
		{Name: "gossip.disable", Type: muxrpc.Sync, Handler: p.disable},
		{Name: "gossip.help", Type: muxrpc.Sync, Handler: help},
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

// connect adds a peer at a multiserver address ("net:HOST:PORT~shs:KEY",
// or {address}, or {host, port, key}; or the feed id of a known peer) to
// the known peers and dials it now; the connection replicates until it or
// the server ends (the scheduler reconnects later). It answers once the
// handshake is done.
func (p *Plugin) connect(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	arg := db.FirstArg(req)
	if f, ok := feedArg(arg); ok {
		known := p.srv.KnownPeer(f)
		if known == nil {
			req.Fail(fmt.Errorf("no known address for peer:%s", f))
			return
		}
		arg, _ = json.Marshal(known["address"])
	}
	addr, err := addressArg(arg)
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

// disconnect closes the connections to a known peer (its feed id, or
// {key}) and answers once they have ended; ssb-gossip answers nothing,
// which muxrpc sends as false.
func (p *Plugin) disconnect(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	f, err := peerArg(db.FirstArg(req))
	if err == nil && p.srv.KnownPeer(f) == nil {
		err = fmt.Errorf("gossip.disconnect: %s is not a known peer", f)
	}
	if err == nil {
		_, err = p.srv.Disconnect(ctx, f)
	}
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(false)
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

// add adds a peer to the known peers: a multiserver address, {address},
// or {host, port, key}, and optionally the source ("manual" by default).
// It answers the peer's record as ssb-gossip does, or false for our own
// address (which is not added).
func (p *Plugin) add(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var args []json.RawMessage
	json.Unmarshal(req.Args, &args)
	var first json.RawMessage
	if len(args) > 0 {
		first = args[0]
	}
	addr, err := addressArg(first)
	if err != nil {
		req.Fail(err)
		return
	}
	if _, feed, _ := server.ParseAddress(addr); feed == p.srv.ID() {
		req.Return(false)
		return
	}
	var source string
	if len(args) > 1 {
		json.Unmarshal(args[1], &source)
	}
	add := p.srv.AddPeerFrom
	if hostPortGiven(first) {
		add = p.srv.AddPeerHostPort // ssb-gossip keeps {host, port} in the record
	}
	if err := add(addr, source); err != nil {
		req.Fail(fmt.Errorf("gossip.add: %w", err))
		return
	}
	// ssb-gossip answers the peer's record.
	if _, feed, err := server.ParseAddress(addr); err == nil {
		if k := p.srv.KnownPeer(feed); k != nil {
			req.Return(k)
			return
		}
	}
	req.Return(true)
}

// remove removes a peer from the known peers: its feed id or {key} (as
// ssb-gossip), or one of its addresses. An unknown peer is no error.
// ssb-gossip answers nothing, which muxrpc sends as false.
func (p *Plugin) remove(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	arg := db.FirstArg(req)
	var err error
	if addr, aerr := addressString(arg); aerr == nil {
		if err = p.srv.RemovePeer(addr); err != nil && p.knownAddress(addr) {
			err = fmt.Errorf("gossip.remove: %w", err)
		} else {
			err = nil
		}
	} else {
		var f refs.Feed
		if f, err = peerArg(arg); err == nil {
			if _, err = p.srv.RemovePeerFeed(f); err != nil {
				err = fmt.Errorf("gossip.remove: %w", err)
			}
		}
	}
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(false)
}

func (p *Plugin) knownAddress(addr string) bool {
	for _, k := range p.srv.KnownPeers() {
		if k["address"] == addr {
			return true
		}
	}
	return false
}

// get answers the known peer of a feed id (or {key}), or false when the
// peer is not known (ssb-gossip's undefined, as muxrpc sends it).
func (p *Plugin) get(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	f, err := peerArg(db.FirstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	if k := p.srv.KnownPeer(f); k != nil {
		req.Return(k)
		return
	}
	req.Return(false)
}

func (p *Plugin) peers(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.Return(p.srv.KnownPeers())
}

// changes streams the changes of the known peers from now on, as
// ssb-gossip's notify does: {type, peer} (and source, for "discover").
// A reader that falls far behind gets an error.
func (p *Plugin) changes(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	w := p.srv.WatchPeers()
	defer w.Stop()
	st := req.Stream()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.C():
			if !ok {
				if w.Overflowed() {
					req.Fail(errors.New("gossip.changes: the reader fell behind"))
				}
				return
			}
			if st.Send(eventJSON(ev)) != nil {
				return
			}
		}
	}
}

// eventJSON is an event as ssb-gossip sends it.
func eventJSON(ev server.PeerEvent) map[string]any {
	m := map[string]any{"type": ev.Type, "peer": ev.Peer}
	if ev.Type == server.PeerDiscover {
		m["source"] = ev.Source
	}
	return m
}

// reconnect closes every connection but the owner's (the scheduler dials
// the known peers again) and answers the time, as ssb-gossip does.
func (p *Plugin) reconnect(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	if _, err := p.srv.DisconnectPeers(ctx); err != nil {
		req.Fail(err)
		return
	}
	req.Return(time.Now().UnixMilli())
}

func (p *Plugin) enable(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	p.setType(req, true)
}

func (p *Plugin) disable(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	p.setType(req, false)
}

// setType records gossip type (default "global") as on or off in the
// config, applies "global" to the scheduler, and answers as ssb-gossip:
// "enabled gossip type global".
func (p *Plugin) setType(req *muxrpc.Request, on bool) {
	typ := typeArg(db.FirstArg(req))
	if err := p.saveType(typ, on); err != nil {
		req.Fail(err)
		return
	}
	if typ == "global" {
		p.srv.EnableScheduler(on)
	}
	word := "disabled"
	if on {
		word = "enabled"
	}
	req.Return(word + " gossip type " + typ)
}

// saveType sets gossip.<typ> in <path>/config, keeping everything else
// (keys are written sorted, two-space indented).
func (p *Plugin) saveType(typ string, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	path := filepath.Join(p.srv.Config().Path, "config")
	cfg := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	if err == nil {
		if json.Unmarshal(b, &cfg) != nil || cfg == nil { // ssb-gossip starts afresh from a broken file
			cfg = map[string]json.RawMessage{}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("gossip: config: %w", err)
	}
	section := map[string]json.RawMessage{}
	json.Unmarshal(cfg["gossip"], &section)
	if section == nil {
		section = map[string]json.RawMessage{}
	}
	section[typ], _ = json.Marshal(on)
	cfg["gossip"], _ = json.Marshal(section)
	out, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return fmt.Errorf("gossip: config: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, path, out, 0o600); err != nil {
		return fmt.Errorf("gossip: config: %w", err)
	}
	return nil
}

//go:embed help.json
var helpJSON []byte

// help answers ssb-gossip's help object (its help.js, as Node prints it).
func help(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.ReturnRaw(muxrpc.JSON, helpJSON)
}

// Status is ssb-gossip's section of status: the known peers that are
// connected or changed state in the last 3 seconds, by feed id, in its
// simplified shape ({address, source, state, stateChange, failure, client,
// stats: {duration}}; rtt and skew are not measured).
func (p *Plugin) Status(ctx context.Context) (map[string]any, error) {
	out := map[string]any{}
	now := time.Now().UnixMilli()
	for _, k := range p.srv.KnownPeers() {
		sc, _ := k["stateChange"].(int64)
		if k["state"] != "connected" && (sc == 0 || sc+3000 <= now) {
			continue
		}
		e := map[string]any{"address": k["address"], "source": k["source"]}
		for _, f := range []string{"state", "stateChange", "failure", "client"} {
			if v, ok := k[f]; ok {
				e[f] = v
			}
		}
		stats := map[string]any{}
		if d, ok := k["duration"]; ok && d != nil {
			stats["duration"] = d
		}
		e["stats"] = stats
		out[k["key"].(string)] = e
	}
	return map[string]any{"gossip": out}, nil
}
