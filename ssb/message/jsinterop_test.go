package message_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// The tests of this file check Go against npm ssb-validate@4.1.4 and
// ssb-keys@8.5.0 running in node, through interop/ssb-message.js.

// js is the ssb-message.js peer of one test.
type js struct {
	t *testing.T
	p *oracle.Peer
}

func startJS(t *testing.T) *js {
	t.Helper()
	p := oracle.Start(t, "ssb-message.js")
	p.WaitFor(oracle.Ev("ready"))
	return &js{t, p}
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func unb64(t *testing.T, m oracle.Msg, field string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(m.Str(field))
	if err != nil {
		t.Fatalf("field %s of %s: %v", field, m.Line, err)
	}
	return b
}

func jsState(s *message.FeedState) any {
	if s == nil || s.Sequence == 0 {
		return nil
	}
	return map[string]any{"id": s.ID.String(), "sequence": s.Sequence}
}

func jsHMAC(key []byte) any {
	if key == nil {
		return nil
	}
	return b64(key)
}

type jsVerdict struct {
	ok    bool
	err   string
	fatal bool
	id    string
}

// validate asks ssb-validate about raw: append with state, or
// checkInvalidOOO.
func (j *js) validate(raw []byte, state *message.FeedState, hmacKey []byte, ooo bool) jsVerdict {
	j.t.Helper()
	m := j.p.Do(oracle.Cmd{"op": "validate", "b64": b64(raw), "state": jsState(state), "hmacKey": jsHMAC(hmacKey), "ooo": ooo})
	var v jsVerdict
	if err := m.Decode("ok", &v.ok); err != nil {
		j.t.Fatal(err)
	}
	_ = m.Decode("fatal", &v.fatal)
	v.err, v.id = m.Str("error"), m.Str("id")
	return v
}

// stringify returns JSON.stringify of JSON.parse(text), pretty and compact,
// and its id; ok is false if JSON.parse threw.
func (j *js) stringify(text []byte) (pretty, compact []byte, id string, ok bool) {
	j.t.Helper()
	m := j.p.Do(oracle.Cmd{"op": "stringify", "b64": b64(text)})
	if err := m.Decode("ok", &ok); err != nil {
		j.t.Fatal(err)
	}
	if !ok {
		return nil, nil, "", false
	}
	return unb64(j.t, m, "pretty"), unb64(j.t, m, "compact"), m.Str("id"), true
}

// create has ssb-validate create() sign content (JSON text) with the key of
// seed, and returns JSON.stringify(msg) and its id.
func (j *js) create(seed []byte, state *message.FeedState, hmacKey []byte, content []byte, ts float64) ([]byte, string) {
	j.t.Helper()
	m := j.p.Do(oracle.Cmd{"op": "create", "seed": b64(seed), "state": jsState(state), "hmacKey": jsHMAC(hmacKey),
		"content": b64(content), "timestamp": ts})
	return unb64(j.t, m, "msg"), m.Str("id")
}

// TestJSStringify is a differential test of Parse, the printers and ID
// against V8: random JSON texts (some not JSON) must give byte-identical
// pretty and compact forms and the same id, or be rejected by both.
func TestJSStringify(t *testing.T) {
	j := startJS(t)
	const seed, n = 1, 3000
	g := newGen(seed)
	var rejected int
	for i := range n {
		text := g.text(nil, 4, true)
		pretty, compact, id, ok := j.stringify(text)
		v, err := message.Parse(text)
		if ok != (err == nil) {
			t.Fatalf("seed %d case %d: %q: JSON.parse ok=%v, Parse: %v", seed, i, text, ok, err)
		}
		if !ok {
			rejected++
			continue
		}
		if got := v.AppendPretty(nil); !bytes.Equal(got, pretty) {
			t.Fatalf("seed %d case %d: %q\npretty:\n got %q\nwant %q", seed, i, text, got, pretty)
		}
		if got := v.AppendCompact(nil); !bytes.Equal(got, compact) {
			t.Fatalf("seed %d case %d: %q\ncompact:\n got %q\nwant %q", seed, i, text, got, compact)
		}
		if got := message.ID(v).String(); got != id {
			t.Fatalf("seed %d case %d: %q: ID %s, want %s", seed, i, text, got, id)
		}
	}
	t.Logf("%d random texts: %d identical in Go and V8, %d rejected by both", n, n-rejected, rejected)
}

// TestJSValuesRoundTrip prints random Values (built in Go, not parsed) and
// has V8 parse and print them again: the output must not change.
func TestJSValuesRoundTrip(t *testing.T) {
	j := startJS(t)
	g := newGen(2)
	for i := range 1000 {
		v := g.value(4)
		compact := v.AppendCompact(nil)
		pretty, jsCompact, id, ok := j.stringify(compact)
		if !ok || !bytes.Equal(jsCompact, compact) || !bytes.Equal(pretty, v.AppendPretty(nil)) || id != message.ID(v).String() {
			t.Fatalf("case %d: %q\nV8 compact %q\nV8 pretty %q (ok %v)", i, compact, jsCompact, pretty, ok)
		}
	}
}

// TestGoCreatesJSValidates signs random feeds in Go; ssb-validate must
// accept every message, chained, with the same ids.
func TestGoCreatesJSValidates(t *testing.T) {
	j := startJS(t)
	g := newGen(3)
	hmacKey := bytes.Repeat([]byte{7}, 32)
	total := 0
	for f, key := range [][]byte{nil, hmacKey, nil} {
		kp, err := keys.FromSeed(bytes.Repeat([]byte{byte(f + 1)}, 32))
		if err != nil {
			t.Fatal(err)
		}
		var state *message.FeedState
		for i := range 60 {
			content := g.content()
			ts := []float64{1.7e12 + float64(i), 1.5e12 + 0.25, 0, -1, 1e21, 5e-324, g.number()}[g.r.IntN(7)]
			m, err := message.Create(kp, key, state, ts, content)
			if errors.Is(err, message.ErrTooLarge) {
				continue
			}
			if err != nil {
				t.Fatalf("feed %d message %d: Create: %v", f, i, err)
			}
			got := j.validate(m.Raw, state, key, false)
			if !got.ok || got.id != m.Key.String() {
				t.Fatalf("feed %d message %d: ssb-validate: ok=%v %s; id %s, Go key %s\n%s", f, i, got.ok, got.err, got.id, m.Key, m.Raw)
			}
			if ooo := j.validate(m.Raw, nil, key, true); !ooo.ok {
				t.Fatalf("feed %d message %d: checkInvalidOOO: %s", f, i, ooo.err)
			}
			// Go accepts its own message, from its wire form and its pretty form.
			for _, raw := range [][]byte{m.Raw, m.Pretty()} {
				again, err := message.Validate(state, raw, key)
				if err != nil || again.Key != m.Key || !bytes.Equal(again.Raw, m.Raw) {
					t.Fatalf("feed %d message %d: Validate(own message) = %v", f, i, err)
				}
			}
			s := m.State()
			state = &s
			total++
		}
	}
	t.Logf("ssb-validate accepted %d Go-signed messages with the same ids", total)
}

// TestJSCreatesGoValidates has ssb-validate create() sign random content;
// Go must accept every message with JS's id, and its Raw must be JS's
// JSON.stringify(msg) byte for byte.
func TestJSCreatesGoValidates(t *testing.T) {
	j := startJS(t)
	g := newGen(4)
	hmacKey := bytes.Repeat([]byte{9}, 32)
	total := 0
	for f, key := range [][]byte{nil, hmacKey} {
		seed := bytes.Repeat([]byte{byte(0x40 + f)}, 32)
		var state *message.FeedState
		for i := range 80 {
			content := g.content()
			var text []byte
			if g.r.IntN(2) == 0 {
				text = content.AppendPretty(nil)
			} else {
				text = content.AppendCompact(nil)
			}
			if utf16Len(string(text)) > 6000 {
				continue // keep under the size limit
			}
			ts := 1.6e12 + float64(i)*1000.5
			raw, id := j.create(seed, state, key, text, ts)
			m, err := message.Validate(state, raw, key)
			if err != nil {
				t.Fatalf("feed %d message %d: Validate: %v\n%s", f, i, err, raw)
			}
			if m.Key.String() != id || !bytes.Equal(m.Raw, raw) {
				t.Fatalf("feed %d message %d: key %s, JS id %s\nGo raw %s\nJS raw %s", f, i, m.Key, id, m.Raw, raw)
			}
			if m.Sequence != int64(i+1) || m.Timestamp != ts {
				t.Fatalf("feed %d message %d: sequence %d, timestamp %v", f, i, m.Sequence, m.Timestamp)
			}
			// Create with the same key, state, timestamp and content gives the
			// same message, but for the field order: ssb-validate create()
			// writes previous, sequence, author, as Create does.
			kp, _ := keys.FromSeed(seed)
			mine, err := message.Create(kp, key, state, ts, text)
			if err != nil || mine.Key != m.Key || !bytes.Equal(mine.Raw, raw) {
				t.Fatalf("feed %d message %d: Create = %v; key %v, want %s", f, i, err, mine, m.Key)
			}
			s := m.State()
			state = &s
			total++
		}
	}
	t.Logf("Go accepted %d JS-signed messages with the same ids and bytes", total)
}

// TestJSSizeLimit checks the 8192 UTF-16 unit limit at its edge with
// characters of 1, 2, 3 and 4 UTF-8 bytes (1 or 2 UTF-16 units).
func TestJSSizeLimit(t *testing.T) {
	j := startJS(t)
	kp, err := keys.FromSeed(bytes.Repeat([]byte{5}, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, fill := range []string{"a", "é", "☃", "😀"} {
		for _, extra := range []int{-1, 0, 1} {
			// Find the text whose signed pretty form has 8192 + extra units.
			text := ""
			size := func() int {
				m, err := message.CreateWith(kp.ID, kp.Sign, nil, nil, 1, map[string]string{"type": "post", "text": text}, false)
				if err != nil {
					t.Fatal(err)
				}
				return utf16Len(string(m.Pretty()))
			}
			base := size()
			unit := utf16Len(fill)
			text = strings.Repeat(fill, (8192+extra-base)/unit) + strings.Repeat("a", (8192+extra-base)%unit)
			if got := size(); got != 8192+extra {
				t.Fatalf("fill %q: size %d, want %d", fill, got, 8192+extra)
			}
			m, _ := message.CreateWith(kp.ID, kp.Sign, nil, nil, 1, map[string]string{"type": "post", "text": text}, false)
			jsv := j.validate(m.Raw, nil, nil, false)
			_, goErr := message.Validate(nil, m.Raw, nil)
			_, createErr := message.Create(kp, nil, nil, 1, map[string]string{"type": "post", "text": text})
			want := extra <= 0
			if jsv.ok != want || (goErr == nil) != want || (createErr == nil) != want {
				t.Fatalf("fill %q, %d units: ssb-validate %v (%s), Validate %v, Create %v", fill, 8192+extra, jsv.ok, jsv.err, goErr, createErr)
			}
			if !want && !errors.Is(goErr, message.ErrTooLarge) {
				t.Fatalf("fill %q: Validate = %v, want ErrTooLarge", fill, goErr)
			}
		}
	}
}

// signFields signs a message with arbitrary fields (in the given order,
// signature excluded) and returns its compact JSON.
func signFields(kp *keys.KeyPair, hmacKey []byte, fields ...message.Member) []byte {
	return message.SignFields(fields, kp.Sign, hmacKey)
}

func field(k string, v message.Value) message.Member { return message.Member{Key: k, Value: v} }

func mustParse(s string) message.Value {
	v, err := message.Parse([]byte(s))
	if err != nil {
		panic(err)
	}
	return v
}

// TestJSEdgeCases runs hand-made messages, correctly signed, through both
// validators: they must agree on every one, with the same ids, and Go's
// error must be the expected kind.
func TestJSEdgeCases(t *testing.T) {
	j := startJS(t)
	kp, err := keys.FromSeed(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	hmacKey := bytes.Repeat([]byte{1}, 32)
	prevID, _ := refs.ParseMessage("%J9EdQmDUR9+p8SN250e3ZHOCvrBvOql9ilHUdm0rn6s=.sha256")
	other, _ := refs.ParseMessage("%ULzidT1Bbli5Qax+ap1QeHPjq6AZFbbTgczytrG0ENg=.sha256")
	state := &message.FeedState{ID: prevID, Sequence: 1}
	str, num := message.StringValue, message.NumberValue
	author := str(kp.ID.String())
	post := mustParse(`{"type":"post","text":"hi"}`)
	msg := func(previous, seq, ts, content message.Value, rest ...message.Member) []message.Member {
		ms := []message.Member{field("previous", previous), field("sequence", seq), field("author", author),
			field("timestamp", ts), field("hash", str("sha256")), field("content", content)}
		return append(ms, rest...)
	}
	second := func(previous message.Value) []message.Member { return msg(previous, num(2), num(1), post) }
	first := func(seq, ts, content message.Value) []message.Member { return msg(message.Value{}, seq, ts, content) }
	type tc struct {
		name  string
		raw   []byte
		state *message.FeedState
		key   []byte
		ooo   bool
		want  error // nil: valid
	}
	sign := func(ms []message.Member) []byte { return signFields(kp, nil, ms...) }
	cases := []tc{
		{"plain second message", sign(second(str(prevID.String()))), state, nil, false, nil},
		{"previous in an array (loose ==)", sign(second(mustParse(`["` + prevID.String() + `"]`))), state, nil, false, nil},
		{"previous in nested arrays", sign(second(mustParse(`[[["` + prevID.String() + `"]]]`))), state, nil, false, nil},
		{"previous in an array of two", sign(second(mustParse(`["` + prevID.String() + `",1]`))), state, nil, false, message.ErrFork},
		{"previous in an object", sign(second(mustParse(`{"a":"` + prevID.String() + `"}`))), state, nil, false, message.ErrFork},
		{"previous null after the first", sign(second(message.Value{})), state, nil, false, message.ErrFork},
		{"fork", sign(second(str(other.String()))), state, nil, false, message.ErrFork},
		{"previous another string", sign(second(str("hello"))), state, nil, false, message.ErrFork},
		{"duplicate", sign(second(str(prevID.String()))), &message.FeedState{ID: prevID, Sequence: 2}, nil, false, message.ErrSequence},
		{"gap", sign(second(str(prevID.String()))), nil, nil, false, message.ErrSequence},
		{"timestamp a string after the first", sign(msg(str(prevID.String()), num(2), str("x"), post)), state, nil, false, nil},
		{"timestamp missing a number in the first", sign(first(num(1), str("1"), post)), nil, nil, false, message.ErrShape},
		{"timestamp null out of order", sign(msg(str(prevID.String()), num(2), message.Value{}, post)), nil, nil, true, message.ErrShape},
		{"first with previous", sign(msg(str(prevID.String()), num(1), num(1), post)), nil, nil, false, message.ErrShape},
		{"sequence 2.0 in the text", bytes.Replace(sign(second(str(prevID.String()))), []byte(`"sequence":2`), []byte(`"sequence":2.0e0`), 1), state, nil, false, nil},
		{"sequence as a string", sign(msg(str(prevID.String()), str("2"), num(1), post)), state, nil, false, message.ErrShape},
		{"sequence 2^31 out of order", sign(msg(message.Value{}, num(1<<31), num(1), post)), nil, nil, true, message.ErrShape},
		{"sequence -5 out of order", sign(msg(num(7), num(-5), num(1), post)), nil, nil, true, nil},
		{"sequence 0 out of order", sign(msg(mustParse(`{"x":[]}`), num(0), num(1), post)), nil, nil, true, nil},
		{"sequence 1.5", sign(first(num(1.5), num(1), post)), nil, nil, false, message.ErrShape},
		{"author and sequence swapped", sign([]message.Member{field("previous", message.Value{}), field("author", author), field("sequence", num(1)),
			field("timestamp", num(1)), field("hash", str("sha256")), field("content", post)}), nil, nil, false, nil},
		{"hash SHA256", sign([]message.Member{field("previous", message.Value{}), field("sequence", num(1)), field("author", author),
			field("timestamp", num(1)), field("hash", str("SHA256")), field("content", post)}), nil, nil, false, message.ErrShape},
		{"extra field", sign(append(first(num(1), num(1), post), field("extra", num(1)))), nil, nil, false, message.ErrShape},
		{"empty box", sign(first(num(1), num(1), str(".box"))), nil, nil, false, nil},
		{"box with a suffix", sign(first(num(1), num(1), str("AAAA.box☃ more"))), nil, nil, false, nil},
		{"box2", sign(first(num(1), num(1), str("AAA=.box2"))), nil, nil, false, nil},
		{"box not canonical", sign(first(num(1), num(1), str("AAB=.box"))), nil, nil, false, message.ErrContent},
		{"box then a newline", sign(first(num(1), num(1), str("AAAA.box\nx"))), nil, nil, false, message.ErrContent},
		{"box then U+2028", sign(first(num(1), num(1), str("AAAA.box\u2028"))), nil, nil, false, message.ErrContent},
		{"box with dots in base64", sign(first(num(1), num(1), str("AA.A.box"))), nil, nil, false, message.ErrContent},
		{"type of 52 units", sign(first(num(1), num(1), message.ObjectValue(field("type", str(strings.Repeat("😀", 26)))))), nil, nil, false, nil},
		{"type of 53 units", sign(first(num(1), num(1), message.ObjectValue(field("type", str(strings.Repeat("😀", 26)+"a"))))), nil, nil, false, message.ErrContent},
		{"type of 3 units", sign(first(num(1), num(1), message.ObjectValue(field("type", str("😀a"))))), nil, nil, false, nil},
		{"type of 2 units", sign(first(num(1), num(1), message.ObjectValue(field("type", str("😀"))))), nil, nil, false, message.ErrContent},
		{"type a lone surrogate and a pair", sign(first(num(1), num(1), message.ObjectValue(field("type", str(hiSurrogate+hiSurrogate+loSurrogate))))), nil, nil, false, nil},
		{"type two lone surrogates", sign(first(num(1), num(1), message.ObjectValue(field("type", str(loSurrogate+hiSurrogate))))), nil, nil, false, message.ErrContent},
		{"type three lone surrogates", sign(first(num(1), num(1), message.ObjectValue(field("type", str(hiSurrogate+hiSurrogate+hiSurrogate))))), nil, nil, false, nil},
		{"type a number", sign(first(num(1), num(1), mustParse(`{"type":123}`))), nil, nil, false, message.ErrContent},
		{"content an array", sign(first(num(1), num(1), mustParse(`["post"]`))), nil, nil, false, message.ErrContent},
		{"content type repeated in the text", bytes.Replace(sign(first(num(1), num(1), post)), []byte(`{"type":"post"`), []byte(`{"type":"nope","type":"post"`), 1), nil, nil, false, nil},
		{"escapes and spaces in the text", bytes.Replace(sign(first(num(1), num(1), post)), []byte(`"text":"hi"`), []byte("\"te\\u0078t\" :\t\"\\u0068\\u0069\"\n"), 1), nil, nil, false, nil},
		{"hmac", signFields(kp, hmacKey, first(num(1), num(1), post)...), nil, hmacKey, false, nil},
		{"hmac message without the key", signFields(kp, hmacKey, first(num(1), num(1), post)...), nil, nil, false, message.ErrSignature},
		{"plain message with a key", sign(first(num(1), num(1), post)), nil, hmacKey, false, message.ErrSignature},
		{"tampered", bytes.Replace(sign(first(num(1), num(1), post)), []byte(`"hi"`), []byte(`"ho"`), 1), nil, nil, false, message.ErrSignature},
		{"signature not canonical", nonCanonicalSig(sign(first(num(1), num(1), post))), nil, nil, false, message.ErrSignature},
		{"author with .sha256", bytes.Replace(sign(first(num(1), num(1), post)), []byte(".ed25519\""), []byte(".sha256\""), 1), nil, nil, false, message.ErrShape},
		{"large numbers", sign(first(num(1), num(1e21), mustParse(`{"type":"nums","a":[1e400,-1e400,-0,1e-7,12345678901234567890,0.1]}`))), nil, nil, false, nil},
		{"timestamp 1e400 in the first", bytes.Replace(sign(first(num(1), num(math.Inf(1)), post)), []byte(`"timestamp":null`), []byte(`"timestamp":1e400`), 1), nil, nil, false, nil},
	}
	for _, c := range cases {
		jsv := j.validate(c.raw, c.state, c.key, c.ooo)
		var m *message.Message
		if c.ooo {
			m, err = message.ValidateOOO(c.raw, c.key)
		} else {
			m, err = message.Validate(c.state, c.raw, c.key)
		}
		switch {
		case jsv.ok != (err == nil):
			t.Errorf("%s: ssb-validate ok=%v (%s), Go: %v\n%s", c.name, jsv.ok, jsv.err, err, c.raw)
		case c.want == nil && err != nil:
			t.Errorf("%s: Go: %v, want valid", c.name, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: Go: %v, want %v", c.name, err, c.want)
		case err == nil && m.Key.String() != jsv.id:
			t.Errorf("%s: key %s, ssb-validate id %s", c.name, m.Key, jsv.id)
		default:
			t.Logf("%s: both %s", c.name, verdict(err))
		}
	}
}

func verdict(err error) string {
	if err == nil {
		return "accept"
	}
	return fmt.Sprintf("reject (%v)", err)
}

// nonCanonicalSig changes the last base64 digit of a signature to one
// with stray bits: the same 64 bytes to a lenient decoder.
func nonCanonicalSig(raw []byte) []byte {
	i := bytes.Index(raw, []byte("==.sig.ed25519"))
	out := bytes.Clone(raw)
	c := out[i-1]
	switch {
	case c >= 'A' && c < 'Z':
		out[i-1] = c + 1
	default:
		out[i-1] = 'B'
	}
	return out
}

// TestJSSmallOrder checks the libsodium rules crypto/ed25519 lacks:
// signatures that crypto/ed25519 accepts, with a public key or R of small
// order, which ssb-validate (libsodium) rejects. Go must reject them too.
func TestJSSmallOrder(t *testing.T) {
	j := startJS(t)
	content := map[string]string{"type": "post", "text": "forged"}

	// 1. The identity as public key: with S = 1 and R = B, [S]B - [h]A = B
	// for every message, so anyone can "sign" as this key.
	identity := make([]byte, 32)
	identity[0] = 1
	author, err := refs.NewFeed(identity)
	if err != nil {
		t.Fatal(err)
	}
	basePoint := []byte{0x58, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66,
		0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66, 0x66}
	forgeIdentity := func(msg []byte) []byte {
		sig := append(bytes.Clone(basePoint), make([]byte, 32)...)
		sig[32] = 1
		if !ed25519.Verify(identity, msg, sig) {
			t.Fatal("crypto/ed25519 rejects the identity-key forgery")
		}
		return sig
	}

	// 2. A real key signing with R = the identity: S = h·a mod L.
	kp, err := keys.FromSeed(bytes.Repeat([]byte{11}, 32))
	if err != nil {
		t.Fatal(err)
	}
	smallR := func(msg []byte) []byte {
		sig := message.SignWithIdentityR(kp.Private, msg)
		if !ed25519.Verify(kp.Public, msg, sig) {
			t.Fatal("crypto/ed25519 rejects the small-R signature")
		}
		return sig
	}

	for _, c := range []struct {
		name   string
		author refs.Feed
		sign   func([]byte) []byte
	}{{"identity public key", author, forgeIdentity}, {"small-order R", kp.ID, smallR}} {
		m, err := message.CreateWith(c.author, c.sign, nil, nil, 1, content, true)
		if err != nil {
			t.Fatal(err)
		}
		jsv := j.validate(m.Raw, nil, nil, false)
		_, goErr := message.Validate(nil, m.Raw, nil)
		if jsv.ok || !errors.Is(goErr, message.ErrSignature) {
			t.Errorf("%s: ssb-validate ok=%v, Validate: %v; want both to reject", c.name, jsv.ok, goErr)
		}
	}
}
