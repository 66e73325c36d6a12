package scuttlebutt

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"sync"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// RSASHA1 is the Security of npm scuttlebutt's security.js, for signed
// JavaScript peers: RSA PKCS#1 v1.5 signatures with SHA-1, over the UTF-8
// of JavaScript's JSON.stringify([change, timestamp, source]), sent as the
// update's fourth element in standard base64. A replica's id is the base64
// of the SHA-1 of its public key's PEM file, byte for byte.
//
// It exists for compatibility only: SHA-1 is broken for collisions, the
// keys security.js's keygen makes are 768 bits (which Go refuses unless
// GODEBUG=rsa1024min=0), and every key must be handed to every replica
// out of band. Use Ed25519 between Go replicas.
//
// Keys come from a KeyStore that returns a source's public key PEM. Unlike
// security.js, RSASHA1 checks that the PEM's id is the source (so a key
// store cannot bind an id to another key), and verifies updates of its own
// id too (security.js treats them as local and signs them again).
type RSASHA1 struct {
	priv   *rsa.PrivateKey
	pubPEM []byte
	id     string
	keys   KeyStore

	mu     sync.Mutex
	parsed map[string]*rsa.PublicKey // by PEM
}

// maxParsedKeys bounds the cache of parsed public keys.
const maxParsedKeys = 4096

// NewRSASHA1 returns the Security of the replica with the given private
// and public key PEM files (PKCS#1 "RSA PRIVATE KEY" or PKCS#8; PKCS#1
// "RSA PUBLIC KEY" or PKIX "PUBLIC KEY"). keys supplies the public keys of
// the other sources; nil means none.
func NewRSASHA1(privatePEM, publicPEM []byte, keys KeyStore) (*RSASHA1, error) {
	priv, err := parseRSAPrivate(privatePEM)
	if err != nil {
		return nil, err
	}
	pub, err := parseRSAPublic(publicPEM)
	if err != nil {
		return nil, err
	}
	if !pub.Equal(&priv.PublicKey) {
		return nil, fmt.Errorf("scuttlebutt: rsa: the public key is not the private key's")
	}
	if keys == nil {
		keys = &Keys{}
	}
	s := &RSASHA1{
		priv:   priv,
		pubPEM: append([]byte(nil), publicPEM...),
		id:     RSAID(publicPEM),
		keys:   keys,
		parsed: map[string]*rsa.PublicKey{string(publicPEM): pub},
	}
	return s, nil
}

// RSAID returns the id of the replica whose public key PEM file holds
// publicPEM: base64(SHA-1(publicPEM)), as security.js's createId computes it.
func RSAID(publicPEM []byte) string {
	sum := sha1.Sum(publicPEM)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// ID implements Security.
func (s *RSASHA1) ID() string { return s.id }

// PublicKeyPEM returns the replica's public key PEM, as given.
func (s *RSASHA1) PublicKeyPEM() []byte { return append([]byte(nil), s.pubPEM...) }

// Sign implements Security.
func (s *RSASHA1) Sign(u Update) (json.RawMessage, error) {
	sum := sha1.Sum(jsStringify(nil, signedPayload(nil, u)))
	sig, err := rsa.SignPKCS1v15(rand.Reader, s.priv, crypto.SHA1, sum[:])
	if err != nil {
		return nil, fmt.Errorf("scuttlebutt: rsa: %w", err)
	}
	return jsjson.AppendString(nil, base64.StdEncoding.EncodeToString(sig)), nil
}

// Verify implements Security.
func (s *RSASHA1) Verify(ctx context.Context, u Update) error {
	sigText, err := signature(u)
	if err != nil {
		return err
	}
	sig, err := base64.StdEncoding.DecodeString(sigText)
	if err != nil {
		return fmt.Errorf("%w: signature is not base64", ErrUnverified)
	}
	pemBytes := s.pubPEM
	if u.Source != s.id {
		if pemBytes, err = s.keys.PublicKey(ctx, u.Source); err != nil {
			return fmt.Errorf("%w: %w", ErrUnverified, err)
		}
		if RSAID(pemBytes) != u.Source {
			return fmt.Errorf("%w: the key store's key for %q has another id", ErrUnverified, u.Source)
		}
	}
	pub, err := s.publicKey(pemBytes)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnverified, err)
	}
	sum := sha1.Sum(jsStringify(nil, signedPayload(nil, u)))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA1, sum[:], sig); err != nil {
		return fmt.Errorf("%w: bad signature", ErrUnverified)
	}
	return nil
}

func (s *RSASHA1) publicKey(pemBytes []byte) (*rsa.PublicKey, error) {
	s.mu.Lock()
	pub, ok := s.parsed[string(pemBytes)]
	s.mu.Unlock()
	if ok {
		return pub, nil
	}
	pub, err := parseRSAPublic(pemBytes)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if len(s.parsed) >= maxParsedKeys {
		clear(s.parsed)
	}
	s.parsed[string(pemBytes)] = pub
	s.mu.Unlock()
	return pub, nil
}

func parseRSAPrivate(pemBytes []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("scuttlebutt: rsa: no PEM block in the private key")
	}
	if block.Type == "RSA PRIVATE KEY" {
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("scuttlebutt: rsa: %w", err)
		}
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("scuttlebutt: rsa: %w", err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("scuttlebutt: rsa: the private key is a %T", k)
	}
	return rk, nil
}

func parseRSAPublic(pemBytes []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, fmt.Errorf("scuttlebutt: rsa: no PEM block in the public key")
	}
	if block.Type == "RSA PUBLIC KEY" {
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("scuttlebutt: rsa: %w", err)
		}
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("scuttlebutt: rsa: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("scuttlebutt: rsa: the public key is a %T", k)
	}
	return rk, nil
}

// jsStringify appends what JavaScript's JSON.stringify writes for the
// canonical JSON canon (see jsjson.Canonical): the same text, except that
// the \uXXXX escapes of code points from U+0080 up are written as UTF-8.
// Lone surrogates stay escaped, as JSON.stringify writes them.
func jsStringify(dst, canon []byte) []byte {
	for i := 0; i < len(canon); i++ {
		c := canon[i]
		if c != '\\' {
			dst = append(dst, c)
			continue
		}
		if canon[i+1] != 'u' {
			dst = append(dst, c, canon[i+1])
			i++
			continue
		}
		r := hex4(canon[i+2 : i+6])
		switch {
		case r < utf8.RuneSelf:
			dst = append(dst, canon[i:i+6]...)
		case r >= 0xd800 && r < 0xdc00 && i+12 <= len(canon) && canon[i+6] == '\\' && canon[i+7] == 'u' &&
			isLowSurrogate(hex4(canon[i+8:i+12])):
			lo := hex4(canon[i+8 : i+12])
			dst = utf8.AppendRune(dst, 0x10000+(r-0xd800)<<10+(lo-0xdc00))
			i += 6
		case r >= 0xd800 && r < 0xe000:
			dst = append(dst, canon[i:i+6]...)
		default:
			dst = utf8.AppendRune(dst, r)
		}
		i += 5
	}
	return dst
}

func isLowSurrogate(r rune) bool { return r >= 0xdc00 && r < 0xe000 }

func hex4(h []byte) rune {
	var r rune
	for _, c := range h {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		}
	}
	return r
}
