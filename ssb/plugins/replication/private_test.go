package replication_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// historyItem is a createHistoryStream item with keys.
type historyItem struct {
	Key   string
	Value struct {
		Content json.RawMessage
	}
}

// createHistoryStream({id, private: true}) gives the owner our private
// messages decrypted (the real ssb-client with our key, and the local
// socket); a peer asking the same gets them boxed, as it replicates them.
// Without private: true the owner gets them boxed too.
func TestInteropHistoryPrivateForOwnerOnly(t *testing.T) {
	oracle.Require(t)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	g := startGo(t, newCaps(), "")
	const text = "a secret for ourselves"
	if _, err := g.local.Async(ctx, muxrpc.Method{"publish"}, map[string]any{"type": "post", "text": text, "recps": []string{g.ID().String()}}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.local.Async(ctx, muxrpc.Method{"publish"}, map[string]any{"type": "post", "text": "in the clear"}); err != nil {
		t.Fatal(err)
	}
	opts := map[string]any{"id": g.ID().String(), "private": true}
	decrypted := func(who string, items []historyItem) {
		t.Helper()
		if len(items) != 2 {
			t.Fatalf("%s: %d items, want 2", who, len(items))
		}
		var c struct{ Text string }
		if err := json.Unmarshal(items[0].Value.Content, &c); err != nil || c.Text != text {
			t.Errorf("%s: content %s, want the plaintext %q", who, items[0].Value.Content, text)
		}
	}
	boxed := func(who string, items []historyItem) {
		t.Helper()
		if len(items) != 2 {
			t.Fatalf("%s: %d items, want 2", who, len(items))
		}
		var s string
		if err := json.Unmarshal(items[0].Value.Content, &s); err != nil || !strings.HasSuffix(s, ".box") {
			t.Errorf("%s: content %s, want the boxed string", who, items[0].Value.Content)
		}
	}

	var local []historyItem
	if err := collect(ctx, g.local.Endpoint, muxrpc.Method{"createHistoryStream"}, &local, opts); err != nil {
		t.Fatal(err)
	}
	decrypted("the local socket", local)
	local = nil
	if err := collect(ctx, g.local.Endpoint, muxrpc.Method{"createHistoryStream"}, &local, map[string]any{"id": g.ID().String()}); err != nil {
		t.Fatal(err)
	}
	boxed("the local socket without private", local)

	calls := []map[string]any{call("createHistoryStream", "source", opts)}
	for _, who := range []string{"owner", "peer"} {
		kp := g.Keys()
		if who == "peer" {
			kp = newKeys(t)
		}
		var items []historyItem
		if err := json.Unmarshal([]byte(callJS(t, g.port(), g.Keys(), g.caps, kp, calls)[0]), &items); err != nil {
			t.Fatal(err)
		}
		if who == "owner" {
			decrypted("ssb-client with our key", items)
		} else {
			boxed("ssb-client as a peer", items)
		}
	}
}
