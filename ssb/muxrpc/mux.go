package muxrpc

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// A Mux is a table of methods: it answers requests by name, checks the
// call type against its manifest and the caller's permissions, and serves
// its manifest. It is safe for concurrent use.
type Mux struct {
	mu      sync.RWMutex
	methods map[string]muxMethod
}

type muxMethod struct {
	typ CallType
	fn  HandlerFunc
}

// Register adds a method under a dotted name ("blobs.has"). A Sync method
// is called as Async.
func (m *Mux) Register(name string, typ CallType, fn HandlerFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.methods == nil {
		m.methods = make(map[string]muxMethod)
	}
	m.methods[name] = muxMethod{typ, fn}
}

// Manifest returns the methods as ssb-server's manifest: a nested object of
// call types, {"whoami":"async","gossip":{"ping":"duplex"}}.
func (m *Mux) Manifest() map[string]any {
	m.mu.RLock()
	defer m.mu.RUnlock()
	types := make(map[string]CallType, len(m.methods))
	for name, meth := range m.methods {
		types[name] = meth.typ
	}
	return Manifest(types)
}

// Manifest nests dotted method names and their call types as ssb-server's
// manifest: {"gossip.ping": Duplex} is {"gossip":{"ping":"duplex"}}.
func Manifest(methods map[string]CallType) map[string]any {
	out := make(map[string]any)
	for name, typ := range methods {
		node := out
		parts := strings.Split(name, ".")
		for _, p := range parts[:len(parts)-1] {
			child, ok := node[p].(map[string]any)
			if !ok {
				child = make(map[string]any)
				node[p] = child
			}
			node = child
		}
		node[parts[len(parts)-1]] = string(typ)
	}
	return out
}

// Names returns the registered method names, sorted.
func (m *Mux) Names() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	names := make([]string, 0, len(m.methods))
	for n := range m.methods {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Handler returns a Handler for one connection whose caller may call the
// methods allow permits (all when allow is nil). The errors are those
// ssb-server sends: "method:NAME is not in list of allowed methods" for a
// method the caller may not call (whether or not it exists), and
// "no TYPE:NAME" for an unknown method or a wrong call type.
func (m *Mux) Handler(allow func(method string) bool) Handler {
	return HandlerFunc(func(ctx context.Context, req *Request) {
		name := req.Method.String()
		if allow != nil && !allow(name) {
			req.Fail(fmt.Errorf("method:%s is not in list of allowed methods", strings.Join(req.Method, ",")))
			return
		}
		m.mu.RLock()
		meth, ok := m.methods[name]
		m.mu.RUnlock()
		typ := meth.typ
		if typ == Sync {
			typ = Async
		}
		if !ok || typ != req.Type {
			req.Fail(fmt.Errorf("no %s:%s", req.Type, name))
			return
		}
		meth.fn(ctx, req)
	})
}

// AllowList returns a permission function that allows exactly the named
// methods.
func AllowList(names ...string) func(string) bool {
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(name string) bool { return set[name] }
}
