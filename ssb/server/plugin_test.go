package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// echo is a plugin for the tests: echo.anyone (anyone may call it),
// echo.owner (the owner only), a config section "echo", and connection
// hooks that report what they were told.
type echo struct {
	section   json.RawMessage
	srv       *server.Server
	connected chan server.Conn
	gone      chan server.Conn
}

func newEcho() *echo {
	return &echo{connected: make(chan server.Conn, 8), gone: make(chan server.Conn, 8)}
}

func (p *echo) Name() string          { return "echo" }
func (p *echo) ConfigSection() string { return "echo" }

func (p *echo) ReadConfig(section json.RawMessage) error {
	p.section = section
	var c struct{ Fail bool }
	if len(section) > 0 {
		if err := json.Unmarshal(section, &c); err != nil {
			return err
		}
	}
	if c.Fail {
		return errors.New("echo: told to fail")
	}
	return nil
}

func (p *echo) Init(s *server.Server) error {
	p.srv = s
	return nil
}

func (p *echo) Methods() []server.Method {
	// Each answers with what the server told the handler of its caller.
	who := func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
		req.Return(map[string]any{"id": c.ID.String(), "kind": c.Kind.String(), "local": c.Local, "rpc": c.RPC != nil})
	}
	return []server.Method{
		{Name: "echo.anyone", Type: muxrpc.Async, Perm: server.Anyone, Handler: who},
		{Name: "echo.owner", Type: muxrpc.Sync, Handler: who},
	}
}

func (p *echo) Connected(ctx context.Context, c *server.Conn) { p.connected <- *c }
func (p *echo) Disconnected(c *server.Conn)                   { p.gone <- *c }

// other declares a method that echo declares too.
type other struct{}

func (other) Name() string                { return "other" }
func (other) Init(s *server.Server) error { return nil }
func (other) Methods() []server.Method {
	return []server.Method{{Name: "echo.anyone", Type: muxrpc.Async, Handler: func(context.Context, *server.Conn, *muxrpc.Request) {}}}
}

func randomCaps() string {
	var caps [32]byte
	rand.Read(caps[:])
	return base64.StdEncoding.EncodeToString(caps[:])
}

// The manifest and the permissions are those the plugins declare; the
// handlers and hooks are told who is connected; a plugin reads its config
// section.
func TestPluginBoundary(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "config"), `{"port": 8008, "echo": {"greeting": "hi"}}`)
	p := newEcho()
	s := startServerPlugins(t, server.Config{Path: dir, Host: "127.0.0.1", Port: 0, Caps: randomCaps(), HandshakeTimeout: 5 * time.Second}, p)
	if string(p.section) != `{"greeting": "hi"}` {
		t.Errorf("config section %q, want the echo object", p.section)
	}
	want := map[string]any{"manifest": "sync", "echo": map[string]any{"anyone": "async", "owner": "sync"}}
	if got := s.Manifest(); !reflect.DeepEqual(got, want) {
		t.Errorf("manifest %v, want %v", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The owner, on the local socket.
	local := s.local(t)
	var got map[string]any
	if err := local.AsyncJSON(ctx, &got, muxrpc.Method{"echo", "owner"}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"id": s.ID().String(), "kind": "owner", "local": true, "rpc": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("echo.owner on the local socket: %v, want %v", got, want)
	}
	if c := <-p.connected; c.ID != s.ID() || c.Kind != server.Owner || !c.Local || c.Dialed || c.RPC == nil {
		t.Errorf("connected: %+v, want the owner on the local socket", c)
	}
	var manifest map[string]any
	if err := local.AsyncJSON(ctx, &manifest, muxrpc.Method{"manifest"}); err != nil || !reflect.DeepEqual(manifest, want) {
		t.Errorf("manifest over RPC: %v, %v; want %v", manifest, err, want)
	}

	// A stranger may call what the plugin declares for anyone, nothing
	// else.
	_, key, _ := ed25519.GenerateKey(nil)
	stranger := strangerRPC(t, s.handshake(t, key))
	strangerID := <-p.connected
	if strangerID.Kind != server.Stranger || strangerID.Local || strangerID.Dialed || strangerID.ID.PublicKey().Equal(s.Keys().Public) {
		t.Errorf("connected: %+v, want a stranger", strangerID)
	}
	if err := stranger.AsyncJSON(ctx, &got, muxrpc.Method{"echo", "anyone"}); err != nil {
		t.Fatal(err)
	}
	if want := map[string]any{"id": strangerID.ID.String(), "kind": "stranger", "local": false, "rpc": true}; !reflect.DeepEqual(got, want) {
		t.Errorf("echo.anyone from a stranger: %v, want %v", got, want)
	}
	for _, m := range []muxrpc.Method{{"echo", "owner"}, {"nothing"}} {
		_, err := stranger.Async(ctx, m)
		if err == nil || !strings.Contains(err.Error(), "is not in list of allowed methods") {
			t.Errorf("%s from a stranger: %v, want not allowed", m, err)
		}
	}
	if _, err := local.Async(ctx, muxrpc.Method{"nothing"}); err == nil || !strings.Contains(err.Error(), "no async:nothing") {
		t.Errorf("an unknown method from the owner: %v, want no async:nothing", err)
	}
	stranger.Close()
	if c := <-p.gone; c.ID != strangerID.ID {
		t.Errorf("disconnected: %+v, want the stranger %s", c, strangerID.ID)
	}
}

// Open refuses a method declared twice and a config section its plugin
// refuses.
func TestPluginErrors(t *testing.T) {
	cfg := server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: randomCaps()}
	if _, err := server.Open(cfg, nil, newEcho(), other{}); err == nil || !strings.Contains(err.Error(), "echo.anyone is registered twice") {
		t.Errorf("a method declared twice: %v", err)
	}
	if err := os.WriteFile(filepath.Join(cfg.Path, "config"), []byte(`{"echo": {"fail": true}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.Open(cfg, nil, newEcho()); err == nil || !strings.Contains(err.Error(), `config section "echo": echo: told to fail`) {
		t.Errorf("a refused config section: %v", err)
	}
}
