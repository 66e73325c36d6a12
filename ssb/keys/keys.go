// Package keys holds Secure Scuttlebutt identities: ed25519 keypairs, and the
// "secret" file that npm ssb-keys@8 reads and writes (~/.ssb/secret), so that
// a user can bring an identity made by the JavaScript stack and the other way
// round.
//
// A secret file is a block of "#" comment lines, the keypair as
// JSON.stringify(keys, null, 2), and a trailing comment with the feed id:
//
//	# WARNING: Never show this to anyone.
//	...
//	{
//	  "curve": "ed25519",
//	  "public": "<base64 of the 32-byte public key>.ed25519",
//	  "private": "<base64 of the 64-byte secret key, seed ‖ public>.ed25519",
//	  "id": "@<base64 of the public key>.ed25519"
//	}
//	#
//	# The only part of this file that's safe to share is your public name:
//	#
//	#   @<base64 of the public key>.ed25519
//
// Save writes exactly the bytes ssb-keys createSync writes, with mode 0400.
// ParseSecret reads a file the way ssb-keys loadSync does (see ParseSecret
// for the details) and then, unlike ssb-keys, checks that the keys make
// sense: the curve is ed25519, the keys are canonical base64 of the right
// length, and the public key and id belong to the private key.
package keys

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Curve is the only signature scheme of classic SSB feeds, and the value of
// the secret file's "curve" field.
const Curve = "ed25519"

const tag = "." + Curve

// Errors of this package. Load also returns the errors of package os
// unwrapped by errors.Is: a missing file is fs.ErrNotExist, and Save into an
// existing file is fs.ErrExist.
var (
	// ErrFormat reports a secret file that is not the ssb-keys JSON format,
	// or a key that is not canonical base64 of the right length.
	ErrFormat = errors.New("keys: malformed secret file")
	// ErrCurve reports keys of a curve other than ed25519.
	ErrCurve = errors.New("keys: unsupported curve")
	// ErrMismatch reports a public key or id that does not belong to the
	// private key.
	ErrMismatch = errors.New("keys: public key does not match private key")
	// ErrSeed reports a seed ssb-keys would not turn into a keypair.
	ErrSeed = errors.New("keys: invalid seed")
)

// A KeyPair is an SSB identity. Create one with Generate, FromSeed,
// FromSeedString, FromPrivateKey, ParseSecret or Load; the fields agree with
// each other in every KeyPair these return.
type KeyPair struct {
	ID      refs.Feed          // the feed id, "@" + base64(Public) + ".ed25519"
	Public  ed25519.PublicKey  // 32 bytes
	Private ed25519.PrivateKey // 64 bytes, seed ‖ public, as libsodium keeps it
}

// Generate returns a new random keypair, reading 32 bytes of seed from rand
// (crypto/rand when rand is nil).
func Generate(rand io.Reader) (*KeyPair, error) {
	_, priv, err := ed25519.GenerateKey(rand)
	if err != nil {
		return nil, fmt.Errorf("keys: generate: %w", err)
	}
	return FromPrivateKey(priv)
}

// FromSeed returns the keypair of a 32-byte seed, as ssb-keys
// generate("ed25519", seed) does for a Buffer seed (libsodium
// crypto_sign_seed_keypair).
func FromSeed(seed []byte) (*KeyPair, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed of %d bytes, want %d", ErrSeed, len(seed), ed25519.SeedSize)
	}
	return FromPrivateKey(ed25519.NewKeyFromSeed(seed))
}

