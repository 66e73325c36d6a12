package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
)

// A private post from the command line: --recps repeated is the array of
// recipients; get shows the box, get --private the plaintext, and
// private.unbox opens the box.
func TestPrivateCommandLine(t *testing.T) {
	dir := t.TempDir()
	stop := startServer(t, dir)
	defer stop()
	out, err := sbot(t, "--path", dir, "whoami")
	var who struct{ ID string }
	if err != nil || json.Unmarshal([]byte(out), &who) != nil {
		t.Fatalf("whoami: %q, %v", out, err)
	}
	friend, _ := keys.Generate(nil)
	out, err = sbot(t, "--path", dir, "publish", "--type", "post", "--text", "hi, privately", "--recps", who.ID, "--recps", friend.ID.String())
	var m struct {
		Key   string
		Value struct{ Content json.RawMessage }
	}
	if err != nil || json.Unmarshal([]byte(out), &m) != nil {
		t.Fatalf("publish --recps: %q, %v", out, err)
	}
	var box string
	if json.Unmarshal(m.Value.Content, &box) != nil || !strings.HasSuffix(box, ".box") {
		t.Fatalf("published content %s, want a box", m.Value.Content)
	}
	if out, err := sbot(t, "--path", dir, "get", m.Key); err != nil || strings.Contains(out, "privately") || !strings.Contains(out, ".box") {
		t.Errorf("get: %q, %v; want the box", out, err)
	}
	var v struct {
		Content struct {
			Text  string
			Recps []string
		}
		Private bool
	}
	out, err = sbot(t, "--path", dir, "get", m.Key, "--private")
	if err != nil || json.Unmarshal([]byte(out), &v) != nil || v.Content.Text != "hi, privately" || !v.Private || len(v.Content.Recps) != 2 {
		t.Errorf("get --private: %q, %v", out, err)
	}
	out, err = sbot(t, "--path", dir, "private.unbox", box)
	if err != nil || !strings.Contains(out, `"text": "hi, privately"`) {
		t.Errorf("private.unbox: %q, %v", out, err)
	}
	// One recipient too many: refused, nothing published.
	args := []string{"--path", dir, "publish", "--type", "post", "--text", "too many"}
	for range 8 {
		k, _ := keys.Generate(nil)
		args = append(args, "--recps", k.ID.String())
	}
	if _, err := sbot(t, args...); err == nil || !strings.Contains(err.Error(), "max recipients is:7 found:8") {
		t.Errorf("publish to 8: %v", err)
	}
	if out, _ := sbot(t, "--path", dir, "latestSequence", who.ID); strings.TrimSpace(out) != "1" {
		t.Errorf("latestSequence after the refused publish: %q", out)
	}
}
