package invite_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/plugins/invite"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// plugins is all.Default() with the invite plugin, added unless the
// default list has it already.
func plugins() []server.Plugin {
	ps := all.Default()
	for _, p := range ps {
		if p.Name() == "invite" {
			return ps
		}
	}
	return append(ps, invite.New())
}

// node is one of our servers under test.
type node struct {
	srv   *server.Server
	owner *muxrpc.Endpoint
	addr  string // 127.0.0.1:PORT
	caps  [32]byte
	path  string
	stop  func()
}

// startNode runs our server in dir on loopback until the test ends (or
// stop is called).
func startNode(t *testing.T, caps [32]byte, dir string) *node {
	t.Helper()
	return startNodeOn(t, caps, dir, 0)
}

// startNodeOn is startNode on a given port (0: any).
func startNodeOn(t *testing.T, caps [32]byte, dir string, port int) *node {
	t.Helper()
	cfg := server.Config{Path: dir, Host: "127.0.0.1", Port: port, Caps: base64.StdEncoding.EncodeToString(caps[:])}
	srv, err := server.Open(cfg, nil, plugins()...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	n := &node{srv: srv, addr: addr.String(), caps: caps, path: dir}
	conn, err := net.Dial("unix", server.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	n.owner = muxrpc.NewEndpoint(conn, nil)
	served := make(chan struct{})
	go func() { n.owner.Serve(context.Background()); close(served) }()
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		n.owner.Close()
		<-served
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(n.stop)
	return n
}

func newCaps() [32]byte {
	var caps [32]byte
	rand.Read(caps[:])
	return caps
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// call makes an async call and decodes the answer.
func call(t *testing.T, e *muxrpc.Endpoint, out any, method string, args ...any) {
	t.Helper()
	if err := e.AsyncJSON(ctxFor(t, 30*time.Second), out, muxrpc.ParseMethod(method), args...); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
}

// callErr makes an async call that must fail, and returns its error.
func callErr(t *testing.T, e *muxrpc.Endpoint, method string, args ...any) string {
	t.Helper()
	_, err := e.Async(ctxFor(t, 30*time.Second), muxrpc.ParseMethod(method), args...)
	if err == nil {
		t.Fatalf("%s %v: no error", method, args)
	}
	return err.Error()
}

// msg is a message as the methods answer it.
type msg struct {
	Key   string `json:"key"`
	Value struct {
		Author   string         `json:"author"`
		Sequence int            `json:"sequence"`
		Content  map[string]any `json:"content"`
	} `json:"value"`
}

// waitFor polls check until it returns nil or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, check func() error) {
	t.Helper()
	if err := oracle.Poll(d, check); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// latest returns the sequence a server holds of feed.
func latest(t *testing.T, e *muxrpc.Endpoint, feed string) int {
	var seq int
	if err := e.AsyncJSON(ctxFor(t, 10*time.Second), &seq, muxrpc.Method{"latestSequence"}, feed); err != nil {
		return 0
	}
	return seq
}

func hasSeq(t *testing.T, e *muxrpc.Endpoint, feed string, seq int) func() error {
	return func() error {
		if got := latest(t, e, feed); got < seq {
			return errors.New(feed + " not replicated yet")
		}
		return nil
	}
}

func whoami(t *testing.T, e *muxrpc.Endpoint) string {
	var w struct{ ID string }
	call(t, e, &w, "whoami")
	return w.ID
}

// guest dials a pub with the key of an invite code.
func guest(t *testing.T, code string, caps [32]byte) *client.Client {
	t.Helper()
	c, err := invite.ParseCode(code)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := keys.FromSeed(c.Seed[:])
	if err != nil {
		t.Fatal(err)
	}
	g, err := client.Dial(ctxFor(t, 10*time.Second), c.HostPort(), caps, kp, c.Key.PublicKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// A Go joiner accepts a Go pub's invite: the pub follows it, it follows
// the pub and announces it, knows it as a peer from an invite, and the two
// replicate both ways.
func TestAcceptGoPub(t *testing.T) {
	caps := newCaps()
	pub := startNode(t, caps, t.TempDir())
	joiner := startNode(t, caps, t.TempDir())
	pubID, joinerID := pub.srv.ID().String(), joiner.srv.ID().String()

	var code string
	call(t, pub.owner, &code, "invite.create", 10)
	if !strings.HasPrefix(code, pub.addr+":"+pubID+"~") {
		t.Fatalf("code %q is not %s:@KEY~SEED", code, pub.addr)
	}
	var got []msg
	call(t, joiner.owner, &got, "invite.accept", code)
	if len(got) != 2 {
		t.Fatalf("accept answered %d messages, want 2", len(got))
	}
	if c := got[0].Value.Content; c["type"] != "contact" || c["contact"] != pubID || c["following"] != true || c["autofollow"] != true {
		t.Errorf("follow of the pub: %v", c)
	}
	addr, _ := got[1].Value.Content["address"].(map[string]any)
	host, port, _ := net.SplitHostPort(pub.addr)
	if got[1].Value.Content["type"] != "pub" || addr["host"] != host || addr["key"] != pubID || jsonString(addr["port"]) != port {
		t.Errorf("pub message: %v", got[1].Value.Content)
	}
	var k map[string]any
	call(t, joiner.owner, &k, "gossip.get", pubID)
	if k["source"] != "invite" || k["address"] != ssbtest.Address(pub.addr, pub.srv.ID()) {
		t.Errorf("the pub as a known peer: %v", k)
	}
	// The pub followed the joiner.
	var follow msg
	call(t, pub.owner, &follow, "getLatest", pubID)
	if c := follow.Value.Content; c["type"] != "contact" || c["contact"] != joinerID || c["following"] != true || c["pub"] != true {
		t.Errorf("the pub's follow: %v", c)
	}
	// Replication both ways, through the scheduler's connection.
	var post msg
	call(t, joiner.owner, &post, "publish", map[string]any{"type": "post", "text": "hello pub"})
	waitFor(t, 30*time.Second, "the pub gets the joiner's post", hasSeq(t, pub.owner, joinerID, post.Value.Sequence))
	call(t, pub.owner, &post, "publish", map[string]any{"type": "post", "text": "welcome"})
	waitFor(t, 30*time.Second, "the joiner gets the pub's post", hasSeq(t, joiner.owner, pubID, post.Value.Sequence))
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// A connection with an invite's key may call invite.use and nothing else;
// once the invite is used up its key is a stranger's, and invite.use is
// refused.
func TestGuestConfined(t *testing.T) {
	caps := newCaps()
	pub := startNode(t, caps, t.TempDir())
	var code string
	call(t, pub.owner, &code, "invite.create", map[string]any{"uses": 1, "note": "from a test"})
	g := guest(t, code, caps)
	notAllowed := func(method string, typ muxrpc.CallType, args ...any) {
		t.Helper()
		var err error
		if typ == muxrpc.Async {
			_, err = g.Async(ctxFor(t, 10*time.Second), muxrpc.ParseMethod(method), args...)
		} else {
			var st *muxrpc.Stream
			if st, err = g.Open(muxrpc.ParseMethod(method), typ, args...); err == nil {
				_, err = st.Recv(ctxFor(t, 10*time.Second))
			}
		}
		want := "method:" + strings.ReplaceAll(method, ".", ",") + " is not in list of allowed methods"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("guest calling %s: %v, want %q", method, err, want)
		}
	}
	notAllowed("manifest", muxrpc.Async)
	notAllowed("whoami", muxrpc.Async)
	notAllowed("invite.create", muxrpc.Async, 5)
	notAllowed("invite.accept", muxrpc.Async, code)
	notAllowed("publish", muxrpc.Async, map[string]any{"type": "post"})
	notAllowed("blobs.has", muxrpc.Async, "&"+strings.Repeat("A", 43)+"=.sha256")
	notAllowed("createHistoryStream", muxrpc.Source, map[string]any{"id": pub.srv.ID().String()})
	notAllowed("gossip.ping", muxrpc.Duplex, map[string]any{"timeout": 1000})
	notAllowed("no.such.method", muxrpc.Async)

	for _, bad := range []any{map[string]any{}, map[string]any{"feed": ""}, map[string]any{"feed": "@nope"}, "@x", nil} {
		if _, err := g.Async(ctxFor(t, 10*time.Second), muxrpc.Method{"invite", "use"}, bad); err == nil {
			t.Errorf("invite.use(%v): no error", bad)
		}
	}
	me, _ := keys.Generate(nil)
	var m msg
	if err := g.AsyncJSON(ctxFor(t, 10*time.Second), &m, muxrpc.Method{"invite", "use"}, map[string]any{"feed": me.ID.String()}); err != nil {
		t.Fatal(err)
	}
	if c := m.Value.Content; c["contact"] != me.ID.String() || c["pub"] != true || c["note"] != "from a test" || m.Value.Author != pub.srv.ID().String() {
		t.Errorf("invite.use answered %v", m)
	}
	// Used up: the same connection may not use it again...
	other, _ := keys.Generate(nil)
	if _, err := g.Async(ctxFor(t, 10*time.Second), muxrpc.Method{"invite", "use"}, map[string]any{"feed": other.ID.String()}); err == nil || !strings.Contains(err.Error(), "invite has expired") {
		t.Errorf("a used-up invite used again on its connection: %v", err)
	}
	// ...and a new connection with its key is a stranger's.
	g2 := guest(t, code, caps)
	if _, err := g2.Async(ctxFor(t, 10*time.Second), muxrpc.Method{"invite", "use"}, map[string]any{"feed": other.ID.String()}); err == nil || !strings.Contains(err.Error(), "not in list of allowed methods") {
		t.Errorf("replayed invite: %v", err)
	}
	var manifest map[string]any
	if err := g2.AsyncJSON(ctxFor(t, 10*time.Second), &manifest, muxrpc.Method{"manifest"}); err != nil {
		t.Errorf("a stranger may call manifest: %v", err)
	}
	// The pub followed exactly one feed.
	var seq int
	call(t, pub.owner, &seq, "latestSequence", pub.srv.ID().String())
	if seq != 1 {
		t.Errorf("the pub published %d messages, want 1", seq)
	}
}

// An invite of n uses takes n joiners and refuses the next; invites and
// their uses survive a restart of the pub.
func TestUsesPersisted(t *testing.T) {
	caps := newCaps()
	dir := t.TempDir()
	pub := startNode(t, caps, dir)
	var code string
	call(t, pub.owner, &code, "invite.create", map[string]any{"uses": "2", "note": map[string]any{"who": "friends"}})
	a := startNode(t, caps, t.TempDir())
	var out []msg
	call(t, a.owner, &out, "invite.accept", code)
	pub.stop()
	_, port, _ := net.SplitHostPort(pub.addr)

	var list map[string]struct {
		Total int             `json:"total"`
		Used  int             `json:"used"`
		Note  json.RawMessage `json:"note"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "invites.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 {
		t.Fatalf("invites.json: %s (%v)", b, err)
	}
	for _, r := range list {
		var note bytes.Buffer
		json.Compact(&note, r.Note)
		if r.Total != 2 || r.Used != 1 || note.String() != `{"who":"friends"}` {
			t.Errorf("invites.json: %s", b)
		}
	}

	pubPort, _ := strconv.Atoi(port)
	pub = startNodeOn(t, caps, dir, pubPort)
	bNode := startNode(t, caps, t.TempDir())
	call(t, bNode.owner, &out, "invite.accept", code)
	var follow msg
	call(t, pub.owner, &follow, "getLatest", pub.srv.ID().String())
	if c := follow.Value.Content; c["contact"] != bNode.srv.ID().String() || jsonString(c["note"]) != `{"who":"friends"}` {
		t.Errorf("second use: %v", c)
	}
	c := startNode(t, caps, t.TempDir())
	if e := callErr(t, c.owner, "invite.accept", code); !strings.Contains(e, "invite not accepted") {
		t.Errorf("third use of a two-use invite: %s", e)
	}
	if seq := latest(t, c.owner, c.srv.ID().String()); seq != 0 {
		t.Errorf("a refused invite published %d messages", seq)
	}
}

// invite.create's forms and refusals.
func TestCreate(t *testing.T) {
	caps := newCaps()
	pub := startNode(t, caps, t.TempDir())
	id := pub.srv.ID()
	key := base64.StdEncoding.EncodeToString(id.PublicKey())
	_, port, _ := net.SplitHostPort(pub.addr)
	var code string
	call(t, pub.owner, &code, "invite.create", map[string]any{"external": "pub.example.com"})
	if !strings.HasPrefix(code, "pub.example.com:"+port+":"+id.String()+"~") {
		t.Errorf("external: %q", code)
	}
	call(t, pub.owner, &code, "invite.create", map[string]any{"modern": true})
	if !strings.HasPrefix(code, "net:127.0.0.1:"+port+"~shs:"+key+":") {
		t.Errorf("modern: %q", code)
	}
	c, err := invite.ParseCode(code)
	if err != nil || c.Key != id || c.Port == 0 {
		t.Errorf("modern code %q parses to %+v, %v", code, c, err)
	}
	call(t, pub.owner, &code, "invite.create")
	if _, err := invite.ParseCode(code); err != nil {
		t.Errorf("create(): %q: %v", code, err)
	}
	for _, bad := range []any{-1, 1.5, "ten", true, map[string]any{"uses": "x"}, map[string]any{"external": "a b"},
		map[string]any{"note": strings.Repeat("n", 5000)}, map[string]any{"uses": 2e6}} {
		callErr(t, pub.owner, "invite.create", bad)
	}
	// Not for strangers.
	stranger, _ := keys.Generate(nil)
	s, err := client.Dial(ctxFor(t, 10*time.Second), pub.addr, caps, stranger, id.PublicKey(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, m := range []string{"invite.create", "invite.use", "invite.accept"} {
		if _, err := s.Async(ctxFor(t, 10*time.Second), muxrpc.ParseMethod(m), map[string]any{}); err == nil || !strings.Contains(err.Error(), "not in list of allowed methods") {
			t.Errorf("stranger calling %s: %v", m, err)
		}
	}
}

// invite.accept refuses malformed codes and codes of unknown invites,
// and publishes nothing.
func TestAcceptRefused(t *testing.T) {
	caps := newCaps()
	pub := startNode(t, caps, t.TempDir())
	joiner := startNode(t, caps, t.TempDir())
	var code string
	call(t, pub.owner, &code, "invite.create", 1)
	c, _ := invite.ParseCode(code)
	unknown := c
	rand.Read(unknown.Seed[:])
	for _, bad := range []any{"", "hello", strings.Replace(code, "~", "", 1), code + "x", strings.Replace(code, ":@", ":@x", 1),
		map[string]any{"invite": 5}, 42, unknown.Legacy(), unknown.Multiserver()} {
		callErr(t, joiner.owner, "invite.accept", bad)
	}
	if seq := latest(t, joiner.owner, joiner.srv.ID().String()); seq != 0 {
		t.Errorf("refused invites published %d messages", seq)
	}
	// The good one still works, in its multiserver form, with quotes.
	var out []msg
	call(t, joiner.owner, &out, "invite.accept", map[string]any{"invite": `"` + c.Multiserver() + `"`})
	if len(out) != 2 {
		t.Errorf("accept: %v", out)
	}
}
