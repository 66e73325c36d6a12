package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// caller is what both servers' owner connections do: our local endpoint
// and the client of JavaScript ssb-server.
type caller interface {
	Async(ctx context.Context, method muxrpc.Method, args ...any) (muxrpc.Packet, error)
	Open(method muxrpc.Method, typ muxrpc.CallType, args ...any) (*muxrpc.Stream, error)
}

// side is one server under comparison.
type side struct {
	name string
	c    caller
}

// rawItem is an item of createRawLogStream.
type rawItem struct {
	Seq   float64 `json:"seq"`
	Value struct {
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	} `json:"value"`
}

// The db core methods answer as JavaScript ssb-server@16 does, given the
// same messages in the same order: latest, getVectorClock, getFeedState,
// createRawLogStream, createSequenceStream, help, rebuild, and the call
// types of the manifest.
func TestDBCoreLikeJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startServerWith(t, caps)
	j := startJS(t, caps)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sides := []side{{"go", g.local(t)}, {"js", j.Client}}

	a, _ := keys.Generate(nil)
	b, _ := keys.Generate(nil)
	unknown, _ := keys.Generate(nil)
	ra, _ := ssbtest.Feed(a, 4, 1000)
	rb, _ := ssbtest.Feed(b, 3, 2000.5)
	order := [][]byte{rb[0], ra[0], ra[1], rb[1], ra[2], rb[2]} // b appears first
	for _, s := range sides {
		for _, r := range order {
			if _, err := s.c.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(r)); err != nil {
				t.Fatalf("%s: add: %v", s.name, err)
			}
		}
	}

	// Answers that must be the same bytes.
	for _, call := range []struct {
		method string
		args   []any
	}{
		{"getVectorClock", nil},
		{"getFeedState", []any{a.ID.String()}},
		{"getFeedState", []any{b.ID.String()}},
		{"getFeedState", []any{unknown.ID.String()}}, // a feed neither holds
		{"help", nil},
		{"rebuild", nil},
	} {
		args := call.args
		var got [2]string
		for i, s := range sides {
			p, err := s.c.Async(ctx, muxrpc.Method{call.method}, args...)
			if err != nil {
				t.Fatalf("%s: %s %v: %v", s.name, call.method, args, err)
			}
			got[i] = string(p.Body)
		}
		if got[0] != got[1] {
			t.Errorf("%s %v:\n go %s\n js %s", call.method, args, got[0], got[1])
		}
	}

	// Refused arguments: the same errors.
	for _, args := range [][]any{nil, {"nonsense"}, {42}} {
		var got [2]string
		for i, s := range sides {
			_, err := s.c.Async(ctx, muxrpc.Method{"getFeedState"}, args...)
			if err == nil {
				t.Fatalf("%s: getFeedState %v succeeded", s.name, args)
			}
			got[i] = err.Error()
		}
		if got[0] != got[1] {
			t.Errorf("getFeedState %v: go %q, js %q", args, got[0], got[1])
		}
	}

	// latest: same items, same order.
	var latest [2][]json.RawMessage
	for i, s := range sides {
		latest[i] = drain(ctx, t, s, "latest")
	}
	if g, js := rawStrings(latest[0]), rawStrings(latest[1]); !slices.Equal(g, js) || len(g) != 2 {
		t.Errorf("latest:\n go %s\n js %s", strings.Join(g, "\n    "), strings.Join(js, "\n    "))
	}

	// createRawLogStream: the same messages; the positions are JS byte
	// offsets and our receive sequences, so bounds are given as the
	// position of the same message on each side.
	var all [2][]rawItem
	for i, s := range sides {
		all[i] = rawItems(t, drain(ctx, t, s, "createRawLogStream", map[string]any{}))
		if len(all[i]) != len(order) {
			t.Fatalf("%s: raw log has %d items, want %d", s.name, len(all[i]), len(order))
		}
	}
	for i, it := range all[0] {
		if it.Seq != float64(i+1) {
			t.Errorf("go: raw log item %d has seq %v", i, it.Seq)
		}
	}
	pos := func(side, i int) float64 { return all[side][i].Seq }
	for _, c := range []struct {
		name string
		opts func(side int) map[string]any
	}{
		{"all", func(int) map[string]any { return map[string]any{} }},
		{"reverse limit", func(int) map[string]any { return map[string]any{"reverse": true, "limit": 2} }},
		{"limit", func(int) map[string]any { return map[string]any{"limit": 4} }},
		{"gt", func(s int) map[string]any { return map[string]any{"gt": pos(s, 1)} }},
		{"gte", func(s int) map[string]any { return map[string]any{"gte": pos(s, 1)} }},
		{"lt", func(s int) map[string]any { return map[string]any{"lt": pos(s, 3)} }},
		{"lte", func(s int) map[string]any { return map[string]any{"lte": pos(s, 3)} }},
		{"gte lte", func(s int) map[string]any { return map[string]any{"gte": pos(s, 2), "lte": pos(s, 4)} }},
		{"gt lt reverse", func(s int) map[string]any { return map[string]any{"gt": pos(s, 1), "lt": pos(s, 4), "reverse": true} }},
		{"gt limit", func(s int) map[string]any { return map[string]any{"gt": pos(s, 0), "limit": 2} }},
		{"live lte", func(s int) map[string]any { return map[string]any{"lte": pos(s, 2), "live": true} }},
		{"keys false", func(int) map[string]any { return map[string]any{"keys": false} }},
	} {
		var got [2][]string
		for i, s := range sides {
			for _, it := range rawItems(t, drain(ctx, t, s, "createRawLogStream", c.opts(i))) {
				got[i] = append(got[i], it.Value.Key+" "+string(it.Value.Value))
			}
		}
		if !slices.Equal(got[0], got[1]) || len(got[0]) == 0 {
			t.Errorf("createRawLogStream %s:\n go %s\n js %s", c.name, strings.Join(got[0], "\n    "), strings.Join(got[1], "\n    "))
		}
	}

	// createSequenceStream: the position of the last message, then of each
	// new one; and createRawLogStream live from the end.
	seqs := make([]*muxrpc.Stream, 2)
	lives := make([]*muxrpc.Stream, 2)
	for i, s := range sides {
		var err error
		if seqs[i], err = s.c.Open(muxrpc.Method{"createSequenceStream"}, muxrpc.Source); err != nil {
			t.Fatal(err)
		}
		if lives[i], err = s.c.Open(muxrpc.Method{"createRawLogStream"}, muxrpc.Source, map[string]any{"live": true, "old": false}); err != nil {
			t.Fatal(err)
		}
		var first float64
		if err := seqs[i].RecvJSON(ctx, &first); err != nil || first != all[i][len(all[i])-1].Seq {
			t.Errorf("%s: createSequenceStream starts with %v, %v; the last message is at %v", s.name, first, err, all[i][len(all[i])-1].Seq)
		}
	}
	for i, s := range sides {
		if _, err := s.c.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(ra[3])); err != nil {
			t.Fatalf("%s: add: %v", s.name, err)
		}
		var next float64
		if err := seqs[i].RecvJSON(ctx, &next); err != nil {
			t.Fatalf("%s: createSequenceStream: %v", s.name, err)
		}
		p, err := lives[i].Recv(ctx)
		if err != nil {
			t.Fatalf("%s: live createRawLogStream: %v", s.name, err)
		}
		live := rawItems(t, []json.RawMessage{p.Body})[0]
		if live.Seq != next || live.Value.Value == nil || !bytes.Equal(live.Value.Value, []byte(ra[3])) {
			t.Errorf("%s: after add, sequence stream %v and live raw log %s", s.name, next, p.Body)
		}
		seqs[i].Close()
		lives[i].Close()
	}

	// The call types of the manifest.
	var manifests [2]map[string]any
	for i, s := range sides {
		p, err := s.c.Async(ctx, muxrpc.Method{"manifest"})
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(p.Body, &manifests[i])
	}
	for _, m := range []string{"whoami", "status", "version", "help", "latest", "getVectorClock", "getFeedState", "createSequenceStream", "createRawLogStream", "rebuild"} {
		if manifests[0][m] != manifests[1][m] {
			t.Errorf("manifest %s: go %v, js %v", m, manifests[0][m], manifests[1][m])
		}
	}
	for i, s := range sides {
		var who struct{ ID string }
		p, err := s.c.Async(ctx, muxrpc.Method{"whoami"})
		if err == nil {
			err = json.Unmarshal(p.Body, &who)
		}
		if want := []string{g.ID().String(), j.Keys.ID.String()}[i]; err != nil || who.ID != want {
			t.Errorf("%s: whoami %s, %v", s.name, p.Body, err)
		}
	}
}

// drain reads a source to its end.
func drain(ctx context.Context, t *testing.T, s side, method string, args ...any) []json.RawMessage {
	t.Helper()
	st, err := s.c.Open(muxrpc.ParseMethod(method), muxrpc.Source, args...)
	if err != nil {
		t.Fatal(err)
	}
	var out []json.RawMessage
	for {
		p, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("%s: %s %v: %v", s.name, method, args, err)
		}
		out = append(out, json.RawMessage(p.Body))
	}
}

func rawItems(t *testing.T, raws []json.RawMessage) []rawItem {
	t.Helper()
	out := make([]rawItem, len(raws))
	for i, r := range raws {
		if err := json.Unmarshal(r, &out[i]); err != nil {
			t.Fatalf("raw log item %s: %v", r, err)
		}
	}
	return out
}

func rawStrings(raws []json.RawMessage) []string {
	out := make([]string, len(raws))
	for i, r := range raws {
		out[i] = string(r)
	}
	return out
}
