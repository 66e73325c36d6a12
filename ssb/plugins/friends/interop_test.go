package friends_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/servertest"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goServer runs our server with all.Default() (friends included)
// until the test ends, and returns it and its owner's connection.
func goServer(t *testing.T, caps [32]byte) (*server.Server, *muxrpc.Endpoint, net.Addr) {
	t.Helper()
	r := servertest.Start(t, server.Config{Path: t.TempDir(), Caps: servertest.Caps(caps)}, all.Default()...)
	return r.Server, r.Owner(t), r.Addr
}

// side is one server under test: its owner connection, its own id, and
// what its answers are rewritten with to compare them with the other's.
type side struct {
	name    string
	rpc     *muxrpc.Endpoint
	self    refs.Feed
	renames map[string]string // this side's ids -> the Go side's
}

// normalize decodes a body with the other side's ids renamed: a string
// body as {"string": ...}, to tell it from a JSON string.
func (s *side) normalize(p muxrpc.Packet) any {
	b := p.Body
	for from, to := range s.renames {
		b = bytes.ReplaceAll(b, []byte(from), []byte(to))
	}
	if p.Type == muxrpc.String {
		return map[string]any{"string": string(b)}
	}
	var v any
	if len(b) == 0 {
		return "<empty>"
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("<not JSON %q>", b)
	}
	return v
}

// call returns the normalized answer of an async call, or its error as
// {"error": message}.
func (s *side) call(ctx context.Context, method string, args ...any) any {
	p, err := s.rpc.Async(ctx, muxrpc.ParseMethod(method), args...)
	if err != nil {
		return map[string]any{"error": err.Error()}
	}
	return s.normalize(p)
}

// source reads n items of a source (all of them when n < 0).
func (s *side) source(ctx context.Context, t *testing.T, method string, n int, args ...any) []any {
	t.Helper()
	st, err := s.rpc.Open(muxrpc.ParseMethod(method), muxrpc.Source, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return s.read(ctx, t, st, n)
}

func (s *side) read(ctx context.Context, t *testing.T, st *muxrpc.Stream, n int) []any {
	t.Helper()
	var out []any
	for n < 0 || len(out) < n {
		p, err := st.Recv(ctx)
		if err != nil {
			if n >= 0 {
				t.Fatalf("%s: after %d items: %v", s.name, len(out), err)
			}
			break
		}
		out = append(out, s.normalize(p))
	}
	return out
}

// world is the follow graph both servers get: contact messages of
// foreign feeds (the same signed messages to both) and of each server's
// own feed (published by each).
type world struct {
	t     *testing.T
	kps   map[string]*keys.KeyPair
	prev  map[string]*message.FeedState
	raws  [][]byte // the foreign messages, in order
	names map[string]string
}

func newWorld(t *testing.T, names ...string) *world {
	w := &world{t: t, kps: map[string]*keys.KeyPair{}, prev: map[string]*message.FeedState{}, names: map[string]string{}}
	for _, n := range names {
		kp, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		w.kps[n] = kp
		w.prev[n] = &message.FeedState{}
		w.names[kp.ID.String()] = n
	}
	return w
}

func (w *world) id(name string) string { return w.kps[name].ID.String() }

// contact signs a contact message of author about the feed id to.
func (w *world) contact(author, to string, fields map[string]any) []byte {
	content := map[string]any{"type": "contact", "contact": to}
	for k, v := range fields {
		content[k] = v
	}
	m, err := message.Create(w.kps[author], nil, w.prev[author], float64(time.Now().UnixMilli()), content)
	if err != nil {
		w.t.Fatal(err)
	}
	*w.prev[author] = m.State()
	return m.Raw
}

var (
	follow   = map[string]any{"following": true}
	unfollow = map[string]any{"following": false}
	block    = map[string]any{"blocking": true}
)

// pair is our server and ssb-server on one network key.
type pair struct {
	goSide, jsSide *side
	caps           [32]byte
	goSrv          *server.Server
	goAddr         net.Addr
	js             *ssbtest.JSServer
}

func startBoth(t *testing.T, ctx context.Context) pair {
	var caps [32]byte
	rand.Read(caps[:])
	js, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Close)
	srv, local, addr := goServer(t, caps)
	return pair{
		goSide: &side{name: "go", rpc: local, self: srv.ID(), renames: map[string]string{}},
		jsSide: &side{name: "js", rpc: js.Client.Endpoint, self: js.Keys.ID, renames: map[string]string{js.Keys.ID.String(): srv.ID().String()}},
		caps:   caps, goSrv: srv, goAddr: addr, js: js,
	}
}

