package links_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/links"
	"github.com/scuttlego/scuttle/ssb/plugins/private"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

func loaded(t *testing.T) (*server.Server, *muxrpc.Endpoint, []*author, map[string]string) {
	t.Helper()
	srv, local := goServer(t, t.TempDir())
	authors, vars := corpus(t)
	for _, a := range authors {
		if _, err := srv.Store().Append(context.Background(), a.raws...); err != nil {
			t.Fatal(err)
		}
	}
	return srv, local, authors, vars
}

func call(t *testing.T, e *muxrpc.Endpoint, method, arg string, vars map[string]string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := collect(ctx, e, method, expand(arg, vars))
	if err != nil {
		t.Fatalf("%s(%s): %v", method, arg, err)
	}
	return out
}

func field(t *testing.T, item, path string) string {
	t.Helper()
	v, err := message.Parse([]byte(item))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range strings.Split(path, ".") {
		v, _ = v.Get(k)
	}
	if v.Kind() == message.String {
		return v.Str()
	}
	return v.String()
}

// TestBacklinks checks backlinks.read against ssb-backlinks' rules: links
// anywhere in the content, channels, each message once per dest, ordered
// by the messages' own timestamps.
func TestBacklinks(t *testing.T) {
	_, local, authors, vars := loaded(t)
	a, b := authors[0], authors[1]
	keys := func(items []string) []string {
		var ks []string
		for _, it := range items {
			ks = append(ks, field(t, it, "key"))
		}
		return ks
	}
	// root: linked at the top level by the reply, the vote and the test
	// message: the same as links({dest}) gives, in claimed-time order.
	got := call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}}],"index":"DTA"}`, vars)
	want := []string{b.ids[0].String(), authors[2].ids[0].String(), b.ids[3].String()}
	if !slices.Equal(keys(got), want) {
		t.Fatalf("backlinks of root: %v, want %v", keys(got), want)
	}
	for _, it := range got {
		if field(t, it, "dest") != vars["root"] || field(t, it, "value.content.type") == "" || field(t, it, "timestamp") == "" {
			t.Fatalf("backlink %s lacks {key, value, timestamp, dest}", it)
		}
	}
	var viaLinks []string
	for _, it := range call(t, local, "links", `{"dest":"$root$"}`, vars) {
		viaLinks = append(viaLinks, field(t, it, "key"))
	}
	slices.Sort(viaLinks)
	viaLinks = slices.Compact(viaLinks)
	sorted := slices.Sorted(slices.Values(keys(got)))
	if !slices.Equal(sorted, viaLinks) {
		t.Fatalf("backlinks %v and links %v of root differ", sorted, viaLinks)
	}
	// reply: also the nested link of a's "deep" post, which links does
	// not see.
	got = call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$reply$"}}]}`, vars)
	if !slices.Contains(keys(got), a.ids[2].String()) {
		t.Fatalf("the nested link is missing: %v", keys(got))
	}
	// channels: "channel":"scuttle", "x":"#scuttle", "channel":"a b".
	got = call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"#scuttle"}}]}`, vars)
	if !slices.Equal(keys(got), []string{a.ids[0].String(), b.ids[4].String()}) {
		t.Fatalf("#scuttle: %v", keys(got))
	}
	if got := call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"#ab"}}]}`, vars); len(got) != 1 {
		t.Fatalf("#ab: %v", got)
	}
	// $prefix, a filter on the value, reverse and limit.
	got = call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":{"$prefix":"#"}}}]}`, vars)
	for _, it := range got {
		if !strings.HasPrefix(field(t, it, "dest"), "#") {
			t.Fatalf("$prefix # gave %s", it)
		}
	}
	if len(got) != 5 { // #scuttle twice, #news, #ab, and the text "#tags" (any string that looks like a channel)
		t.Fatalf("$prefix #: %d results", len(got))
	}
	got = call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$root$","value":{"content":{"type":"vote"}}}}],"reverse":true}`, vars)
	if !slices.Equal(keys(got), []string{authors[2].ids[0].String()}) {
		t.Fatalf("votes on root: %v", keys(got))
	}
	rev := call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}}],"reverse":true,"limit":2}`, vars)
	if !slices.Equal(keys(rev), []string{want[2], want[1]}) {
		t.Fatalf("reverse, limit 2: %v", keys(rev))
	}
	got = call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}},{"$map":{"k":"key","t":["value","content","type"]}}]}`, vars)
	if len(got) != 3 || got[0] != `{"k":"`+want[0]+`","t":"post"}` {
		t.Fatalf("$map: %v", got)
	}
}