// FromSeedString returns the keypair ssb-keys generate("ed25519", s) derives
// from a string seed: the UTF-8 encoding of the first 32 UTF-16 code units
// of s, truncated or zero-padded to 32 bytes. Cutting s may split a
// surrogate pair; the half left over is encoded as U+FFFD, as Node does. An
// empty string is an error (ssb-keys would make a random key).
func FromSeedString(s string) (*KeyPair, error) {
	if s == "" {
		return nil, fmt.Errorf("%w: empty string seed (ssb-keys would generate a random key)", ErrSeed)
	}
	var units []uint16
	for _, r := range s {
		units = utf16.AppendRune(units, r)
		if len(units) >= 32 {
			break
		}
	}
	units = units[:min(len(units), 32)]
	var enc []byte
	for _, r := range utf16.Decode(units) { // a lone surrogate decodes to U+FFFD
		enc = utf8.AppendRune(enc, r)
	}
	seed := make([]byte, ed25519.SeedSize)
	copy(seed, enc)
	return FromSeed(seed)
}

// FromPrivateKey returns the keypair of a 64-byte ed25519 private key. The
// public half stored in priv must be the one its seed gives.
func FromPrivateKey(priv ed25519.PrivateKey) (*KeyPair, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("%w: private key of %d bytes, want %d", ErrFormat, len(priv), ed25519.PrivateKeySize)
	}
	derived := ed25519.NewKeyFromSeed(priv.Seed())
	if !bytes.Equal(derived, priv) {
		return nil, fmt.Errorf("%w: the private key's public half is not the key of its seed", ErrMismatch)
	}
	pub := derived.Public().(ed25519.PublicKey)
	id, err := refs.NewFeed(pub)
	if err != nil {
		return nil, fmt.Errorf("keys: %w", err)
	}
	return &KeyPair{ID: id, Public: pub, Private: derived}, nil
}

// Sign returns the ed25519 signature of msg.
func (kp *KeyPair) Sign(msg []byte) []byte { return ed25519.Sign(kp.Private, msg) }

const secretHeader = `# WARNING: Never show this to anyone.
# WARNING: Never edit it or use it on multiple devices at once.
#
# This is your SECRET, it gives you magical powers. With your secret you can
# sign your messages so that your friends can verify that the messages came
# from you. If anyone learns your secret, they can use it to impersonate you.
#
# If you use this secret on more than one device you will create a fork and
# your friends will stop replicating your content.
#
`

const secretFooter = `
#
# The only part of this file that's safe to share is your public name:
#
#   `

// Secret returns the secret file of kp, byte for byte what ssb-keys@8
// createSync writes (no newline at the end).
func (kp *KeyPair) Secret() []byte {
	pub := base64.StdEncoding.EncodeToString(kp.Public) + tag
	id := "@" + pub
	// JSON.stringify(keys, null, 2); base64 and tags need no escaping.
	var b bytes.Buffer
	b.WriteString(secretHeader)
	b.WriteString("{\n  \"curve\": \"" + Curve + "\",\n  \"public\": \"" + pub + "\",\n  \"private\": \"")
	b.WriteString(base64.StdEncoding.EncodeToString(kp.Private) + tag)
	b.WriteString("\",\n  \"id\": \"" + id + "\"\n}")
	b.WriteString(secretFooter)
	b.WriteString(id)
	return b.Bytes()
}

