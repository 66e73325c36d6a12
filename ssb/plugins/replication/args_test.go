package replication

import (
	"encoding/json"
	"testing"
)

const feedA = "@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"
const feedB = "@AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519"

// The argument forms of ssb-replicate's request and block: positional or
// one object; request's replicate is false only when it is false, block's
// blocking is JavaScript truthiness.
func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		args     string
		want, ok bool
	}{
		{`["` + feedA + `"]`, true, true},
		{`["` + feedA + `", false]`, false, true},
		{`["` + feedA + `", 0]`, true, true},
		{`[{"id":"` + feedA + `","replicate":false}]`, false, true},
		{`[{"id":"` + feedA + `"}]`, true, true},
		{`["@x"]`, true, false},
		{`[]`, false, false},
	} {
		f, want, ok := requestArgs(json.RawMessage(tc.args))
		if want != tc.want || ok != tc.ok || ok && f.String() != feedA {
			t.Errorf("request%s: %v %v %v, want %v %v", tc.args, f, want, ok, tc.want, tc.ok)
		}
	}
	for _, tc := range []struct {
		args         string
		blocking, ok bool
	}{
		{`["` + feedA + `","` + feedB + `",true]`, true, true},
		{`["` + feedA + `","` + feedB + `"]`, false, true},
		{`["` + feedA + `","` + feedB + `",1]`, true, true},
		{`["` + feedA + `","` + feedB + `",""]`, false, true},
		{`[{"from":"` + feedA + `","to":"` + feedB + `","blocking":"yes"}]`, true, true},
		{`[{"from":"` + feedA + `","to":"@b","blocking":true}]`, true, false},
	} {
		from, to, blocking, ok := blockArgs(json.RawMessage(tc.args))
		if blocking != tc.blocking || ok != tc.ok || ok && (from.String() != feedA || to.String() != feedB) {
			t.Errorf("block%s: %v %v %v %v, want %v %v", tc.args, from, to, blocking, ok, tc.blocking, tc.ok)
		}
	}
}

// FuzzArgs: request's and block's argument decoders take any bytes; what
// they accept names feeds.
func FuzzArgs(f *testing.F) {
	f.Add([]byte(`["` + feedA + `", false]`))
	f.Add([]byte(`[{"from":"` + feedA + `","to":"` + feedB + `","blocking":1}]`))
	f.Add([]byte(`[{"id":null}]`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if fd, _, ok := requestArgs(b); ok && fd.String() == "" {
			t.Fatal("a request accepted without a feed")
		}
		if from, to, _, ok := blockArgs(b); ok && (from.String() == "" || to.String() == "") {
			t.Fatal("a block accepted without feeds")
		}
		truthy(b)
	})
}
