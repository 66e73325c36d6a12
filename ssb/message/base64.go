package message

import (
	"strings"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// The hot path of validation decodes three base64 strings (author,
// signature, previous). These helpers accept exactly what refs accepts,
// canonical padded standard base64, without allocating; on failure the
// callers ask refs for its error message.

var b64Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := range len(alphabet) {
		t[alphabet[i]] = byte(i)
	}
	return t
}()

// decodeBase64 decodes s, canonical base64 of exactly len(dst) bytes, into
// dst, and reports whether s was that.
func decodeBase64(dst []byte, s string) bool {
	if len(s) != (len(dst)+2)/3*4 || !isCanonicalBase64(s) {
		return false
	}
	j := 0
	for i := 0; i < len(s); i += 4 {
		var group uint32
		n := 0
		for k := range 4 {
			c := s[i+k]
			if c == '=' {
				break
			}
			group |= uint32(b64Value[c]) << (18 - 6*k)
			n++
		}
		for k := 0; k < n-1 && j < len(dst); k++ {
			dst[j] = byte(group >> (16 - 8*k))
			j++
		}
	}
	return j == len(dst)
}

// parseRef parses sigil + base64 of 32 bytes + suffix into dst.
func parseRef(s string, sigil byte, suffix string, dst *[32]byte) bool {
	if len(s) != 1+44+len(suffix) || s[0] != sigil || !strings.HasSuffix(s, suffix) {
		return false
	}
	return decodeBase64(dst[:], s[1:45])
}

func parseFeed(s string) (refs.Feed, error) {
	var key [32]byte
	if parseRef(s, '@', refs.SuffixEd25519, &key) {
		return refs.NewFeed(key[:])
	}
	return refs.ParseFeed(s) // for its error
}

func parseMessageID(s string) (refs.Message, bool) {
	var hash [32]byte
	if parseRef(s, '%', refs.SuffixSHA256, &hash) {
		return refs.NewMessage(hash), true
	}
	return refs.Message{}, false
}
