package lan

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/crypto/nacl/secretbox"

	"github.com/scuttlego/scuttle/internal/sodium"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// MaxPacket is the largest packet read: an announcement is one address of
// about 80 bytes (an ssb-lan packet about 200). Longer packets are dropped
// unread.
const MaxPacket = 1024

// Errors of the packet parsers.
var (
	// ErrGarbage is a packet that holds no net~shs address.
	ErrGarbage = errors.New("lan: not an announcement")
	// ErrNetwork is an ssb-lan packet that does not open with our network
	// key: another network's, or noise.
	ErrNetwork = errors.New("lan: packet does not open with the network key")
	// ErrSignature is an ssb-lan packet whose address is not signed by
	// the key it announces.
	ErrSignature = errors.New("lan: bad signature")
	// ErrTooLarge is a packet longer than MaxPacket.
	ErrTooLarge = errors.New("lan: packet too large")
)

// An Announcement is a peer's net address as a packet announces it.
type Announcement struct {
	Host string // as written: an IP address or a host name
	Port int
	Key  refs.Feed
}

// Address is the announcement as a multiserver address,
// net:HOST:PORT~shs:KEY.
func (a Announcement) Address() string {
	return "net:" + a.Host + ":" + strconv.Itoa(a.Port) + "~shs:" + base64.StdEncoding.EncodeToString(a.Key.PublicKey())
}

// maxAddresses bounds the ';'-separated addresses read from one packet.
const maxAddresses = 16

// ParsePacket reads an ssb-local packet (ssb-server@16, and ssb-lan's
// legacy mode): the UTF-8 multiserver address of the sender, which may hold
// several addresses separated by ';' (each net~shs one is returned, in
// order), or the older HOST:PORT:@KEY.ed25519 that ssb-ref's parseAddress
// also reads. Ports are decimal, 1 to 65535; addresses with multiserver's
// escapes ('!') or transports other than net are skipped.
func ParsePacket(pkt []byte) ([]Announcement, error) {
	if len(pkt) > MaxPacket {
		return nil, ErrTooLarge
	}
	s := string(pkt)
	if !strings.Contains(s, "~") {
		a, ok := parseLegacyAddress(s)
		if !ok {
			return nil, ErrGarbage
		}
		return []Announcement{a}, nil
	}
	var out []Announcement
	for i, part := range strings.Split(s, ";") {
		if i == maxAddresses {
			break
		}
		if a, ok := parseNetSHS(part); ok {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, ErrGarbage
	}
	return out, nil
}

// parseNetSHS reads net:HOST:PORT~shs:KEY[:SEED].
func parseNetSHS(s string) (Announcement, bool) {
	if strings.Contains(s, "!") {
		return Announcement{}, false
	}
	parts := strings.Split(s, "~")
	if len(parts) != 2 {
		return Announcement{}, false
	}
	hostPort, ok := strings.CutPrefix(parts[0], "net:")
	if !ok {
		return Announcement{}, false
	}
	auth, ok := strings.CutPrefix(parts[1], "shs:")
	if !ok {
		return Announcement{}, false
	}
	key, _, _ := strings.Cut(auth, ":") // a seed may follow (invites)
	return announcement(hostPort, "@"+key+".ed25519")
}

// parseLegacyAddress reads HOST:PORT:@KEY.ed25519.
func parseLegacyAddress(s string) (Announcement, bool) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return Announcement{}, false
	}
	return announcement(s[:i], s[i+1:])
}

// announcement checks HOST:PORT and the feed id.
func announcement(hostPort, feed string) (Announcement, bool) {
	i := strings.LastIndexByte(hostPort, ':')
	if i < 0 {
		return Announcement{}, false
	}
	host, port := hostPort[:i], hostPort[i+1:]
	n, ok := parsePort(port)
	if !ok || !validHost(host) {
		return Announcement{}, false
	}
	f, err := refs.ParseFeed(feed)
	if err != nil {
		return Announcement{}, false
	}
	return Announcement{Host: host, Port: n, Key: f}, true
}

func parsePort(s string) (int, bool) {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, n <= 65535
}

// validHost accepts the characters of IP addresses and host names.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, c := range []byte(h) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == ':'
		if !ok {
			return false
		}
	}
	return true
}

// signedAddress is what an ssb-lan packet's signature covers: ssb-keys'
// signObj of {address}, JSON.stringify(obj, null, 2). ok is false for an
// address with characters JSON.stringify would escape other than '"' and
// '\' (no announcement has them).
func signedAddress(address string) ([]byte, bool) {
	var b strings.Builder
	b.WriteString("{\n  \"address\": \"")
	for _, c := range []byte(address) {
		if c < 0x20 || c > 0x7e {
			return nil, false
		}
		if c == '"' || c == '\\' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	b.WriteString("\"\n}")
	return []byte(b.String()), true
}

// SealPacket builds ssb-lan's packet of address: the secretbox of
// JSON.stringify({address}) under the network key (nonce: its first 24
// bytes, as ssb-keys' secretBox), then the 64-byte signature of
// signedAddress by kp.
func SealPacket(address string, network *[32]byte, kp *keys.KeyPair) ([]byte, error) {
	signed, ok := signedAddress(address)
	if !ok {
		return nil, fmt.Errorf("lan: address %q has characters an announcement cannot hold", address)
	}
	plain, err := json.Marshal(struct {
		Address string `json:"address"`
	}{address})
	if err != nil {
		return nil, fmt.Errorf("lan: %w", err)
	}
	var nonce [24]byte
	copy(nonce[:], network[:24])
	out := secretbox.Seal(nil, plain, &nonce, network)
	return append(out, ed25519.Sign(kp.Private, signed)...), nil
}

// OpenPacket reads an ssb-lan packet: it opens the box with the network
// key, reads its address as ParsePacket does, and checks the signature
// with the key of the first announcement (ssb-lan's verifyObj with the
// key ssb-ref's parseAddress finds). It returns the announcements only
// when the signature is valid.
func OpenPacket(pkt []byte, network *[32]byte) ([]Announcement, error) {
	if len(pkt) > MaxPacket {
		return nil, ErrTooLarge
	}
	if len(pkt) < secretbox.Overhead+ed25519.SignatureSize {
		return nil, ErrNetwork
	}
	box, sig := pkt[:len(pkt)-ed25519.SignatureSize], pkt[len(pkt)-ed25519.SignatureSize:]
	var nonce [24]byte
	copy(nonce[:], network[:24])
	plain, ok := secretbox.Open(nil, box, &nonce, network)
	if !ok {
		return nil, ErrNetwork
	}
	var obj map[string]json.RawMessage // JSON.parse: exact keys, the last of a repeated one
	if err := json.Unmarshal(plain, &obj); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrGarbage, err)
	}
	var address string
	if err := json.Unmarshal(obj["address"], &address); err != nil {
		return nil, fmt.Errorf("%w: no address", ErrGarbage)
	}
	anns, err := ParsePacket([]byte(address))
	if err != nil {
		return nil, err
	}
	signed, ok := signedAddress(address)
	if !ok {
		return nil, ErrGarbage
	}
	var pub [32]byte
	copy(pub[:], anns[0].Key.PublicKey())
	if !sodium.Verify(&pub, (*[ed25519.SignatureSize]byte)(sig), signed) {
		return nil, ErrSignature
	}
	signer := anns[0].Key
	return slices.DeleteFunc(anns, func(a Announcement) bool { return a.Key != signer }), nil
}
