package db

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// view is a test plugin that keeps a view beside the log: the keys of the
// messages it has read, made again by Rebuild.
type view struct {
	name string
	fail error // Rebuild's error, if any

	mu       sync.Mutex
	st       *store.Store
	keys     []string
	rebuilds int
}

func (v *view) Name() string                { return v.name }
func (v *view) Methods() []server.Method    { return nil }
func (v *view) Init(s *server.Server) error { v.st = s.Store(); return nil }

// Rebuild reads the whole log into the view.
func (v *view) Rebuild(ctx context.Context) error {
	if v.fail != nil {
		return v.fail
	}
	it, err := v.st.Log(ctx, store.LogQuery{})
	if err != nil {
		return err
	}
	keys := []string{}
	for {
		item, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		keys = append(keys, item.Key.String())
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.keys, v.rebuilds = keys, v.rebuilds+1
	return nil
}

func (v *view) state() ([]string, int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return slices.Clone(v.keys), v.rebuilds
}

// rebuild checks the store, then rebuilds every plugin's view and answers
// false as ssb-db does; a view that fails is named in the error, and the
// others are rebuilt all the same.
func TestRebuildViews(t *testing.T) {
	good, bad, other := &view{name: "links"}, &view{name: "broken", fail: errors.New("disk full")}, &view{name: "other"}
	s := startServer(t, good, bad, other)
	e := s.local(t)
	ctx := context.Background()
	ks, raws := feeds(t, 2, 2)
	add(t, e, raws[0]...)
	add(t, e, raws[1]...)
	_, err := e.Async(ctx, muxrpc.Method{"rebuild"})
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "disk full") || strings.Contains(err.Error(), "links") {
		t.Fatalf("rebuild with a failing view: %v, want its name and error only", err)
	}
	for _, v := range []*view{good, other} {
		if keys, n := v.state(); n != 1 || len(keys) != 4 {
			t.Fatalf("view %s: %d rebuilds, %d keys; want 1 and 4", v.name, n, len(keys))
		}
	}
	bad.fail = nil
	if _, err := e.Async(ctx, muxrpc.Method{"del"}, ks[0].ID.String()); err != nil {
		t.Fatal(err)
	}
	var got any
	if err := e.AsyncJSON(ctx, &got, muxrpc.Method{"rebuild"}); err != nil || got != false {
		t.Fatalf("rebuild: %v, %v; want false", got, err)
	}
	for _, v := range []*view{good, bad, other} {
		keys, _ := v.state()
		if len(keys) != 2 {
			t.Fatalf("view %s after deleting a feed and rebuilding: %v, want the other feed's 2", v.name, keys)
		}
	}
}

// del as the owner sees it: our own feed and a message in the middle of
// a feed are refused and change nothing; a feed's messages go from the
// latest back, then the feed; the store checks out after each, and the
// queries no longer give what was deleted.
func TestDel(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx := context.Background()
	ks, raws := feeds(t, 2, 3)
	add(t, e, raws[0]...)
	add(t, e, raws[1]...)
	publish(t, e, map[string]any{"type": "post", "text": "ours"})
	key := func(raw []byte) string {
		m, err := message.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		return m.Key.String()
	}
	var ourKey string
	if err := e.AsyncJSON(ctx, &struct{ Key *string }{&ourKey}, muxrpc.Method{"getLatest"}, s.ID().String()); err != nil {
		t.Fatal(err)
	}
	for _, target := range []string{s.ID().String(), ourKey} {
		if _, err := e.Async(ctx, muxrpc.Method{"del"}, target); err == nil || !strings.Contains(err.Error(), "own feed") {
			t.Fatalf("del %s: %v, want refused: our own feed", target, err)
		}
	}
	for _, raw := range raws[0][:2] {
		if _, err := e.Async(ctx, muxrpc.Method{"del"}, key(raw)); err == nil || !strings.Contains(err.Error(), "gap") {
			t.Fatalf("del of a message in the middle: %v, want refused for the gap", err)
		}
	}
	if st := s.Store().Stats(); st.Messages != 7 || st.Deleted != 0 {
		t.Fatalf("refused deletions changed the store: %+v", st)
	}
	for i := 2; i >= 0; i-- {
		var got any
		if err := e.AsyncJSON(ctx, &got, muxrpc.Method{"del"}, key(raws[0][i])); err != nil || got != false {
			t.Fatalf("del of message %d, the latest: %v, %v", i+1, got, err)
		}
		if err := s.Store().Check(ctx); err != nil {
			t.Fatal(err)
		}
		var seq int64
		err := e.AsyncJSON(ctx, &seq, muxrpc.Method{"latestSequence"}, ks[0].ID.String())
		if i > 0 && (err != nil || seq != int64(i)) || i == 0 && err == nil {
			t.Fatalf("latestSequence after deleting message %d: %d, %v", i+1, seq, err)
		}
	}
	var deleted []string
	if err := e.AsyncJSON(ctx, &deleted, muxrpc.Method{"del"}, ks[1].ID.String()); err != nil {
		t.Fatal(err)
	}
	if want := []string{key(raws[1][0]), key(raws[1][1]), key(raws[1][2])}; !slices.Equal(deleted, want) {
		t.Fatalf("del of a feed: %v, want %v", deleted, want)
	}
	if err := s.Store().Check(ctx); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"createLogStream", "createFeedStream"} {
		if got := source(t, e, m, map[string]any{"keys": true, "values": false}); len(got) != 1 || got[0] != fmt.Sprintf("%q", ourKey) {
			t.Errorf("%s after the deletions: %v, want our message only", m, got)
		}
	}
	if got := source(t, e, "messagesByType", "post"); len(got) != 1 {
		t.Errorf("messagesByType after the deletions: %d items, want our message only", len(got))
	}
	// Positions of deleted messages in createRawLogStream's bounds.
	if got := source(t, e, "createRawLogStream", map[string]any{"gte": 2, "lte": 6}); len(got) != 0 {
		t.Errorf("createRawLogStream over deleted positions: %v", got)
	}
	if got := source(t, e, "createRawLogStream", map[string]any{"gte": 3}); len(got) != 1 || !strings.Contains(got[0], `"seq":7`) {
		t.Errorf("createRawLogStream from a deleted position: %v, want our message at 7", got)
	}
}
