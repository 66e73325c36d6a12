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
	"github.com/scuttlego/scuttle/ssb/message"
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

// messagesByType with private: true has our private messages by their
// decrypted type, in receive order with the public ones, reversed and
// limited as asked, and live; without it, private messages have no type.
func TestMessagesByTypePrivate(t *testing.T) {
	n := start(t, t.TempDir())
	me := n.srv.ID().String()
	other, _ := keys.Generate(nil)
	for _, c := range []map[string]any{
		{"type": "post", "text": "public 1"},
		{"type": "post", "text": "private 2", "recps": []string{me}},
		{"type": "post", "text": "not ours 3", "recps": []string{other.ID.String()}},
		{"type": "contact", "text": "private contact 4", "recps": []string{me}},
		{"type": "post", "text": "public 5"},
	} {
		var m kvt
		if err := call(t, n.e, &m, "publish", c); err != nil {
			t.Fatal(err)
		}
	}
	texts := func(items []kvt) string {
		var out []string
		for _, it := range items {
			var c struct{ Text string }
			if json.Unmarshal(it.Value.Content, &c) != nil {
				c.Text = "box"
			}
			out = append(out, c.Text)
		}
		return strings.Join(out, ", ")
	}
	for _, c := range []struct {
		opts map[string]any
		want string
	}{
		{map[string]any{"type": "post", "private": true}, "public 1, private 2, public 5"},
		{map[string]any{"type": "post"}, "public 1, public 5"},
		{map[string]any{"type": "contact", "private": true}, "private contact 4"},
		{map[string]any{"type": "post", "private": true, "reverse": true, "limit": 2}, "public 5, private 2"},
	} {
		got := texts(source(t, n.e, "messagesByType", c.opts))
		if got != c.want {
			t.Errorf("messagesByType %v: %s; want %s", c.opts, got, c.want)
		}
	}

	// Live: a new private post arrives decrypted.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := n.e.Open(muxrpc.Method{"messagesByType"}, muxrpc.Source, map[string]any{"type": "post", "private": true, "live": true, "old": false})
	if err != nil {
		t.Fatal(err)
	}
	var m6 kvt
	if err := call(t, n.e, &m6, "publish", map[string]any{"type": "post", "text": "live 6", "recps": []string{me}}); err != nil {
		t.Fatal(err)
	}
	var m kvt
	if err := st.RecvJSON(ctx, &m); err != nil || texts([]kvt{m}) != "live 6" {
		t.Errorf("live private post: %s, %v", m.Value.Content, err)
	}
	st.Close()
}

// A feed of broken boxes (random bytes, truncated, a flipped
// bit in the body, an all-zero one-time key) replicates like any other:
// every message is stored, none is taken for ours, each reads back as it
// was, and a good private message after them is found.
func TestBrokenBoxes(t *testing.T) {
	n := start(t, t.TempDir())
	me := n.srv.ID()
	author, _ := keys.Generate(nil)
	good, _ := privatebox.Box([]byte(`{"type":"post","text":"after the junk"}`), []refs.Feed{me})
	flipped := bytes.Clone(good)
	flipped[len(flipped)-5] ^= 1
	zeroKey := bytes.Clone(good)
	clear(zeroKey[24 : 24+32])
	random := make([]byte, 300)
	rand.Read(random)
	b64 := base64.StdEncoding.EncodeToString
	// (Content strings that are not base64 + ".box" are refused by
	// validation, as ssb-validate does: message.Create refuses them.)
	if _, err := message.Create(author, nil, nil, 1700000000000, message.StringValue("garbage.box")); err == nil {
		t.Error("a message with the content garbage.box was made")
	}
	contents := []string{b64(random) + ".box", b64(good[:60]) + ".box", b64(flipped) + ".box", b64(zeroKey) + ".box", b64(good) + ".box"}
	var prev *message.FeedState
	var keysOf []string
	for i, c := range contents {
		m, err := message.Create(author, nil, prev, float64(1700000000000+i), message.StringValue(c))
		if err != nil {
			t.Fatal(err)
		}
		st := m.State()
		prev = &st
		var added kvt
		if err := call(t, n.e, &added, "add", json.RawMessage(m.Raw)); err != nil {
			t.Fatalf("add of message %d (%q…): %v", i+1, c[:min(len(c), 12)], err)
		}
		keysOf = append(keysOf, added.Key)
	}
	for i, key := range keysOf {
		var v kvt
		if err := call(t, n.e, &v.Value, "get", map[string]any{"id": key, "private": true}); err != nil {
			t.Fatal(err)
		}
		last := i == len(keysOf)-1
		var text struct{ Text string }
		json.Unmarshal(v.Value.Content, &text)
		if last != v.Value.Private || last != (text.Text == "after the junk") {
			t.Errorf("message %d read with private: %s (private %v)", i+1, v.Value.Content, v.Value.Private)
		}
		if !last && string(v.Value.Content) != strconvQuote(contents[i]) {
			t.Errorf("broken box %d read back as %s", i+1, v.Value.Content)
		}
	}
	ours, err := n.srv.Plugins()[1].(*private.Plugin).Ours(context.Background())
	if err != nil || len(ours) != 1 {
		t.Errorf("ours: %v, %v; want the one good message", ours, err)
	}
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }
