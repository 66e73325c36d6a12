package server_test

import (
	"context"
	"crypto/rand"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// notYet are the methods of ssb-server@16's manifest that sbot does not
// have yet: none now. The test fails when one of them appears, so that the list
// only shrinks; every other method must exist with JavaScript's type.
var notYet = []string{}

// flatten turns a nested manifest into "a.b" -> type.
func flatten(prefix string, m map[string]any, out map[string]string) {
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out[prefix+k] = x
		case map[string]any:
			flatten(prefix+k+".", x, out)
		}
	}
}

// Our manifest against ssb-server@16's: every method JS has is here with
// the same type, apart from those not built yet (notYet).
func TestManifestLikeSSBServer(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startServerWith(t, caps)
	j := startJS(t, caps)
	var jm, gm map[string]any
	if err := j.Client.AsyncJSON(context.Background(), &jm, muxrpc.Method{"manifest"}); err != nil {
		t.Fatal(err)
	}
	if err := g.local(t).AsyncJSON(context.Background(), &gm, muxrpc.Method{"manifest"}); err != nil {
		t.Fatal(err)
	}
	js, ours := map[string]string{}, map[string]string{}
	flatten("", jm, js)
	flatten("", gm, ours)
	var missing []string
	for name, typ := range js {
		got, ok := ours[name]
		switch {
		case !ok && slices.Contains(notYet, name):
		case !ok:
			missing = append(missing, name)
		case got != typ:
			t.Errorf("%s: %s here, %s in ssb-server", name, got, typ)
		case slices.Contains(notYet, name):
			t.Errorf("%s is here now: remove it from notYet", name)
		}
	}
	slices.Sort(missing)
	if len(missing) > 0 {
		t.Errorf("methods of ssb-server missing here: %v", missing)
	}
	for _, name := range notYet {
		if _, ok := js[name]; !ok {
			t.Errorf("%s is in notYet but not in ssb-server's manifest", name)
		}
	}
	t.Logf("%d methods in ssb-server's manifest, %d here (%d of them not yet)", len(js), len(js)-len(notYet), len(notYet))
}
