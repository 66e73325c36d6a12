package message_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
)

func testKey(t testing.TB, b byte) *keys.KeyPair {
	t.Helper()
	kp, err := keys.FromSeed(bytes.Repeat([]byte{b}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// feed creates n messages of one feed.
func feed(t testing.TB, kp *keys.KeyPair, hmacKey []byte, n int) []*message.Message {
	t.Helper()
	var msgs []*message.Message
	var state *message.FeedState
	for i := range n {
		m, err := message.Create(kp, hmacKey, state, 1.7e12+float64(i), map[string]any{"type": "post", "text": "hello", "i": i})
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
		s := m.State()
		state = &s
	}
	return msgs
}

func TestCreateFields(t *testing.T) {
	kp := testKey(t, 1)
	msgs := feed(t, kp, nil, 3)
	if msgs[0].Previous != nil || *msgs[1].Previous != msgs[0].Key || *msgs[2].Previous != msgs[1].Key {
		t.Fatal("previous links are wrong")
	}
	m := msgs[1]
	if m.Sequence != 2 || m.Author != kp.ID || m.Timestamp != 1.7e12+1 || m.Type != "post" || m.Encrypted() {
		t.Fatalf("fields: %+v", m)
	}
	if got, want := string(m.Content), `{"i":1,"text":"hello","type":"post"}`; got != want {
		t.Fatalf("Content = %s, want %s", got, want)
	}
	wantPrefix := `{"previous":"` + msgs[0].Key.String() + `","sequence":2,"author":"` + kp.ID.String() + `","timestamp":1700000000001,"hash":"sha256","content":`
	if !strings.HasPrefix(string(m.Raw), wantPrefix) || !strings.HasSuffix(string(m.Raw), `.sig.ed25519"}`) {
		t.Fatalf("Raw = %s", m.Raw)
	}
	if !strings.HasPrefix(string(m.Pretty()), "{\n  \"previous\": \"%") || m.State() != (message.FeedState{ID: m.Key, Sequence: 2}) {
		t.Fatalf("Pretty = %s", m.Pretty())
	}
	if message.ID(mustParse(string(m.Raw))) != m.Key {
		t.Fatal("ID(Raw) is not the key")
	}
	// Encrypted content.
	box, err := message.Create(kp, nil, nil, 1, "AAAA.box")
	if err != nil || !box.Encrypted() || box.Type != "" || string(box.Content) != `"AAAA.box"` {
		t.Fatalf("boxed: %+v, %v", box, err)
	}
}

func TestCreateErrors(t *testing.T) {
	kp := testKey(t, 1)
	for _, c := range []struct {
		name    string
		key     []byte
		prev    *message.FeedState
		ts      float64
		content any
		want    error
	}{
		{"NaN timestamp", nil, nil, math.NaN(), map[string]string{"type": "post"}, message.ErrShape},
		{"infinite timestamp", nil, nil, math.Inf(-1), map[string]string{"type": "post"}, message.ErrShape},
		{"no type", nil, nil, 1, map[string]string{"text": "x"}, message.ErrContent},
		{"short type", nil, nil, 1, map[string]string{"type": "ab"}, message.ErrContent},
		{"array", nil, nil, 1, []int{1}, message.ErrContent},
		{"plain string", nil, nil, 1, "hello", message.ErrContent},
		{"number", nil, nil, 1, 5, message.ErrContent},
		{"bad JSON", nil, nil, 1, json.RawMessage("{"), message.ErrSyntax},
		{"too large", nil, nil, 1, map[string]string{"type": "post", "text": strings.Repeat("x", 8192)}, message.ErrTooLarge},
		{"short HMAC key", []byte{1, 2, 3}, nil, 1, map[string]string{"type": "post"}, message.ErrHMACKey},
		{"sequence overflow", nil, &message.FeedState{Sequence: math.MaxInt32}, 1, map[string]string{"type": "post"}, message.ErrSequence},
		{"negative sequence", nil, &message.FeedState{Sequence: -3}, 1, map[string]string{"type": "post"}, message.ErrSequence},
	} {
		_, err := message.Create(kp, c.key, c.prev, c.ts, c.content)
		if !errors.Is(err, c.want) || !strings.HasPrefix(err.Error(), "message: ") {
			t.Errorf("%s: Create = %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := message.Create(nil, nil, nil, 1, map[string]string{"type": "post"}); err == nil {
		t.Error("Create without keys succeeded")
	}
	if _, err := message.Create(kp, nil, nil, 1, func() {}); err == nil {
		t.Error("Create with content encoding/json cannot encode succeeded")
	}
}

func TestValidateChain(t *testing.T) {
	kp := testKey(t, 2)
	msgs := feed(t, kp, nil, 4)
	var state *message.FeedState
	for i, m := range msgs {
		got, err := message.Validate(state, m.Raw, nil)
		if err != nil || got.Key != m.Key {
			t.Fatalf("message %d: %v", i+1, err)
		}
		s := got.State()
		state = &s
	}
	st := func(i int) *message.FeedState { s := msgs[i].State(); return &s }

	// A duplicate and a gap are sequence errors, with the numbers.
	var se *message.SequenceError
	_, err := message.Validate(st(2), msgs[2].Raw, nil)
	if !errors.As(err, &se) || se.Got != 3 || se.Want != 4 || !errors.Is(err, message.ErrSequence) || !strings.Contains(err.Error(), "already seen") {
		t.Fatalf("duplicate: %v", err)
	}
	_, err = message.Validate(st(0), msgs[3].Raw, nil)
	if !errors.As(err, &se) || se.Got != 4 || se.Want != 2 || !strings.Contains(err.Error(), "gap") {
		t.Fatalf("gap: %v", err)
	}
	_, err = message.Validate(nil, msgs[1].Raw, nil)
	if !errors.As(err, &se) || se.Want != 1 {
		t.Fatalf("second message of an empty feed: %v", err)
	}
	// The zero FeedState is an empty feed.
	if _, err := message.Validate(&message.FeedState{}, msgs[0].Raw, nil); err != nil {
		t.Fatalf("first message, zero state: %v", err)
	}

	// A fork: another message 2, correctly signed, after the same message 1.
	fork, err := message.Create(kp, nil, st(0), 5, map[string]string{"type": "post", "text": "fork"})
	if err != nil {
		t.Fatal(err)
	}
	alt, err := message.Create(kp, nil, st(0), 5, map[string]string{"type": "post", "text": "alt"})
	if err != nil {
		t.Fatal(err)
	}
	altState := alt.State()
	altNext, err := message.Create(kp, nil, &altState, 6, map[string]string{"type": "post"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = message.Validate(st(1), altNext.Raw, nil)
	if !errors.Is(err, message.ErrFork) || errors.Is(err, message.ErrSequence) {
		t.Fatalf("fork: %v, want ErrFork", err)
	}
	if _, err := message.Validate(st(0), fork.Raw, nil); err != nil {
		t.Fatalf("the fork itself, after message 1: %v", err)
	}
	// A forged message with the right sequence and the wrong previous is a
	// signature error, not proof of a fork.
	forged := bytes.Replace(altNext.Raw, []byte(`"sequence":3`), []byte(`"sequence":3.0`), 1)
	forged = bytes.Replace(forged, []byte(`"type":"post"`), []byte(`"type":"fake"`), 1)
	if _, err := message.Validate(st(1), forged, nil); !errors.Is(err, message.ErrSignature) {
		t.Fatalf("forged: %v, want ErrSignature", err)
	}

	// Out of order: no chain checks at all.
	for _, m := range []*message.Message{msgs[3], fork, altNext} {
		got, err := message.ValidateOOO(m.Raw, nil)
		if err != nil || got.Key != m.Key || got.Previous == nil {
			t.Fatalf("ValidateOOO: %v", err)
		}
	}
}

func TestHMAC(t *testing.T) {
	kp := testKey(t, 3)
	key, err := message.ParseHMACKey("CbwuwYXmZgN7ZSuycCXoKGOTU1dGwBex+paeA2kr37U=")
	if err != nil {
		t.Fatal(err)
	}
	msgs := feed(t, kp, key, 2)
	state := msgs[0].State()
	if _, err := message.Validate(&state, msgs[1].Raw, key); err != nil {
		t.Fatal(err)
	}
	if _, err := message.Validate(&state, msgs[1].Raw, nil); !errors.Is(err, message.ErrSignature) {
		t.Fatalf("without the key: %v", err)
	}
	other := bytes.Repeat([]byte{1}, 32)
	if _, err := message.Validate(&state, msgs[1].Raw, other); !errors.Is(err, message.ErrSignature) {
		t.Fatalf("with another key: %v", err)
	}
	for _, bad := range []string{"", "AAAA", "CbwuwYXmZgN7ZSuycCXoKGOTU1dGwBex+paeA2kr37V=", "CbwuwYXmZgN7ZSuycCXoKGOTU1dGwBex+paeA2kr37U", strings.Repeat("A", 88)} {
		if _, err := message.ParseHMACKey(bad); !errors.Is(err, message.ErrHMACKey) {
			t.Errorf("ParseHMACKey(%q) = %v", bad, err)
		}
	}
	if _, err := message.Validate(nil, msgs[0].Raw, []byte{1}); !errors.Is(err, message.ErrHMACKey) {
		t.Fatalf("1-byte key: %v", err)
	}
	if _, err := message.ValidateValue(nil, mustParse(string(msgs[0].Raw)), []byte{1}); !errors.Is(err, message.ErrHMACKey) {
		t.Fatalf("ValidateValue, 1-byte key: %v", err)
	}
}

func TestDecode(t *testing.T) {
	kp := testKey(t, 4)
	m := feed(t, kp, nil, 2)[1]
	// Decode skips the signature and chain checks, not the shape checks.
	tampered := bytes.Replace(m.Raw, []byte(`"hello"`), []byte(`"HELLO"`), 1)
	d, err := message.Decode(tampered)
	if err != nil || d.Key == m.Key || d.Sequence != 2 || *d.Previous != *m.Previous {
		t.Fatalf("Decode(tampered) = %+v, %v", d, err)
	}
	if _, err := message.Validate(nil, tampered, nil); err == nil {
		t.Fatal("Validate accepted a tampered message")
	}
	if _, err := message.Decode([]byte(`{"previous":null}`)); !errors.Is(err, message.ErrShape) {
		t.Fatalf("Decode(not a message) = %v", err)
	}
}

func TestValidateNotMessages(t *testing.T) {
	for in, want := range map[string]error{
		``:                  message.ErrSyntax,
		`{"previous":null`:  message.ErrSyntax,
		`null`:              message.ErrShape,
		`[]`:                message.ErrShape,
		`"x"`:               message.ErrShape,
		`{}`:                message.ErrShape,
		`{"previous":null}`: message.ErrShape,
	} {
		_, err := message.Validate(nil, []byte(in), nil)
		if !errors.Is(err, want) || !strings.HasPrefix(err.Error(), "message: ") {
			t.Errorf("Validate(%q) = %v, want %v", in, err, want)
		}
	}
}
