package message_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// datasetCase is one entry of npm ssb-validation-dataset@1.2.1 data.json.
type datasetCase struct {
	index   int
	state   *message.FeedState
	hmacKey message.Value // null, a string, or (once) true
	message message.Value
	valid   bool
	errText string
	id      string
}

// loadDataset reads ssb-validation-dataset from interop/node_modules (npm
// ci installs it) with this package's own order-preserving parser.
func loadDataset(t testing.TB) []datasetCase {
	t.Helper()
	oracle.Require(t)
	path := filepath.Join(oracle.Dir(), "node_modules", "ssb-validation-dataset", "data.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	all, err := message.Parse(data)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	var cases []datasetCase
	for i, e := range all.Elems() {
		c := datasetCase{index: i}
		c.hmacKey, _ = e.Get("hmacKey")
		c.message, _ = e.Get("message")
		valid, _ := e.Get("valid")
		c.valid = valid.Bool()
		errText, _ := e.Get("error")
		c.errText = errText.Str()
		id, _ := e.Get("id")
		if !strings.HasPrefix(id.Str(), "%") {
			t.Fatalf("case %d: id %q", i, id.Str())
		}
		c.id = id.Str()
		// As ssb-validate/test/data.js: state is the feed state of message.author.
		if st, _ := e.Get("state"); st.Kind() == message.Object {
			sid, _ := st.Get("id")
			seq, _ := st.Get("sequence")
			ref, err := refs.ParseMessage(sid.Str())
			if err != nil {
				t.Fatalf("case %d: state id: %v", i, err)
			}
			c.state = &message.FeedState{ID: ref, Sequence: int64(seq.Number())}
		}
		cases = append(cases, c)
	}
	if len(cases) != 126 {
		t.Fatalf("dataset has %d cases, want 126", len(cases))
	}
	return cases
}

// hmacKeyOf decodes a case's HMAC key as ssb-validate would take it.
func hmacKeyOf(v message.Value) ([]byte, error) {
	switch v.Kind() {
	case message.Null:
		return nil, nil
	case message.String:
		return message.ParseHMACKey(v.Str())
	}
	return nil, errors.New("HMAC key is not a string") // Buffer.from(true) throws in ssb-validate
}

// TestDataset runs all 126 cases of ssb-validation-dataset: the valid ones
// must validate with the expected id, the invalid ones must fail, and every
// case's id (which the dataset gives for invalid messages too) must be what
// ID computes from the parsed value.
func TestDataset(t *testing.T) {
	cases := loadDataset(t)
	agree, ids := 0, 0
	for _, c := range cases {
		if got := message.ID(c.message).String(); got != c.id {
			t.Errorf("case %d: ID = %s, want %s", c.index, got, c.id)
		} else {
			ids++
		}
		raw := c.message.AppendCompact(nil)
		key, err := hmacKeyOf(c.hmacKey)
		var m *message.Message
		if err == nil {
			m, err = message.Validate(c.state, raw, key)
		}
		// Validating the parsed value must agree with validating the text.
		if key, kerr := hmacKeyOf(c.hmacKey); kerr == nil {
			mv, verr := message.ValidateValue(c.state, c.message, key)
			if (verr == nil) != (err == nil) || (mv != nil && mv.Key != m.Key) {
				t.Errorf("case %d: ValidateValue = %v, Validate = %v", c.index, verr, err)
			}
		}
		switch {
		case c.valid && err != nil:
			t.Errorf("case %d: valid, but Validate: %v\n%s", c.index, err, raw)
		case c.valid && m.Key.String() != c.id:
			t.Errorf("case %d: key %s, want %s", c.index, m.Key, c.id)
		case !c.valid && err == nil:
			t.Errorf("case %d: invalid (%s), but Validate accepted it\n%s", c.index, c.errText, raw)
		default:
			agree++
			if err != nil {
				t.Logf("case %d: %s -> %v", c.index, c.errText, err)
			}
		}
		if c.valid && err == nil {
			checkMessageFields(t, c, m)
		}
	}
	t.Logf("ssb-validation-dataset: %d/%d cases agree, %d/%d ids match", agree, len(cases), ids, len(cases))
}

// checkMessageFields checks the fields of a valid case's Message against
// the dataset's value.
func checkMessageFields(t *testing.T, c datasetCase, m *message.Message) {
	t.Helper()
	get := func(k string) message.Value { v, _ := c.message.Get(k); return v }
	if got, want := m.Author.String(), get("author").Str(); got != want {
		t.Errorf("case %d: Author = %s, want %s", c.index, got, want)
	}
	if got, want := m.Sequence, int64(get("sequence").Number()); got != want {
		t.Errorf("case %d: Sequence = %d, want %d", c.index, got, want)
	}
	if got, want := m.Timestamp, get("timestamp").Number(); got != want {
		t.Errorf("case %d: Timestamp = %v, want %v", c.index, got, want)
	}
	if p := get("previous"); (p.Kind() == message.Null) != (m.Previous == nil) || (m.Previous != nil && m.Previous.String() != p.Str()) {
		t.Errorf("case %d: Previous = %v, want %s", c.index, m.Previous, p)
	}
	if got, want := string(m.Raw), c.message.String(); got != want {
		t.Errorf("case %d: Raw = %s, want %s", c.index, got, want)
	}
	if got, want := string(m.Pretty()), string(c.message.AppendPretty(nil)); got != want {
		t.Errorf("case %d: Pretty() = %s, want %s", c.index, got, want)
	}
	content := get("content")
	if got, want := string(m.Content), content.String(); got != want {
		t.Errorf("case %d: Content = %s, want %s", c.index, got, want)
	}
	typ, _ := content.Get("type")
	if m.Type != typ.Str() || m.Encrypted() != (content.Kind() == message.String) {
		t.Errorf("case %d: Type = %q, Encrypted = %v; content %s", c.index, m.Type, m.Encrypted(), content)
	}
	if m.Signature != get("signature").Str() {
		t.Errorf("case %d: Signature = %s", c.index, m.Signature)
	}
	// Decode of Raw gives the same message without verifying.
	d, err := message.Decode(m.Raw)
	if err != nil || d.Key != m.Key || string(d.Raw) != string(m.Raw) {
		t.Errorf("case %d: Decode(Raw) = %v, %v", c.index, d, err)
	}
}

// TestWeirdVector is the id regression vector of ssb-keys test/weird.js: a
// real message whose text holds U+2019, hashed with the latin1 quirk.
func TestWeirdVector(t *testing.T) {
	const raw = `{
  "previous": "%VBfEJjeNUlxLuK0eyRzVha3TLu5PPWLwsvGgnmAdPas=.sha256",
  "author": "@/02iw6SFEPIHl8nMkYSwcCgRWxiG6VP547Wcp1NW8Bo=.ed25519",
  "sequence": 2888,
  "timestamp": 1457679971682,
  "hash": "sha256",
  "content": {
    "type": "post",
    "text": "oh no\n\nhttps://medium.com/making-instapaper/bookmarklets-are-dead-d470d4bbb626\n\n> The ultimate catch-22 of the new Content Security Policy wording is that it’s intended to benefit the users, by providing additional security from hypothetical malicious add-ons on websites that enforce a Content Security Policy. In the end the bookmarklet has been relegated obsolete by the change, a casualty of one clause in one section of one web specification, and end-users and developers are the ones who will mourn its demise. The path to hell is paved with good intentions.\n\n> I’d probably try to do more about it, but I’m too busy rewriting Instapaper’s bookmarklet into extensions for every major browser.\n\nhttps://www.youtube.com/watch?v=n5diMImYIIA",
    "root": "%VBfEJjeNUlxLuK0eyRzVha3TLu5PPWLwsvGgnmAdPas=.sha256",
    "branch": "%VBfEJjeNUlxLuK0eyRzVha3TLu5PPWLwsvGgnmAdPas=.sha256",
    "channel": "javascript"
  },
  "signature": "Pv+LWJumKE8nIOfsZxgMcg/EcR/tZeJShmiVIGizERuiAMzwzTTjg78r+InmJopJwMogEG7/W3FLTnH/EOzLCg==.sig.ed25519"
}`
	const want = "%lFluepOmDxEUcZWlLfz0rHU61xLQYxknAEd6z4un8P8=.sha256"
	v, err := message.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(v.AppendPretty(nil)); got != raw {
		t.Fatalf("pretty form differs from the input:\n%s", got)
	}
	if got := message.ID(v).String(); got != want {
		t.Fatalf("ID = %s, want %s", got, want)
	}
	prevID, _ := refs.ParseMessage("%VBfEJjeNUlxLuK0eyRzVha3TLu5PPWLwsvGgnmAdPas=.sha256")
	m, err := message.Validate(&message.FeedState{ID: prevID, Sequence: 2887}, []byte(raw), nil)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if m.Key.String() != want || m.Type != "post" || m.Sequence != 2888 {
		t.Fatalf("Validate = %+v", m)
	}
}
