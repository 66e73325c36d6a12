// Package refs parses and formats Secure Scuttlebutt references: feed ids
// (@…=.ed25519), message ids (%…=.sha256) and blob ids (&…=.sha256).
//
// Only canonical forms are accepted, as ssb-ref and ssb-validate require:
// standard base64 with padding, no stray bits in the last character, no
// whitespace, and exactly 32 bytes of key or hash.
package refs

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrInvalid is wrapped by every parse error of this package.
var ErrInvalid = errors.New("refs: invalid reference")

// Suffixes of the supported formats.
const (
	SuffixEd25519 = ".ed25519"
	SuffixSHA256  = ".sha256"
)

// A Feed is a feed id: an ed25519 public key.
type Feed struct{ key [32]byte }

// A Message is a message id: the SHA-256 hash of a signed message.
type Message struct{ hash [32]byte }

// A Blob is a blob id: the SHA-256 hash of the blob's bytes.
type Blob struct{ hash [32]byte }

// NewFeed returns the feed id of an ed25519 public key.
func NewFeed(pub ed25519.PublicKey) (Feed, error) {
	var f Feed
	if len(pub) != ed25519.PublicKeySize {
		return f, fmt.Errorf("%w: public key of %d bytes, want %d", ErrInvalid, len(pub), ed25519.PublicKeySize)
	}
	copy(f.key[:], pub)
	return f, nil
}

// NewMessage returns the message id of a SHA-256 hash.
func NewMessage(hash [32]byte) Message { return Message{hash} }

// NewBlob returns the blob id of a SHA-256 hash.
func NewBlob(hash [32]byte) Blob { return Blob{hash} }

// PublicKey returns the feed's ed25519 public key.
func (f Feed) PublicKey() ed25519.PublicKey { return append(ed25519.PublicKey(nil), f.key[:]...) }

// Hash returns the message's SHA-256 hash.
func (m Message) Hash() [32]byte { return m.hash }

// Hash returns the blob's SHA-256 hash.
func (b Blob) Hash() [32]byte { return b.hash }

func (f Feed) String() string    { return format('@', f.key[:], SuffixEd25519) }
func (m Message) String() string { return format('%', m.hash[:], SuffixSHA256) }
func (b Blob) String() string    { return format('&', b.hash[:], SuffixSHA256) }

// IsZero reports whether f is the zero Feed (no key).
func (f Feed) IsZero() bool { return f == Feed{} }

// Compare orders feeds by their keys' bytes: -1, 0 or +1.
func (f Feed) Compare(g Feed) int { return bytes.Compare(f.key[:], g.key[:]) }

// IsZero reports whether m is the zero Message.
func (m Message) IsZero() bool { return m == Message{} }

// IsZero reports whether b is the zero Blob.
func (b Blob) IsZero() bool { return b == Blob{} }

func format(sigil byte, b []byte, suffix string) string {
	var sb strings.Builder
	sb.Grow(1 + base64.StdEncoding.EncodedLen(len(b)) + len(suffix))
	sb.WriteByte(sigil)
	sb.WriteString(base64.StdEncoding.EncodeToString(b))
	sb.WriteString(suffix)
	return sb.String()
}

// ParseFeed parses a feed id such as @FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519.
func ParseFeed(s string) (Feed, error) {
	var f Feed
	err := parse(s, '@', SuffixEd25519, "feed", f.key[:])
	return f, err
}

// ParseMessage parses a message id such as %…=.sha256.
func ParseMessage(s string) (Message, error) {
	var m Message
	err := parse(s, '%', SuffixSHA256, "message", m.hash[:])
	return m, err
}

// ParseBlob parses a blob id such as &…=.sha256.
func ParseBlob(s string) (Blob, error) {
	var b Blob
	err := parse(s, '&', SuffixSHA256, "blob", b.hash[:])
	return b, err
}

func parse(s string, sigil byte, suffix, kind string, dst []byte) error {
	if len(s) == 0 || s[0] != sigil {
		return fmt.Errorf("%w: %q is not a %s id: it must start with %q", ErrInvalid, s, kind, sigil)
	}
	body, ok := strings.CutSuffix(s[1:], suffix)
	if !ok {
		return fmt.Errorf("%w: %q is not a %s id: it must end with %q", ErrInvalid, s, kind, suffix)
	}
	if err := DecodeBase64(dst, body); err != nil {
		return fmt.Errorf("%w: %q is not a %s id: %w", ErrInvalid, s, kind, err)
	}
	return nil
}

// DecodeBase64 decodes canonical standard base64 (with padding, no stray
// bits, no whitespace) of exactly len(dst) bytes into dst.
func DecodeBase64(dst []byte, s string) error {
	if want := base64.StdEncoding.EncodedLen(len(dst)); len(s) != want {
		return fmt.Errorf("base64 of %d characters, want %d for %d bytes", len(s), want, len(dst))
	}
	buf := make([]byte, base64.StdEncoding.DecodedLen(len(s)))
	n, err := base64.StdEncoding.Strict().Decode(buf, []byte(s))
	if err != nil {
		return fmt.Errorf("base64 is not canonical: %w", err)
	}
	if n != len(dst) {
		return fmt.Errorf("base64 decodes to %d bytes, want %d", n, len(dst))
	}
	copy(dst, buf)
	// The decoder skips \r and \n; canonical text has none.
	if base64.StdEncoding.EncodeToString(dst) != s {
		return errors.New("base64 is not canonical")
	}
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (f Feed) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (f *Feed) UnmarshalText(b []byte) (err error) { *f, err = ParseFeed(string(b)); return err }

// MarshalText implements encoding.TextMarshaler.
func (m Message) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Message) UnmarshalText(b []byte) (err error) { *m, err = ParseMessage(string(b)); return err }

// MarshalText implements encoding.TextMarshaler.
func (b Blob) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (b *Blob) UnmarshalText(t []byte) (err error) { *b, err = ParseBlob(string(t)); return err }
