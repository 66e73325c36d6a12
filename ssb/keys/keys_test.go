package keys_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
)

func TestGenerate(t *testing.T) {
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(kp.Public) != 32 || len(kp.Private) != 64 || !bytes.Equal(kp.Private[32:], kp.Public) {
		t.Fatalf("key sizes: %d, %d", len(kp.Public), len(kp.Private))
	}
	if !bytes.Equal(kp.ID.PublicKey(), kp.Public) {
		t.Fatal("ID is not the public key")
	}
	msg := []byte("hello")
	if !ed25519.Verify(kp.Public, msg, kp.Sign(msg)) {
		t.Fatal("Sign does not verify")
	}
	other, _ := keys.Generate(nil)
	if other.ID == kp.ID {
		t.Fatal("two random keys are equal")
	}
	if _, err := keys.Generate(strings.NewReader("short")); err == nil {
		t.Fatal("Generate from a short reader succeeded")
	}
}

func TestFromSeed(t *testing.T) {
	// RFC 8032 section 7.1, test 1.
	seed, _ := base64.StdEncoding.DecodeString("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
	kp, err := keys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := kp.ID.String(), "@11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=.ed25519"; got != want {
		t.Fatalf("ID = %s, want %s", got, want)
	}
	if _, err := keys.FromSeed(seed[:31]); !errors.Is(err, keys.ErrSeed) {
		t.Fatalf("31-byte seed: %v", err)
	}
	if _, err := keys.FromSeedString(""); !errors.Is(err, keys.ErrSeed) {
		t.Fatalf("empty string seed: %v", err)
	}
	// A string seed is its UTF-8, zero-padded: "hello" is the seed
	// 68 65 6c 6c 6f 00 ... 00.
	a, err := keys.FromSeedString("hello")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := keys.FromSeed(append([]byte("hello"), make([]byte, 27)...))
	if a.ID != b.ID {
		t.Fatal("string seed is not its zero-padded UTF-8")
	}
	bad := bytes.Clone(kp.Private)
	bad[40] ^= 1
	if _, err := keys.FromPrivateKey(bad); !errors.Is(err, keys.ErrMismatch) {
		t.Fatalf("FromPrivateKey(wrong public half) = %v", err)
	}
	if _, err := keys.FromPrivateKey(kp.Private[:63]); !errors.Is(err, keys.ErrFormat) {
		t.Fatalf("FromPrivateKey(63 bytes) = %v", err)
	}
}

func TestSaveLoad(t *testing.T) {
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "sub", "dir", "secret")
	if err := keys.Save(path, kp); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o400 {
		t.Fatalf("mode %v, want 0400", fi.Mode().Perm())
	}
	if dir, _ := os.Stat(filepath.Dir(path)); dir.Mode().Perm() != 0o700 {
		t.Fatalf("directory mode %v, want 0700", dir.Mode().Perm())
	}
	got, err := keys.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != kp.ID || !bytes.Equal(got.Private, kp.Private) || !bytes.Equal(got.Public, kp.Public) {
		t.Fatal("Load(Save(kp)) differs from kp")
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, kp.Secret()) {
		t.Fatal("the file is not Secret()")
	}
	if err := keys.Save(path, kp); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Save over an existing file: %v, want fs.ErrExist", err)
	}
	if _, err := keys.Load(filepath.Join(t.TempDir(), "none")); !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "keys: ") {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
}

