package blobs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	blobstore "github.com/scuttlego/scuttle/ssb/blobs"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// network is servers on one network key.
type network struct {
	caps [32]byte
}

func newNetwork() *network {
	n := &network{}
	rand.Read(n.caps[:])
	return n
}

func (n *network) start(t testing.TB, config string) *testServer {
	return startServerCaps(t, config, n.caps)
}

// address is the server's multiserver address.
func (s *testServer) address() string { return ssbtest.Address(s.addr.String(), s.ID()) }

// connect makes from dial to.
func connect(t *testing.T, from, to *testServer) {
	t.Helper()
	connectTo(t, from, to.address())
}

// addBlob adds data on s as its owner and returns its id.
func addBlob(t *testing.T, s *testServer, data []byte) string {
	t.Helper()
	write(t, s.local(t), data, 64<<10)
	if r := s.nextAdd(t); r.err != nil {
		t.Fatalf("blobs.add: %v", r.err)
	}
	return blobID(data)
}

// wantAsync calls blobs.want on s as its owner; the result comes on the
// channel (nil: the call answered true).
func wantAsync(t *testing.T, s *testServer, id string, timeout time.Duration) <-chan error {
	e := s.local(t)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var ok bool
		err := e.AsyncJSON(ctx, &ok, muxrpc.Method{"blobs", "want"}, id)
		if err == nil && !ok {
			err = errors.New("blobs.want answered false")
		}
		done <- err
	}()
	return done
}

