package invite

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// maxCodeLen bounds an invite code; real ones are about 150 characters.
const maxCodeLen = 1024

// ErrCode is wrapped by every error of ParseCode.
var ErrCode = errors.New("invite: not an invite code")

// A Code is a pub invite: where the pub is, its key, and the seed of the
// key pair a guest connects with.
type Code struct {
	Host string    // an IP address, a domain name or "localhost"
	Port int       // 1..65535
	Key  refs.Feed // the pub
	Seed [32]byte  // the ed25519 seed of the invite's key pair
}

// ParseCode reads an invite code in either form ssb-invite accepts: the
// legacy HOST:PORT:@KEY.ed25519~SEED, and the multiserver form
// net:HOST:PORT~shs:KEY:SEED (the first such address of several joined by
// ";"). Surrounding quotes and a trailing "#…" (ssb-ref's redirect) are
// ignored. Only net addresses are read: this server cannot dial ws or
// onion.
func ParseCode(s string) (Code, error) {
	if len(s) > maxCodeLen {
		return Code{}, fmt.Errorf("%w: %d characters, at most %d", ErrCode, len(s), maxCodeLen)
	}
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	s, _, _ = strings.Cut(s, "#")
	if strings.Contains(s, "~shs:") {
		return parseMultiserver(s)
	}
	return parseLegacy(s)
}

// parseLegacy reads HOST:PORT:@KEY.ed25519~SEED.
func parseLegacy(s string) (Code, error) {
	addr, seed, ok := strings.Cut(s, "~")
	if !ok || strings.Contains(seed, "~") {
		return Code{}, fmt.Errorf("%w: %q is neither HOST:PORT:@KEY~SEED nor net:HOST:PORT~shs:KEY:SEED", ErrCode, s)
	}
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return Code{}, fmt.Errorf("%w: %q has no port and key", ErrCode, s)
	}
	key, err := refs.ParseFeed(addr[i+1:])
	if err != nil {
		return Code{}, fmt.Errorf("%w: %w", ErrCode, err)
	}
	c := Code{Key: key}
	if err := c.setHostPort(addr[:i]); err != nil {
		return Code{}, err
	}
	if err := refs.DecodeBase64(c.Seed[:], seed); err != nil {
		return Code{}, fmt.Errorf("%w: seed: %w", ErrCode, err)
	}
	return c, nil
}

// parseMultiserver reads net:HOST:PORT~shs:KEY:SEED.
func parseMultiserver(s string) (Code, error) {
	var lastErr error
	for _, a := range strings.Split(s, ";") {
		transport, transform, ok := strings.Cut(a, "~")
		hostPort, isNet := strings.CutPrefix(transport, "net:")
		shs, isSHS := strings.CutPrefix(transform, "shs:")
		if !ok || !isNet || !isSHS {
			continue
		}
		key, seed, ok := strings.Cut(shs, ":")
		if !ok {
			lastErr = fmt.Errorf("%w: %q has no seed after the key", ErrCode, a)
			continue
		}
		var c Code
		var pub [32]byte
		if err := refs.DecodeBase64(pub[:], key); err != nil {
			lastErr = fmt.Errorf("%w: key: %w", ErrCode, err)
			continue
		}
		c.Key, _ = refs.NewFeed(pub[:])
		if err := c.setHostPort(hostPort); err != nil {
			lastErr = err
			continue
		}
		if err := refs.DecodeBase64(c.Seed[:], seed); err != nil {
			lastErr = fmt.Errorf("%w: seed: %w", ErrCode, err)
			continue
		}
		return c, nil
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("%w: %q has no net:HOST:PORT~shs:KEY:SEED address", ErrCode, s)
	}
	return Code{}, lastErr
}

// setHostPort reads HOST:PORT, where HOST may be an IPv6 address with its
// colons (as ssb-ref writes it).
func (c *Code) setHostPort(s string) error {
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return fmt.Errorf("%w: %q has no port", ErrCode, s)
	}
	port, err := parsePort(s[i+1:])
	if err != nil {
		return err
	}
	if !ValidHost(s[:i]) {
		return fmt.Errorf("%w: %q is not a host name or IP address", ErrCode, s[:i])
	}
	c.Host, c.Port = s[:i], port
	return nil
}

func parsePort(s string) (int, error) {
	if len(s) == 0 || len(s) > 5 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%w: port %q is not a number", ErrCode, s)
	}
	p, _ := strconv.Atoi(s)
	if p < 1 || p > 65535 {
		return 0, fmt.Errorf("%w: port %d is not in 1..65535", ErrCode, p)
	}
	return p, nil
}

// ValidHost reports whether h is an IP address, "localhost" or a domain
// name (dot-separated labels of letters, digits and inner hyphens), as
// ssb-ref's isHost.
func ValidHost(h string) bool {
	if h == "localhost" || net.ParseIP(h) != nil {
		return true
	}
	if len(h) == 0 || len(h) > 253 || !strings.Contains(h, ".") {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

// keyBase64 is the pub's key without "@" and ".ed25519".
func (c Code) keyBase64() string { return base64.StdEncoding.EncodeToString(c.Key.PublicKey()) }

func (c Code) seedBase64() string { return base64.StdEncoding.EncodeToString(c.Seed[:]) }

// Legacy is the code as ssb-invite's create writes it by default:
// HOST:PORT:@KEY.ed25519~SEED.
func (c Code) Legacy() string {
	return c.Host + ":" + strconv.Itoa(c.Port) + ":" + c.Key.String() + "~" + c.seedBase64()
}

// Multiserver is the code as a multiserver address with the seed:
// net:HOST:PORT~shs:KEY:SEED.
func (c Code) Multiserver() string { return c.Address() + ":" + c.seedBase64() }

// Address is the pub's multiserver address: net:HOST:PORT~shs:KEY.
func (c Code) Address() string {
	return "net:" + c.Host + ":" + strconv.Itoa(c.Port) + "~shs:" + c.keyBase64()
}

// HostPort is the TCP address to dial.
func (c Code) HostPort() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }
