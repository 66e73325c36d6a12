package server_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// addBlob adds data through a blobs.add sink and waits for blobs.changes
// to report it stored; it returns the id.
func addBlob(t *testing.T, e *muxrpc.Endpoint, data []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	changes, err := e.Open(muxrpc.Method{"blobs", "changes"}, muxrpc.Source)
	if err != nil {
		t.Fatal(err)
	}
	defer changes.Close()
	st, err := e.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SendRaw(muxrpc.Binary, data); err != nil {
		t.Fatal(err)
	}
	st.Close()
	h := sha256.Sum256(data)
	id := refs.NewBlob(h).String()
	for {
		var got string
		if err := changes.RecvJSON(ctx, &got); err != nil {
			t.Fatalf("blobs.changes: %v", err)
		}
		if got == id {
			return id
		}
	}
}

// mentionedBlob reads the latest message of feed on e and returns the
// blob its mentions link to.
func mentionedBlob(t *testing.T, e rpc, feed refs.Feed) string {
	t.Helper()
	var m struct {
		Value struct {
			Content struct {
				Mentions []struct{ Link string }
			}
		}
	}
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"getLatest"}, feed.String()); err != nil {
		t.Fatalf("getLatest: %v", err)
	}
	if len(m.Value.Content.Mentions) != 1 {
		t.Fatalf("the replicated post mentions %v", m.Value.Content.Mentions)
	}
	return m.Value.Content.Mentions[0].Link
}

// want calls blobs.want on e and checks that it answers true.
func want(t *testing.T, who string, e rpc, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ok bool
	if err := e.AsyncJSON(ctx, &ok, muxrpc.Method{"blobs", "want"}, id); err != nil || !ok {
		t.Fatalf("%s blobs.want %s: %v, %v", who, id, ok, err)
	}
}

// As Patchwork shows a post with an image: each side publishes a post
// that mentions a blob it added; the other follows the author, replicates
// the post, and fetches the blob it links to by id, with JavaScript
// ssb-server on one side.
func TestLinkedBlobsWithJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startServerWith(t, caps)
	eg := g.local(t)
	j := startJS(t, caps)
	jc := j.Client

	goImage, jsImage := make([]byte, 120_000), make([]byte, 90_000)
	rand.Read(goImage)
	rand.Read(jsImage)
	goID := addBlob(t, eg, goImage)
	jsID := addBlob(t, jc.Endpoint, jsImage)
	publish(t, eg, map[string]any{"type": "contact", "contact": j.Keys.ID.String(), "following": true})
	publish(t, jc, map[string]any{"type": "contact", "contact": g.ID().String(), "following": true})
	publish(t, eg, map[string]any{"type": "post", "text": "a picture from Go", "mentions": []any{map[string]any{"link": goID, "name": "go.png", "size": len(goImage)}}})
	publish(t, jc, map[string]any{"type": "post", "text": "a picture from JavaScript", "mentions": []any{map[string]any{"link": jsID, "name": "js.png", "size": len(jsImage)}}})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res any
	if err := eg.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, j.Address()); err != nil {
		t.Fatalf("gossip.connect to ssb-server: %v", err)
	}
	waitSeq(t, eg, j.Keys.ID, 2, 20*time.Second)
	waitSeq(t, jc, g.ID(), 2, 20*time.Second)

	// The server that follows fetches the linked blob from the author.
	want(t, "our", eg, mentionedBlob(t, eg, j.Keys.ID))
	want(t, "ssb-server's", jc, mentionedBlob(t, jc, g.ID()))
	for _, c := range []struct {
		who  string
		e    *muxrpc.Endpoint
		id   string
		data []byte
	}{{"our", eg, jsID, jsImage}, {"ssb-server's", jc.Endpoint, goID, goImage}} {
		st, err := c.e.Open(muxrpc.Method{"blobs", "get"}, muxrpc.Source, c.id)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for {
			p, err := st.Recv(ctx)
			if err != nil {
				break
			}
			h.Write(p.Body)
		}
		if got := "&" + base64.StdEncoding.EncodeToString(h.Sum(nil)) + ".sha256"; got != c.id {
			t.Errorf("%s blobs.get of the fetched blob: bytes hash to %s, want %s", c.who, got, c.id)
		}
	}
}
