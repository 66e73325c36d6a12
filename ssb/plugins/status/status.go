// Package status answers whoami, version, status and progress. The status
// answer is the server's id and version plus what every plugin that is a
// server.StatusReporter contributes; progress is ssb-db's indexes section
// (from every server.IndexReporter) plus every server.ProgressReporter's
// sections.
package status

import (
	"context"
	"maps"
	"sync"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Plugin is the status plugin.
type Plugin struct {
	srv *server.Server

	mu         sync.Mutex
	indexStart uint64 // ssb-db's progress start: where the views last caught up
}

// New returns the status plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "status".
func (p *Plugin) Name() string { return "status" }

// Init keeps the server, whose plugins status asks.
func (p *Plugin) Init(s *server.Server) error {
	p.srv = s
	return nil
}

// Methods returns whoami, version, status and progress, for the owner.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "version", Type: muxrpc.Sync, Handler: func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
			req.Return(server.Version)
		}},
		{Name: "whoami", Type: muxrpc.Sync, Handler: func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
			req.Return(map[string]string{"id": p.srv.ID().String()})
		}},
		{Name: "status", Type: muxrpc.Sync, Handler: p.status},
		{Name: "progress", Type: muxrpc.Sync, Handler: p.progress},
	}
}

func (p *Plugin) status(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	out := map[string]any{
		"id":      p.srv.ID().String(),
		"version": server.Version,
	}
	for _, pl := range p.srv.Plugins() {
		r, ok := pl.(server.StatusReporter)
		if !ok {
			continue
		}
		st, err := r.Status(ctx)
		if err != nil {
			req.Fail(err)
			return
		}
		maps.Copy(out, st)
	}
	req.Return(out)
}

// progress answers ssb-server's progress: indexes, as ssb-db computes it
// over its views (current is their average position, target the log's
// length, start where they last were all caught up), then the sections of
// every ProgressReporter (ooo, replication, peers).
func (p *Plugin) progress(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	target := p.srv.Store().Durable()
	var sum, n uint64
	for _, pl := range p.srv.Plugins() {
		if r, ok := pl.(server.IndexReporter); ok {
			c, _ := r.IndexProgress()
			sum, n = sum+min(c, target), n+1
		}
	}
	current := target
	if n > 0 {
		current = sum / n
	}
	p.mu.Lock()
	if p.indexStart == 0 || current == target {
		p.indexStart = current
	}
	start := p.indexStart
	p.mu.Unlock()
	out := map[string]any{"indexes": map[string]uint64{"start": start, "current": current, "target": target}}
	for _, pl := range p.srv.Plugins() {
		if r, ok := pl.(server.ProgressReporter); ok {
			maps.Copy(out, r.Progress(ctx))
		}
	}
	req.Return(out)
}