// TestSecretFormat pins the file format against a file ssb-keys@8.5.0
// createSync wrote (for the RFC 8032 test 1 seed).
func TestSecretFormat(t *testing.T) {
	seed, _ := base64.StdEncoding.DecodeString("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
	kp, err := keys.FromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	const want = `# WARNING: Never show this to anyone.
# WARNING: Never edit it or use it on multiple devices at once.
#
# This is your SECRET, it gives you magical powers. With your secret you can
# sign your messages so that your friends can verify that the messages came
# from you. If anyone learns your secret, they can use it to impersonate you.
#
# If you use this secret on more than one device you will create a fork and
# your friends will stop replicating your content.
#
{
  "curve": "ed25519",
  "public": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=.ed25519",
  "private": "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2DXWpgBgrEKt9VL/tPJZAc6DuFy89qmIyWvAhpo9wdRGg==.ed25519",
  "id": "@11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=.ed25519"
}
#
# The only part of this file that's safe to share is your public name:
#
#   @11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=.ed25519`
	if got := string(kp.Secret()); got != want {
		t.Fatalf("Secret() =\n%s\nwant\n%s", got, want)
	}
}

func TestParseSecret(t *testing.T) {
	kp, err := keys.FromSeedString("parse")
	if err != nil {
		t.Fatal(err)
	}
	pub := base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519"
	priv := base64.StdEncoding.EncodeToString(kp.Private) + ".ed25519"
	other, _ := keys.FromSeedString("other")
	otherPub := base64.StdEncoding.EncodeToString(other.Public) + ".ed25519"
	obj := func(fields ...string) string { return "{" + strings.Join(fields, ",") + "}" }
	f := func(k, v string) string { return `"` + k + `": "` + v + `"` }
	for _, c := range []struct {
		name, file string
		want       error // nil: parses to kp
	}{
		{"as Secret writes it", string(kp.Secret()), nil},
		{"no comments, one line", obj(f("curve", "ed25519"), f("public", pub), f("private", priv), f("id", "@"+pub)), nil},
		{"comments everywhere, CRLF", "# a\r\n  # b\r\n{\"curve\": \"ed25519\", # c\r\n\"public\": \"" + pub + "\",\r\n\n\"private\": \"" + priv + "\"}\r\n# d", nil},
		{"no id", obj(f("curve", "ed25519"), f("public", pub), f("private", priv)), nil},
		{"id without sigil", obj(f("curve", "ed25519"), f("public", pub), f("private", priv), f("id", pub)), nil},
		{"no curve", obj(f("public", pub), f("private", priv)), nil},
		{"high bits cleared as Node's ascii", "#\xe9\n" + obj(f("curve", "ed25519"), f("public", pub), f("private", priv)), nil},
		{"empty", "", keys.ErrFormat},
		{"only comments", "# x\n# y", keys.ErrFormat},
		{"not JSON", "{curve: ed25519}", keys.ErrFormat},
		{"array", "[]", keys.ErrFormat},
		{"null", "null", keys.ErrFormat},
		{"wrong curve", obj(f("curve", "k256"), f("public", pub), f("private", priv)), keys.ErrCurve},
		{"curve from a tag", obj(f("public", strings.TrimSuffix(pub, "ed25519")+"k256"), f("private", priv)), keys.ErrCurve},
		{"no private", obj(f("curve", "ed25519"), f("public", pub)), keys.ErrFormat},
		{"no public", obj(f("curve", "ed25519"), f("private", priv)), keys.ErrFormat},
		{"private not a string", obj(f("curve", "ed25519"), f("public", pub), `"private": 5`), keys.ErrFormat},
		{"private without tag", obj(f("curve", "ed25519"), f("public", pub), f("private", strings.TrimSuffix(priv, ".ed25519"))), keys.ErrFormat},
		{"private too short", obj(f("curve", "ed25519"), f("public", pub), f("private", pub)), keys.ErrFormat},
		{"private not canonical", obj(f("curve", "ed25519"), f("public", pub), f("private", notCanonical(priv))), keys.ErrFormat},
		{"public of another key", obj(f("curve", "ed25519"), f("public", otherPub), f("private", priv)), keys.ErrMismatch},
		{"id of another key", obj(f("curve", "ed25519"), f("public", pub), f("private", priv), f("id", "@"+otherPub)), keys.ErrMismatch},
		{"private with a wrong public half", obj(f("curve", "ed25519"), f("public", pub), f("private", base64.StdEncoding.EncodeToString(append(kp.Private[:32:32], other.Public...))+".ed25519")), keys.ErrMismatch},
	} {
		got, err := keys.ParseSecret([]byte(c.file))
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want == nil && got.ID != kp.ID:
			t.Errorf("%s: parsed %s, want %s", c.name, got.ID, kp.ID)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		case err != nil && !strings.HasPrefix(err.Error(), "keys: "):
			t.Errorf("%s: error %q lacks the package prefix", c.name, err)
		}
	}
	// Load names the file in its errors.
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Load(path); !errors.Is(err, keys.ErrFormat) || !strings.Contains(err.Error(), path) {
		t.Fatalf("Load(bad file) = %v", err)
	}
}

// notCanonical changes the last base64 digit before the padding so that it
// has stray bits.
func notCanonical(s string) string {
	i := strings.Index(s, "=")
	b := []byte(s)
	if b[i-1] == 'A' {
		b[i-1] = 'B'
	} else {
		b[i-1] = 'A' + 1
	}
	return string(b)
}
