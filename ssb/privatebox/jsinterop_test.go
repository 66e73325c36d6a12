package privatebox_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// These tests check the package against npm private-box@0.3.1 and
// ssb-keys@8.5.0 (box/unbox) in node, through interop/private-box.js.

func startJS(t *testing.T) *oracle.Peer {
	t.Helper()
	p := oracle.Start(t, "private-box.js")
	p.WaitFor(oracle.Ev("ready"))
	return p
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ids(feeds []refs.Feed) []string {
	s := make([]string, len(feeds))
	for i, f := range feeds {
		s[i] = f.String()
	}
	return s
}

func secret(id identity) string { return b64(id.kp.Private) }

// jsOpen asks private-box to open ct with id's key; it returns the
// plaintext, or nil if private-box returns nothing.
func jsOpen(t *testing.T, p *oracle.Peer, ct []byte, id identity) []byte {
	t.Helper()
	m := p.Do(oracle.Cmd{"op": "unbox", "lib": "private-box", "ct": b64(ct), "secret": secret(id)})
	var ok bool
	if err := m.Decode("ok", &ok); err != nil {
		t.Fatal(err)
	}
	if !ok {
		return nil
	}
	return unb64(t, m.Str("plain"))
}

// plaintexts are the sizes boxed in both directions.
var plaintexts = []int{0, 1, 33, 4096, 64 << 10}

func TestJSPrivateBoxToGo(t *testing.T) {
	p := startJS(t)
	stranger := newIdentity(t)
	for n := 1; n <= privatebox.MaxRecipients; n++ {
		rs, feeds := newIdentities(t, n)
		for _, size := range plaintexts {
			plain := randomBytes(t, size)
			ct := unb64(t, p.Do(oracle.Cmd{"op": "box", "lib": "private-box", "plain": b64(plain), "recps": ids(feeds)}).Str("ct"))
			for i, r := range rs {
				mustOpen(t, fmt.Sprintf("JS box, %d recipients, %d bytes, recipient %d", n, size, i), r.key, ct, plain)
			}
			mustNotOpen(t, fmt.Sprintf("JS box, %d recipients: stranger", n), stranger.key, ct, false)
		}
	}
}

func TestGoBoxToJSPrivateBox(t *testing.T) {
	p := startJS(t)
	stranger := newIdentity(t)
	for n := 1; n <= privatebox.MaxRecipients; n++ {
		rs, feeds := newIdentities(t, n)
		for _, size := range plaintexts {
			plain := randomBytes(t, size)
			ct, err := privatebox.Box(plain, feeds)
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range rs {
				if got := jsOpen(t, p, ct, r); got == nil || !bytes.Equal(got, plain) {
					t.Fatalf("Go box, %d recipients, %d bytes: private-box for recipient %d got %d bytes (nil %v)", n, size, i, len(got), got == nil)
				}
			}
			if got := jsOpen(t, p, ct, stranger); got != nil {
				t.Fatalf("Go box, %d recipients: private-box opened it for a stranger", n)
			}
		}
	}
}

// contentJSON is message content as JSON.stringify writes it (compact, keys
// in insertion order, non-ASCII as is), so ssb-keys' JSON.parse then
// JSON.stringify gives the same bytes back.
func contentJSON(feeds []refs.Feed, text string) []byte {
	q := make([]string, len(feeds))
	for i, id := range ids(feeds) {
		q[i] = `"` + id + `"`
	}
	return []byte(`{"type":"post","text":"` + text + `","recps":[` + strings.Join(q, ",") + `],"n":1.5,"ok":true}`)
}

func TestSSBKeysBoxToGo(t *testing.T) {
	p := startJS(t)
	stranger := newIdentity(t)
	for n := 1; n <= privatebox.MaxRecipients; n++ {
		rs, feeds := newIdentities(t, n)
		content := contentJSON(feeds, `private ✓ \"quoted\" \u0001 😀`)
		s := p.Do(oracle.Cmd{"op": "box", "lib": "ssb-keys", "content": b64(content), "recps": ids(feeds)}).Str("content")
		if !strings.HasSuffix(s, ".box") {
			t.Fatalf("ssb-keys.box returned %.40q", s)
		}
		u := privatebox.NewUnboxer(nil)
		for i, r := range rs {
			u[privatebox.Suffix] = r.key
			got, ok, err := u.Unbox(s)
			if err != nil || !ok || !bytes.Equal(got, content) {
				t.Fatalf("ssb-keys box, %d recipients, recipient %d: got %q, %v, %v; want %s", n, i, got, ok, err, content)
			}
		}
		if got, ok, err := privatebox.UnboxString(s, stranger.key); ok || got != nil || err != nil {
			t.Fatalf("ssb-keys box, %d recipients: stranger got %q, %v, %v", n, got, ok, err)
		}
	}
}

func TestGoBoxToSSBKeys(t *testing.T) {
	p := startJS(t)
	stranger := newIdentity(t)
	for n := 1; n <= privatebox.MaxRecipients; n++ {
		rs, feeds := newIdentities(t, n)
		content := contentJSON(feeds, fmt.Sprintf("to %d, ü € 😀", n))
		s, err := privatebox.BoxString(content, feeds)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range rs {
			m := p.Do(oracle.Cmd{"op": "unbox", "lib": "ssb-keys", "content": s, "secret": secret(r)})
			if got := m.Str("content"); got == "" || !bytes.Equal(unb64(t, got), content) {
				t.Fatalf("Go box, %d recipients: ssb-keys.unbox for recipient %d: %s", n, i, m.Line)
			}
		}
		m := p.Do(oracle.Cmd{"op": "unbox", "lib": "ssb-keys", "content": s, "secret": secret(stranger)})
		if m.Str("content") != "" {
			t.Fatalf("Go box, %d recipients: ssb-keys.unbox opened it for a stranger: %s", n, m.Line)
		}
	}
}

// TestBadInputAgreesWithJS: what Go refuses to open, private-box does not
// open either.
func TestBadInputAgreesWithJS(t *testing.T) {
	p := startJS(t)
	rs, feeds := newIdentities(t, 2)
	plain := []byte("secret")
	ct, err := privatebox.Box(plain, feeds)
	if err != nil {
		t.Fatal(err)
	}
	two := [][]byte{rs[0].key.PublicKey(), rs[1].key.PublicKey()}
	zeroKey := bytes.Clone(ct)
	copy(zeroKey[privatebox.NonceSize:privatebox.SlotsStart], make([]byte, 32))
	bad := map[string][]byte{
		"truncated to the minimum": ct[:privatebox.MinSize],
		"truncated by one":         ct[:len(ct)-1],
		"body bit flipped":         flip(ct, len(ct)-3),
		"nonce bit flipped":        flip(ct, 3),
		"all-zero one-time key":    zeroKey,
		"all zero":                 make([]byte, len(ct)),
		"count 0":                  craft(t, two, 0, plain),
		"count 3, 2 slots":         craft(t, two, 3, plain),
		"count 7, 2 slots":         craft(t, two, 7, plain),
		"count 255":                craft(t, two, 255, plain),
	}
	for name, b := range bad {
		for i, r := range rs {
			if got, ok, _ := privatebox.Unbox(b, r.key); ok || got != nil {
				t.Errorf("%s: Go opened it for recipient %d", name, i)
			}
			if got := jsOpen(t, p, b, r); got != nil {
				t.Errorf("%s: private-box opened it for recipient %d: %q", name, i, got)
			}
		}
	}
}

func flip(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x10
	return c
}

// TestBadRecipientsRefusedLikeJS: keys Box refuses, ssb-keys.box refuses
// too (libsodium's key conversion fails).
func TestBadRecipientsRefusedLikeJS(t *testing.T) {
	p := startJS(t)
	_, feeds := newIdentities(t, 1)
	for name, f := range badFeeds(t) {
		recps := []refs.Feed{feeds[0], f}
		if _, err := privatebox.Box([]byte("{}"), recps); !errors.Is(err, privatebox.ErrBadKey) {
			t.Errorf("%s: Go err = %v, want ErrBadKey", name, err)
		}
		m, err := p.Call(oracle.Cmd{"op": "box", "lib": "ssb-keys", "content": b64([]byte("{}")), "recps": ids(recps)})
		if err != nil {
			t.Fatal(err)
		}
		if m.Ev() != "cmdError" {
			t.Errorf("%s: ssb-keys.box boxed for it: %s", name, m.Line)
		}
	}
	eight := make([]refs.Feed, 8)
	for i := range eight {
		eight[i] = feeds[0]
	}
	m, err := p.Call(oracle.Cmd{"op": "box", "lib": "ssb-keys", "content": b64([]byte("{}")), "recps": ids(eight)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Ev() != "cmdError" {
		t.Errorf("ssb-keys.box boxed for 8 recipients: %s", m.Line)
	}
}
