package private

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/privatebox"
)

// FuzzPrivateContent: the index's reader of message values never panics,
// and on values in the store's form it finds what a JSON decoder finds.
func FuzzPrivateContent(f *testing.F) {
	f.Add([]byte(`{"author":"@a","content":"YWJj.box","signature":"x"}`))
	f.Add([]byte(`{"content":{"type":"post","text":".box\""}}`))
	f.Add([]byte(`{"content":"\u0000.box"}`))
	f.Add([]byte(`{"hash":"sha256","content":"YWJj.box","signature":"x"}`))
	f.Add([]byte(`{"hash":"sha256","content":"YWJj.box","signature":"x","content":"ZGVm.box"}`))
	formats := privatebox.Formats{privatebox.Suffix: nil}
	f.Fuzz(func(t *testing.T, value []byte) {
		content, ok := privateContent(value, formats)
		if !ok {
			return
		}
		// The store keeps values in canonical form (what message.Parse
		// prints back); the reader may take a shortcut on other input.
		if v, err := message.Parse(value); err != nil || !bytes.Equal(v.AppendCompact(nil), value) {
			return
		}
		var v struct{ Content string }
		if err := json.Unmarshal(value, &v); err != nil || v.Content != content {
			t.Fatalf("%q: read %q, JSON has %q (%v)", value, content, v.Content, err)
		}
		if !formats.Has(content) {
			t.Fatalf("%q taken for a private message", content)
		}
	})
}

// FuzzRecipients: recps of any shape give 1..7 feeds or an error, never a
// panic.
func FuzzRecipients(f *testing.F) {
	f.Add([]byte(`["@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"]`))
	f.Add([]byte(`[{"link":"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"}]`))
	f.Add([]byte(`"@x"`))
	f.Add([]byte(`[1,2,3,4,5,6,7,8]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := message.Parse(data)
		if err != nil {
			return
		}
		feeds, err := recipients(v)
		if err == nil && (len(feeds) < 1 || len(feeds) > privatebox.MaxRecipients) {
			t.Fatalf("%s: %d recipients accepted", data, len(feeds))
		}
	})
}

// The shortcut and the JSON decoder agree on values in the store's form.
func TestPrivateContentShortcut(t *testing.T) {
	formats := privatebox.Formats{privatebox.Suffix: nil}
	for _, c := range []struct {
		value string
		want  string
		ok    bool
	}{
		{`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":"YWJj.box","signature":"x.sig.ed25519"}`, "YWJj.box", true},
		{`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":{"type":"post","text":"YWJj.box"},"signature":"x.sig.ed25519"}`, "", false},
		{`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":"YW\u004aj.box","signature":"x.sig.ed25519"}`, "YWJj.box", true},
		{`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":"YWJj.box2","signature":"x.sig.ed25519"}`, "YWJj.box2", false},
	} {
		got, ok := privateContent([]byte(c.value), formats)
		if ok != c.ok || (ok && got != c.want) {
			t.Errorf("%s: %q %v, want %q %v", c.value, got, ok, c.want, c.ok)
		}
	}
}
