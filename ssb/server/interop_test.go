package server_test

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
)

// ssbKeysObject is a keypair as ssb-keys holds it in JavaScript.
func ssbKeysObject(kp *keys.KeyPair) map[string]string {
	return map[string]string{
		"curve":   "ed25519",
		"public":  base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519",
		"private": base64.StdEncoding.EncodeToString(kp.Private) + ".ed25519",
		"id":      kp.ID.String(),
	}
}

// callJS runs interop/ssb-call.js (the real ssb-client) against the server
// and returns its result lines by method, in order.
func (s *testServer) callJS(t *testing.T, kp *keys.KeyPair, calls []map[string]any) []oracle.Msg {
	t.Helper()
	cfg := map[string]any{
		"host": "127.0.0.1", "port": s.addr.(*net.TCPAddr).Port,
		"key": s.ID().String(), "caps": s.caps, "calls": calls,
	}
	if kp != nil {
		cfg["keys"] = ssbKeysObject(kp)
	}
	b, _ := json.Marshal(cfg)
	js := oracle.Start(t, "ssb-call.js", string(b))
	end := js.WaitFor(func(m oracle.Msg) bool { return len(m.Fields["done"]) > 0 || m.Str("connectError") != "" })
	if e := end.Str("connectError"); e != "" {
		t.Fatalf("ssb-client could not connect: %s", e)
	}
	var results []oracle.Msg
	for _, m := range js.Events() {
		if m.Str("method") != "" {
			results = append(results, m)
		}
	}
	if len(results) != len(calls) {
		t.Fatalf("%d results for %d calls", len(results), len(calls))
	}
	return results
}

// The owner, connecting with the server's own key over the network, may
// call everything: JS ssb-client publishes and reads back.
func TestInteropOwner(t *testing.T) {
	oracle.Require(t)
	s := startServer(t)
	id := s.ID().String()
	res := s.callJS(t, s.Keys(), []map[string]any{
		{"method": "whoami", "type": "async"},
		{"method": "publish", "type": "async", "args": []any{map[string]any{"type": "post", "text": "from JavaScript ✓ 😀", "n": 1e21}}},
		{"method": "publish", "type": "async", "args": []any{map[string]any{"type": "post", "text": "second"}}},
		{"method": "createHistoryStream", "type": "source", "args": []any{map[string]any{"id": id}}},
		{"method": "createHistoryStream", "type": "source", "args": []any{map[string]any{"id": id, "seq": 2, "keys": false}}},
		{"method": "createLogStream", "type": "source", "args": []any{map[string]any{}}},
	})
	for _, r := range res {
		if e := r.Str("error"); e != "" {
			t.Fatalf("%s: %s", r.Str("method"), e)
		}
	}
	var who struct{ ID string }
	res[0].Decode("result", &who)
	if who.ID != id {
		t.Errorf("whoami = %s, want %s", who.ID, id)
	}
	var hist []struct {
		Key   string
		Value json.RawMessage
	}
	if err := res[3].Decode("result", &hist); err != nil || len(hist) != 2 {
		t.Fatalf("createHistoryStream: %s", res[3].Line)
	}
	// The ids JS received are the ids of the messages, recomputed.
	var prev message.FeedState
	for _, h := range hist {
		m, err := message.Validate(&prev, h.Value, nil)
		if err != nil || m.Key.String() != h.Key {
			t.Fatalf("message %s: %v (id %s)", h.Key, err, m.Key)
		}
		prev = m.State()
	}
	var bare []map[string]any
	if err := res[4].Decode("result", &bare); err != nil || len(bare) != 1 || bare[0]["sequence"] != 2.0 {
		t.Errorf("createHistoryStream seq 2 keys false: %s", res[4].Line)
	}
	var log []json.RawMessage
	if err := res[5].Decode("result", &log); err != nil || len(log) != 2 {
		t.Errorf("createLogStream: %s", res[5].Line)
	}
}

// A peer with another key gets the anonymous methods only.
func TestInteropStranger(t *testing.T) {
	oracle.Require(t)
	s := startServer(t)
	e := s.local(t)
	e.Async(t.Context(), []string{"publish"}, map[string]any{"type": "post", "text": "public"})
	stranger, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	res := s.callJS(t, stranger, []map[string]any{
		{"method": "whoami", "type": "async"},
		{"method": "publish", "type": "async", "args": []any{map[string]any{"type": "post", "text": "not allowed"}}},
		{"method": "createHistoryStream", "type": "source", "args": []any{map[string]any{"id": s.ID().String()}}},
	})
	for i, want := range []string{"method:whoami is not in list of allowed methods", "method:publish is not in list of allowed methods"} {
		if got := res[i].Str("error"); got != want {
			t.Errorf("%s as a stranger: error %q, want %q", res[i].Str("method"), got, want)
		}
	}
	if !strings.Contains(res[2].Line, "public") {
		t.Errorf("createHistoryStream as a stranger: %s", res[2].Line)
	}
}
