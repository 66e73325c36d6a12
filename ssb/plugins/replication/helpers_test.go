package replication_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/servertest"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/plugins/replication"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goServer is our server with all.Default(), its owner's connection (the
// local socket) and its address, until the test ends.
type goServer struct {
	*server.Server
	local *client.Client
	addr  net.Addr
	caps  [32]byte
	path  string
}

func startGo(t *testing.T, caps [32]byte, path string) *goServer {
	t.Helper()
	if path == "" {
		path = t.TempDir()
	}
	r := servertest.Start(t, server.Config{Path: path, Caps: servertest.Caps(caps)}, all.Default()...)
	g := &goServer{Server: r.Server, addr: r.Addr, caps: caps, path: path}
	g.local = &client.Client{Endpoint: r.Owner(t)}
	return g
}

func (g *goServer) port() int { return g.addr.(*net.TCPAddr).Port }

// Replicator is the replication plugin's replicator.
func (g *goServer) Replicator() *replicate.Replicator {
	for _, pl := range g.Plugins() {
		if p, ok := pl.(*replication.Plugin); ok {
			return p.Replicator()
		}
	}
	panic("no replication plugin")
}

func newKeys(t *testing.T) *keys.KeyPair {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func newCaps() [32]byte {
	var caps [32]byte
	rand.Read(caps[:])
	return caps
}

func startJS(t *testing.T, ctx context.Context, caps [32]byte) *ssbtest.JSServer {
	t.Helper()
	js, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Close)
	return js
}

func ssbKeysObject(kp *keys.KeyPair) map[string]string {
	return map[string]string{
		"curve":   "ed25519",
		"public":  base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519",
		"private": base64.StdEncoding.EncodeToString(kp.Private) + ".ed25519",
		"id":      kp.ID.String(),
	}
}

// callJS runs interop/ssb-call.js (the real ssb-client 4.9.0) against a
// server at port with key server, as kp (a new stranger when nil), and
// returns the result (or "error: …") of each call, as JSON.
func callJS(t *testing.T, port int, server *keys.KeyPair, caps [32]byte, kp *keys.KeyPair, calls []map[string]any) []string {
	t.Helper()
	cfg := map[string]any{
		"host": "127.0.0.1", "port": port,
		"key": server.ID.String(), "caps": base64.StdEncoding.EncodeToString(caps[:]), "calls": calls,
	}
	if kp != nil {
		cfg["keys"] = ssbKeysObject(kp)
	}
	b, _ := json.Marshal(cfg)
	js := oracle.Start(t, "ssb-call.js", string(b))
	end := js.WaitFor(func(m oracle.Msg) bool { return len(m.Fields["done"]) > 0 || m.Str("connectError") != "" })
	if e := end.Str("connectError"); e != "" {
		t.Fatalf("ssb-client could not connect: %s", e)
	}
	var out []string
	for _, m := range js.Events() {
		if m.Str("method") == "" {
			continue
		}
		if e := m.Str("error"); e != "" {
			out = append(out, "error: "+e)
		} else {
			out = append(out, string(m.Fields["result"]))
		}
	}
	if len(out) != len(calls) {
		t.Fatalf("%d results for %d calls", len(out), len(calls))
	}
	return out
}

// call is one call for ssb-call.js.
func call(method, typ string, args ...any) map[string]any {
	if args == nil {
		args = []any{}
	}
	return map[string]any{"method": method, "type": typ, "args": args}
}

// canonical is JSON re-encoded with sorted keys, and a top-level array
// sorted (upto's order is the order of requests in JavaScript), with the
// names given replaced ("@…" → "SELF").
func canonical(t *testing.T, s string, names map[string]string) string {
	t.Helper()
	for from, to := range names {
		s = strings.ReplaceAll(s, from, to)
	}
	if strings.HasPrefix(s, "error: ") {
		return s
	}
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatalf("%v: %s", err, s)
	}
	if a, ok := v.([]any); ok {
		items := make([]string, len(a))
		for i, x := range a {
			b, _ := json.Marshal(x)
			items[i] = string(b)
		}
		slices.Sort(items)
		return "[" + strings.Join(items, ",") + "]"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// timeout is the bound of each interop test.
const timeout = 120 * time.Second

func mustFeed(t *testing.T, id string) refs.Feed {
	t.Helper()
	f, err := refs.ParseFeed(id)
	if err != nil {
		t.Fatal(err)
	}
	return f
}
