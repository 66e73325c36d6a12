package query_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	mrand "math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/servertest"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goServer runs our server with all.Default() (the query plugin among them) until
// the test ends, and returns its owner's connection.
func goServer(t testing.TB, caps [32]byte) (*server.Server, *muxrpc.Endpoint) {
	t.Helper()
	r := servertest.Start(t, server.Config{Path: t.TempDir(), Caps: servertest.Caps(caps)}, all.Default()...)
	return r.Server, r.Owner(t)
}

// side is one server under test, through its owner's connection.
type side struct {
	name string
	rpc  *muxrpc.Endpoint
	self string    // the server's id
	recv []float64 // receive timestamps of the loaded messages, in order
}

// corpus makes signed messages of three authors, in the order they are
// added: several types, channels, roots; claimed timestamps in the past
// (so that rts is the claimed one) and not in receive order across
// authors.
type corpus struct {
	authors []*keys.KeyPair
	prev    []message.FeedState
	n       int
}

func newCorpus(t *testing.T) *corpus {
	c := &corpus{}
	for range 3 {
		kp, err := keys.Generate(nil)
		if err != nil {
			t.Fatal(err)
		}
		c.authors = append(c.authors, kp)
	}
	c.prev = make([]message.FeedState, len(c.authors))
	return c
}

var (
	types    = []string{"post", "vote", "contact", "post", "about", "posting", "post"}
	channels = []string{"ssb", "go", "ssb-dev", "js"}
)

// next signs the next message, round robin over the authors.
func (c *corpus) next(t *testing.T) []byte {
	i := c.n
	c.n++
	a := i % len(c.authors)
	content := map[string]any{"type": types[i%len(types)], "text": fmt.Sprintf("message %d", i), "i": i}
	if i%3 == 0 {
		content["channel"] = channels[i%len(channels)]
	}
	if i%4 == 1 {
		content["root"] = fmt.Sprintf("%%root%d", i%3)
	}
	if i%5 == 2 {
		content["vote"] = map[string]any{"value": i % 2, "expression": "like"}
	}
	claimed := 1.5e12 + float64(a)*-40_000 + float64(i)*1000
	m, err := message.Create(c.authors[a], nil, &c.prev[a], claimed, content)
	if err != nil {
		t.Fatal(err)
	}
	c.prev[a] = m.State()
	return m.Raw
}

func (s *side) add(ctx context.Context, t *testing.T, raw []byte) {
	t.Helper()
	p, err := s.rpc.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(raw))
	if err != nil {
		t.Fatalf("%s: add: %v", s.name, err)
	}
	var item struct {
		Timestamp float64 `json:"timestamp"`
	}
	if err := json.Unmarshal(p.Body, &item); err != nil {
		t.Fatalf("%s: add answered %s", s.name, p.Body)
	}
	s.recv = append(s.recv, item.Timestamp)
}

// answer is a source's items, normalised, or its error.
type answer struct {
	Items []any
	Err   string
}

// normalize decodes an item with receive timestamps (the servers differ)
// replaced by "recv".
func normalize(b []byte) any {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return fmt.Sprintf("<not JSON %q>", b)
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case float64:
			if x > 1.6e12 {
				return "recv"
			}
		case []any:
			for i := range x {
				x[i] = walk(x[i])
			}
		case map[string]any:
			for k := range x {
				x[k] = walk(x[k])
			}
		}
		return v
	}
	return walk(v)
}

// read reads a source to its end (or n items when n > 0).
func (s *side) read(ctx context.Context, t *testing.T, method string, n int, arg any) answer {
	t.Helper()
	st, err := s.rpc.Open(muxrpc.ParseMethod(method), muxrpc.Source, arg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	return s.collect(ctx, st, n)
}

func (s *side) collect(ctx context.Context, st *muxrpc.Stream, n int) answer {
	var a answer
	for n <= 0 || len(a.Items) < n {
		p, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			a.Err = err.Error()
			break
		}
		if p.Type == muxrpc.String {
			a.Items = append(a.Items, map[string]any{"string": string(p.Body)})
			continue
		}
		a.Items = append(a.Items, normalize(p.Body))
	}
	return a
}