// openLive opens a live source and returns a function reading its next
// item (or "" at its end).
func openLive(t *testing.T, e *muxrpc.Endpoint, method, arg string, vars map[string]string) func() string {
	t.Helper()
	s, err := e.Open(muxrpc.Method(strings.Split(method, ".")), muxrpc.Source, expand(arg, vars))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return func() string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		p, err := s.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return ""
		}
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		if p.Type == muxrpc.String {
			return `"` + string(p.Body) + `"`
		}
		return mustCompact(t, p.Body)
	}
}

func mustCompact(t *testing.T, b []byte) string {
	v, err := message.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return v.String()
}

// TestLive: old results, {sync: true}, then links of new messages as they
// are stored, in all three methods; old: false has no sync.
func TestLive(t *testing.T) {
	srv, local, authors, vars := loaded(t)
	a := authors[0]
	nextLinks := openLive(t, local, "links", `{"dest":"$root$","live":true}`, vars)
	nextNew := openLive(t, local, "links", `{"dest":"$root$","old":false,"meta":false}`, vars)
	nextL2 := openLive(t, local, "links2.read", `{"query":[{"$filter":{"dest":"$root$"}}],"live":true}`, vars)
	nextBL := openLive(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}}],"live":true}`, vars)
	for name, next := range map[string]func() string{"links": nextLinks, "links2": nextL2, "backlinks": nextBL} {
		for {
			it := next()
			if it == "" {
				t.Fatalf("%s ended", name)
			}
			if it == `{"sync":true}` {
				break
			}
		}
	}
	id := a.post(t, `{"type":"post","text":"live","root":"`+vars["root"]+`","other":"`+vars["reply"]+`"}`)
	if _, err := srv.Store().Append(context.Background(), a.raws[len(a.raws)-1]); err != nil {
		t.Fatal(err)
	}
	if got := nextLinks(); field(t, got, "key") != id.String() || field(t, got, "rel") != "root" {
		t.Fatalf("links live: %s", got)
	}
	if got := nextNew(); got != `"`+id.String()+`"` {
		t.Fatalf("links old:false: %s", got)
	}
	if got := nextL2(); field(t, got, "rel") != `["root"]` || field(t, got, "source") != a.kp.ID.String() {
		t.Fatalf("links2 live: %s", got)
	}
	if got := nextBL(); field(t, got, "key") != id.String() || field(t, got, "dest") != vars["root"] {
		t.Fatalf("backlinks live: %s", got)
	}
}

// TestBadInput: invalid options are refused with an error; limits are
// bounded, not trusted.
func TestBadInput(t *testing.T) {
	_, local, _, vars := loaded(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, tc := range []struct{ method, arg, want string }{
		{"links", `null`, "opts"},
		{"links", `{"source":"@nope"}`, "id|filter"},
		{"links", `{"dest":5}`, "id|filter"},
		{"links", `{"rel":{"a":1}}`, "rel"},
		{"links", `{"live":"yes"}`, "boolean"},
		{"links", `{"meta":false,"keys":false}`, "makes no sense"},
		{"links2.read", `{"query":"[{"}`, "query"},
		{"links2.read", `{"query":[{"$filter":{"dest":"$root$"}},{"$reduce":{"$count":true}}]}`, "$reduce"},
		{"links2.read", `{"query":[{"$filter":{"dest":{"$eq":"x"}}}]}`, "encode"},
		{"links2.read", `{"query":[{"$filter":{"dest":"$root$"}},{"$what":1}]}`, "unknown function"},
		{"links2.read", `{"query":[{"$filter":{"dest":"$root$"}}],"limit":"10"}`, "limit"},
		{"backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}}],"index":"XYZ"}`, "index"},
		{"backlinks.read", `{"query":[{"$filter":{"dest":{"$frob":1}}}]}`, "could not process"},
		{"backlinks.read", `7`, "options"},
	} {
		_, err := collect(ctx, local, tc.method, expand(tc.arg, vars))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s(%s): %v, want an error about %q", tc.method, tc.arg, err, tc.want)
		}
	}
	// A huge limit is a limit like any other.
	if got := call(t, local, "links2.read", `{"query":[{"$filter":{"dest":"$root$"}}],"limit":1e300}`, vars); len(got) != 6 {
		t.Fatalf("limit 1e300: %d results", len(got))
	}
	if got := call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}}],"limit":1e300}`, vars); len(got) != 3 {
		t.Fatalf("limit 1e300: %d results", len(got))
	}
	var help map[string]any
	if err := local.AsyncJSON(ctx, &help, muxrpc.Method{"links2", "help"}); err != nil || help["commands"] == nil {
		t.Fatalf("links2.help: %v %v", help, err)
	}
}

// TestRestart: a server opened again resumes its view from the checkpoint
// and answers as before.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	authors, vars := corpus(t)
	srv, local, stop := startServer(t, dir, links.New())
	for _, a := range authors {
		if _, err := srv.Store().Append(context.Background(), a.raws...); err != nil {
			t.Fatal(err)
		}
	}
	before := call(t, local, "links", `{}`, vars)
	if len(before) == 0 {
		t.Fatal("no links")
	}
	stop()
	{
		srv, local, _ := startServer(t, dir, links.New())
		if after := call(t, local, "links", `{}`, vars); !slices.Equal(before, after) {
			t.Fatalf("after reopening:\n%v\nbefore:\n%v", after, before)
		}
		var p *links.Plugin
		for _, pl := range srv.Plugins() {
			p, _ = pl.(*links.Plugin)
		}
		st, err := p.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		s := st["links"].(map[string]any)
		if s["seq"] != srv.Store().Durable() || s["rebuilds"] != 0 {
			t.Fatalf("after reopening: %v, want the checkpoint at %d", s, srv.Store().Durable())
		}
	}
}

// TestRebuildMethod: the plugin's Rebuild drops and rebuilds the view.
func TestRebuildMethod(t *testing.T) {
	srv, local, _, vars := loaded(t)
	before := call(t, local, "links", `{}`, vars)
	var p *links.Plugin
	for _, pl := range srv.Plugins() {
		p, _ = pl.(*links.Plugin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if after := call(t, local, "links", `{}`, vars); !slices.Equal(before, after) {
		t.Fatalf("after Rebuild:\n%v\nbefore:\n%v", after, before)
	}
	st, _ := p.Status(ctx)
	if st["links"].(map[string]any)["rebuilds"] != 1 {
		t.Fatalf("status %v", st)
	}
}

// TestPrivate: a private message to us is indexed by its plaintext, as in
// ssb-db 20: links finds it; with meta its value is the boxed original,
// without meta the opened one.
func TestPrivate(t *testing.T) {
	srv, local := goServerWith(t, private.New(), links.New())
	target := refs.NewMessage([32]byte{7}).String()
	boxed, err := privatebox.BoxString([]byte(`{"type":"post","text":"psst","root":"`+target+`","recps":["`+srv.ID().String()+`"]}`), []refs.Feed{srv.ID()})
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthor(t)
	b, _ := json.Marshal(boxed)
	id := a.post(t, string(b))
	if _, err := srv.Store().Append(context.Background(), a.raws...); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"t": target}
	got := call(t, local, "links", `{"dest":"$t$","values":true}`, vars)
	if len(got) != 1 || field(t, got[0], "key") != id.String() || field(t, got[0], "value.content") != boxed {
		t.Fatalf("links with meta: %v", got)
	}
	got = call(t, local, "links", `{"dest":"$t$","values":true,"meta":false}`, vars)
	if len(got) != 1 || field(t, got[0], "value.content.text") != "psst" {
		t.Fatalf("links without meta: %v", got)
	}
	got = call(t, local, "backlinks.read", `{"query":[{"$filter":{"dest":"$t$"}}]}`, vars)
	if len(got) != 1 || field(t, got[0], "value.content.text") != "psst" {
		t.Fatalf("backlinks: %v", got)
	}
}

// TestDeleted: links of messages deleted from the store are left out, as
// ssb-db drops index entries whose message the log no longer has, before
// and after a rebuild.
func TestDeleted(t *testing.T) {
	srv, local, authors, vars := loaded(t)
	b := authors[1]
	if _, err := srv.Store().DeleteFeed(context.Background(), b.kp.ID); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		for _, q := range []struct{ method, arg string }{
			{"links", `{"dest":"$root$","values":true}`},
			{"links2.read", `{"query":[{"$filter":{"dest":"$root$"}}]}`},
			{"backlinks.read", `{"query":[{"$filter":{"dest":"$root$"}}]}`},
		} {
			got := call(t, local, q.method, q.arg, vars)
			if len(got) == 0 {
				t.Fatalf("%s %s: nothing left (the vote is not deleted)", when, q.method)
			}
			for _, it := range got {
				if strings.Contains(it, b.kp.ID.String()) {
					t.Fatalf("%s %s: a deleted message's link: %s", when, q.method, it)
				}
			}
		}
	}
	check("before a rebuild")
	var p *links.Plugin
	for _, pl := range srv.Plugins() {
		p, _ = pl.(*links.Plugin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	check("after a rebuild")
}