// TestFriendsLikeSSBServer builds one follow graph on our server and on
// ssb-server 16 and compares every friends method's answers, then the
// live streams as two more contact messages arrive.
func TestFriendsLikeSSBServer(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	pr := startBoth(t, ctx)
	goSide, jsSide := pr.goSide, pr.jsSide
	sides := []*side{goSide, jsSide}

	w := newWorld(t, "A", "B", "C", "D", "E", "F", "H", "X", "Y", "Z", "N", "Rgo", "Rjs")
	jsSide.renames[w.id("Rjs")] = w.id("Rgo")
	A, B, C, D, E, F, H, X, Y, Z, N := w.id("A"), w.id("B"), w.id("C"), w.id("D"), w.id("E"), w.id("F"), w.id("H"), w.id("X"), w.id("Y"), w.id("Z"), w.id("N")
	foreign := [][]byte{
		w.contact("A", D, follow), w.contact("A", E, follow), w.contact("A", B, block), w.contact("A", Y, block),
		w.contact("B", X, follow), w.contact("B", Z, map[string]any{"flagged": true}),
		w.contact("C", Y, follow),
		w.contact("D", F, follow), w.contact("D", Z, block),
		w.contact("E", D, follow), w.contact("E", D, unfollow), w.contact("E", H, map[string]any{"following": "true"}),
		w.contact("F", H, follow), // a chain past the hop limit: me, A, D, F, H
		w.contact("H", N, follow),
		w.contact("Y", Z, follow),
	}
	own := []struct {
		to     string
		fields map[string]any
	}{{A, follow}, {B, follow}, {C, follow}, {X, block}, {C, unfollow}}

	// Each side's live edge stream tells when its graph holds everything.
	edgeStreams := make([]<-chan any, len(sides))
	for i, s := range sides {
		st, err := s.rpc.Open(muxrpc.Method{"friends", "stream"}, muxrpc.Source)
		if err != nil {
			t.Fatal(err)
		}
		first := s.read(ctx, t, st, 1)
		if d := diff(map[string]any{}, first[0]); d != "" {
			t.Errorf("%s: friends.stream of an empty graph (-want +got):\n%s", s.name, d)
		}
		edgeStreams[i] = s.pump(t, st)
	}
	for i, s := range sides {
		r := "Rgo"
		if s == jsSide {
			r = "Rjs"
		}
		raws := append(slices.Clone(foreign), w.contact(r, s.self.String(), follow), w.contact(r, A, follow))
		for _, raw := range raws {
			if _, err := s.rpc.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(raw)); err != nil {
				t.Fatalf("%s: add: %v", s.name, err)
			}
		}
		for _, o := range own {
			content := map[string]any{"type": "contact", "contact": o.to}
			for k, v := range o.fields {
				content[k] = v
			}
			if _, err := s.rpc.Async(ctx, muxrpc.Method{"publish"}, content); err != nil {
				t.Fatalf("%s: publish: %v", s.name, err)
			}
		}
		take(ctx, t, edgeStreams[i], len(raws)+len(own))
	}

	compare := func(what string, got []any) {
		t.Helper()
		t.Logf("%s: %v", what, got[0])
		if d := diff(got[1], got[0]); d != "" {
			t.Errorf("%s: go differs from ssb-server (-js +go):\n%s", what, d)
		}
	}
	both := func(fn func(s *side) any) []any {
		var out []any
		for _, s := range sides {
			out = append(out, fn(s))
		}
		return out
	}
	mine := func(s *side) string { return s.self.String() }

	hopsArgs := []string{`{}`, `{"max":1}`, `{"max":3}`, `{"max":0}`, `{"max":"1"}`, `{"max":-1}`, `{"max":1.5}`, `{"max":"x"}`,
		`{"start":"A"}`, `{"start":"A","max":1}`, `{"start":"D","max":3}`, `{"start":"H","max":9}`, `{"start":"X"}`,
		`{"reverse":true}`, `{"reverse":true,"max":3}`, `{"start":"A","reverse":true}`, `{"start":"D","reverse":true,"max":1}`,
		`{"start":"@nope"}`, `{"start":"me","max":1}`, `"A"`, `null`}
	for _, a := range hopsArgs {
		compare("friends.hops "+a, both(func(s *side) any {
			return s.call(ctx, "friends.hops", w.arg(a, mine(s)))
		}))
	}
	compare("friends.hops ()", both(func(s *side) any { return s.call(ctx, "friends.hops") }))

	pairs := [][2]string{{"me", "A"}, {"me", "C"}, {"me", "X"}, {"me", "Z"}, {"A", "B"}, {"A", "D"}, {"A", "Y"}, {"B", "Z"},
		{"E", "D"}, {"E", "H"}, {"Z", "A"}, {"N", "me"}, {"Rgo", "me"}}
	for _, p := range pairs {
		for _, m := range []string{"friends.isFollowing", "friends.isBlocking"} {
			compare(fmt.Sprintf("%s %s->%s", m, p[0], p[1]), both(func(s *side) any {
				src, dst := w.ref(p[0], mine(s)), w.ref(p[1], mine(s))
				if p[0] == "Rgo" && s == jsSide {
					src = w.id("Rjs")
				}
				return s.call(ctx, m, map[string]any{"source": src, "dest": dst})
			}))
		}
	}

	getArgs := []string{`{}`, `{"source":"me"}`, `{"source":"A"}`, `{"source":"A","dest":"B"}`, `{"source":"A","dest":"D"}`,
		`{"source":"E","dest":"D"}`, `{"source":"A","dest":"Z"}`, `{"source":"Z"}`, `{"source":"Z","dest":"A"}`,
		`{"dest":"D"}`, `{"dest":"Z"}`, `{"dest":"N"}`, `{"dest":"me"}`}
	for _, a := range getArgs {
		compare("friends.get "+a, both(func(s *side) any { return s.call(ctx, "friends.get", w.arg(a, mine(s))) }))
	}
	compare("friends.get ()", both(func(s *side) any { return s.call(ctx, "friends.get") }))
	compare("manifest: friends", both(func(s *side) any { return s.call(ctx, "manifest").(map[string]any)["friends"] }))
	compare("friends.help", both(func(s *side) any { return s.call(ctx, "friends.help") }))

	for _, a := range []string{`{}`, `{"start":"A","max":5}`} {
		compare("friends.hopStream "+a, both(func(s *side) any {
			return s.source(ctx, t, "friends.hopStream", -1, w.arg(a, mine(s)))
		}))
	}
	for _, a := range []string{`{}`, `{"meta":true}`} {
		compare("friends.createFriendStream "+a, both(func(s *side) any {
			items := s.source(ctx, t, "friends.createFriendStream", -1, w.arg(a, mine(s)))
			return sorted(items) // the order of the keys of the hops object
		}))
	}
	compare("friends.stream first", both(func(s *side) any {
		return s.source(ctx, t, "friends.stream", 1)
	}))

	// Live: two more contact messages, B follows N and A unfollows D.
	var hops map[string]float64
	if err := goSide.rpc.AsyncJSON(ctx, &hops, muxrpc.Method{"friends", "hops"}); err != nil {
		t.Fatal(err)
	}
	inRange := 0
	for _, v := range hops {
		if v >= 0 {
			inRange++
		}
	}
	live := []struct {
		method string
		args   string
		n      int
		sort   int // the first items to compare as a set
	}{
		{"friends.hopStream", `{"live":true}`, 3, 0},
		{"friends.hopStream", `{"live":true,"old":false}`, 2, 0},
		{"friends.createFriendStream", `{"live":true,"meta":true}`, inRange + 2, inRange},
		{"friends.createFriendStream", `{"live":true,"old":false}`, 2, 0},
		{"friends.stream", `{}`, 3, 0},
	}
	streams := make([][]*muxrpc.Stream, len(sides))
	for i, s := range sides {
		for _, l := range live {
			st, err := s.rpc.Open(muxrpc.ParseMethod(l.method), muxrpc.Source, w.arg(l.args, mine(s)))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			streams[i] = append(streams[i], st)
		}
	}
	// The first item of each stream that has one, before anything changes.
	got := make([][][]any, len(sides))
	for i, s := range sides {
		got[i] = make([][]any, len(live))
		for j, l := range live {
			if first := l.n - 2; first > 0 {
				got[i][j] = s.read(ctx, t, streams[i][j], first)
			}
		}
	}
	later := [][]byte{w.contact("B", N, follow), w.contact("A", D, unfollow)}
	var wg sync.WaitGroup
	for i, s := range sides {
		for _, raw := range later {
			if _, err := s.rpc.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(raw)); err != nil {
				t.Fatalf("%s: add: %v", s.name, err)
			}
		}
		for j := range live {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got[i][j] = append(got[i][j], s.readQuiet(ctx, streams[i][j], 2)...)
			}()
		}
	}
	wg.Wait()
	for j, l := range live {
		g, js := got[0][j], got[1][j]
		if l.sort > 0 && len(g) >= l.sort && len(js) >= l.sort {
			g = append(sorted(g[:l.sort]), g[l.sort:]...)
			js = append(sorted(js[:l.sort]), js[l.sort:]...)
		}
		t.Logf("live %s %s: %v", l.method, l.args, g)
		if d := diff(js, g); d != "" {
			t.Errorf("live %s %s: go differs from ssb-server (-js +go):\n%s", l.method, l.args, d)
		}
	}
	compare("friends.hops after the live messages", both(func(s *side) any { return s.call(ctx, "friends.hops") }))
}

