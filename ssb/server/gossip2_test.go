package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// startSecretStack runs a server with the default plugins (secret-stack's
// core methods among them).
func startSecretStack(t *testing.T, caps [32]byte) *testServer {
	t.Helper()
	cfg := server.Config{Path: t.TempDir(), Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:]), HandshakeTimeout: 2 * time.Second}
	return startServerPlugins(t, cfg, all.Default()...)
}

// answer is one call's outcome, comparable across servers: the canonical
// JSON of the answer (strings as JSON strings), or the error's message.
type answer struct {
	JSON string
	Err  string
}

func callSync(t *testing.T, e *muxrpc.Endpoint, method string, args ...any) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := e.Async(ctx, muxrpc.ParseMethod(method), args...)
	if err != nil {
		var re *muxrpc.Error
		if errors.As(err, &re) {
			return answer{Err: re.Message}
		}
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, "remote error: "); ok {
			msg = after
		}
		return answer{Err: msg}
	}
	if p.Type == muxrpc.String {
		b, _ := json.Marshal(string(p.Body))
		return answer{JSON: string(b)}
	}
	c, err := jsjson.Canonical(p.Body)
	if err != nil {
		t.Fatalf("%s: %v: %s", method, err, p.Body)
	}
	return answer{JSON: string(c)}
}

