// Package links answers the link queries ssb-server 16's apps make:
// ssb-db 20's links (ssb-msgs' links of a message's top-level content
// fields), ssb-links 3's links2.read and links2.help (map-filter-reduce
// queries over link records {source, dest, rel, ts}) and ssb-backlinks'
// backlinks.read (messages that mention a target anywhere in their
// content; patchcore calls it, though ssb-server 16 does not ship it).
//
// The indexes of the three modules live in one derived view of the log
// (package ssb/index), <data>/indexes/links.bolt, keyed by the charwise
// encoding the JavaScript indexes use, so results come in the same order.
// Queries first wait until the view has seen every message the store had
// acknowledged; their live part follows the store's log.
package links

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"

	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

//go:embed help.json
var helpJSON []byte

// Plugin is the links plugin.
type Plugin struct {
	srv   *server.Server
	st    *store.Store
	log   *slog.Logger
	dir   string
	unbox Unboxer

	// The view is opened by Run (so a server opened and never served holds
	// no lock on it) and closed when Run returns; opened is closed then.
	mu     sync.Mutex
	view   *index.View
	opened chan struct{}
}

// New returns the links plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "links".
func (p *Plugin) Name() string { return "links" }

// Init finds the plugin that opens private messages; the view lives in
// <path>/indexes.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.st, p.log = s, s.Store(), s.Logger()
	p.dir, p.opened = filepath.Join(s.Config().Path, "indexes"), make(chan struct{})
	if p.log == nil {
		p.log = slog.Default()
	}
	for _, pl := range s.Plugins() {
		if u, ok := pl.(Unboxer); ok {
			p.unbox = u
			break
		}
	}
	return nil
}

// Run opens the view, keeps it up with the log until ctx ends, then
// closes it.
func (p *Plugin) Run(ctx context.Context) error {
	v, err := index.Open(p.st, p.dir, Spec(p.unbox), p.log)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.view = v
	close(p.opened)
	p.mu.Unlock()
	err = v.Run(ctx)
	if cerr := v.Close(); err == nil && !errors.Is(cerr, index.ErrClosed) {
		err = cerr
	}
	return err
}

// getView returns the view once Run has opened it.
func (p *Plugin) getView(ctx context.Context) (*index.View, error) {
	select {
	case <-p.opened:
		return p.view, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("links: the index is not open: %w", ctx.Err())
	}
}

// Rebuild drops the view and indexes the log again; it returns when the
// view has caught up with the store (db's rebuild calls it).
func (p *Plugin) Rebuild(ctx context.Context) error {
	v, err := p.getView(ctx)
	if err != nil {
		return err
	}
	return v.Rebuild(ctx)
}

// Status reports the view's progress: {"links": {"seq", "behind",
// "rebuilds"}} ("open": false before the server serves).
func (p *Plugin) Status(context.Context) (map[string]any, error) {
	p.mu.Lock()
	v := p.view
	p.mu.Unlock()
	if v == nil {
		return map[string]any{"links": map[string]any{"open": false}}, nil
	}
	s := v.Status()
	return map[string]any{"links": map[string]any{"seq": s.Seq, "behind": s.Behind, "rebuilds": s.Rebuilds}}, nil
}

// Methods returns links, links2.read, links2.help and backlinks.read: for
// the owner only, as in ssb-server 16 (none is in its anonymous
// permissions).
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "links", Type: muxrpc.Source, Handler: p.links},
		{Name: "links2.read", Type: muxrpc.Source, Handler: p.links2Read},
		{Name: "links2.help", Type: muxrpc.Sync, Handler: p.help},
		{Name: "backlinks.read", Type: muxrpc.Source, Handler: p.backlinksRead},
	}
}

func (p *Plugin) help(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.Return(json.RawMessage(helpJSON))
}
