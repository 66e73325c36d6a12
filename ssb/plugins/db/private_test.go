package db

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// Content with recipients is a private message: until it can be
// encrypted, publish refuses it and stores nothing. Content that is
// already a string (a box) and a null recps are public messages as usual.
func TestPublishRefusesRecps(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	ctx := context.Background()
	var seq int64
	stored := func() (int64, uint64) {
		t.Helper()
		seq = 0
		e.AsyncJSON(ctx, &seq, muxrpc.Method{"latestSequence"}, s.ID().String())
		return seq, s.Store().Stats().Messages
	}
	for _, content := range []string{
		`{"type":"post","text":"for your eyes only","recps":["` + s.ID().String() + `"]}`,
		`{"type":"post","text":"empty list","recps":[]}`,
		`{"type":"post","recps":"@someone"}`,
		`{"type":"post","recps":null,"recps":["` + s.ID().String() + `"]}`, // the last one counts, as in JSON.parse
	} {
		_, err := e.Async(ctx, muxrpc.Method{"publish"}, json.RawMessage(content))
		if err == nil || !strings.Contains(err.Error(), "recps") || !strings.Contains(err.Error(), "nothing was published") {
			t.Errorf("publish %s: %v, want refused for recps", content, err)
		}
		if seq, n := stored(); seq != 0 || n != 0 {
			t.Fatalf("after a refused publish of %s: our feed at %d, %d messages stored", content, seq, n)
		}
	}
	for i, content := range []string{
		`"c2VjcmV0IHN0dWZm.box"`,
		`{"type":"post","text":"public","recps":null}`,
	} {
		var m kvt
		if err := e.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, json.RawMessage(content)); err != nil || m.Value.Sequence != int64(i+1) {
			t.Fatalf("publish %s: %+v, %v", content, m, err)
		}
		if string(m.Value.Content) != content {
			t.Errorf("published content %s, want %s", m.Value.Content, content)
		}
	}
}
