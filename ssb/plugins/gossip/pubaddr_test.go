package gossip

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/ssb/server"
)

func TestPubAddress(t *testing.T) {
	const id = "@C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=.ed25519"
	const key = "C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo="
	pub := func(addr string) []byte {
		return []byte(`{"author":"` + id + `","content":{"type":"pub","address":` + addr + `}}`)
	}
	for _, c := range []struct {
		value []byte
		want  string
	}{
		{pub(`{"host":"127.0.0.1","port":8008,"key":"` + id + `"}`), "net:127.0.0.1:8008~shs:" + key},
		{pub(`{"host":"pub.example.com","port":1,"key":"` + id + `"}`), "net:pub.example.com:1~shs:" + key},
		{pub(`"net:10.0.0.1:8008~shs:` + key + `"`), "net:10.0.0.1:8008~shs:" + key},
		{pub(`"10.0.0.2:8008:` + id + `"`), "net:10.0.0.2:8008~shs:" + key},
		{pub(`"::1:8008:` + id + `"`), "net:::1:8008~shs:" + key},
		{pub(`{"address":"net:10.0.0.3:9~shs:` + key + `"}`), "net:10.0.0.3:9~shs:" + key},
		// forged or broken
		{pub(`{"host":"a b","port":8008,"key":"` + id + `"}`), ""},
		{pub(`{"host":"127.0.0.1","port":0,"key":"` + id + `"}`), ""},
		{pub(`{"host":"127.0.0.1","port":70000,"key":"` + id + `"}`), ""},
		{pub(`{"host":"127.0.0.1","port":-1,"key":"` + id + `"}`), ""},
		{pub(`{"host":"127.0.0.1","port":8008,"key":"@nope.ed25519"}`), ""},
		{pub(`{"host":"x.onion","port":8008,"key":"` + id + `"}`), ""},
		{pub(`{"host":"` + strings.Repeat("a", 300) + `.com","port":1,"key":"` + id + `"}`), ""},
		{pub(`{"host":"127.0.0.1\n","port":1,"key":"` + id + `"}`), ""},
		{pub(`"net:10.0.0.1:99999~shs:` + key + `"`), ""},
		{pub(`"ws://10.0.0.1:80~shs:` + key + `"`), ""},
		{pub(`"garbage"`), ""},
		{pub(`"a:b"`), ""},
		{pub(`42`), ""},
		{pub(`null`), ""},
		{pub(`[]`), ""},
		{[]byte(`{"content":{"type":"post","address":"net:10.0.0.1:1~shs:` + key + `"}}`), ""},
		{[]byte(`{"content":"cipher.box"}`), ""},
		{[]byte(`not json`), ""},
	} {
		got, ok := pubAddress(c.value)
		if got != c.want || ok != (c.want != "") {
			t.Errorf("%s: %q, %v; want %q", c.value, got, ok, c.want)
		}
	}
}

// FuzzPubAddress: a pub message's address, whatever its content, is
// either refused or one the server can parse.
func FuzzPubAddress(f *testing.F) {
	const id = "@C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=.ed25519"
	for _, a := range []string{
		`{"host":"127.0.0.1","port":8008,"key":"` + id + `"}`, `"net:10.0.0.1:8008~shs:C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo="`,
		`"10.0.0.2:8008:` + id + `"`, `{"address":"x"}`, `"::"`, `null`,
	} {
		f.Add([]byte(`{"content":{"type":"pub","address":` + a + `}}`))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		addr, ok := pubAddress(value)
		if !ok {
			return
		}
		if _, _, err := server.ParseAddress(addr); err != nil {
			t.Fatalf("%s gave %q: %v", value, addr, err)
		}
		if !json.Valid(value) {
			t.Fatalf("accepted invalid JSON %q", value)
		}
	})
}
