package private_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/plugins/private"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// node is a server with the db and private plugins.
type node struct {
	srv  *server.Server
	cfg  server.Config
	e    *muxrpc.Endpoint
	stop func()
}

func start(t *testing.T, dir string) *node {
	t.Helper()
	var caps [32]byte
	rand.Read(caps[:])
	cfg := server.Config{Path: dir, Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:]), HandshakeTimeout: 2 * time.Second}
	srv, err := server.Open(cfg, nil, db.New(), private.New())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(net.Addr) { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	n := &node{srv: srv, cfg: cfg}
	stopped := false
	n.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(n.stop)
	n.e = ssbtest.DialLocal(t, server.SocketPath(dir))
	return n
}

type kvt struct {
	Key   string
	Value struct {
		Sequence   int64
		Content    json.RawMessage
		Meta       json.RawMessage
		Cyphertext string
		Private    bool
		Unbox      string
	}
}

func call(t *testing.T, e *muxrpc.Endpoint, out any, method string, args ...any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return e.AsyncJSON(ctx, out, muxrpc.ParseMethod(method), args...)
}

func source(t *testing.T, e *muxrpc.Endpoint, method string, opts any) []kvt {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.Open(muxrpc.ParseMethod(method), muxrpc.Source, opts)
	if err != nil {
		t.Fatal(err)
	}
	var out []kvt
	for {
		var m kvt
		if err := st.RecvJSON(ctx, &m); err == io.EOF {
			return out
		} else if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		out = append(out, m)
	}
}

const secretText = "meet me at the old oak, 7pm: a plaintext that must never be on disk"

