package message

import (
	"crypto/ed25519"
	"crypto/sha512"
	"encoding/base64"
	"math"
	"math/big"
	"slices"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Reindent exposes reindent, which Message.Pretty uses, to the fuzz tests.
func Reindent(compact []byte) []byte { return reindent(nil, compact) }

// CreateWith is Create with any author and signing function, and without
// the size limit when limit is false: it makes the oversized and forged
// messages the tests feed to both validators.
func CreateWith(author refs.Feed, sign func([]byte) []byte, hmacKey []byte, prev *FeedState, timestamp float64, content any, limit bool) (*Message, error) {
	return create(author, sign, hmacKey, prev, timestamp, content, limit)
}

// SignFields signs a message made of fields (in that order, without the
// signature) and returns its compact JSON with the signature last: a way
// to build correctly signed messages of any shape.
func SignFields(fields []Member, sign func([]byte) []byte, hmacKey []byte) []byte {
	pretty := appendPrettyMembers(nil, fields, 0)
	sig := sign(signedBytes(pretty, hmacKey))
	ms := append(slices.Clone(fields), Member{Key: "signature", Value: Value{kind: String, str: base64.StdEncoding.EncodeToString(sig) + SignatureSuffix}})
	return appendCompact(nil, &Value{kind: Object, obj: ms})
}

// groupOrder is L, the order of the ed25519 base point.
var groupOrder, _ = new(big.Int).SetString("7237005577332262213973186563042994240857116359379907606001950938285454250989", 10)

// SignWithIdentityR signs msg with priv but with R = the identity point
// (nonce 0), so S = h·a mod L: crypto/ed25519 accepts such a signature,
// libsodium rejects it because R has small order.
func SignWithIdentityR(priv ed25519.PrivateKey, msg []byte) []byte {
	digest := sha512.Sum512(priv.Seed())
	digest[0] &= 248
	digest[31] &= 127
	digest[31] |= 64
	a := leInt(digest[:32])
	r := make([]byte, 32)
	r[0] = 1
	h := sha512.New()
	h.Write(r)
	h.Write(priv[32:])
	h.Write(msg)
	k := new(big.Int).Mod(leInt(h.Sum(nil)), groupOrder)
	s := new(big.Int).Mod(new(big.Int).Mul(k, a), groupOrder)
	return append(r, leBytes(s)...)
}

func leInt(b []byte) *big.Int {
	be := slices.Clone(b)
	slices.Reverse(be)
	return new(big.Int).SetBytes(be)
}

func leBytes(n *big.Int) []byte {
	b := n.FillBytes(make([]byte, 32))
	slices.Reverse(b)
	return b
}

func nan() float64 { return math.NaN() }
