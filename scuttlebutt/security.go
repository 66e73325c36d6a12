package scuttlebutt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// Errors of signing and verification.
var (
	// ErrUnverified reports an update whose signature could not be
	// verified: missing, malformed, wrong, or made with a key that is not
	// the source's. It wraps the reason.
	ErrUnverified = errors.New("scuttlebutt: update not verified")
	// ErrUnknownKey reports a source whose public key a KeyStore does not
	// have.
	ErrUnknownKey = errors.New("scuttlebutt: unknown key")
)

// Security signs the updates a replica makes and verifies the ones it
// receives: npm scuttlebutt's security hook (sign, verify, createId). Two
// implementations come with the package: Ed25519, the one to use, and
// RSASHA1, which speaks npm scuttlebutt's security.js for compatibility
// with signed JavaScript peers.
//
// With a Security (see WithSecurity), a replica's id is Security.ID(); it
// signs each local update and appends the signature as the update's fourth
// element; and it applies an update from a peer only once Verify accepts
// it. A rejected update does not advance the source's clock, is not
// applied, not forwarded, and is reported to Replica.OnUnverified.
type Security interface {
	// ID returns the id of the replica that signs with this key.
	ID() string
	// Sign returns the signature of the local update u (its Change,
	// Timestamp and Source), a JSON value. It is called with the replica's
	// lock held and must not block.
	Sign(u Update) (json.RawMessage, error)
	// Verify returns nil when u's last element is a valid signature of
	// [change, timestamp, source] by the key of u.Source, and otherwise an
	// error (one wrapping ErrUnknownKey when no key is known for the
	// source). It may block, for example to fetch a key; ctx is cancelled
	// when the stream that received u closes. It is called without any
	// lock of the replica held, possibly from several goroutines at once.
	Verify(ctx context.Context, u Update) error
}

// A KeyStore says where the public keys of sources come from. PublicKey
// returns the key of a source id, in the form its Security reads (a PEM
// file's bytes for RSASHA1, the 32 key bytes for Ed25519), or an error
// wrapping ErrUnknownKey. It may block (for example ask a directory
// service); ctx bounds it. It is called from several goroutines at once.
type KeyStore interface {
	PublicKey(ctx context.Context, id string) ([]byte, error)
}

// KeyFunc is a KeyStore that calls a function: a key store backed by a
// database, a directory service, or anything else that may be slow.
type KeyFunc func(ctx context.Context, id string) ([]byte, error)

// PublicKey implements KeyStore.
func (f KeyFunc) PublicKey(ctx context.Context, id string) ([]byte, error) { return f(ctx, id) }

// Keys is a KeyStore in memory. The zero value is empty and ready to use;
// it is safe for concurrent use.
type Keys struct {
	mu   sync.RWMutex
	keys map[string][]byte
}

// Add sets the public key of a source id.
func (k *Keys) Add(id string, key []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		k.keys = make(map[string][]byte)
	}
	k.keys[id] = append([]byte(nil), key...)
}

// Remove forgets the key of a source id: its updates are rejected from
// then on.
func (k *Keys) Remove(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.keys, id)
}

// Len returns the number of keys.
func (k *Keys) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.keys)
}

// PublicKey implements KeyStore.
func (k *Keys) PublicKey(_ context.Context, id string) ([]byte, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownKey, id)
	}
	return key, nil
}

// LoadKeys reads a key file: a JSON object mapping each source id to its
// public key as a string, the shape of the keys object of npm
// scuttlebutt's security.js. For RSASHA1 the key is the text of the
// source's PEM file; for Ed25519 the id is the key, so the file lists the
// trusted ids, each with itself (or its key, "base64.ed25519") as the
// value.
func LoadKeys(path string) (*Keys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("scuttlebutt: keys: %w", err)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("scuttlebutt: keys %s: %w", path, err)
	}
	k := &Keys{}
	for id, key := range m {
		b := []byte(key)
		if pk, err := Ed25519PublicKey(key); err == nil {
			b = pk
		} else if pk, err := Ed25519PublicKey("@" + key); err == nil {
			b = pk
		}
		k.Add(id, b)
	}
	return k, nil
}

// WithSecurity makes the replica sign its updates and verify those of its
// peers with sec (see Security). The replica's id is sec.ID(): New must be
// given that id or "".
func WithSecurity(sec Security) Option { return func(c *config) { c.security = sec } }

// OnUnverified registers fn to be called with every update a stream
// received and rejected because its signature did not verify, and why
// (an error wrapping ErrUnverified). It returns a function that removes fn.
func (r *Replica) OnUnverified(fn func(u Update, err error)) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.onUnverified.add(&r.mu, func(v unverified) { fn(v.u, v.err) })
}

type unverified struct {
	u   Update
	err error
}

// signedPayload returns the bytes a Security signs for u: the canonical
// JSON of [change, timestamp, source] (see package jsjson), which every
// relay reproduces whatever it does to whitespace and escapes.
func signedPayload(dst []byte, u Update) []byte {
	u.Extra = nil
	return u.appendJSON(dst)
}

// signature returns u's signature element, which must be its only extra
// element, as a string.
func signature(u Update) (string, error) {
	switch len(u.Extra) {
	case 0:
		return "", fmt.Errorf("%w: not signed", ErrUnverified)
	case 1:
	default:
		return "", fmt.Errorf("%w: %d elements after the source, want the signature alone", ErrUnverified, len(u.Extra))
	}
	if len(u.Extra[0]) == 0 || u.Extra[0][0] != '"' {
		return "", fmt.Errorf("%w: signature is not a string", ErrUnverified)
	}
	s, err := jsjson.Unquote(u.Extra[0])
	if err != nil {
		return "", fmt.Errorf("%w: signature: %w", ErrUnverified, err)
	}
	return s, nil
}

// verifyBatch verifies the updates of a received batch that the replica
// does not already have, without holding the replica's lock, several at
// once when there are several. It returns one error per update (nil when
// verified, or when the update is old and need not be).
func (r *Replica) verifyBatch(ctx context.Context, batch []Update) []error {
	errs := make([]error, len(batch))
	var todo []int
	r.mu.Lock()
	for i, u := range batch {
		if latest, ok := r.clock[u.Source]; !ok || latest < u.Timestamp {
			todo = append(todo, i)
		}
	}
	r.mu.Unlock()
	sec := r.cfg.security
	verify := func(i int) {
		if err := sec.Verify(ctx, batch[i]); err != nil {
			if !errors.Is(err, ErrUnverified) {
				err = fmt.Errorf("%w: %w", ErrUnverified, err)
			}
			errs[i] = err
		}
	}
	workers := min(len(todo), r.cfg.verifiers)
	if workers <= 1 {
		for _, i := range todo {
			verify(i)
		}
		return errs
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range workers {
		wg.Go(func() {
			for i := range next {
				verify(i)
			}
		})
	}
	for _, i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}
