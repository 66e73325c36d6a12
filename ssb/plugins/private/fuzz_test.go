package private

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/privatebox"
)

// FuzzBoxed: the index's reader of message values never panics, and
// whatever it takes for a box is one by the format's decoder.
func FuzzBoxed(f *testing.F) {
	f.Add([]byte(`{"author":"@a","content":"YWJj.box","signature":"x"}`))
	f.Add([]byte(`{"content":{"type":"post","text":".box\""}}`))
	f.Add([]byte(`{"content":"\u0000.box"}`))
	f.Add([]byte(`{"hash":"sha256","content":"YWJj.box","signature":"x"}`))
	f.Add([]byte(`{"hash":"sha256","content":"YWJj.box","signature":"x","content":"ZGVm.box"}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		ct, ok := boxed(value)
		if !ok {
			return
		}
		// The store keeps values in canonical form (what message.Parse
		// prints back); boxed may read other input by a shortcut.
		if v, err := message.Parse(value); err != nil || !bytes.Equal(v.AppendCompact(nil), value) {
			return
		}
		var v struct{ Content string }
		if err := json.Unmarshal(value, &v); err != nil {
			t.Fatalf("%q taken for a box, but its content is not a string: %v", value, err)
		}
		if want, err := privatebox.Decode(v.Content); err != nil || !bytes.Equal(want, ct) {
			t.Fatalf("%q: boxed gave %x, the decoder %x, %v", value, ct, want, err)
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
func TestBoxedShortcut(t *testing.T) {
	for _, v := range []string{
		`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":"YWJj.box","signature":"x.sig.ed25519"}`,
		`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":{"type":"post","text":"YWJj.box"},"signature":"x.sig.ed25519"}`,
		`{"previous":null,"author":"@a","sequence":1,"timestamp":1,"hash":"sha256","content":"YW\u004aj.box","signature":"x.sig.ed25519"}`,
	} {
		_, fast := canonicalContent([]byte(v))
		ct, ok := boxed([]byte(v))
		var m struct{ Content any }
		json.Unmarshal([]byte(v), &m)
		s, isString := m.Content.(string)
		want, err := privatebox.Decode(s)
		if ok != (isString && err == nil) || (ok && !bytes.Equal(ct, want)) {
			t.Errorf("%s: boxed %x %v (shortcut %v), want %x", v, ct, ok, fast, want)
		}
	}
}