// readQuiet is read without failing the test (it runs in a goroutine):
// an error ends the list with {"error": ...}.
func (s *side) readQuiet(ctx context.Context, st *muxrpc.Stream, n int) []any {
	var out []any
	for len(out) < n {
		p, err := st.Recv(ctx)
		if err != nil {
			return append(out, map[string]any{"error": err.Error()})
		}
		out = append(out, s.normalize(p))
	}
	return out
}

// arg turns a JSON template into an argument: strings naming a feed of
// the world ("A") or "me" become that feed's id.
func (w *world) arg(tmpl, me string) json.RawMessage {
	var v any
	if err := json.Unmarshal([]byte(tmpl), &v); err != nil {
		w.t.Fatal(err)
	}
	var sub func(any) any
	sub = func(v any) any {
		switch x := v.(type) {
		case string:
			return w.ref(x, me)
		case map[string]any:
			for k, e := range x {
				x[k] = sub(e)
			}
		}
		return v
	}
	b, _ := json.Marshal(sub(v))
	return b
}

// ref is the id of a name of the world, or me's for "me", or s itself.
func (w *world) ref(s, me string) string {
	if s == "me" {
		return me
	}
	if kp, ok := w.kps[s]; ok {
		return kp.ID.String()
	}
	return s
}

func sorted(items []any) []any {
	out := slices.Clone(items)
	slices.SortFunc(out, func(a, b any) int {
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		return bytes.Compare(x, y)
	})
	return out
}