func newKeyPair(t *testing.T) *keys.KeyPair {
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func shsKey(f refs.Feed) string { return base64.StdEncoding.EncodeToString(f.PublicKey()) }

// Both servers answer the same calls alike: the same JSON, or errors with
// the same message.
func TestGossipAndCoreMatchJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startSecretStack(t, caps)
	j := startJS(t, caps)
	ge, je := g.local(t), j.Client.Endpoint
	other := newKeyPair(t)
	otherAddr := "net:127.0.0.1:9~shs:" + shsKey(other.ID)
	k := shsKey(other.ID)
	same := [][]any{
		{"gossip.get", "x"},
		{"gossip.get", other.ID.String()},
		{"gossip.get", map[string]any{"key": 5}},
		{"gossip.help"},
		{"gossip.enable"},
		{"gossip.disable", "local"}, // enabling local would crash ssb-server: its scheduler calls ip.isPrivate(undefined)
		{"gossip.disable", "seed"},
		{"gossip.disable", 5},
		{"gossip.enable", "seed"},
		{"gossip.disconnect", "x"},
		{"gossip.remove", other.ID.String()},
		{"auth", other.ID.String()},
		{"auth", "x"},
		{"address", "private"},
		{"address", 5},
		{"multiserver.address", "bogus"},
		{"multiserver.parse", otherAddr},
		{"multiserver.parse", otherAddr + ";" + otherAddr},
		{"multiserver.parse", "net:[::1]:5~shs:" + k},
		{"multiserver.parse", "net::0x1F~shs:" + k + ":" + k},
		{"multiserver.parse", "net:h: 12 ~shs:" + strings.ReplaceAll(k, "/", "_")},
		{"multiserver.parse", "net:h:1e400~shs:" + k},
		{"multiserver.parse", "net:h:x~shs:" + k},
		{"multiserver.parse", "net:h:1~shs:abc"},
		{"multiserver.parse", "net:h:1~shs"},
		{"multiserver.parse", "net:h:1~shs:" + k + "~x"},
		{"multiserver.parse", "net:h:1"},
		{"multiserver.parse", "garbage"},
		{"multiserver.parse", ""},
		{"multiserver.parse", "a;b;c;d"},
		{"multiserver.parse", "a;ws://User@Example.COM:80/a/b?x=1#h~shs:" + k},
		{"multiserver.parse", "a;ws://h~shs:" + k + ";unix:/x!~y/socket~noauth"},
		{"multiserver.parse", "unix:/x/socket~noauth"},
		{"multiserver.parse", 5},
		{"multiserver.parse", nil},
		{"multiserver.parse"},
	}
	for _, c := range same {
		method, args := c[0].(string), c[1:]
		want, got := callSync(t, je, method, args...), callSync(t, ge, method, args...)
		if want != got {
			t.Errorf("%s %v:\n JS %+v\n Go %+v", method, args, want, got)
		}
	}

	// Addresses built from fragments at random: multiserver.parse agrees.
	rng := mrand.New(mrand.NewPCG(1, 2))
	frags := []string{"net:", "ws:", "wss:", "unix:", "//", "127.0.0.1", "h", "[::1]", ":", ":8008", ":0x1f", ": 5", ":-1", ":1.5",
		"~", "shs:", k, k[:20], "!", "!~", ";", "noauth", "/p", "?q=1", "#f", "@", "u:p@", "Example.COM", "=", "_", " ", "[", "|", "'"}
	for range 200 {
		var b strings.Builder
		for range 1 + rng.IntN(8) {
			b.WriteString(frags[rng.IntN(len(frags))])
		}
		want, got := callSync(t, je, "multiserver.parse", b.String()), callSync(t, ge, "multiserver.parse", b.String())
		if want != got && !knownWSDifference(b.String()) {
			t.Errorf("multiserver.parse %q:\n JS %+v\n Go %+v", b.String(), want, got)
		}
	}

	// Errors whose text is JavaScript's internals (ssb-ref's parseAddress).
	for _, c := range [][]any{{"gossip.add", "garbage"}, {"gossip.add", map[string]any{"host": "h"}}} {
		want, got := callSync(t, je, c[0].(string), c[1:]...), callSync(t, ge, c[0].(string), c[1:]...)
		if want.Err == "" || got.Err == "" || !strings.HasPrefix(got.Err, "not a valid address:") {
			t.Errorf("%v:\n JS %+v\n Go %+v", c, want, got)
		}
	}

	// Answers that hold the server's own id or address.
	for _, c := range []struct {
		method string
		f      func(id refs.Feed) []any
	}{
		{"auth", func(id refs.Feed) []any { return []any{id.String()} }},
		{"gossip.get", func(id refs.Feed) []any { return []any{id.String()} }},
	} {
		want, got := callSync(t, je, c.method, c.f(j.Keys.ID)...), callSync(t, ge, c.method, c.f(g.ID())...)
		if want != got {
			t.Errorf("%s of itself:\n JS %+v\n Go %+v", c.method, want, got)
		}
	}
	checkAddresses(t, "JS", je, j.Addr, j.Keys.ID, "ws://")
	checkAddresses(t, "Go", ge, g.addr.String(), g.ID(), "")

	// A known peer: the fields both have agree.
	for _, e := range []*muxrpc.Endpoint{je, ge} {
		if a := callSync(t, e, "gossip.add", otherAddr); a.Err != "" {
			t.Fatalf("gossip.add: %s", a.Err)
		}
	}
	jp, gp := knownPeer(t, je, other.ID), knownPeer(t, ge, other.ID)
	for _, f := range []string{"address", "key"} {
		if jp[f] != gp[f] || gp[f] == nil {
			t.Errorf("gossip.get %s: JS %v, Go %v", f, jp[f], gp[f])
		}
	}
	if a, b := callSync(t, je, "gossip.get", map[string]any{"key": other.ID.String()}), callSync(t, ge, "gossip.get", map[string]any{"key": other.ID.String()}); a.Err != "" || b.Err != "" {
		t.Errorf("gossip.get {key}: JS %+v, Go %+v", a, b)
	}
	for _, c := range [][]any{{"gossip.disconnect", other.ID.String()}, {"gossip.remove", other.ID.String()}, {"gossip.get", other.ID.String()}} {
		want, got := callSync(t, je, c[0].(string), c[1:]...), callSync(t, ge, c[0].(string), c[1:]...)
		if want != got || want.JSON != "false" {
			t.Errorf("%v:\n JS %+v\n Go %+v", c, want, got)
		}
	}
	if got := g.KnownPeers(); len(got) != 0 {
		t.Errorf("known peers after gossip.remove: %v", got)
	}

	// The manifest types of these methods are JavaScript's.
	jm, gm := manifestOf(t, je), manifestOf(t, ge)
	for _, name := range []string{"gossip", "multiserver", "address", "auth"} {
		if !reflect.DeepEqual(jm[name], gm[name]) {
			t.Errorf("manifest %s: JS %v, Go %v", name, jm[name], gm[name])
		}
	}
}

// knownWSDifference reports whether an address has a ws://… part with a
// character whose handling by Node's url.parse secretstack leaves out
// (see its parseWS): it answers null there.
func knownWSDifference(addr string) bool {
	for _, a := range strings.Split(addr, ";") {
		if i := strings.Index(strings.ToLower(a), "ws://"); i >= 0 && strings.ContainsAny(a[i:], " \t<>\"'`{}|^[]\\") {
			return true
		}
	}
	return false
}

func knownPeer(t *testing.T, e *muxrpc.Endpoint, f refs.Feed) map[string]any {
	t.Helper()
	var p map[string]any
	if err := e.AsyncJSON(context.Background(), &p, muxrpc.Method{"gossip", "get"}, f.String()); err != nil {
		t.Fatal(err)
	}
	return p
}

func manifestOf(t *testing.T, e *muxrpc.Endpoint) map[string]any {
	t.Helper()
	var m map[string]any
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"manifest"}); err != nil {
		t.Fatal(err)
	}
	return m
}

