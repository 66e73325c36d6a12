package gossip

import (
	"encoding/json"
	"testing"

	"github.com/scuttlego/scuttle/ssb/server"
)

func TestArgs(t *testing.T) {
	const id = "@C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=.ed25519"
	const addr = "net:127.0.0.1:9~shs:C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo="
	for _, c := range []struct{ arg, want string }{
		{`"` + addr + `"`, addr},
		{`{"address":"` + addr + `"}`, addr},
		{`{"host":"127.0.0.1","port":9,"key":"` + id + `"}`, addr},
		{`{"host":"127.0.0.1","port":"9","key":"` + id + `"}`, addr},
		{`"garbage"`, ""},
		{`{"host":"x.onion","port":9,"key":"` + id + `"}`, ""},
	} {
		got, err := addressArg(json.RawMessage(c.arg))
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("addressArg(%s) = %q, %v; want %q", c.arg, got, err, c.want)
		}
	}
	if _, err := peerArg(json.RawMessage(`"x"`)); err == nil || err.Error() != `must provide id:"x"` {
		t.Errorf("peerArg(x): %v", err)
	}
	if _, err := peerArg(nil); err == nil || err.Error() != `must provide id:undefined` {
		t.Errorf("peerArg(): %v", err)
	}
	for arg, want := range map[string]string{``: "global", `null`: "global", `""`: "global", `0`: "global", `false`: "global",
		`"local"`: "local", `5`: "5", `1e21`: "1e+21", `true`: "true", `[1,null,"a"]`: "1,,a", `{}`: "[object Object]"} {
		if got := typeArg(json.RawMessage(arg)); got != want {
			t.Errorf("typeArg(%s) = %q, want %q", arg, got, want)
		}
	}
}

// FuzzArgs: the argument decoders never panic, and an address they accept
// is one the server can dial.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{`"net:127.0.0.1:9~shs:C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo="`,
		`{"host":"h","port":9,"key":"@C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=.ed25519"}`,
		`{"key":"@C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=.ed25519"}`, `[1,[2]]`, `1e999`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, arg []byte) {
		if addr, err := addressArg(arg); err == nil {
			if _, _, err := server.ParseAddress(addr); err != nil {
				t.Fatalf("addressArg(%s) = %q: %v", arg, addr, err)
			}
		}
		peerArg(arg)
		typeArg(arg)
	})
}
