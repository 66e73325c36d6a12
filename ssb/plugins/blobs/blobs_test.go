package blobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	blobstore "github.com/scuttlego/scuttle/ssb/blobs"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testServer is a server with only the blobs plugin, on loopback with a
// random network key, served until the test ends.
type testServer struct {
	*server.Server
	blobs *Plugin
	cfg   server.Config
	addr  net.Addr
	caps  string

	mu    sync.Mutex
	added chan addResult // every blobs.add's outcome, in order
}

type addResult struct {
	id  refs.Blob
	err error
}

func startServer(t *testing.T, config string) *testServer {
	t.Helper()
	var caps [32]byte
	rand.Read(caps[:])
	return startServerCaps(t, config, caps)
}

// startServerCaps starts a test server on the network key caps.
func startServerCaps(t testing.TB, config string, caps [32]byte) *testServer {
	t.Helper()
	dir := t.TempDir()
	if config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config"), []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s := &testServer{caps: base64.StdEncoding.EncodeToString(caps[:]), added: make(chan addResult, 64)}
	s.cfg = server.Config{Path: dir, Host: "127.0.0.1", Caps: s.caps, HandshakeTimeout: 2 * time.Second}
	s.blobs = New()
	s.blobs.added = func(id refs.Blob, err error) { s.added <- addResult{id, err} }
	srv, err := server.Open(s.cfg, testLogger(), s.blobs)
	if err != nil {
		t.Fatal(err)
	}
	s.Server = srv
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	select {
	case s.addr = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// local connects to the server's local socket, with the owner's rights.
func (s *testServer) local(t testing.TB) *muxrpc.Endpoint {
	return ssbtest.DialLocal(t, server.SocketPath(s.cfg.Path))
}

// waitSubscribers waits until the store has n live subscriptions.
func (s *testServer) waitSubscribers(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.blobs.store.Subscribers() != n {
		if time.Now().After(deadline) {
			t.Fatalf("the store has %d subscriptions, want %d", s.blobs.store.Subscribers(), n)
		}
		runtime.Gosched()
	}
}

// nextAdd waits for the outcome of the next blobs.add the server handled.
func (s *testServer) nextAdd(t *testing.T) addResult {
	t.Helper()
	select {
	case r := <-s.added:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("no blobs.add ended within 10s")
		return addResult{}
	}
}

func blobID(b []byte) string {
	h := sha256.Sum256(b)
	return "&" + base64.StdEncoding.EncodeToString(h[:]) + ".sha256"
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// write sends data on a blobs.add sink in chunks of size chunk and ends
// it; it returns the stream.
func write(t *testing.T, e *muxrpc.Endpoint, data []byte, chunk int, args ...any) *muxrpc.Stream {
	t.Helper()
	st, err := e.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink, args...)
	if err != nil {
		t.Fatal(err)
	}
	for len(data) > 0 {
		n := min(chunk, len(data))
		if err := st.SendRaw(muxrpc.Binary, data[:n]); err != nil {
			break // refused: the error is read from the stream
		}
		data = data[n:]
	}
	st.Close()
	return st
}

// streamEnd returns how the server ended a stream (nil for true).
func streamEnd(t *testing.T, st *muxrpc.Stream) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		_, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// readAll collects a source's packets.
func readAll(t *testing.T, e *muxrpc.Endpoint, method string, args ...any) ([]muxrpc.Packet, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.Open(muxrpc.ParseMethod(method), muxrpc.Source, args...)
	if err != nil {
		t.Fatal(err)
	}
	var out []muxrpc.Packet
	for {
		p, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, p)
	}
}

// getBytes reads a blob with blobs.get and checks it came in binary
// chunks of at most 64 KiB.
func getBytes(t *testing.T, e *muxrpc.Endpoint, method string, arg any) ([]byte, error) {
	t.Helper()
	ps, err := readAll(t, e, method, arg)
	var b []byte
	for _, p := range ps {
		if p.Type != muxrpc.Binary || len(p.Body) > blobstore.ChunkSize {
			t.Errorf("%s: a chunk of type %v and %d bytes", method, p.Type, len(p.Body))
		}
		b = append(b, p.Body...)
	}
	return b, err
}

func call[T any](t *testing.T, e *muxrpc.Endpoint, method string, args ...any) (T, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v T
	err := e.AsyncJSON(ctx, &v, muxrpc.ParseMethod(method), args...)
	return v, err
}

func TestLocalMethods(t *testing.T) {
	s := startServer(t, "")
	e := s.local(t)
	changes, err := e.Open(muxrpc.Method{"blobs", "changes"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	s.waitSubscribers(t, 1) // the handler runs on its own: wait until it listens

	data := randomBytes(3*blobstore.ChunkSize + 1000)
	id := blobID(data)
	if err := streamEnd(t, write(t, e, data, 10000)); err != nil {
		t.Fatalf("add: %v", err)
	}
	if r := s.nextAdd(t); r.err != nil || r.id.String() != id {
		t.Fatalf("add stored %v, %v; want %s", r.id, r.err, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var changed string
	if err := changes.RecvJSON(ctx, &changed); err != nil || changed != id {
		t.Errorf("blobs.changes: %q, %v; want %s", changed, err, id)
	}
	small := []byte("hello blobs")
	streamEnd(t, write(t, e, small, 100, blobID(small))) // with the expected id
	if r := s.nextAdd(t); r.err != nil {
		t.Fatalf("add with the expected id: %v", r.err)
	}

	// The same bytes JS computes the id of, back in 64 KiB chunks.
	for _, arg := range []any{id, map[string]any{"id": id}, map[string]any{"key": id, "size": len(data)}, map[string]any{"hash": id, "max": len(data)}} {
		got, err := getBytes(t, e, "blobs.get", arg)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("get %v: %d bytes, %v; want the %d added", arg, len(got), err, len(data))
		}
	}
	got, err := getBytes(t, e, "blobs.getSlice", map[string]any{"id": id, "start": 70000, "end": 140000})
	if err != nil || !bytes.Equal(got, data[70000:140000]) {
		t.Errorf("getSlice: %d bytes, %v", len(got), err)
	}
	if _, err := getBytes(t, e, "blobs.get", map[string]any{"id": id, "size": 5}); err == nil || !strings.Contains(err.Error(), "incorrect file length, requested:5 file was:197608") {
		t.Errorf("get with a wrong size: %v", err)
	}
	if _, err := getBytes(t, e, "blobs.get", map[string]any{"id": id, "max": 1000}); err == nil || !strings.Contains(err.Error(), "incorrect file length") {
		t.Errorf("get over max: %v", err)
	}
	missing := blobID([]byte("not here"))
	if _, err := getBytes(t, e, "blobs.get", missing); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("get of a missing blob: %v", err)
	}

	if ok, err := call[bool](t, e, "blobs.has", id); err != nil || !ok {
		t.Errorf("has: %v, %v", ok, err)
	}
	if oks, err := call[[]bool](t, e, "blobs.has", []string{id, missing, blobID(small)}); err != nil || len(oks) != 3 || !oks[0] || oks[1] || !oks[2] {
		t.Errorf("has of an array: %v, %v", oks, err)
	}
	if n, err := call[*int64](t, e, "blobs.size", id); err != nil || n == nil || *n != int64(len(data)) {
		t.Errorf("size: %v, %v", n, err)
	}
	if n, err := call[*int64](t, e, "blobs.size", missing); err != nil || n != nil {
		t.Errorf("size of a missing blob: %v, %v; want null", n, err)
	}
	m, err := call[meta](t, e, "blobs.meta", id)
	if err != nil || m.ID != id || m.Size != int64(len(data)) || time.Since(time.UnixMilli(m.TS)) > time.Minute {
		t.Errorf("meta: %+v, %v", m, err)
	}

	ps, err := readAll(t, e, "blobs.ls")
	var ids []string
	for _, p := range ps {
		var s string
		p.Decode(&s)
		ids = append(ids, s)
	}
	if err != nil || len(ids) != 2 || !contains(ids, id) || !contains(ids, blobID(small)) {
		t.Errorf("ls: %v, %v", ids, err)
	}
	ps, err = readAll(t, e, "blobs.ls", map[string]any{"long": true})
	var long []meta
	for _, p := range ps {
		var m meta
		p.Decode(&m)
		long = append(long, m)
	}
	if err != nil || len(long) != 2 || (long[0].ID == id) == (long[1].ID == id) {
		t.Errorf("ls long: %+v, %v", long, err)
	}
	for _, m := range long {
		if m.ID == blobID(small) && m.Size != int64(len(small)) || m.TS == 0 {
			t.Errorf("ls long entry %+v", m)
		}
	}

	// ls live: the old ones, then one added meanwhile.
	live, err := e.Open(muxrpc.Method{"blobs", "ls"}, muxrpc.Source, map[string]any{"live": true, "old": false})
	if err != nil {
		t.Fatal(err)
	}
	s.waitSubscribers(t, 2) // blobs.changes and this one
	third := []byte("third")
	streamEnd(t, write(t, e, third, 100))
	s.nextAdd(t)
	var liveID string
	if err := live.RecvJSON(ctx, &liveID); err != nil || liveID != blobID(third) {
		t.Errorf("ls live: %q, %v", liveID, err)
	}
	live.Close()

	if _, err := call[any](t, e, "blobs.rm", id); err != nil {
		t.Errorf("rm: %v", err)
	}
	if ok, err := call[bool](t, e, "blobs.has", id); err != nil || ok {
		t.Errorf("has after rm: %v, %v", ok, err)
	}
	if _, err := call[any](t, e, "blobs.rm", id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("rm twice: %v", err)
	}

	help, err := call[struct {
		Description string
		Commands    map[string]struct{ Type string }
	}](t, e, "blobs.help")
	if err != nil || help.Commands["add"].Type != "sink" || help.Commands["ls"].Type != "source" {
		t.Errorf("help: %+v, %v", help, err)
	}
	changes.Close()
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Bad input: each a clear error, nothing stored, and the connection
// serves the next call.
func TestBadInput(t *testing.T) {
	s := startServer(t, `{"blobs": {"max": 200000}}`)
	e := s.local(t)
	st := s.blobs.Store()
	if st.Max() != 200000 {
		t.Fatalf("max from the config: %d", st.Max())
	}
	storedNothing := func(what string) {
		t.Helper()
		n := 0
		for _, err := range st.List(context.Background()) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		tmp, _ := os.ReadDir(filepath.Join(st.Dir(), "tmp"))
		if n != 0 || len(tmp) != 0 {
			t.Errorf("%s: %d blobs and %d temporary files left", what, n, len(tmp))
		}
	}

	// Bytes that do not hash to the expected id.
	data := randomBytes(5000)
	other := blobID([]byte("something else"))
	streamEnd(t, write(t, e, data, 1000, other))
	if r := s.nextAdd(t); r.err == nil || !strings.Contains(r.err.Error(), "did not match expected id:"+other) {
		t.Errorf("bytes that do not match the expected id: %v", r.err)
	}
	storedNothing("mismatch")

	// Over the limit: refused while the client is still sending.
	big := randomBytes(1 << 20)
	add, err := e.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	sent := 0
	for sent < len(big) && add.SendRaw(muxrpc.Binary, big[sent:sent+10000]) == nil {
		sent += 10000
		if sent == 300000 {
			// Past the limit: the refusal comes without the end.
			if err := streamEnd(t, add); err == nil || !strings.Contains(err.Error(), "blob over the limit of 200000 bytes") {
				t.Errorf("over the limit: %v", err)
			}
			break
		}
	}
	add.Close()
	if r := s.nextAdd(t); r.err == nil {
		t.Error("a blob over the limit was stored")
	}
	storedNothing("over the limit")

	// A client that aborts its add halfway.
	add, err = e.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	add.SendRaw(muxrpc.Binary, data[:2500])
	add.CloseWithError(errors.New("changed my mind"))
	if r := s.nextAdd(t); r.err == nil {
		t.Error("an aborted add was stored")
	}
	storedNothing("aborted")

	// A connection that ends halfway through an add.
	e2 := s.local(t)
	add, err = e2.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	add.SendRaw(muxrpc.Binary, data[:2500])
	e2.Close()
	if r := s.nextAdd(t); r.err == nil {
		t.Error("the add of a closed connection was stored")
	}
	storedNothing("connection closed")

	// Malformed ids.
	for _, c := range []struct {
		method string
		arg    any
		want   string
	}{
		{"blobs.has", "&nope.sha256", "invalid id:&nope.sha256"},
		{"blobs.has", []any{blobID(data), "%x"}, "invalid id:%x"},
		{"blobs.has", nil, "invalid id:undefined"},
		{"blobs.size", 7, "invalid id:7"},
		{"blobs.meta", "@x.ed25519", "invalid id:@x.ed25519"},
		{"blobs.rm", "nope", "not valid id:nope"},
	} {
		if _, err := call[any](t, e, c.method, c.arg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s(%v): %v; want %q", c.method, c.arg, err, c.want)
		}
	}
	for _, c := range []struct {
		method string
		arg    any
		want   string
	}{
		{"blobs.get", "&nope.sha256", "invalid id:&nope.sha256"},
		{"blobs.get", map[string]any{"size": 3}, "multiblob.get: {id} is mandatory"},
		{"blobs.getSlice", map[string]any{"id": blobID(data), "end": 3}, "{start} must be a number"},
	} {
		if _, err := readAll(t, e, c.method, c.arg); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s(%v): %v; want %q", c.method, c.arg, err, c.want)
		}
	}
	// (The stream is left open: the end of a sink is answered at once.)
	add, err = e.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink, "&bad")
	if err != nil {
		t.Fatal(err)
	}
	add.SendRaw(muxrpc.Binary, data[:100])
	if err := streamEnd(t, add); err == nil || !strings.Contains(err.Error(), "not a valid hash: &bad") {
		t.Errorf("add with a malformed id: %v", err)
	}
	add.Close()
	s.nextAdd(t)
	storedNothing("malformed ids")

	// The same connection still adds.
	streamEnd(t, write(t, e, data, 1000, blobID(data)))
	if r := s.nextAdd(t); r.err != nil || r.id.String() != blobID(data) {
		t.Errorf("an add after the bad ones: %v, %v", r.id, r.err)
	}
}

func TestConfig(t *testing.T) {
	for _, c := range []struct {
		section string
		max     int64
		bad     bool
	}{
		{``, blobstore.DefaultMax, false},
		{`{}`, blobstore.DefaultMax, false},
		{`{"max": 0}`, blobstore.DefaultMax, false},
		{`{"max": 1024}`, 1024, false},
		{`{"max": -1}`, 0, true},
		{`{"max": 1.5}`, 0, true},
		{`{"max": "big"}`, 0, true},
	} {
		p := New()
		var raw json.RawMessage
		if c.section != "" {
			raw = json.RawMessage(c.section)
		}
		err := p.ReadConfig(raw)
		if (err != nil) != c.bad || (!c.bad && p.Config().Max != c.max) {
			t.Errorf("%s: max %d, %v", c.section, p.Config().Max, err)
		}
	}
}

// testLogger logs to stderr at debug level when BLOBS_DEBUG is set.
func testLogger() *slog.Logger {
	if os.Getenv("BLOBS_DEBUG") == "" {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