// checkAddresses checks address and multiserver.address by scope: net~shs
// in every scope, unix~noauth on the device only (and JS's ws beside net).
func checkAddresses(t *testing.T, who string, e *muxrpc.Endpoint, hostPort string, id refs.Feed, ws string) {
	t.Helper()
	netAddr := ssbtest.Address(hostPort, id)
	for _, method := range []string{"address", "multiserver.address"} {
		for _, scope := range []any{nil, "device", "local", "public"} {
			var args []any
			if scope != nil {
				args = []any{scope}
			}
			var a string
			if err := e.AsyncJSON(context.Background(), &a, muxrpc.ParseMethod(method), args...); err != nil {
				t.Fatalf("%s %s(%v): %v", who, method, scope, err)
			}
			parts := strings.Split(a, ";")
			if parts[0] != netAddr {
				t.Errorf("%s %s(%v) = %s, want %s first", who, method, scope, a, netAddr)
			}
			var kinds []string
			for _, p := range parts[1:] {
				kinds = append(kinds, p[:strings.Index(p, ":")])
			}
			device := scope == nil || scope == "device"
			want := []string{}
			if ws != "" {
				want = append(want, "ws")
			}
			if device {
				want = append(want, "unix")
			}
			if strings.Join(kinds, ",") != strings.Join(want, ",") {
				t.Errorf("%s %s(%v) = %s: transports after net %v, want %v", who, method, scope, a, kinds, want)
			}
			if device && !strings.HasSuffix(a, "/socket~noauth") {
				t.Errorf("%s %s(%v) = %s: no local socket", who, method, scope, a)
			}
		}
	}
}

// A stranger may call none of these methods, on either server.
func TestGossipAndCorePermissionsMatchJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startSecretStack(t, caps)
	j := startJS(t, caps)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stranger := newKeyPair(t)
	jc, err := client.Dial(ctx, j.Addr, caps, stranger, j.Keys.Public, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer jc.Close()
	gc, err := client.Dial(ctx, g.addr.String(), caps, stranger, g.Keys().Public, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	for _, m := range []string{"gossip.get", "gossip.add", "gossip.remove", "gossip.disconnect", "gossip.reconnect",
		"gossip.enable", "gossip.disable", "gossip.help", "address", "auth", "multiserver.parse", "multiserver.address"} {
		want, got := callSync(t, jc.Endpoint, m, "x"), callSync(t, gc.Endpoint, m, "x")
		if want != got || want.Err == "" {
			t.Errorf("stranger %s:\n JS %+v\n Go %+v", m, want, got)
		}
	}
	want, got := openErr(t, jc.Endpoint), openErr(t, gc.Endpoint)
	if want != got || want == "" {
		t.Errorf("stranger gossip.changes: JS %q, Go %q", want, got)
	}
}

func openErr(t *testing.T, e *muxrpc.Endpoint) string {
	st, err := e.Open(muxrpc.Method{"gossip", "changes"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = st.Recv(ctx)
	var re *muxrpc.Error
	if errors.As(err, &re) {
		return re.Message
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// changes streams a server's gossip.changes events into a channel.
func changes(t *testing.T, e *muxrpc.Endpoint) <-chan map[string]any {
	st, err := e.Open(muxrpc.Method{"gossip", "changes"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := make(chan map[string]any, 64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var ev map[string]any
			if st.RecvJSON(ctx, &ev) != nil {
				return
			}
			c <- ev
		}
	}()
	t.Cleanup(func() { st.Close(); cancel(); <-done })
	return c
}

// nextEvent returns the next event of a type in types, skipping others.
func nextEvent(t *testing.T, who string, c <-chan map[string]any, typ string) map[string]any {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case ev := <-c:
			if ev["type"] == typ {
				return ev
			}
		case <-timeout:
			t.Fatalf("%s: no %s event", who, typ)
		}
	}
}

// gossip.changes tells of a peer added, connected and disconnected
// (gossip.disconnect) alike on both servers, each dialing the other.
func TestGossipChangesMatchJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startSecretStack(t, caps)
	j := startJS(t, caps)
	ge, je := g.local(t), j.Client.Endpoint
	gc, jc := changes(t, ge), changes(t, je)
	// Let both streams be open before anything happens: a call answered
	// after the stream's request was sent.
	callSync(t, ge, "gossip.peers")
	callSync(t, je, "gossip.peers")

	type side struct {
		name   string
		e      *muxrpc.Endpoint
		c      <-chan map[string]any
		peer   refs.Feed
		target string
	}
	sides := []side{
		{"JS", je, jc, g.ID(), address(g.addr, g.ID())},
		{"Go", ge, gc, j.Keys.ID, j.Address()},
	}
	events := map[string][]map[string]any{}
	for _, s := range sides {
		if a := callSync(t, s.e, "gossip.connect", s.target); a.Err != "" {
			t.Fatalf("%s gossip.connect: %s", s.name, a.Err)
		}
		disc := nextEvent(t, s.name, s.c, "discover")
		conn := nextEvent(t, s.name, s.c, "connect")
		if a := callSync(t, s.e, "gossip.disconnect", s.peer.String()); a.Err != "" || a.JSON != "false" {
			t.Fatalf("%s gossip.disconnect = %+v", s.name, a)
		}
		dis := nextEvent(t, s.name, s.c, "disconnect")
		events[s.name] = []map[string]any{disc, conn, dis}
		callSync(t, s.e, "gossip.disable") // no redial while the other side runs
	}
	for i, typ := range []string{"discover", "connect", "disconnect"} {
		jev, gev := events["JS"][i], events["Go"][i]
		if jev["source"] != gev["source"] {
			t.Errorf("%s source: JS %v, Go %v", typ, jev["source"], gev["source"])
		}
		jp, gp := jev["peer"].(map[string]any), gev["peer"].(map[string]any)
		for _, f := range []string{"state", "client"} {
			if jp[f] != gp[f] {
				t.Errorf("%s peer.%s: JS %v, Go %v", typ, f, jp[f], gp[f])
			}
		}
		if typ != "discover" && (jp["stateChange"] == nil) != (gp["stateChange"] == nil) {
			t.Errorf("%s peer.stateChange: JS %v, Go %v", typ, jp["stateChange"], gp["stateChange"])
		}
		if gp["key"] != j.Keys.ID.String() || jp["key"] != g.ID().String() {
			t.Errorf("%s peer.key: JS %v, Go %v", typ, jp["key"], gp["key"])
		}
	}
}

// gossip.disable pauses the scheduler (no dial for four ticks) and records
// it in the config; gossip.enable dials again; a server opened on a config
// with global gossip off does not dial.
func TestGossipDisableStopsScheduler(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startSecretStack(t, caps)
	e := g.local(t)
	if a := callSync(t, e, "gossip.disable"); a.JSON != `"disabled gossip type global"` {
		t.Fatalf("gossip.disable = %+v", a)
	}
	b, err := os.ReadFile(filepath.Join(g.cfg.Path, "config"))
	if err != nil || !strings.Contains(string(b), `"global": false`) {
		t.Fatalf("config after disable: %s, %v", b, err)
	}
	ln, accepted := listenFake(t)
	if a := callSync(t, e, "gossip.add", "net:"+ln.Addr().String()+"~shs:"+shsKey(newKeyPair(t).ID)); a.Err != "" {
		t.Fatal(a.Err)
	}
	select {
	case <-accepted:
		t.Fatal("the scheduler dialed while gossip is disabled")
	case <-time.After(2 * time.Second): // four scheduler ticks
	}
	if a := callSync(t, e, "gossip.enable"); a.JSON != `"enabled gossip type global"` {
		t.Fatalf("gossip.enable = %+v", a)
	}
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the scheduler did not dial after gossip.enable")
	}
}

func TestGossipDisabledInConfig(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	dir := t.TempDir()
	ln, accepted := listenFake(t)
	peers := `[{"address":"net:` + ln.Addr().String() + `~shs:` + shsKey(newKeyPair(t).ID) + `","key":"x","source":"manual"}]`
	os.WriteFile(filepath.Join(dir, "gossip.json"), []byte(peers), 0o600)
	os.WriteFile(filepath.Join(dir, "config"), []byte(`{"gossip":{"global":false}}`), 0o600)
	cfg := server.Config{Path: dir, Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:])}
	g := startServerPlugins(t, cfg, all.Default()...)
	if g.SchedulerEnabled() {
		t.Fatal("scheduler enabled with gossip.global false in the config")
	}
	select {
	case <-accepted:
		t.Fatal("the scheduler dialed while gossip is disabled")
	case <-time.After(2 * time.Second):
	}
}

// listenFake accepts TCP connections and reports each (then closes it).
func listenFake(t *testing.T) (net.Listener, <-chan struct{}) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := make(chan struct{}, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln, c
}

// gossip.reconnect ends the connections to peers, which the scheduler
// dials again; the owner's connection stays.
func TestGossipReconnect(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	a, b := startSecretStack(t, caps), startSecretStack(t, caps)
	ea := a.local(t)
	ca := changes(t, ea)
	callSync(t, ea, "gossip.peers")
	if r := callSync(t, ea, "gossip.connect", address(b.addr, b.ID())); r.Err != "" {
		t.Fatal(r.Err)
	}
	nextEvent(t, "Go", ca, "connect")
	r := callSync(t, ea, "gossip.reconnect")
	if _, err := strconv.ParseInt(r.JSON, 10, 64); err != nil {
		t.Fatalf("gossip.reconnect = %+v", r)
	}
	nextEvent(t, "Go", ca, "disconnect")
	nextEvent(t, "Go", ca, "connect")
	if r := callSync(t, ea, "whoami"); r.Err != "" {
		t.Fatalf("owner connection after reconnect: %s", r.Err)
	}
}