// arg fills a query's placeholders RECV<n> with this side's receive
// timestamp of message n, and parses it.
func (s *side) arg(t *testing.T, tmpl string) any {
	for i := len(s.recv) - 1; i >= 0; i-- {
		tmpl = strings.ReplaceAll(tmpl, fmt.Sprintf("RECV%d", i), fmt.Sprint(s.recv[i]))
	}
	var v any
	if err := json.Unmarshal([]byte(tmpl), &v); err != nil {
		t.Fatalf("%s: %v", tmpl, err)
	}
	return v
}

type pair struct{ goSide, jsSide *side }

func startBoth(t *testing.T, ctx context.Context) (pair, *corpus) {
	oracle.Require(t)
	var caps [32]byte
	rand.Read(caps[:])
	js, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Close)
	srv, local := goServer(t, caps)
	p := pair{goSide: &side{name: "go", rpc: local, self: srv.ID().String()}, jsSide: &side{name: "js", rpc: js.Client.Endpoint, self: js.Keys.ID.String()}}
	c := newCorpus(t)
	for range 42 {
		raw := c.next(t)
		p.goSide.add(ctx, t, raw)
		p.jsSide.add(ctx, t, raw)
	}
	return p, c
}

// readQueries are query.read arguments; AUTHOR<n> is author n's id.
var readQueries = []string{
	`{"query":[{"$filter":{"value":{"author":"AUTHOR0"}}}]}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR1","sequence":{"$gt":3,"$lte":9}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR1","sequence":{"$gte":4}}}}],"reverse":true}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR2"}}}],"limit":3}`,
	`{"query":[{"$filter":{"value":{"author":{"$prefix":"@"},"content":{"type":"vote"}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":{"$gt":"@"}}}},{"$map":["value","sequence"]}],"reverse":true,"limit":20}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"post"}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"post"}}}}],"reverse":true,"limit":4}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"post"}},"timestamp":{"$gt":RECV10,"$lte":RECV30}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$prefix":"po"}}}}},{"$map":{"t":["value","content","type"],"i":["value","content","i"]}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"post"},"timestamp":{"$gt":1499999950000}}}},{"$map":"key"}]}`,
	`{"query":[{"$filter":{"value":{"content":{"channel":"ssb"}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"channel":{"$prefix":"ssb"}}}}},{"$map":["value","content","channel"]}]}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR0","content":{"type":"post"}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR1","content":{"type":"vote"},"timestamp":{"$lt":1500000010000}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"root":"%root1"}}}}],"reverse":true}`,
	`{"query":[{"$filter":{"rts":{"$gte":1499990000000,"$lt":1500005000000}}},{"$map":["value","content","i"]}]}`,
	`{"query":[{"$filter":{"timestamp":{"$gte":RECV5,"$lt":RECV12}}}]}`,
	`{"query":[{"$filter":{"timestamp":{"$gt":RECV35}}}],"reverse":true}`,
	`{"query":[{"$filter":{"value":{"content":{"vote":{"value":1}}}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"i":{"$in":[1,2,3,40]}}}}},{"$map":{"i":["value","content","i"],"a":["value","author"]}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"text":{"$prefix":"message 1"}}}}},{"$map":["value","content","text"]}]}`,
	`{"query":[{"$reduce":{"$count":true}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"post"}}}},{"$reduce":{"author":["value","author"],"count":{"$count":true}}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":{"$prefix":""}}}}},{"$reduce":{"type":["value","content","type"],"n":{"$count":true},"is":{"$collect":["value","content","i"]}}}]}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR2"}}},{"$map":["value","sequence"]},{"$reduce":{"$sum":true}}]}`,
	`{"query":[{"$filter":{"value":{"content":{"type":"vote"}}}},{"$sort":[["value","content","i"]]},{"$map":["value","content","i"]}]}`,
	`{"query":{"value":{"author":"AUTHOR0"}},"limit":2}`,
	`{"query":"[{\"$filter\":{\"value\":{\"content\":{\"type\":\"about\"}}}}]"}`,
	`"[{\"$filter\":{\"value\":{\"content\":{\"type\":\"contact\"}}}},{\"$map\":[\"value\",\"content\",\"i\"]}]"`,
	`{"query":[{"$filter":{"value":{"content":{"type":"nothing"}}}}]}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR0"}}},{"$map":["value","content","i"]}],"limit":1.5}`,
	`{"query":[{"$filter":{"value":{"author":"AUTHOR0"}}}],"limit":-1,"keys":false,"values":false}`,
}

func TestReadLikeSSBQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, c := startBoth(t, ctx)
	t.Run("read", func(t *testing.T) { p.compareReads(ctx, t, c) })
	t.Run("manifest", func(t *testing.T) { p.compareManifest(ctx, t) })
	t.Run("explain", func(t *testing.T) { p.compareExplain(ctx, t, c) })
	t.Run("live", func(t *testing.T) { p.compareLive(ctx, t, c) })
	t.Run("private", func(t *testing.T) { p.comparePrivate(ctx, t) })
}

func (p pair) compareReads(ctx context.Context, t *testing.T, c *corpus) {
	for _, tmpl := range readQueries {
		for i, a := range c.authors {
			tmpl = strings.ReplaceAll(tmpl, fmt.Sprintf("AUTHOR%d", i), a.ID.String())
		}
		g := p.goSide.read(ctx, t, "query.read", 0, p.goSide.arg(t, tmpl))
		j := p.jsSide.read(ctx, t, "query.read", 0, p.jsSide.arg(t, tmpl))
		if len(j.Items) == 0 && !strings.Contains(tmpl, "nothing") {
			t.Errorf("%s: ssb-server gives nothing: the case tests little", tmpl)
		}
		if (g.Err != "") != (j.Err != "") || !reflect.DeepEqual(g.Items, j.Items) {
			gb, _ := json.Marshal(g)
			jb, _ := json.Marshal(j)
			t.Errorf("%s:\n go %.2000s\n js %.2000s", tmpl, gb, jb)
		}
	}
}

// comparePrivate publishes a private message to itself on each server:
// ssb-query reads it decrypted (ssb-db's views see unboxed messages),
// through the type index, a scan, and the author's feed.
func (p pair) comparePrivate(ctx context.Context, t *testing.T) {
	for _, s := range []*side{p.goSide, p.jsSide} {
		for _, text := range []string{"first secret", "second secret"} {
			content := map[string]any{"type": "secret", "text": text, "channel": "hidden", "recps": []string{s.self}}
			if _, err := s.rpc.Async(ctx, muxrpc.Method{"publish"}, content); err != nil {
				t.Fatalf("%s: publish: %v", s.name, err)
			}
		}
	}
	shape := `{"$map":{"text":["value","content","text"],"private":["value","private"],"box":["value","cyphertext",{"$type":true}],"seq":["value","sequence"]}}`
	for _, q := range []string{
		`{"query":[{"$filter":{"value":{"content":{"type":"secret"}}}},` + shape + `]}`,
		`{"query":[{"$filter":{"value":{"content":{"type":"secret"}}}},` + shape + `],"reverse":true}`,
		`{"query":[{"$filter":{"value":{"private":true}}},` + shape + `]}`,
		`{"query":[{"$filter":{"value":{"author":"SELF","content":{"text":{"$prefix":"second"}}}}},` + shape + `]}`,
		`{"query":[{"$filter":{"value":{"author":"SELF","content":{"type":"secret"}}}},` + shape + `]}`,
		`{"query":[{"$filter":{"value":{"content":{"channel":"hidden"}}}},` + shape + `]}`,
		`{"query":[{"$filter":{"value":{"content":{"channel":"hidden"}}}},` + shape + `],"reverse":true,"limit":1}`,
		`{"query":[{"$filter":{"value":{"author":"SELF","content":{"type":"secret"}}}},` + shape + `],"reverse":true}`,
	} {
		g := p.goSide.read(ctx, t, "query.read", 0, p.goSide.arg(t, strings.ReplaceAll(q, "SELF", p.goSide.self)))
		j := p.jsSide.read(ctx, t, "query.read", 0, p.jsSide.arg(t, strings.ReplaceAll(q, "SELF", p.jsSide.self)))
		if len(j.Items) == 0 || g.Err != "" || j.Err != "" || !reflect.DeepEqual(g.Items, j.Items) {
			t.Errorf("%s:\n go %v %q\n js %v %q", q, g.Items, g.Err, j.Items, j.Err)
		}
	}
}

