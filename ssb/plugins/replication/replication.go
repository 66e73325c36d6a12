// Package replication replicates the feeds the server wants (those within
// friends.hops of its own in the follow graph, plus those the owner
// requested, minus those refused) with every connected peer: EBT
// (ebt.replicate) or legacy createHistoryStream, which it serves to
// anyone, and progress. For the owner it answers ssb-replicate's request,
// block, upto and changes and ssb-ebt's request, block and peerStatus
// (methods.go); requests and blocks are kept in <path>/replication.json.
// The follow graph (ssb-friends' hops) is kept by the replicator; the
// friends plugin answers friends.* from it.
package replication

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Plugin is the replication plugin.
type Plugin struct {
	srv   *server.Server
	repl  *replicate.Replicator
	store *store.Store

	privOnce sync.Once
	priv     db.Private
}

// New returns the replication plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "replicate".
func (p *Plugin) Name() string { return "replicate" }

// Init creates the replicator with the server's Hops, NoEBT and EBT
// settings; peers' EBT clocks are kept in <path>/ebt, the owner's requests
// and blocks in <path>/replication.json.
func (p *Plugin) Init(s *server.Server) error {
	cfg := s.Config()
	p.srv = s
	p.store = s.Store()
	p.repl = replicate.New(s.Store(), s.ID(), replicate.Config{
		Hops:       cfg.Hops,
		NoEBT:      cfg.NoEBT,
		ClockDir:   filepath.Join(cfg.Path, "ebt"),
		PolicyFile: filepath.Join(cfg.Path, "replication.json"),
		EBT:        cfg.EBT,
		Log:        s.Logger(),
	})
	return p.repl.LoadPolicy()
}

// Replicator returns the replicator (for tests and benchmarks: its
// counters).
func (p *Plugin) Replicator() *replicate.Replicator { return p.repl }

// Methods returns createHistoryStream and ebt.replicate, which anyone may
// call, and for the owner ssb-replicate's and ssb-ebt's
// others (see methods.go).
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "createHistoryStream", Type: muxrpc.Source, Perm: server.Anyone, Handler: db.WithOpts("id", p.createHistoryStream)},
		{Name: "ebt.replicate", Type: muxrpc.Duplex, Perm: server.Anyone, Handler: func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
			if err := p.repl.ServeEBT(ctx, req, c.RPC, c.ID); err != nil {
				req.Fail(err)
			}
		}},
		{Name: "replicate.request", Type: muxrpc.Sync, Handler: p.request},
		{Name: "replicate.block", Type: muxrpc.Sync, Handler: p.block},
		{Name: "replicate.upto", Type: muxrpc.Source, Handler: p.upto},
		{Name: "replicate.changes", Type: muxrpc.Source, Handler: p.changes},
		{Name: "ebt.request", Type: muxrpc.Sync, Handler: p.request},
		{Name: "ebt.block", Type: muxrpc.Sync, Handler: p.block},
		{Name: "ebt.peerStatus", Type: muxrpc.Sync, Handler: p.peerStatus},
	}
}

// Run follows the store's contact messages until ctx ends.
func (p *Plugin) Run(ctx context.Context) error { return p.repl.Run(ctx) }

// Connected replicates with a peer. A client with the server's own key
// (sbot's, ssb-client's) is the owner, not a peer: nothing to replicate
// with it, as in ssb-server.
func (p *Plugin) Connected(ctx context.Context, c *server.Conn) {
	if c.Peer() {
		p.repl.AddPeer(ctx, c.RPC, c.ID, c.Dialed)
	}
}

// Disconnected does nothing: the replicator ends a peer's sessions when its
// connection ends.
func (p *Plugin) Disconnected(*server.Conn) {}

// Status reports the wanted feeds, forks, counters and progress.
func (p *Plugin) Status(ctx context.Context) (map[string]any, error) {
	forked := map[string]string{}
	for f, err := range p.repl.Forked() {
		forked[f.String()] = err.Error()
	}
	return map[string]any{
		"replicating": len(p.repl.Wanted()),
		"forked":      forked,
		"replication": p.repl.Stats(),
		"progress":    p.repl.Progress(),
		"peers":       p.repl.Peers(),
	}, nil
}

// createHistoryStream serves a feed's history. A peer gets nothing of a
// feed kept from it (blocked by us, or by the feed: Replicator.Excludes),
// and a live stream ends when a block comes. With private: true the owner
// (the local socket, or a client with our key) gets our private messages
// decrypted, as ssb-db's createHistoryStream would give them to a local
// caller; a peer always gets them boxed, as they are replicated.
func (p *Plugin) createHistoryStream(ctx context.Context, c *server.Conn, req *muxrpc.Request, o db.StreamOpts) {
	feed, err := refs.ParseFeed(o.ID)
	if err != nil {
		req.Fail(fmt.Errorf("createHistoryStream: %w", err))
		return
	}
	p.repl.Heard(c.RPC) // a peer that dialed may be asked for feeds now
	if c.Peer() {
		if o.Live { // registered before the check, so that no block is missed
			var cancel context.CancelFunc
			ctx, cancel = context.WithCancel(ctx)
			defer cancel()
			defer p.repl.Serving(feed, c.ID, cancel)()
		}
		if p.repl.IsBlocked(c.ID) || p.repl.Excludes(feed, c.ID) {
			return // ssb-replicate ends the stream at once for a peer kept from the feed
		}
	}
	seq := int64(0)
	switch {
	case o.Sequence != nil:
		seq = *o.Sequence
	case o.Seq != nil:
		seq = *o.Seq
	}
	it, err := p.store.History(ctx, store.HistoryQuery{ID: feed, Seq: seq, Limit: o.Limit, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values})
	db.DrainWith(ctx, req, it, err, p.unboxer(c, o))
}

// unboxer returns the decryption private: true asks for, for the owner
// only; nil otherwise or without a Private plugin.
func (p *Plugin) unboxer(c *server.Conn, o db.StreamOpts) func(store.Item) store.Item {
	if !o.Private || c.Kind != server.Owner {
		return nil
	}
	p.privOnce.Do(func() {
		for _, pl := range p.srv.Plugins() {
			if pr, ok := pl.(db.Private); ok {
				p.priv = pr
				return
			}
		}
	})
	if p.priv == nil {
		return nil
	}
	return func(it store.Item) store.Item {
		if u, ok := p.priv.UnboxItem(it); ok {
			return u
		}
		return it
	}
}
