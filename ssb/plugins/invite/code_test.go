package invite_test

import (
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/plugins/invite"
)

// A key and seed for codes in the shapes ssb-invite 2.1.8 writes and
// ssb-ref reads (codes made by a JS pub are read in interop_test.go).
const (
	jsKey  = "@vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=.ed25519"
	jsSeed = "TcXHW5CgmaMq6kYSIY1IKb/Kti+iQDb8bmR4kj3ZXdk="
)

func TestParseCode(t *testing.T) {
	for _, tc := range []struct {
		code, host string
		port       int
	}{
		{"127.0.0.1:8008:" + jsKey + "~" + jsSeed, "127.0.0.1", 8008},
		{"pub.example.com:1:" + jsKey + "~" + jsSeed, "pub.example.com", 1},
		{"::1:65535:" + jsKey + "~" + jsSeed, "::1", 65535},
		{`"localhost:8008:` + jsKey + "~" + jsSeed + `"`, "localhost", 8008},
		{"127.0.0.1:8008:" + jsKey + "~" + jsSeed + "#/redirect", "127.0.0.1", 8008},
		{"net:10.0.0.2:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed, "10.0.0.2", 8008},
		{"ws://x.y:80~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed + ";net:10.0.0.2:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed, "10.0.0.2", 8008},
		{"net:::1:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed, "::1", 8008},
	} {
		c, err := invite.ParseCode(tc.code)
		if err != nil {
			t.Errorf("%q: %v", tc.code, err)
			continue
		}
		if c.Host != tc.host || c.Port != tc.port || c.Key.String() != jsKey {
			t.Errorf("%q: %+v", tc.code, c)
		}
		for _, again := range []string{c.Legacy(), c.Multiserver()} {
			if d, err := invite.ParseCode(again); err != nil || d != c {
				t.Errorf("%q written as %q reads as %+v, %v", tc.code, again, d, err)
			}
		}
	}
	if c, _ := invite.ParseCode("127.0.0.1:8008:" + jsKey + "~" + jsSeed); c.Legacy() != "127.0.0.1:8008:"+jsKey+"~"+jsSeed ||
		c.Multiserver() != "net:127.0.0.1:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:"+jsSeed ||
		c.HostPort() != "127.0.0.1:8008" {
		t.Errorf("formats: %q %q %q", c.Legacy(), c.Multiserver(), c.HostPort())
	}
	for _, bad := range []string{
		"", "~", "hello", jsKey + "~" + jsSeed,
		"127.0.0.1:8008:" + jsKey,                               // no seed
		"127.0.0.1:8008:" + jsKey + "~" + jsSeed + "~" + jsSeed, // two seeds
		"127.0.0.1:0:" + jsKey + "~" + jsSeed,                   // port 0
		"127.0.0.1:65536:" + jsKey + "~" + jsSeed,
		"127.0.0.1:+80:" + jsKey + "~" + jsSeed,
		"127.0.0.1::" + jsKey + "~" + jsSeed,
		":8008:" + jsKey + "~" + jsSeed,
		"a b:8008:" + jsKey + "~" + jsSeed,
		"-a.b:8008:" + jsKey + "~" + jsSeed,
		"127.0.0.1:8008:@short.ed25519~" + jsSeed,
		"127.0.0.1:8008:" + jsKey + "~" + jsSeed[:40],
		"127.0.0.1:8008:" + jsKey + "~" + strings.Repeat("A", 44),                // 33 bytes
		"127.0.0.1:8008:" + jsKey + "~" + jsSeed[:42] + "B=",                     // stray bits
		"net:127.0.0.1:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=",    // an address, no seed
		"ws://x.y:80~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed, // cannot dial ws
		"onion:abc.onion:80~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed,
		"net:127.0.0.1:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE:" + jsSeed,
		"127.0.0.1:8008:" + jsKey + "~" + jsSeed + strings.Repeat(" ", 2000),
	} {
		if c, err := invite.ParseCode(bad); err == nil {
			t.Errorf("%q parsed as %+v", bad, c)
		}
	}
}

// FuzzParseCode: ParseCode never panics, and what it accepts it writes in
// both forms that read back the same.
func FuzzParseCode(f *testing.F) {
	for _, s := range []string{
		"127.0.0.1:8008:" + jsKey + "~" + jsSeed,
		"::1:8008:" + jsKey + "~" + jsSeed + "#x",
		"net:pub.example.com:8008~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:" + jsSeed,
		`"net:1.2.3.4:1~shs:vt8uK0++cbVu6OYW7uQ9tQ5loP6MjaWBQA1lXUTYuVE=:` + jsSeed + `"`,
		"ws://a.b:1~shs:x;net:a.b:2~shs:y:z", "~", ":::", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := invite.ParseCode(s)
		if err != nil {
			return
		}
		if c.Port < 1 || c.Port > 65535 || !invite.ValidHost(c.Host) {
			t.Fatalf("%q: %+v", s, c)
		}
		for _, again := range []string{c.Legacy(), c.Multiserver()} {
			if d, err := invite.ParseCode(again); err != nil || d != c {
				t.Fatalf("%q written as %q reads as %+v, %v", s, again, d, err)
			}
		}
	})
}