func await(t *testing.T, what string, c <-chan error) {
	t.Helper()
	if err := <-c; err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// checkBlob checks that s holds data, read back with blobs.get.
func checkBlob(t *testing.T, s *testServer, data []byte) {
	t.Helper()
	got, err := getBytes(t, s.local(t), "blobs.get", blobID(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blobs.get after the want: %d bytes, %v; want the %d fetched", len(got), err, len(data))
	}
}

// A want made before the peers meet goes in the first message of the
// stream; one made after goes live. Either way the bytes arrive, the want
// answers true, and a want of a blob already here answers at once.
func TestWantFromPeer(t *testing.T) {
	net := newNetwork()
	a, b := net.start(t, ""), net.start(t, "")
	early, late := randomBytes(300_000), randomBytes(1000)
	earlyID, lateID := addBlob(t, a, early), addBlob(t, a, late)

	before := wantAsync(t, b, earlyID, 20*time.Second)
	connect(t, b, a)
	await(t, "blobs.want before connecting", before)
	checkBlob(t, b, early)
	await(t, "blobs.want after connecting", wantAsync(t, b, lateID, 20*time.Second))
	checkBlob(t, b, late)
	await(t, "blobs.want of a blob that is here", wantAsync(t, b, lateID, 5*time.Second))

	// The empty blob is always here.
	await(t, "blobs.want of the empty blob", wantAsync(t, b, blobID(nil), 5*time.Second))
	if _, err := call[bool](t, b.local(t), "blobs.want", "&nope"); err == nil || !strings.Contains(err.Error(), "invalid id:&nope") {
		t.Errorf("blobs.want of a malformed id: %v", err)
	}
}

// The peer that wants and the peer that has are not connected; the one in
// the middle takes the want up, fetches the blob and passes it on.
func TestWantThroughMiddlePeer(t *testing.T) {
	net := newNetwork()
	holder, middle, wanter := net.start(t, ""), net.start(t, ""), net.start(t, "")
	data := randomBytes(200_000)
	id := addBlob(t, holder, data)
	connect(t, middle, holder)
	connect(t, wanter, middle)
	await(t, "blobs.want through the middle peer", wantAsync(t, wanter, id, 20*time.Second))
	checkBlob(t, wanter, data)
	checkBlob(t, middle, data)
}

// blobs.push announces a blob until peers hold it: a connected peer that
// does not want it fetches it anyway.
func TestPush(t *testing.T) {
	net := newNetwork()
	a, b := net.start(t, `{"blobs":{"pushy":1}}`), net.start(t, "")
	data := randomBytes(5000)
	id := addBlob(t, a, data)
	changes, err := b.local(t).Open(muxrpc.Method{"blobs", "changes"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call[any](t, a.local(t), "blobs.push", id); err != nil {
		t.Fatalf("blobs.push: %v", err)
	}
	connect(t, b, a)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got string
	if err := changes.RecvJSON(ctx, &got); err != nil || got != id {
		t.Fatalf("the pushed blob did not arrive: %q, %v", got, err)
	}
	checkBlob(t, b, data)
	if _, err := call[any](t, a.local(t), "blobs.push", "nope"); err == nil || !strings.Contains(err.Error(), "invalid hash:nope") {
		t.Errorf("blobs.push of a malformed id: %v", err)
	}
}

// fakePeer is a hostile peer: it announces blobs on its createWants
// stream and answers blobs.get as told.
type fakePeer struct {
	t      *testing.T
	c      *client.Client
	mu     sync.Mutex
	gets   int
	getEnd chan error // how each blobs.get it served ended
}

// dialFake connects a hostile peer to s. announce is its createWants
// stream's first message; serve answers each blobs.get.
func dialFake(t *testing.T, s *testServer, announce map[string]any, serve func(ctx context.Context, st *muxrpc.Stream) error) *fakePeer {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakePeer{t: t, getEnd: make(chan error, 16)}
	asked := make(chan struct{}, 1) // the server has taken the peer in
	h := muxrpc.HandlerFunc(func(ctx context.Context, req *muxrpc.Request) {
		switch req.Method.String() {
		case "blobs.createWants":
			select {
			case asked <- struct{}{}:
			default:
			}
			st := req.Stream()
			if st.Send(announce) != nil {
				return
			}
			<-ctx.Done()
		case "blobs.get":
			f.mu.Lock()
			f.gets++
			f.mu.Unlock()
			err := serve(ctx, req.Stream())
			f.getEnd <- err
		default:
			req.Fail(fmt.Errorf("no %s", req.Method))
		}
	})
	caps, _ := base64.StdEncoding.DecodeString(s.caps)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, s.addr.String(), [32]byte(caps), kp, s.Keys().Public, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	f.c = c
	select {
	case <-asked:
	case <-ctx.Done():
		t.Fatal("the server did not open its createWants stream to the peer")
	}
	return f
}

func (f *fakePeer) getCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.gets
}

// nextGet waits until a blobs.get the fake served ends.
func (f *fakePeer) nextGet(t *testing.T) error {
	t.Helper()
	select {
	case err := <-f.getEnd:
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("the fake peer served no blobs.get")
		return nil
	}
}

// status returns the blobs part of s's status.
func (s *testServer) blobsStatus(t *testing.T) map[string]any {
	t.Helper()
	st, err := s.Plugins()[0].(*Plugin).Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(st["blobs"])
	var m map[string]any
	json.Unmarshal(b, &m)
	return m
}

// Peers that lie about a blob: bytes that do not hash to the id, more
// bytes than announced, fewer bytes, a stall. Each time nothing is
// stored, the peer is not asked again for that blob, and the blob comes
// from an honest peer.
func TestFetchFromLyingPeer(t *testing.T) {
	data := randomBytes(100_000)
	id := blobID(data)
	other := randomBytes(len(data))
	send := func(st *muxrpc.Stream, b []byte) error {
		for len(b) > 0 {
			n := min(len(b), 64<<10)
			if err := st.SendRaw(muxrpc.Binary, b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	}
	for _, tc := range []struct {
		name  string
		size  int
		serve func(ctx context.Context, st *muxrpc.Stream) error
	}{
		{"other bytes", len(data), func(ctx context.Context, st *muxrpc.Stream) error { return send(st, other) }},
		{"more bytes than announced", len(data), func(ctx context.Context, st *muxrpc.Stream) error {
			return send(st, append(bytes.Clone(data), 1, 2, 3))
		}},
		{"fewer bytes", len(data), func(ctx context.Context, st *muxrpc.Stream) error { return send(st, data[:len(data)-1]) }},
		{"a smaller size announced", 1000, func(ctx context.Context, st *muxrpc.Stream) error { return send(st, data) }},
		{"stall", len(data), func(ctx context.Context, st *muxrpc.Stream) error {
			send(st, data[:1000])
			_, err := st.Recv(ctx) // until our server gives up and ends the stream
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			net := newNetwork()
			s := net.start(t, `{"blobs":{"fetchTimeout":1000}}`)
			honest := net.start(t, "")
			addBlob(t, honest, data)
			wanted := wantAsync(t, s, id, 30*time.Second)
			liar := dialFake(t, s, map[string]any{id: tc.size}, tc.serve)
			liar.nextGet(t)
			if ok, err := call[bool](t, s.local(t), "blobs.has", id); ok || err != nil {
				t.Fatalf("blobs.has after the lie: %v, %v; want false", ok, err)
			}
			connect(t, s, honest)
			await(t, "blobs.want", wanted)
			checkBlob(t, s, data)
			if n := liar.getCount(); n != 1 {
				t.Errorf("the liar was asked %d times; want once", n)
			}
			if tmp := tmpFiles(t, s); len(tmp) != 0 {
				t.Errorf("temporary files left: %v", tmp)
			}
		})
	}
}

// tmpFiles lists what is left in the store's temporary folder.
func tmpFiles(t *testing.T, s *testServer) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.blobs.Store().Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// A peer that announces a blob over the limit is not fetched from; one
// that floods wants has at most MaxWantsPerPeer taken up (and forwarded),
// its junk ignored, while an honest exchange goes on.
func TestHostileWants(t *testing.T) {
	net := newNetwork()
	s := net.start(t, "")
	honest := net.start(t, "")
	data := randomBytes(1000)
	bigID := blobID(randomBytes(10))

	flood := map[string]any{bigID: 6 << 20, "junk": -1, blobID([]byte("x")): "no"}
	for range 3000 {
		flood[blobID(randomBytes(16))] = -1
	}
	fake := dialFake(t, s, flood, func(ctx context.Context, st *muxrpc.Stream) error { return errors.New("never asked") })
	wanted := wantAsync(t, s, bigID, 2*time.Second)
	id := addBlob(t, honest, data)
	connect(t, s, honest)
	await(t, "blobs.want while flooded", wantAsync(t, s, id, 20*time.Second))
	if err := <-wanted; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("blobs.want of a blob announced over the limit: %v; want a timeout", err)
	}
	st := s.blobsStatus(t)
	ign := st["ignored"].(map[string]any)
	if w := st["wants"].(float64); w > 1024+2 {
		t.Errorf("%v wants held; want at most 1024 from the flooder and ours", w)
	}
	if ign["wantsDropped"].(float64) < 3000-1024 || ign["havesOverMax"].(float64) != 1 || ign["malformedEntries"].(float64) != 2 {
		t.Errorf("ignored: %v", ign)
	}
	if n := fake.getCount(); n != 0 {
		t.Errorf("the flooder was asked for %d blobs", n)
	}
}

// jsPeer is a running JavaScript ssb-server@16 (ssb-blobs 1.2.2).
type jsPeer struct {
	*ssbtest.JSServer
	dir string // its data directory
}

// startJS runs JavaScript ssb-server on the network's key, with an owner
// connection to it.
func (n *network) startJS(t *testing.T) *jsPeer {
	t.Helper()
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	j, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), dir, n.caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(j.Close)
	return &jsPeer{JSServer: j, dir: filepath.Join(dir, "home", ".ssb")}
}

// jsAdd adds data to a JavaScript server as its owner, and waits until
// its store has it.
func jsAdd(t *testing.T, j *jsPeer, data []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	changes, err := j.Client.Open(muxrpc.Method{"blobs", "changes"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	defer changes.Close()
	st, err := j.Client.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	for b := data; len(b) > 0; b = b[min(len(b), 64<<10):] {
		if err := st.SendRaw(muxrpc.Binary, b[:min(len(b), 64<<10)]); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	id := blobID(data)
	for {
		var got string
		if err := changes.RecvJSON(ctx, &got); err != nil {
			t.Fatalf("ssb-server's blobs.changes: %v", err)
		}
		if got == id {
			return id
		}
	}
}

// jsWant calls blobs.want on a JavaScript server as its owner.
func jsWant(j *jsPeer, id string, timeout time.Duration) <-chan error {
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		var ok bool
		err := j.Client.AsyncJSON(ctx, &ok, muxrpc.Method{"blobs", "want"}, id)
		if err == nil && !ok {
			err = errors.New("ssb-server's blobs.want answered false")
		}
		done <- err
	}()
	return done
}

// jsCheck reads a blob back from a JavaScript server's folder with
// ssb-blobs' own store (its blobs.get of a blob whose size is a multiple
// of 64 KiB ends the connection after the last byte).
func jsCheck(t *testing.T, j *jsPeer, data []byte) {
	t.Helper()
	store := oracle.Start(t, "blobs-store.js")
	defer store.Close()
	r := store.Do(oracle.Cmd{"op": "get", "dir": filepath.Join(j.dir, "blobs"), "id": blobID(data)})
	if got, _ := base64.StdEncoding.DecodeString(r.Str("b64")); !bytes.Equal(got, data) {
		t.Fatalf("ssb-server's store holds %d bytes of %s (error %q); want the %d fetched", len(got), blobID(data), r.Str("error"), len(data))
	}
}

// jsConnect makes a JavaScript server dial addr.
func jsConnect(t *testing.T, j *jsPeer, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res any
	if err := j.Client.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, addr); err != nil {
		t.Fatalf("ssb-server's gossip.connect: %v", err)
	}
}

// Our server fetches a blob that JavaScript ssb-server holds, and
// ssb-server fetches one that ours holds, on one connection, with wants
// made before and after it opened.
func TestInteropWantBothWays(t *testing.T) {
	net := newNetwork()
	s := net.start(t, "")
	j := net.startJS(t)
	fromJS, fromGo := randomBytes(3<<20), randomBytes(3<<20)
	fromJSLate, fromGoLate := randomBytes(5000), randomBytes(7000)
	jsID, jsLateID := jsAdd(t, j, fromJS), jsAdd(t, j, fromJSLate)
	goID, goLateID := addBlob(t, s, fromGo), addBlob(t, s, fromGoLate)

	ours := wantAsync(t, s, jsID, 30*time.Second)
	theirs := jsWant(j, goID, 30*time.Second)
	connectTo(t, s, j.Address())
	await(t, "our blobs.want of ssb-server's blob", ours)
	await(t, "ssb-server's blobs.want of our blob", theirs)
	checkBlob(t, s, fromJS)
	jsCheck(t, j, fromGo)

	await(t, "our live blobs.want", wantAsync(t, s, jsLateID, 30*time.Second))
	await(t, "ssb-server's live blobs.want", jsWant(j, goLateID, 30*time.Second))
	checkBlob(t, s, fromJSLate)
	jsCheck(t, j, fromGoLate)
}

// The wanting and holding peers are JavaScript, not connected to each
// other; ours is in the middle and passes the blob on.
func TestInteropMiddleGo(t *testing.T) {
	net := newNetwork()
	holder, wanter := net.startJS(t), net.startJS(t)
	middle := net.start(t, "")
	data := randomBytes(1 << 20) // a multiple of 64 KiB: see jsCheck
	id := jsAdd(t, holder, data)
	connectTo(t, middle, holder.Address())
	jsConnect(t, wanter, middle.address())
	await(t, "ssb-server's blobs.want through our server", jsWant(wanter, id, 30*time.Second))
	jsCheck(t, wanter, data)
	checkBlob(t, middle, data)
}

// The wanting and holding peers are ours, not connected to each other; a
// JavaScript ssb-server is in the middle.
func TestInteropMiddleJS(t *testing.T) {
	net := newNetwork()
	middle := net.startJS(t)
	holder, wanter := net.start(t, ""), net.start(t, "")
	data := randomBytes(1 << 20) // a multiple of 64 KiB: see jsCheck
	id := addBlob(t, holder, data)
	connectTo(t, holder, middle.Address())
	connectTo(t, wanter, middle.Address())
	await(t, "our blobs.want through ssb-server", wantAsync(t, wanter, id, 30*time.Second))
	checkBlob(t, wanter, data)
	jsCheck(t, middle, data)
}

// connectTo makes s dial a multiserver address.
func connectTo(t *testing.T, s *testServer, addr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.Connect(ctx, addr); err != nil {
		t.Fatalf("connect to %s: %v", addr, err)
	}
}

// A peer that never opens our createWants stream cannot make us queue
// without limit: past 4,096 entries it is dropped from the exchange; when
// it opens the stream at last, it gets our whole want map.
func TestPeerThatDoesNotRead(t *testing.T) {
	net := newNetwork()
	s := net.start(t, "")
	fake := dialFake(t, s, map[string]any{}, func(ctx context.Context, st *muxrpc.Stream) error { return nil })
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	const n = maxPendingEntries + 200
	for range n { // local wants stay wanted when the caller leaves
		id, _ := blobstore.ParseID(blobID(randomBytes(16)))
		s.blobs.x.want(gone, id)
	}
	if st := s.blobsStatus(t); st["slowPeers"].(float64) != 1 || st["wants"].(float64) != n {
		t.Fatalf("status: %v; want the peer dropped and %d wants", st, n)
	}
	ctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	st, err := fake.c.Open(muxrpc.Method{"blobs", "createWants"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	var first map[string]int64
	if err := st.RecvJSON(ctx, &first); err != nil || len(first) != n {
		t.Fatalf("first message after the peer came back: %d entries, %v; want %d", len(first), err, n)
	}
	for id, v := range first {
		if v != -1 {
			t.Fatalf("%s: %d, want -1", id, v)
		}
	}
	st.Close()
}

// A fetch that has every byte waits for one of maxCommits before the store
// makes the blob durable, and leaves its peer's slot; while it waits for
// the disk it is not taken for stalled, whatever the clock says.
func TestFetchWaitsForCommit(t *testing.T) {
	net := newNetwork()
	a, b := net.start(t, ""), net.start(t, "")
	data := randomBytes(70_000)
	id := addBlob(t, a, data)
	x := b.blobs.x
	for range maxCommits { // the disk is busy
		x.commits <- struct{}{}
	}
	wanted := wantAsync(t, b, id, 30*time.Second)
	connect(t, b, a)

	committing := func() (bool, *wantPeer) {
		x.mu.Lock()
		defer x.mu.Unlock()
		for _, run := range x.fetches {
			if run.stage == committing {
				return true, run.peer
			}
		}
		return false, nil
	}
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	var ps *wantPeer
	for ok := false; !ok; {
		select {
		case <-tick.C:
			ok, ps = committing()
		case <-deadline:
			t.Fatal("the fetch did not reach the commit")
		}
	}
	timeout := b.blobs.cfg.FetchTimeout
	now := time.Now()
	for i := range 6 { // three fetch timeouts, in steps shorter than one
		x.tick(now.Add(time.Duration(i)*timeout/2), timeout)
	}
	if st := b.blobsStatus(t); st["fetchesStalled"].(float64) != 0 || st["fetching"].(float64) != 1 {
		t.Fatalf("status while the fetch waits for the disk: %v; want it fetching, not stalled", st)
	}
	if n := len(ps.slots); n != 1 {
		t.Fatalf("peer slots held while waiting for a commit: %d; want 1 (the transfer's, until a commit slot is free)", n)
	}
	for range maxCommits {
		<-x.commits
	}
	await(t, "blobs.want", wanted)
	checkBlob(t, b, data)
	for n := -1; n != 0; { // the fetch's goroutine gives them back after the blob is announced
		select {
		case <-tick.C:
			n = len(ps.slots) + len(x.slots) + len(x.commits)
		case <-deadline:
			t.Fatalf("%d slots still held after the fetch", n)
		}
	}
}
