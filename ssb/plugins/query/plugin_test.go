package query_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/plugins/query"
)

// TestLiveWhileAppending opens live reads while messages are being added:
// each read gives every message once, in order, old ones then live ones.
func TestLiveWhileAppending(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	_, rpc := goServer(t, caps)
	s := &side{name: "go", rpc: rpc}
	c := newCorpus(t)
	raws := make([][]byte, 120)
	for i := range raws {
		raws[i] = c.next(t)
	}
	for _, raw := range raws[:30] {
		s.add(ctx, t, raw)
	}
	author := c.authors[0].ID.String()
	args := map[string]any{
		"history": map[string]any{"query": `[{"$filter":{"value":{"author":"` + author + `"}}},{"$map":"key"}]`, "live": true},
		"type":    map[string]any{"query": `[{"$filter":{"value":{"content":{"type":"post"}}}},{"$map":"key"}]`, "live": true, "reverse": true},
		"scan":    map[string]any{"query": `[{"$filter":{"value":{"content":{"i":{"$gte":0}}}}},{"$map":"key"}]`, "live": true},
		"sorted":  map[string]any{"query": `[{"$filter":{"value":{"author":{"$prefix":"@"}}}},{"$map":"key"}]`, "live": true},
		"channel": map[string]any{"query": `[{"$filter":{"value":{"content":{"channel":"ssb"}}}},{"$map":"key"}]`, "live": true, "reverse": true},
	}
	want := map[string]int{"history": 40, "type": 52, "scan": 120, "sorted": 120, "channel": 10}
	var wg sync.WaitGroup
	wg.Go(func() {
		for _, raw := range raws[30:] {
			s.add(ctx, t, raw)
		}
	})
	for name, arg := range args {
		sync := 0
		if name != "scan" {
			sync = 1
		}
		a := s.read(ctx, t, "query.read", want[name]+sync, arg)
		seen := map[string]bool{}
		for _, it := range a.Items {
			m, _ := it.(map[string]any)
			if m["sync"] == true {
				sync--
				continue
			}
			k, _ := m["string"].(string)
			if seen[k] || !strings.HasPrefix(k, "%") {
				t.Errorf("%s: item %v twice or not a key", name, it)
			}
			seen[k] = true
		}
		if a.Err != "" || len(seen) != want[name] || sync != 0 {
			t.Errorf("%s: %d keys, sync left %d, error %q; want %d", name, len(seen), sync, a.Err, want[name])
		}
	}
	wg.Wait()
}

// TestSortBound: a plan that sorts fails past its bound instead of
// holding the log.
func TestSortBound(t *testing.T) {
	defer query.SetMaxSorted(10)()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	_, rpc := goServer(t, caps)
	s := &side{name: "go", rpc: rpc}
	c := newCorpus(t)
	for range 20 {
		s.add(ctx, t, c.next(t))
	}
	a := s.read(ctx, t, "query.read", 0, map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"rts": map[string]any{"$gt": 0}}}}})
	if !strings.Contains(a.Err, "too many messages to sort") || len(a.Items) > 0 {
		t.Errorf("got %d items, error %q", len(a.Items), a.Err)
	}
	a = s.read(ctx, t, "query.read", 0, map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"rts": map[string]any{"$gt": 1.500000012e12}}}}})
	if a.Err != "" || len(a.Items) == 0 || len(a.Items) > 10 {
		t.Errorf("within the bound: %d items, error %q", len(a.Items), a.Err)
	}
}
