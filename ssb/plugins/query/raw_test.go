package query_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/query"
)

// TestRawFiltersAsDecoded reads messages whose JSON is awkward for a
// filter on stored JSON (escaped strings, types that are not strings,
// content that is a string, fields nested and missing) with and without
// those filters: the answers must be the same, byte for byte.
func TestRawFiltersAsDecoded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	srv, rpc := goServer(t, caps)
	s := &side{name: "go", rpc: rpc}
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	contents := []any{
		map[string]any{"type": "post", "text": "plain"},
		map[string]any{"type": "po\"st", "text": "a quote"},
		map[string]any{"type": "post", "channel": "caf\u00e9", "text": "line\nbreak"},
		map[string]any{"type": "vote", "vote": map[string]any{"value": 1, "type": "post"}},
		map[string]any{"type": "seven", "n": 7},
		map[string]any{"type": "post", "n": "7", "length": 3},
		map[string]any{"type": "post", "n": nil, "x": true},
		"c2VjcmV0.box",
		map[string]any{"type": "post", "nested": map[string]any{"a": []any{1, "2"}, "type": "post"}},
		map[string]any{"type": "contact", "contact": "@x", "following": false},
		map[string]any{"channel": "ssb", "type": "post", "n": 3.5},
		map[string]any{"type": "p\u2028ost", "n": -0.0},
	}
	var prev message.FeedState
	for i := range 3 {
		for j, c := range contents {
			claimed := 1.5e12 + float64(i*100+j)*1000
			if j == 5 {
				claimed = 1e15 // later than its receipt: rts is the receive time
			}
			m, err := message.Create(kp, nil, &prev, claimed, c)
			if err != nil {
				t.Fatal(err)
			}
			prev = m.State()
			s.add(ctx, t, m.Raw)
		}
	}
	for _, text := range []string{"first secret", "second secret"} {
		content := map[string]any{"type": "post", "text": text, "channel": "ssb", "recps": []string{srv.ID().String()}}
		if _, err := rpc.Async(ctx, muxrpc.Method{"publish"}, content); err != nil {
			t.Fatal(err)
		}
	}
	author := kp.ID.String()
	filters := []string{
		`{"value":{"author":"AUTHOR","content":{"type":"post"}}}`,
		`{"value":{"author":"AUTHOR","content":{"type":"po\"st"}}}`,
		`{"value":{"content":{"type":"post"}}}`,
		`{"value":{"content":{"type":"seven"}}}`,
		`{"value":{"content":{"type":"p\u2028ost"}}}`,
		`{"value":{"content":{"channel":"café"}}}`,
		`{"value":{"content":{"channel":"ssb"}},"timestamp":{"$gt":0}}`,
		`{"value":{"content":{"n":{"$gt":3}}}}`,
		`{"value":{"content":{"n":{"$lt":8,"$gte":0}}}}`,
		`{"value":{"content":{"n":null}}}`,
		`{"value":{"content":{"x":true,"type":"post"}}}`,
		`{"value":{"content":{"length":3}}}`,
		`{"value":{"content":{"nested":{"type":"post"}}}}`,
		`{"value":{"content":{"vote":{"value":1}}}}`,
		`{"value":{"content":{"following":false}}}`,
		`{"value":{"author":"AUTHOR","sequence":{"$gt":3,"$lte":20}}}`,
		`{"value":{"author":"AUTHOR"}}`,
		`{"value":{"author":"AUTHOR","content":{}}}`,
		`{"value":{"content":{"type":"post"}},"rts":{"$lt":1600000000000}}`,
		`{"value":{"content":{"type":"post"},"timestamp":{"$gt":1500000010000}}}`,
		`{"value":{"author":"AUTHOR","content":{"type":"post"}},"key":{"$prefix":"%"}}`,
		`{"timestamp":{"$gt":0}}`,
		`{"value":{"author":"SELF","content":{"type":"post"}}}`,
		`{"value":{"author":"SELF"}}`,
		`{}`,
	}
	found := 0
	for _, f := range filters {
		f = strings.ReplaceAll(f, "AUTHOR", author)
		f = strings.ReplaceAll(f, "SELF", srv.ID().String())
		for _, opts := range []string{``, `,"reverse":true`, `,"limit":2`, `,"reverse":true,"limit":3`} {
			for _, tail := range []string{``, `,{"$map":["value","sequence"]}`} {
				arg := s.arg(t, `{"query":[{"$filter":`+f+`}`+tail+`]`+opts+`}`)
				restore := query.SetRawFilters(false)
				want := readRaw(ctx, t, rpc, arg)
				restore()
				got := readRaw(ctx, t, rpc, arg)
				if len(want) > 1 {
					found++
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%v:\n got  %q\n want %q", arg, got, want)
				}
			}
		}
	}
	if found < len(filters)*8*3/4 {
		t.Errorf("only %d of %d reads found messages", found, len(filters)*8)
	}
}

// readRaw reads a query.read to its end: the packets' bodies, and the
// error, if any.
func readRaw(ctx context.Context, t *testing.T, rpc *muxrpc.Endpoint, arg any) []string {
	st, err := rpc.Open(muxrpc.Method{"query", "read"}, muxrpc.Source, arg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out []string
	for {
		p, err := st.Recv(ctx)
		if err != nil {
			return append(out, fmt.Sprint("end: ", err))
		}
		out = append(out, fmt.Sprintf("%d %s", p.Type, p.Body))
	}
}