// A private post to ourselves and another feed: the log holds a box; the
// owner reads the plaintext with private: true, in ssb-db's shape, from
// get, createLogStream, createUserStream and createFeedStream; without it,
// the box. The data directory never holds the plaintext, and after a
// restart the index still knows the message.
func TestPublishAndRead(t *testing.T) {
	dir := t.TempDir()
	n := start(t, dir)
	other, _ := keys.Generate(nil)
	me := n.srv.ID().String()
	content := map[string]any{"type": "post", "text": secretText, "recps": []any{me, map[string]any{"link": other.ID.String()}}}
	var m kvt
	if err := call(t, n.e, &m, "publish", content); err != nil {
		t.Fatalf("publish with recps: %v", err)
	}
	var boxed string
	if json.Unmarshal(m.Value.Content, &boxed) != nil || !strings.HasSuffix(boxed, ".box") {
		t.Fatalf("published content %s, want a box", m.Value.Content)
	}
	// The other recipient opens it with its own key.
	otherKey, _ := privatebox.NewKey(other.Private)
	if plain, ok, err := otherKey.Unbox(boxed); !ok || err != nil || !bytes.Contains(plain, []byte(secretText)) {
		t.Fatalf("the other recipient could not open it: %v %v", ok, err)
	}

	check := func(what string, got kvt) {
		t.Helper()
		var c struct{ Type, Text string }
		json.Unmarshal(got.Value.Content, &c)
		if c.Text != secretText || !got.Value.Private || got.Value.Cyphertext != boxed || got.Value.Unbox == "" {
			t.Errorf("%s with private: %+v", what, got.Value)
		}
		var meta struct {
			Original struct{ Content string }
			Private  bool
			Unbox    string
		}
		json.Unmarshal(got.Value.Meta, &meta)
		if meta.Original.Content != boxed || !meta.Private || meta.Unbox != got.Value.Unbox {
			t.Errorf("%s: meta %s", what, got.Value.Meta)
		}
	}
	var got kvt
	if err := call(t, n.e, &got.Value, "get", map[string]any{"id": m.Key, "private": true}); err != nil {
		t.Fatal(err)
	}
	check("get", got)
	var plainGet kvt
	call(t, n.e, &plainGet.Value, "get", m.Key)
	if string(plainGet.Value.Content) != string(m.Value.Content) || plainGet.Value.Private {
		t.Errorf("get without private: %s", plainGet.Value.Content)
	}
	for _, c := range []struct {
		method string
		opts   map[string]any
	}{
		{"createLogStream", map[string]any{"private": true}},
		{"createUserStream", map[string]any{"id": me, "private": true}},
		{"createFeedStream", map[string]any{"private": true}},
	} {
		items := source(t, n.e, c.method, c.opts)
		if len(items) != 1 {
			t.Fatalf("%s: %d items", c.method, len(items))
		}
		check(c.method, items[0])
		delete(c.opts, "private")
		if items := source(t, n.e, c.method, c.opts); len(items) != 1 || string(items[0].Value.Content) != string(m.Value.Content) {
			t.Errorf("%s without private: %+v", c.method, items)
		}
	}

	// private.unbox, as git-ssb calls it.
	var plain map[string]any
	if err := call(t, n.e, &plain, "private.unbox", boxed); err != nil || plain["text"] != secretText {
		t.Errorf("private.unbox: %v, %v", plain, err)
	}
	notOurs, _ := privatebox.BoxString([]byte(`{"type":"post"}`), []refs.Feed{other.ID})
	var none any = "unset"
	if err := call(t, n.e, &none, "private.unbox", notOurs); err != nil || none != nil {
		t.Errorf("private.unbox of another's box: %v, %v; want null", none, err)
	}

	// private.publish(content, recps).
	var m2 kvt
	if err := call(t, n.e, &m2, "private.publish", map[string]any{"type": "post", "text": "second"}, []string{me}); err != nil || m2.Value.Sequence != 2 {
		t.Fatalf("private.publish: %+v, %v", m2, err)
	}

	n.stop()
	assertNoPlaintext(t, dir, secretText)
	n = start(t, dir)
	// The index is read back: both messages are known as ours, and tried.
	st, _ := n.srv.Plugins()[1].(*private.Plugin).Status(context.Background())
	if p := st["private"].(map[string]any); p["messages"] != 2 || p["scanned"] != uint64(2) {
		t.Errorf("index after a restart: %v", p)
	}
	if err := call(t, n.e, &got.Value, "get", map[string]any{"id": m.Key, "private": true}); err != nil {
		t.Fatal(err)
	}
	check("get after a restart", got)
}

// assertNoPlaintext fails if any file under dir holds text.
func assertNoPlaintext(t *testing.T, dir, text string) {
	t.Helper()
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("read %s: %v", path, err)
			return nil
		}
		if bytes.Contains(b, []byte(text)) || bytes.Contains(b, []byte("old oak")) {
			t.Errorf("%s holds the plaintext of a private message", path)
		}
		return nil
	})
}

// Publishing is refused, and nothing is stored, for more than 7
// recipients, an empty list, and a recipient that is not a feed.
func TestPublishRefused(t *testing.T) {
	n := start(t, t.TempDir())
	var feeds []any
	for range 8 {
		k, _ := keys.Generate(nil)
		feeds = append(feeds, k.ID.String())
	}
	for _, c := range []struct {
		recps any
		want  string
	}{
		{feeds, "max recipients is:7 found:8"},
		{[]any{}, "requires at least one recipient"},
		{[]any{"%notafeed"}, "no boxers could encrypt these recps"},
		{[]any{feeds[0], 42}, "no boxers could encrypt these recps"},
		{true, `"recps" expects an Array`},
	} {
		var m kvt
		err := call(t, n.e, &m, "publish", map[string]any{"type": "post", "text": secretText, "recps": c.recps})
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "nothing was published") {
			t.Errorf("publish to %v: %v; want %q", c.recps, err, c.want)
		}
	}
	if got := n.srv.Store().Stats().Messages; got != 0 {
		t.Errorf("%d messages stored after refused publishes", got)
	}
}