// ParseSecret reads a secret file as ssb-keys@8 loadSync does: the bytes are
// decoded as Node's "ascii" encoding (each byte's high bit cleared), every
// match of the regular expression /\s*#[^\n]*/g is removed, the remaining
// non-empty lines are joined without separator, and the result is parsed
// as JSON. Then the keys are checked (see the package documentation). An id
// without a sigil is replaced by "@" + public, as ssb-keys does; a missing
// curve is taken from the public key's suffix, as ssb-keys' getCurve does.
func ParseSecret(data []byte) (*KeyPair, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(stripComments(data), &fields); err != nil {
		return nil, fmt.Errorf("%w: not JSON after removing # comments: %w", ErrFormat, err)
	}
	if fields == nil {
		return nil, fmt.Errorf("%w: not a JSON object", ErrFormat)
	}
	str := func(name string) (string, bool, error) {
		raw, ok := fields[name]
		if !ok {
			return "", false, nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", true, fmt.Errorf("%w: %q is not a string", ErrFormat, name)
		}
		return s, true, nil
	}
	curve, hasCurve, err := str("curve")
	if err != nil {
		return nil, err
	}
	public, hasPublic, err := str("public")
	if err != nil {
		return nil, err
	}
	private, hasPrivate, err := str("private")
	if err != nil {
		return nil, err
	}
	id, _, err := str("id")
	if err != nil {
		return nil, err
	}
	if !hasPrivate {
		return nil, fmt.Errorf("%w: no \"private\" key", ErrFormat)
	}
	if !hasPublic {
		return nil, fmt.Errorf("%w: no \"public\" key", ErrFormat)
	}
	if !hasCurve {
		curve = public[strings.IndexByte(public, '.')+1:] // ssb-keys getTag
	}
	if curve != Curve {
		return nil, fmt.Errorf("%w: %q, want %q", ErrCurve, curve, Curve)
	}
	priv, err := decodeKey("private", private, ed25519.PrivateKeySize)
	if err != nil {
		return nil, err
	}
	pub, err := decodeKey("public", public, ed25519.PublicKeySize)
	if err != nil {
		return nil, err
	}
	kp, err := FromPrivateKey(priv)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(pub, kp.Public) {
		return nil, fmt.Errorf("%w: \"public\" is %s, the private key's is %s", ErrMismatch, public, kp.ID.String()[1:])
	}
	if id != "" && strings.ContainsRune("@%&", rune(id[0])) && id != kp.ID.String() {
		return nil, fmt.Errorf("%w: \"id\" is %s, the private key's is %s", ErrMismatch, id, kp.ID)
	}
	return kp, nil
}

// stripComments does what ssb-keys reconstructKeys does before JSON.parse.
func stripComments(data []byte) []byte {
	text := make([]byte, len(data))
	for i, c := range data {
		text[i] = c & 0x7f // Node's "ascii" decoding
	}
	var out []byte
	for i := 0; i < len(text); {
		j := i
		for j < len(text) && isJSSpace(text[j]) {
			j++
		}
		if j < len(text) && text[j] == '#' {
			// /\s*#[^\n]*/: drop the spaces before '#' and the rest of the line.
			for j < len(text) && text[j] != '\n' {
				j++
			}
			i = j
			continue
		}
		if j > i {
			out = append(out, text[i:j]...)
			i = j
			continue
		}
		out = append(out, text[i])
		i++
	}
	var joined []byte
	for line := range bytes.SplitSeq(out, []byte{'\n'}) {
		joined = append(joined, line...) // empty lines add nothing
	}
	return joined
}

// isJSSpace reports whether c, an ASCII byte, matches the JavaScript regular
// expression \s.
func isJSSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// decodeKey decodes "<canonical base64>.ed25519" of n bytes.
func decodeKey(name, s string, n int) ([]byte, error) {
	b64, ok := strings.CutSuffix(s, tag)
	if !ok {
		return nil, fmt.Errorf("%w: %q key must end with %q", ErrFormat, name, tag)
	}
	key := make([]byte, n)
	if err := refs.DecodeBase64(key, b64); err != nil {
		return nil, fmt.Errorf("%w: %q key: %w", ErrFormat, name, err)
	}
	return key, nil
}

// Load reads and checks the secret file at path (see ParseSecret).
func Load(path string) (*KeyPair, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys: load: %w", err)
	}
	kp, err := ParseSecret(data)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return kp, nil
}

// Save writes kp's secret file to path with mode 0400, creating the parent
// directories (mode 0700) if needed. Like ssb-keys it never overwrites: if
// path exists, the error wraps fs.ErrExist. The file and its directory are
// synced before Save returns.
func Save(path string, kp *KeyPair) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keys: save: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o400)
	if err != nil {
		return fmt.Errorf("keys: save: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("keys: save: %w", cerr)
		}
		if err != nil {
			os.Remove(path) // do not leave a partial secret behind
		}
	}()
	if _, err := f.Write(kp.Secret()); err != nil {
		return fmt.Errorf("keys: save: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("keys: save: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // best effort: not every file system syncs directories
		d.Close()
	}
	return nil
}
