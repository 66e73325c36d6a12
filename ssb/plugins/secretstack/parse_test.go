package secretstack

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
)

// Vectors from Node 22: Buffer.from(s, 'base64').toString('hex').
func TestNodeBase64(t *testing.T) {
	const key = "0b7bfb69f914b576038ed86b7f885736e47f9e7209e1af0e1fd68a6ba2abbe3a"
	for _, c := range []struct{ in, hex string }{
		{"C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=", key},
		{"C3v7afkUtXYDjthrf4hXNuR_nnIJ4a8OH9aKa6Krvjo", key},
		{"C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=.ed25519", key},
		{"C3v7af!kUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo", key},
		{"C3v7afkUtXYDjt=hrf4hXNuR/nnIJ4a8OH9aKa6Krvjo", "0b7bfb69f914b576038e"},
		{"C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo=AAAA", key},
		{"C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvj", key[:62]},
		{"C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo9", key + "3d"},
		{"C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krv j o", key},
	} {
		if got := hex.EncodeToString(nodeBase64(c.in)); got != c.hex {
			t.Errorf("nodeBase64(%q) = %s, want %s", c.in, got, c.hex)
		}
	}
}

// Vectors: JavaScript's Number(s).
func TestJSNumber(t *testing.T) {
	nan := math.NaN()
	for _, c := range []struct {
		in   string
		want float64
	}{
		{"8008", 8008}, {"", 0}, {" 12 ", 12}, {"0x1F", 31}, {"0b11", 3}, {"0o17", 15}, {"1e3", 1000},
		{"-5", -5}, {"+.5", 0.5}, {"5.", 5}, {".", nan}, {"1e", nan}, {"-0x10", nan}, {"1_0", nan},
		{"Infinity", math.Inf(1)}, {"-Infinity", math.Inf(-1)}, {"inf", nan}, {"NaN", nan}, {"1e400", math.Inf(1)}, {"x", nan},
	} {
		got := jsNumber(c.in)
		if !(got == c.want || math.IsNaN(got) && math.IsNaN(c.want)) {
			t.Errorf("jsNumber(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

// FuzzParse: any argument gives valid JSON (an array with an entry per
// address) or an error; never a panic.
func FuzzParse(f *testing.F) {
	k := "C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo="
	for _, s := range []string{
		`"net:127.0.0.1:8008~shs:` + k + `"`, `"net:h:1~shs:` + k + `;ws://h:2~shs:` + k + `;unix:/s~noauth"`,
		`"a;b;c;d"`, `"~~!~!"`, `5`, `null`, `{"a":1}`, `"ws://u:p@[::1]:5/x?y#z~shs:` + k + `:` + k + `"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, arg []byte) {
		out, err := Parse(arg)
		if err != nil {
			return
		}
		var v []json.RawMessage
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatalf("Parse(%s) = %s: %v", arg, out, err)
		}
		var s string
		json.Unmarshal(arg, &s)
		if len(v) != strings.Count(s, ";")+1 {
			t.Fatalf("Parse(%s) = %s: %d entries", arg, out, len(v))
		}
	})
}

// A net address round-trips: host and port as given.
func TestParseNet(t *testing.T) {
	k := "C3v7afkUtXYDjthrf4hXNuR/nnIJ4a8OH9aKa6Krvjo="
	for _, hp := range []string{"127.0.0.1:8008", "::1:1", "example.com:65535"} {
		arg, _ := json.Marshal("net:" + hp + "~shs:" + k)
		out, err := Parse(arg)
		if err != nil {
			t.Fatal(err)
		}
		var v [][]map[string]any
		if err := json.Unmarshal(out, &v); err != nil {
			t.Fatal(err)
		}
		i := strings.LastIndex(hp, ":")
		port, _ := strconv.Atoi(hp[i+1:])
		if v[0][0]["host"] != hp[:i] || v[0][0]["port"] != float64(port) || len(v[0][1]["key"].(map[string]any)["data"].([]any)) != 32 {
			t.Errorf("Parse(%s) = %s", arg, out)
		}
	}
}
