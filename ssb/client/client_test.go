package client_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// A Go client reads a feed from the JavaScript ssb-server@16 with
// createHistoryStream: every message validates in Go, with the id the
// server gave it.
func TestReadFeedFromJSServer(t *testing.T) {
	oracle.Require(t)
	var caps [32]byte
	rand.Read(caps[:])
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// StartJSServer connects with Dial as the server's owner.
	js, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	defer js.Close()
	owner, addr, c := js.Keys, js.Addr, js.Client

	var who struct{ ID string }
	if err := c.AsyncJSON(ctx, &who, muxrpc.Method{"whoami"}); err != nil || who.ID != owner.ID.String() {
		t.Fatalf("whoami: %+v, %v", who, err)
	}
	contents := []map[string]any{
		{"type": "post", "text": "hello from JavaScript"},
		{"type": "post", "text": "ü ☃ 😀 \"q\" \\ \n \t", "n": 0.30000000000000004},
		{"type": "vote", "vote": map[string]any{"link": "%x", "value": 1, "10": "ten", "2": "two"}},
	}
	var keysFromJS []string
	for _, content := range contents {
		var m struct{ Key string }
		if err := c.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, content); err != nil {
			t.Fatalf("publish: %v", err)
		}
		keysFromJS = append(keysFromJS, m.Key)
	}

	// Read it back, as the owner and as a stranger (createHistoryStream is
	// one of the anonymous methods).
	stranger, _ := keys.Generate(nil)
	sc, err := client.Dial(ctx, addr, caps, stranger, owner.Public, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	for name, conn := range map[string]*client.Client{"owner": c, "stranger": sc} {
		s, err := conn.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, map[string]any{"id": owner.ID.String()})
		if err != nil {
			t.Fatal(err)
		}
		var prev message.FeedState
		for i := 0; ; i++ {
			var item struct {
				Key   string
				Value json.RawMessage
			}
			err := s.RecvJSON(ctx, &item)
			if errors.Is(err, io.EOF) {
				if i != len(contents) {
					t.Fatalf("%s: %d messages, want %d", name, i, len(contents))
				}
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			m, err := message.Validate(&prev, item.Value, nil)
			if err != nil {
				t.Fatalf("%s: message %d from ssb-server does not validate in Go: %v", name, i+1, err)
			}
			if m.Key.String() != item.Key || item.Key != keysFromJS[i] {
				t.Fatalf("%s: message %d: Go computes id %s, the server says %s", name, i+1, m.Key, item.Key)
			}
			prev = m.State()
		}
	}
}
