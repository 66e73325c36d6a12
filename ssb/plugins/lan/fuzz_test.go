package lan_test

import (
	"net/netip"
	"testing"

	"github.com/scuttlego/scuttle/ssb/plugins/lan"
)

// FuzzParsePacket gives arbitrary bytes to both parsers and the state
// machine: nothing panics, every announcement is a net~shs address that
// parses back to itself, an ssb-lan packet opens only when sealed with the
// network key, and nothing is accepted that does not come from its host.
func FuzzParsePacket(f *testing.F) {
	var network [32]byte
	network[3] = 9
	a := b64key(keyA)
	for _, s := range []string{
		"net:192.168.1.5:8008~shs:" + a,
		"net:10.0.0.2:8008~shs:" + a + ";ws://10.0.0.2:8989~shs:" + a + ";net:192.168.1.5:9000~shs:" + a,
		"net:fe80::1:8008~shs:" + a + ":" + a,
		"192.168.1.5:8008:@" + a + ".ed25519",
		"net:192.168.1.5:08008~shs:" + a,
		"net:x!~y:8008~shs:" + a,
		"",
		"~",
		";;;",
	} {
		f.Add([]byte(s))
	}
	sealed, err := lan.SealPacket("net:192.168.1.5:8008~shs:"+b64key(keyB), &network, keyB)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Fuzz(func(t *testing.T, pkt []byte) {
		anns, err := lan.ParsePacket(pkt)
		if (err == nil) != (len(anns) > 0) {
			t.Fatalf("ParsePacket(%q) = %v, %v", pkt, anns, err)
		}
		for _, an := range anns {
			back, err := lan.ParsePacket([]byte(an.Address()))
			if err != nil || len(back) != 1 || back[0] != an {
				t.Fatalf("%q: announcement %+v parses back as %v, %v", pkt, an, back, err)
			}
		}
		if anns, err := lan.OpenPacket(pkt, &network); err == nil && len(anns) == 0 {
			t.Fatalf("OpenPacket(%q): no announcement and no error", pkt)
		}
		d := lan.NewDiscovery(testConfig(), keyA.ID, network)
		for _, m := range []int{lan.LegacyMode, lan.LANMode} {
			src := netip.MustParseAddr("192.168.1.5")
			if addr, ok := d.Receive(t0, m, src, pkt); ok {
				back, err := lan.ParsePacket([]byte(addr))
				if err != nil || back[0].Host != "192.168.1.5" || back[0].Key == keyA.ID {
					t.Fatalf("accepted %q as %s from %v", pkt, addr, src)
				}
			}
		}
	})
}
