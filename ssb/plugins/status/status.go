// Package status answers whoami, version and status. The status answer
// is the server's id and version plus what every plugin that is a
// server.StatusReporter contributes.
package status

import (
	"context"
	"maps"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Plugin is the status plugin.
type Plugin struct {
	srv *server.Server
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

// Methods returns whoami, version and status, for the owner.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "version", Type: muxrpc.Sync, Handler: func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
			req.Return(server.Version)
		}},
		{Name: "whoami", Type: muxrpc.Sync, Handler: func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
			req.Return(map[string]string{"id": p.srv.ID().String()})
		}},
		{Name: "status", Type: muxrpc.Sync, Handler: p.status},
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
