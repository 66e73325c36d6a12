package keys_test

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
)

// These tests check the keys against npm ssb-keys@8.5.0 in node, through
// interop/ssb-message.js.

// jsKeys is the keys object of ssb-keys.
type jsKeys struct {
	Curve   string `json:"curve"`
	Public  string `json:"public"`
	Private string `json:"private"`
	ID      string `json:"id"`
}

func startJS(t *testing.T) *oracle.Peer {
	t.Helper()
	p := oracle.Start(t, "ssb-message.js")
	p.WaitFor(oracle.Ev("ready"))
	return p
}

func keysOf(t *testing.T, m oracle.Msg) jsKeys {
	t.Helper()
	var k jsKeys
	if err := m.Decode("keys", &k); err != nil {
		t.Fatal(err)
	}
	return k
}

func sameKeys(t *testing.T, what string, kp *keys.KeyPair, k jsKeys) {
	t.Helper()
	pub := base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519"
	priv := base64.StdEncoding.EncodeToString(kp.Private) + ".ed25519"
	if k.Curve != "ed25519" || k.Public != pub || k.Private != priv || k.ID != kp.ID.String() {
		t.Fatalf("%s: JS keys %+v, Go %s %s", what, k, kp.ID, priv)
	}
}

// TestJSStringSeeds compares FromSeedString with ssb-keys generate(curve,
// string), including seeds cut at 32 UTF-16 units or 32 bytes in the
// middle of a character.
func TestJSStringSeeds(t *testing.T) {
	p := startJS(t)
	for _, seed := range []string{
		"hello", strings.Repeat("a", 32), strings.Repeat("abc", 20), strings.Repeat("ü", 20),
		strings.Repeat("😀", 16), strings.Repeat("x", 31) + "😀", strings.Repeat("☃", 11), "\x00\x01 tab\t",
	} {
		kp, err := keys.FromSeedString(seed)
		if err != nil {
			t.Fatal(err)
		}
		sameKeys(t, "seed "+seed, kp, keysOf(t, p.Do(oracle.Cmd{"op": "keys", "seed": seed})))
	}
}

// TestJSLoadsGoSecret: ssb-keys loadSync reads a file Save wrote, and signs
// with it a message that Validate accepts.
func TestJSLoadsGoSecret(t *testing.T) {
	p := startJS(t)
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), ".ssb", "secret")
	if err := keys.Save(path, kp); err != nil {
		t.Fatal(err)
	}
	sameKeys(t, "loadSync", kp, keysOf(t, p.Do(oracle.Cmd{"op": "loadSecret", "path": path})))

	content := base64.StdEncoding.EncodeToString([]byte(`{"type":"post","text":"signed in node with a Go secret"}`))
	reply := p.Do(oracle.Cmd{"op": "create", "secret": path, "state": nil, "hmacKey": nil, "content": content, "timestamp": 1.7e12})
	raw, err := base64.StdEncoding.DecodeString(reply.Str("msg"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Validate(nil, raw, nil)
	if err != nil || m.Author != kp.ID || m.Key.String() != reply.Str("id") {
		t.Fatalf("Validate(JS message) = %+v, %v; JS id %s", m, err, reply.Str("id"))
	}
}

// TestGoLoadsJSSecret: Load reads a file ssb-keys createSync wrote, whose
// bytes are exactly what Save would write.
func TestGoLoadsJSSecret(t *testing.T) {
	p := startJS(t)
	path := filepath.Join(t.TempDir(), "js", "secret")
	k := keysOf(t, p.Do(oracle.Cmd{"op": "createSecret", "path": path}))
	kp, err := keys.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	sameKeys(t, "Load", kp, k)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, kp.Secret()) {
		t.Fatalf("ssb-keys wrote\n%s\nSecret() is\n%s", data, kp.Secret())
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o400 {
		t.Fatalf("ssb-keys file mode %v, %v", fi.Mode(), err)
	}
}
