package npm_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/npm"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Every plugins.* method exists with ssb-server's type; the four that
// would install npm packages say why they cannot, help answers.
func TestPluginsMethods(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	cfg := server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:])}
	srv, err := server.Open(cfg, nil, npm.New())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(net.Addr) { close(ready) }) }()
	<-ready
	t.Cleanup(func() { cancel(); <-done; srv.Close() })
	e := ssbtest.DialLocal(t, server.SocketPath(cfg.Path))

	want := map[string]string{"install": "source", "uninstall": "source", "enable": "async", "disable": "async", "help": "sync"}
	if got := srv.Manifest()["plugins"].(map[string]any); len(got) != len(want) {
		t.Errorf("manifest: %v", got)
	} else {
		for k, v := range want {
			if got[k] != v {
				t.Errorf("manifest plugins.%s: %v, want %s", k, got[k], v)
			}
		}
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	for _, m := range []string{"enable", "disable"} {
		if _, err := e.Async(cctx, muxrpc.Method{"plugins", m}, "ssb-foo"); err == nil || !strings.Contains(err.Error(), npm.ErrNotNPM.Error()) {
			t.Errorf("plugins.%s: %v", m, err)
		}
	}
	for _, m := range []string{"install", "uninstall"} {
		st, err := e.Open(muxrpc.Method{"plugins", m}, muxrpc.Source, "ssb-foo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Recv(cctx); err == nil || errors.Is(err, io.EOF) || !strings.Contains(err.Error(), "npm plugins") {
			t.Errorf("plugins.%s: %v", m, err)
		}
	}
	var h struct{ Commands map[string]any }
	if err := e.AsyncJSON(cctx, &h, muxrpc.Method{"plugins", "help"}); err != nil || len(h.Commands) != 4 {
		t.Errorf("plugins.help: %v, %v", h, err)
	}
}
