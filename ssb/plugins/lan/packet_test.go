package lan_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/nacl/secretbox"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/plugins/lan"
)

// fixed identities, so the cases can be read.
var (
	keyA = mustKeys(1)
	keyB = mustKeys(2)
)

func mustKeys(seed byte) *keys.KeyPair {
	kp, err := keys.FromSeed(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		panic(err)
	}
	return kp
}

func b64key(kp *keys.KeyPair) string { return base64.StdEncoding.EncodeToString(kp.Public) }

func TestParsePacket(t *testing.T) {
	a := b64key(keyA)
	cases := []struct {
		pkt  string
		want []string // the announcements' addresses; nil: garbage
	}{
		{"net:192.168.1.5:8008~shs:" + a, []string{"net:192.168.1.5:8008~shs:" + a}},
		// several addresses, as multiserver's stringify joins them; the ws one is skipped
		{"net:10.0.0.2:8008~shs:" + a + ";ws://10.0.0.2:8989~shs:" + a + ";net:192.168.1.5:9000~shs:" + a,
			[]string{"net:10.0.0.2:8008~shs:" + a, "net:192.168.1.5:9000~shs:" + a}},
		// an invite's seed after the key
		{"net:10.0.0.2:8008~shs:" + a + ":" + a, []string{"net:10.0.0.2:8008~shs:" + a}},
		// IPv6 and host names parse (the sender check decides)
		{"net:fe80::1:8008~shs:" + a, []string{"net:fe80::1:8008~shs:" + a}},
		{"net:my-host.local:8008~shs:" + a, []string{"net:my-host.local:8008~shs:" + a}},
		// the old HOST:PORT:@KEY form ssb-ref's parseAddress reads
		{"192.168.1.5:8008:@" + a + ".ed25519", []string{"net:192.168.1.5:8008~shs:" + a}},
		{"", nil},
		{"hello", nil},
		{"net:192.168.1.5:8008", nil},
		{"net:192.168.1.5:8008~shs:" + a[:40], nil},        // short key
		{"net:192.168.1.5:8008~shs:" + a + "~noauth", nil}, // three parts
		{"net:192.168.1.5:0~shs:" + a, nil},                // port 0
		{"net:192.168.1.5:65536~shs:" + a, nil},            // port too high
		{"net:192.168.1.5:08008~shs:" + a, nil},            // leading zero
		{"net:192.168.1.5:8e3~shs:" + a, nil},              // not decimal
		{"net::8008~shs:" + a, nil},                        // no host
		{"net:a b:8008~shs:" + a, nil},                     // space in host
		{"net:192.168.1.5:8008~shs:" + a + "\x00", nil},    // NUL in key
		{"net:x!~y:8008~shs:" + a, nil},                    // escapes
		{"onion:abc.onion:8008~shs:" + a, nil},             // not net
		{"net:192.168.1.5:8008~shs:" + a[:42] + "x=", nil}, // stray bits: not canonical
	}
	for _, c := range cases {
		anns, err := lan.ParsePacket([]byte(c.pkt))
		var got []string
		for _, an := range anns {
			got = append(got, an.Address())
		}
		if c.want == nil {
			if !errors.Is(err, lan.ErrGarbage) {
				t.Errorf("ParsePacket(%q) = %v, %v; want ErrGarbage", c.pkt, got, err)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("ParsePacket(%q) = %v, %v; want %v", c.pkt, got, err, c.want)
		}
	}
	if _, err := lan.ParsePacket(make([]byte, lan.MaxPacket+1)); !errors.Is(err, lan.ErrTooLarge) {
		t.Errorf("a packet of %d bytes: %v, want ErrTooLarge", lan.MaxPacket+1, err)
	}
	many := strings.Repeat("net:10.0.0.2:8008~shs:"+a+";", 12)
	if anns, err := lan.ParsePacket([]byte(many)); err != nil || len(anns) > 16 {
		t.Errorf("12 addresses: %d announcements, %v", len(anns), err)
	}
}

func TestSealOpen(t *testing.T) {
	var network, other [32]byte
	network[0], other[0] = 1, 2
	addr := "net:192.168.1.5:8008~shs:" + b64key(keyA)
	pkt, err := lan.SealPacket(addr, &network, keyA)
	if err != nil {
		t.Fatal(err)
	}
	anns, err := lan.OpenPacket(pkt, &network)
	if err != nil || len(anns) != 1 || anns[0].Address() != addr || anns[0].Key != keyA.ID {
		t.Fatalf("OpenPacket of our packet: %v, %v", anns, err)
	}
	if _, err := lan.OpenPacket(pkt, &other); !errors.Is(err, lan.ErrNetwork) {
		t.Errorf("another network's key: %v, want ErrNetwork", err)
	}
	// B signs an address with A's key: the box opens, the signature fails.
	forged, _ := lan.SealPacket(addr, &network, keyB)
	if _, err := lan.OpenPacket(forged, &network); !errors.Is(err, lan.ErrSignature) {
		t.Errorf("an address signed by another key: %v, want ErrSignature", err)
	}
	for _, i := range []int{0, len(pkt) - 70, len(pkt) - 1} { // a flipped bit in the box, the signature
		bad := bytes.Clone(pkt)
		bad[i] ^= 1
		if _, err := lan.OpenPacket(bad, &network); err == nil {
			t.Errorf("a bit flipped at %d: accepted", i)
		}
	}
	if _, err := lan.OpenPacket(pkt[:40], &network); !errors.Is(err, lan.ErrNetwork) {
		t.Errorf("a short packet: %v", err)
	}
	// boxes of the right key that do not hold an address
	var nonce [24]byte
	copy(nonce[:], network[:24])
	for _, plain := range []string{`{"address":1}`, `{"Address":"` + addr + `"}`, `[]`, `null`, `{"address":"hello"}`, `{`} {
		box := secretbox.Seal(nil, []byte(plain), &nonce, &network)
		pkt := append(box, make([]byte, ed25519.SignatureSize)...)
		if _, err := lan.OpenPacket(pkt, &network); !errors.Is(err, lan.ErrGarbage) {
			t.Errorf("box of %s: %v, want ErrGarbage", plain, err)
		}
	}
	if _, err := lan.SealPacket("net:a\nb:1~shs:"+b64key(keyA), &network, keyA); err == nil {
		t.Errorf("an address with a newline was sealed")
	}
}