// badReads are query.read arguments that ssb-server answers by crashing
// (map-filter-reduce throws inside flumedb's callback) or with an error:
// ours must fail the call, quickly.
var badReads = []struct{ arg, want string }{
	{`{"query":[{"$foo":{}}]}`, "unknown function:$foo"},
	{`{"query":[{"filter":{}}]}`, "unknown function:filter"},
	{`{"query":[{"$filter":{"value":{"content":{"type":{"$bar":1}}}}}]}`, `could not process:{"$bar":1}`},
	{`{"query":[{"$reduce":{"$first":true}}]}`, `could not process:{"$first":true}`},
	{`{"query":[{"$reduce":{"$last":["value","sequence"]}}]}`, `could not process:{"$last"`},
	{`{"query":[{"$map":["value",null]}]}`, "could not process:null"},
	{`{"query":"not json"}`, "invalid JSON"},
	{`"{bad"`, "invalid JSON"},
	{`{"query":[]}`, "reading '$filter'"},
	{`{"query":[null]}`, "must not be null"},
	{`{"query":[{"$filter":{"value":{"content":null}}}]}`, "Cannot convert undefined or null to object"},
	{`{"query":[{"$filter":{"value":{"content":{"type":{"$eq":"post"}}}}}]}`, "can only encode arrays"},
	{`{"query":[{"$filter":{"value":{"author":{"$in":5}}}}]}`, "b.indexOf is not a function"},
	{`{"query":[{"$filter":{}}],"limit":"5"}`, "limit must be a number"},
	{`{"query":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "nested deeper than 32"},
	{`{"query":[{"$filter":{"value":{"content":{"type":{"$in":[` + strings.Repeat(`"x",`, 5000) + `"y"]}}}}}]}`, "more than 4096 values"},
	{`{"query":"` + strings.Repeat(" ", 70000) + `[]"}`, "more than 65536"},
}

// TestBadReads checks that bad queries fail with clear errors, and that a
// huge limit is just a limit.
func TestBadReads(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	_, rpc := goServer(t, caps)
	s := &side{name: "go", rpc: rpc}
	c := newCorpus(t)
	for range 5 {
		s.add(ctx, t, c.next(t))
	}
	for _, b := range badReads {
		var arg any
		if err := json.Unmarshal([]byte(b.arg), &arg); err != nil {
			t.Fatal(err)
		}
		a := s.read(ctx, t, "query.read", 0, arg)
		if !strings.Contains(a.Err, b.want) || len(a.Items) > 0 {
			t.Errorf("%.80s: got %v, error %q; want an error with %q", b.arg, a.Items, a.Err, b.want)
		}
	}
	deep := json.RawMessage(`{"query":[{"$filter":` + strings.Repeat("[", 600) + strings.Repeat("]", 600) + `}]}`)
	if a := s.read(ctx, t, "query.read", 0, deep); a.Err == "" || len(a.Items) > 0 {
		t.Errorf("600 arrays deep: %d items, error %q", len(a.Items), a.Err)
	}
	// A live reduce never ends (its result comes at the end), as in
	// ssb-query: nothing arrives.
	short, cancelShort := context.WithTimeout(ctx, 300*time.Millisecond)
	a := s.read(short, t, "query.read", 0, map[string]any{"query": []any{map[string]any{"$reduce": map[string]any{"$count": true}}}, "live": true})
	cancelShort()
	if len(a.Items) > 0 || !strings.Contains(a.Err, "deadline") {
		t.Errorf("live reduce: %v, %q; want nothing until the caller gives up", a.Items, a.Err)
	}
	a = s.read(ctx, t, "query.read", 0, map[string]any{"query": []any{map[string]any{"$map": "key"}}, "limit": 1e300})
	if a.Err != "" || len(a.Items) != 5 {
		t.Errorf("limit 1e300: %v, %q; want the 5 keys", a.Items, a.Err)
	}
}

func (s *side) async(ctx context.Context, method string, args ...any) any {
	pk, err := s.rpc.Async(ctx, muxrpc.ParseMethod(method), args...)
	if err != nil {
		return map[string]any{"error": true}
	}
	return normalize(pk.Body)
}

// compareManifest checks the query section of both manifests, and help.
func (p pair) compareManifest(ctx context.Context, t *testing.T) {
	var gm, jm map[string]any
	gm, _ = p.goSide.async(ctx, "manifest").(map[string]any)
	jm, _ = p.jsSide.async(ctx, "manifest").(map[string]any)
	if gm["query"] == nil || !reflect.DeepEqual(gm["query"], jm["query"]) {
		t.Errorf("manifest: go %v, js %v", gm["query"], jm["query"])
	}
	if g, j := p.goSide.async(ctx, "query.help"), p.jsSide.async(ctx, "query.help"); !reflect.DeepEqual(g, j) {
		t.Errorf("help:\n go %v\n js %v", g, j)
	}
}

func (p pair) compareExplain(ctx context.Context, t *testing.T, c *corpus) {
	args := []string{
		`{"query":[{"$filter":{"value":{"author":"AUTHOR0","sequence":{"$gt":2}}}}],"reverse":true}`,
		`{"query":[{"$filter":{"value":{"content":{"type":{"$prefix":"po"},"channel":"ssb"}}}}],"live":true}`,
		`"[{\"$filter\":{\"value\":{\"author\":\"AUTHOR1\",\"content\":{\"type\":\"vote\"}}}}]"`,
		`{"query":[{"$filter":{"timestamp":{"$gt":5}}},{"$map":true}],"old":false,"sync":true}`,
		`{"query":[{"$map":true}]}`,
		`{"query":[{"$filter":{}},{"$sort":[["value","author"],["value","sequence"]]}]}`,
		`{"query":[{"$filter":{"value":{"content":{"type":{"$eq":"post"}}}}}]}`,
	}
	for _, a := range args {
		for i, k := range c.authors {
			a = strings.ReplaceAll(a, fmt.Sprintf("AUTHOR%d", i), k.ID.String())
		}
		g := p.goSide.async(ctx, "query.explain", p.goSide.arg(t, a))
		j := p.jsSide.async(ctx, "query.explain", p.jsSide.arg(t, a))
		if !reflect.DeepEqual(g, j) {
			t.Errorf("explain %s:\n go %v\n js %v", a, g, j)
		}
	}
}

// compareLive opens live reads on both servers, adds messages to both and
// compares what the reads give.
func (p pair) compareLive(ctx context.Context, t *testing.T, c *corpus) {
	reads := []struct {
		arg string
		n   int // items to wait for
	}{
		{`{"query":[{"$filter":{"value":{"content":{"type":"post"}}}}],"old":false}`, 3},
		{`{"query":[{"$filter":{"value":{"author":"AUTHOR1"}}},{"$map":["value","sequence"]}],"live":true}`, 14 + 1 + 3}, // with {sync: true}
		{`{"query":[{"$filter":{"value":{"content":{"channel":"ssb"}}}},{"$map":"key"}],"live":true,"reverse":true}`, 4 + 1 + 1},
		{`{"query":[{"$filter":{"value":{"content":{"type":"vote"}}}},{"$map":["value","content","i"]}],"live":true,"sync":false}`, 6 + 2},
		{`{"query":[{"$filter":{"value":{"content":{"i":{"$gt":38}}}}},{"$map":["value","content","i"]}],"live":true,"limit":5}`, 3 + 2},
		{`{"query":[{"$map":["value","content","i"]}],"live":true,"old":false,"limit":4}`, 4},
	}
	type open struct{ g, j *muxrpc.Stream }
	var streams []open
	for _, r := range reads {
		a := r.arg
		for i, k := range c.authors {
			a = strings.ReplaceAll(a, fmt.Sprintf("AUTHOR%d", i), k.ID.String())
		}
		g, err := p.goSide.rpc.Open(muxrpc.ParseMethod("query.read"), muxrpc.Source, p.goSide.arg(t, a))
		if err != nil {
			t.Fatal(err)
		}
		j, err := p.jsSide.rpc.Open(muxrpc.ParseMethod("query.read"), muxrpc.Source, p.jsSide.arg(t, a))
		if err != nil {
			t.Fatal(err)
		}
		streams = append(streams, open{g, j})
	}
	// A message each read answers before the new ones: the old phase is
	// over once it arrives.
	first := make([]answer, len(reads))
	for i := 1; i <= 2; i++ { // reads with old messages
		first[i] = p.goSide.collect(ctx, streams[i].g, 1)
		if j := p.jsSide.collect(ctx, streams[i].j, 1); !reflect.DeepEqual(first[i], j) {
			t.Errorf("live %s: first item: go %v, js %v", reads[i].arg, first[i], j)
		}
	}
	for range 9 {
		raw := c.next(t)
		p.goSide.add(ctx, t, raw)
		p.jsSide.add(ctx, t, raw)
	}
	for i, r := range reads {
		n := r.n - len(first[i].Items)
		g := p.goSide.collect(ctx, streams[i].g, n)
		j := p.jsSide.collect(ctx, streams[i].j, n)
		if g.Err != "" || j.Err != "" || !reflect.DeepEqual(g.Items, j.Items) {
			t.Errorf("live %s:\n go %v %q\n js %v %q", r.arg, g.Items, g.Err, j.Items, j.Err)
		}
		if i != 4 && i != 5 {
			streams[i].g.Close()
			streams[i].j.Close()
		}
	}
	// the limited reads end after their items
	for _, i := range []int{4, 5} {
		if a := p.goSide.collect(ctx, streams[i].g, 0); a.Err != "" || len(a.Items) != 0 {
			t.Errorf("live %s went on: %v %q", reads[i].arg, a.Items, a.Err)
		}
	}
}

// TestRandomReadsLikeSSBQuery runs random filters over the indexed fields
// (exact values, prefixes and ranges), with reverse and limit, through
// query.read on both servers.
func TestRandomReadsLikeSSBQuery(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, c := startBoth(t, ctx)
	r := mrand.New(mrand.NewPCG(7, 11))
	ids := []string{c.authors[0].ID.String(), c.authors[1].ID.String(), c.authors[2].ID.String()}
	pick := func(xs ...string) string { return xs[r.IntN(len(xs))] }
	str := func(s string) string { b, _ := json.Marshal(s); return string(b) }
	cond := func(exact string, lo, hi string) string {
		switch r.IntN(5) {
		case 0, 1:
			return exact
		case 2:
			return `{"$gt":` + lo + `}`
		case 3:
			return `{"$gte":` + lo + `,"$lt":` + hi + `}`
		}
		return `{"$lte":` + hi + `}`
	}
	fields := map[string]func() string{
		"author": func() string {
			if r.IntN(4) == 0 {
				return `{"$prefix":` + str(ids[r.IntN(3)][:2]) + `}`
			}
			return cond(str(pick(ids...)), str(pick(ids...)), str(pick(ids...)))
		},
		"sequence": func() string { return cond(fmt.Sprint(1+r.IntN(14)), fmt.Sprint(r.IntN(8)), fmt.Sprint(6+r.IntN(10))) },
		"type": func() string {
			if r.IntN(4) == 0 {
				return `{"$prefix":` + str(pick("po", "v", "c", "a")) + `}`
			}
			return cond(str(pick(types...)), str(pick("a", "c", "p")), str(pick("q", "w", "z")))
		},
		"channel": func() string {
			if r.IntN(4) == 0 {
				return `{"$prefix":"ssb"}`
			}
			return cond(str(pick(channels...)), `"a"`, `"t"`)
		},
		"root": func() string { return cond(str(fmt.Sprintf("%%root%d", r.IntN(3))), `"%root0"`, `"%root2"`) },
		"claimed": func() string {
			return cond("1500000000000", fmt.Sprint(1.4999e12+float64(r.IntN(60))*1000), fmt.Sprint(1.5e12+float64(r.IntN(60))*1000))
		},
		"received": func() string {
			return cond("RECV3", fmt.Sprintf("RECV%d", r.IntN(20)), fmt.Sprintf("RECV%d", 20+r.IntN(22)))
		},
		"rts": func() string {
			return cond("1500000000000", fmt.Sprint(1.4999e12+float64(r.IntN(60))*1000), fmt.Sprint(1.5e12+float64(r.IntN(60))*1000))
		},
	}
	names := []string{"author", "sequence", "type", "channel", "root", "claimed", "received", "rts"}
	nonEmpty := 0
	const runs = 150
	for range runs {
		value, content, top := map[string]string{}, map[string]string{}, map[string]string{}
		for range 1 + r.IntN(3) {
			switch n := names[r.IntN(len(names))]; n {
			case "author", "sequence":
				value[n] = fields[n]()
			case "claimed":
				value["timestamp"] = fields[n]()
			case "type", "channel", "root":
				content[n] = fields[n]()
			case "received":
				top["timestamp"] = fields[n]()
			default:
				top[n] = fields[n]()
			}
		}
		obj := func(m map[string]string) string {
			var parts []string
			for _, k := range slices.Sorted(maps.Keys(m)) {
				parts = append(parts, str(k)+":"+m[k])
			}
			return "{" + strings.Join(parts, ",") + "}"
		}
		if len(content) > 0 {
			value["content"] = obj(content)
		}
		if len(value) > 0 {
			top["value"] = obj(value)
		}
		arg := `{"query":[{"$filter":` + obj(top) + `},{"$map":"key"}]`
		if r.IntN(2) == 0 { // the items themselves
			arg = `{"query":[{"$filter":` + obj(top) + `}]`
		}
		if r.IntN(2) == 0 {
			arg += `,"reverse":true`
		}
		if r.IntN(3) == 0 {
			arg += fmt.Sprintf(`,"limit":%d`, 1+r.IntN(5))
		}
		arg += "}"
		g := p.goSide.read(ctx, t, "query.read", 0, p.goSide.arg(t, arg))
		j := p.jsSide.read(ctx, t, "query.read", 0, p.jsSide.arg(t, arg))
		if len(j.Items) > 0 {
			nonEmpty++
		}
		if g.Err != "" || j.Err != "" || !reflect.DeepEqual(g.Items, j.Items) {
			var ex any
			ex = p.goSide.async(ctx, "query.explain", p.goSide.arg(t, arg))
			t.Errorf("%s (plan %v):\n go %v %q\n js %v %q", arg, ex, g.Items, g.Err, j.Items, j.Err)
		}
	}
	t.Logf("%d of %d random reads found messages", nonEmpty, runs)
	if nonEmpty < runs/3 {
		t.Errorf("only %d of %d random reads found messages", nonEmpty, runs)
	}
}
