package scuttlebutt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/sodium"
)

// ed25519Context is prepended to what an Ed25519 key signs, so that a
// signature made for a scuttlebutt update is never valid for anything else
// signed with the same key (an SSB message, for example).
const ed25519Context = "scuttlebutt-update-v1\n"

// Ed25519 is the Security to use: each replica signs with its ed25519 key,
// and its id is its public key, "@" + base64(key) + ".ed25519" (the form of
// an SSB feed id), so an id can never be bound to another key and any
// replica can verify any update without being told the key.
//
// The signature is made over "scuttlebutt-update-v1\n" followed by the
// canonical JSON of [change, timestamp, source] (compact, ASCII-only, keys
// in JavaScript order; see package jsjson). It survives any relay that
// parses and re-serializes the update, such as an npm scuttlebutt peer
// without security. It is sent as the update's fourth element, the string
// base64(signature) + ".sig.ed25519".
//
// Without a KeyStore, Ed25519 accepts the updates of any source that signs
// them with the key of its id. With one, it also requires the source to be
// in the store (as a trust list): a source the store does not know is
// rejected with ErrUnknownKey, and so is one whose stored key is not the
// key of its id.
type Ed25519 struct {
	priv    ed25519.PrivateKey
	id      string
	trusted KeyStore
}

// NewEd25519 returns the Security of the replica holding priv. trusted may
// be nil (see Ed25519).
func NewEd25519(priv ed25519.PrivateKey, trusted KeyStore) *Ed25519 {
	return &Ed25519{priv: priv, id: Ed25519ID(priv.Public().(ed25519.PublicKey)), trusted: trusted}
}

// Ed25519ID returns the id of the replica with public key pub.
func Ed25519ID(pub ed25519.PublicKey) string {
	return "@" + base64.StdEncoding.EncodeToString(pub) + ".ed25519"
}

// Ed25519PublicKey returns the public key of an id that Ed25519ID made.
func Ed25519PublicKey(id string) (ed25519.PublicKey, error) {
	b64, ok := strings.CutPrefix(id, "@")
	if ok {
		b64, ok = strings.CutSuffix(b64, ".ed25519")
	}
	if !ok || base64.StdEncoding.EncodedLen(ed25519.PublicKeySize) != len(b64) {
		return nil, fmt.Errorf("scuttlebutt: %q is not an ed25519 id", id)
	}
	pk, err := base64.StdEncoding.Strict().DecodeString(b64)
	if err != nil || len(pk) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("scuttlebutt: %q is not an ed25519 id", id)
	}
	return pk, nil
}

// ID implements Security.
func (e *Ed25519) ID() string { return e.id }

var payloadPool = sync.Pool{New: func() any { return new([]byte) }}

// Sign implements Security.
func (e *Ed25519) Sign(u Update) (json.RawMessage, error) {
	bp := payloadPool.Get().(*[]byte)
	msg := signedPayload(append((*bp)[:0], ed25519Context...), u)
	sig := ed25519.Sign(e.priv, msg)
	*bp = msg
	payloadPool.Put(bp)
	return jsjson.AppendString(nil, base64.StdEncoding.EncodeToString(sig)+".sig.ed25519"), nil
}

// Verify implements Security.
func (e *Ed25519) Verify(ctx context.Context, u Update) error {
	pk, err := Ed25519PublicKey(u.Source)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnverified, err)
	}
	if e.trusted != nil && u.Source != e.id {
		key, err := e.trusted.PublicKey(ctx, u.Source)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnverified, err)
		}
		if !bytes.Equal(key, pk) {
			return fmt.Errorf("%w: the key store has another key for %q", ErrUnverified, u.Source)
		}
	}
	s, err := signature(u)
	if err != nil {
		return err
	}
	b64, ok := strings.CutSuffix(s, ".sig.ed25519")
	if !ok || len(b64) != base64.StdEncoding.EncodedLen(ed25519.SignatureSize) {
		return fmt.Errorf("%w: not an ed25519 signature", ErrUnverified)
	}
	var buf [ed25519.SignatureSize + 3]byte // DecodedLen of the 88 characters
	sig := buf[:ed25519.SignatureSize]
	if n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(b64)); err != nil || n != len(sig) {
		return fmt.Errorf("%w: not an ed25519 signature", ErrUnverified)
	}
	bp := payloadPool.Get().(*[]byte)
	defer payloadPool.Put(bp)
	msg := signedPayload(append((*bp)[:0], ed25519Context...), u)
	*bp = msg
	if !sodium.VerifyBytes(pk, msg, sig) {
		return fmt.Errorf("%w: bad signature", ErrUnverified)
	}
	return nil
}
