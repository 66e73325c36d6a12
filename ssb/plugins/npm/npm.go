// Package npm answers ssb-server's plugins.* methods (ssb-plugins:
// install, uninstall, enable, disable, help), which install npm packages
// into a JavaScript server. sbot's capabilities are Go plugins compiled in
// (docs/ARCHITECTURE.md), so each method exists with its JavaScript type,
// and install, uninstall, enable and disable answer with an error that
// says so; help describes them.
package npm

import (
	"context"
	"errors"
	"fmt"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// ErrNotNPM is the error of install, uninstall, enable and disable.
var ErrNotNPM = errors.New("sbot does not install npm plugins: its plugins are Go packages compiled into it (see docs/ARCHITECTURE.md, \"Writing a plugin\")")

// Plugin is the plugins.* plugin.
type Plugin struct{}

// New returns the plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "plugins".
func (p *Plugin) Name() string { return "plugins" }

// Init does nothing.
func (p *Plugin) Init(*server.Server) error { return nil }

// Methods returns plugins.install and uninstall (sources), enable and
// disable (async) and help (sync), for the owner, as ssb-plugins has them.
func (p *Plugin) Methods() []server.Method {
	refuse := func(name string) func(context.Context, *server.Conn, *muxrpc.Request) {
		return func(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
			req.Fail(fmt.Errorf("plugins.%s: %w", name, ErrNotNPM))
		}
	}
	return []server.Method{
		{Name: "plugins.install", Type: muxrpc.Source, Handler: refuse("install")},
		{Name: "plugins.uninstall", Type: muxrpc.Source, Handler: refuse("uninstall")},
		{Name: "plugins.enable", Type: muxrpc.Async, Handler: refuse("enable")},
		{Name: "plugins.disable", Type: muxrpc.Async, Handler: refuse("disable")},
		{Name: "plugins.help", Type: muxrpc.Sync, Handler: func(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
			req.Return(help)
		}},
	}
}

// help is ssb-plugins' help object, with what sbot does instead.
var help = map[string]any{
	"description": "manage npm plugins of a JavaScript ssb-server; sbot's plugins are Go packages compiled in, so these methods answer with an error",
	"commands": map[string]any{
		"install":   map[string]any{"type": "source", "description": "install an npm plugin (not in sbot)", "args": map[string]any{"nameOrPath": map[string]any{"type": "String", "description": "npm package or path"}}},
		"uninstall": map[string]any{"type": "source", "description": "remove an npm plugin (not in sbot)", "args": map[string]any{"name": map[string]any{"type": "String", "description": "the plugin"}}},
		"enable":    map[string]any{"type": "async", "description": "enable an npm plugin (not in sbot)", "args": map[string]any{"name": map[string]any{"type": "String", "description": "the plugin"}}},
		"disable":   map[string]any{"type": "async", "description": "disable an npm plugin (not in sbot)", "args": map[string]any{"name": map[string]any{"type": "String", "description": "the plugin"}}},
	},
}
