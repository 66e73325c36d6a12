package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// privateValue is a message value as get({id, private: true}) gives it.
type privateValue struct {
	Author  string
	Content json.RawMessage
	Private bool
}

// getPrivate reads a message with private: true.
func getPrivate(t *testing.T, who string, e rpc, id string) privateValue {
	t.Helper()
	var v privateValue
	if err := e.AsyncJSON(context.Background(), &v, muxrpc.Method{"get"}, map[string]any{"id": id, "private": true}); err != nil {
		t.Fatalf("%s get private: %v", who, err)
	}
	return v
}

// text is the text of a decrypted post, or "" when the content is still a
// box.
func (v privateValue) text() string {
	var c struct{ Text string }
	json.Unmarshal(v.Content, &c)
	return c.Text
}

// boxOf returns the box a message holds, as stored.
func boxOf(t *testing.T, e rpc, id string) string {
	t.Helper()
	var v struct{ Content string }
	if err := e.AsyncJSON(context.Background(), &v, muxrpc.Method{"get"}, id); err != nil || !strings.HasSuffix(v.Content, ".box") {
		t.Fatalf("get %s: %q, %v; want a box", id, v.Content, err)
	}
	return v.Content
}

// Private messages between our server and JavaScript ssb-server, each way
// through replication: the recipients read them, a JavaScript user who is
// not one cannot; seven recipients mixed Go, JavaScript and other feeds
// each read theirs. Our data directory never holds a plaintext.
func TestPrivateWithJS(t *testing.T) {
	var caps [32]byte
	rand.Read(caps[:])
	g := startServerWith(t, caps)
	eg := g.local(t)
	j := startJS(t, caps)
	jc := j.Client
	pb := oracle.Start(t, "private-box.js")
	pb.WaitFor(oracle.Ev("ready"))
	jsUnbox := func(box string, kp *keys.KeyPair) (string, bool) {
		m := pb.Do(oracle.Cmd{"op": "unbox", "lib": "ssb-keys", "content": box, "secret": base64.StdEncoding.EncodeToString(kp.Private)})
		var c struct{ Text string }
		b, _ := base64.StdEncoding.DecodeString(m.Str("content"))
		json.Unmarshal(b, &c)
		return c.Text, m.Fields["ok"] != nil && string(m.Fields["ok"]) == "true"
	}

	publish(t, eg, map[string]any{"type": "contact", "contact": j.Keys.ID.String(), "following": true})
	publish(t, jc, map[string]any{"type": "contact", "contact": g.ID().String(), "following": true})
	var others []*keys.KeyPair
	for range 5 {
		k, _ := keys.Generate(nil)
		others = append(others, k)
	}
	stranger, _ := keys.Generate(nil)

	const goText, jsText, sevenText = "from Go, for JavaScript's eyes", "from JavaScript, for Go's eyes", "seven can read this"
	var fromGo, seven, fromJS struct{ Key string }
	if err := eg.AsyncJSON(context.Background(), &fromGo, muxrpc.Method{"publish"}, map[string]any{"type": "post", "text": goText, "recps": []string{g.ID().String(), j.Keys.ID.String()}}); err != nil {
		t.Fatalf("our private publish: %v", err)
	}
	recps := []string{g.ID().String(), j.Keys.ID.String()}
	for _, k := range others {
		recps = append(recps, k.ID.String())
	}
	if err := eg.AsyncJSON(context.Background(), &seven, muxrpc.Method{"publish"}, map[string]any{"type": "post", "text": sevenText, "recps": recps}); err != nil {
		t.Fatalf("our publish to 7: %v", err)
	}
	if err := jc.AsyncJSON(context.Background(), &fromJS, muxrpc.Method{"publish"}, map[string]any{"type": "post", "text": jsText, "recps": []string{g.ID().String(), j.Keys.ID.String()}}); err != nil {
		t.Fatalf("ssb-server's private publish: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var res any
	if err := eg.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, j.Address()); err != nil {
		t.Fatalf("gossip.connect to ssb-server: %v", err)
	}
	waitSeq(t, eg, j.Keys.ID, 2, 20*time.Second)
	waitSeq(t, jc, g.ID(), 3, 20*time.Second)

	// Ours, read by ssb-server; ssb-server's, read by ours.
	if v := getPrivate(t, "ssb-server's", jc, fromGo.Key); v.text() != goText || !v.Private {
		t.Errorf("ssb-server reads our private post as %s (private %v)", v.Content, v.Private)
	}
	if v := getPrivate(t, "our", eg, fromJS.Key); v.text() != jsText || !v.Private {
		t.Errorf("we read ssb-server's private post as %s (private %v)", v.Content, v.Private)
	}
	// In the log stream too.
	var found bool
	st, err := eg.Open(muxrpc.Method{"createLogStream"}, muxrpc.Source, map[string]any{"private": true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		var m struct {
			Key   string
			Value privateValue
		}
		if st.RecvJSON(ctx, &m) != nil {
			break
		}
		if m.Key == fromJS.Key {
			found = m.Value.text() == jsText
		}
	}
	if !found {
		t.Error("createLogStream with private: true did not give ssb-server's private post decrypted")
	}
	// Without private: true, and for a stranger, only the box.
	if v := boxOf(t, eg, fromJS.Key); strings.Contains(v, "Go's eyes") {
		t.Error("get without private gave the plaintext")
	}
	box := boxOf(t, jc, fromGo.Key)
	if _, ok := jsUnbox(box, stranger); ok {
		t.Error("a JavaScript user who is not a recipient opened our private post")
	}

	// Seven recipients: Go, ssb-server, and five feeds opening with ssb-keys.
	if v := getPrivate(t, "our", eg, seven.Key); v.text() != sevenText {
		t.Errorf("we read the post to seven as %s", v.Content)
	}
	if v := getPrivate(t, "ssb-server's", jc, seven.Key); v.text() != sevenText {
		t.Errorf("ssb-server reads the post to seven as %s", v.Content)
	}
	box7 := boxOf(t, jc, seven.Key)
	for i, k := range others {
		if text, ok := jsUnbox(box7, k); !ok || text != sevenText {
			t.Errorf("recipient %d of 7 (ssb-keys) read %q, %v", i+3, text, ok)
		}
	}
	if _, ok := jsUnbox(box7, stranger); ok {
		t.Error("a stranger opened the post to seven")
	}

	g.stop()
	for _, text := range []string{goText, jsText, sevenText} {
		filepath.WalkDir(g.cfg.Path, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Type()&fs.ModeSocket != 0 {
				return nil
			}
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(text)) {
				t.Errorf("%s holds the plaintext %q", path, text)
			}
			return nil
		})
	}

}