// TestPermissions: a stranger may call no friends method, on either
// server, and gets the same error.
func TestPermissions(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pr := startBoth(t, ctx)
	stranger, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	methods := []struct {
		name string
		typ  muxrpc.CallType
	}{{"friends.hops", muxrpc.Async}, {"friends.isFollowing", muxrpc.Async}, {"friends.isBlocking", muxrpc.Async},
		{"friends.get", muxrpc.Async}, {"friends.onEdge", muxrpc.Async}, {"friends.help", muxrpc.Async},
		{"friends.hopStream", muxrpc.Source}, {"friends.createFriendStream", muxrpc.Source}, {"friends.stream", muxrpc.Source}}
	var answers [2][]string
	for i, target := range []struct {
		addr string
		key  []byte
	}{{pr.goAddr.String(), pr.goSrv.Keys().Public}, {pr.js.Addr, pr.js.Keys.Public}} {
		c, err := client.Dial(ctx, target.addr, pr.caps, stranger, target.key, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range methods {
			opts := map[string]any{"source": stranger.ID.String(), "dest": stranger.ID.String()}
			if m.typ == muxrpc.Async {
				_, err = c.Async(ctx, muxrpc.ParseMethod(m.name), opts)
			} else {
				var st *muxrpc.Stream
				if st, err = c.Open(muxrpc.ParseMethod(m.name), m.typ, opts); err == nil {
					_, err = st.Recv(ctx)
					st.Close()
				}
			}
			answers[i] = append(answers[i], fmt.Sprintf("%s: %v", m.name, err))
		}
		c.Close()
	}
	if d := diff(answers[1], answers[0]); d != "" {
		t.Errorf("a stranger's calls: go differs from ssb-server (-js +go):\n%s", d)
	}
	t.Logf("%q", answers[0])
}

// diff is empty when want and got are equal, else both as JSON.
func diff(want, got any) string {
	if reflect.DeepEqual(want, got) {
		return ""
	}
	w, _ := json.Marshal(want)
	g, _ := json.Marshal(got)
	return fmt.Sprintf("-%s\n+%s", w, g)
}
