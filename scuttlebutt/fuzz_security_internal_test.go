package scuttlebutt

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// fzSigners returns an Ed25519 and an RSASHA1 Security (npm scuttlebutt's
// test1 key; security_test.go sets rsa1024min=0 for the test binary), and
// the wire lines of updates each signed.
func fzSigners(f *testing.F) ([]Security, [][]string) {
	f.Helper()
	ed := NewEd25519(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32)), nil)
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "interop", "sb-keys", name))
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	rsaSec, err := NewRSASHA1(read("test1.key"), read("test1.pem"), nil)
	if err != nil {
		f.Fatal(err)
	}
	secs := []Security{ed, rsaSec}
	signed := make([][]string, len(secs))
	for i, sec := range secs {
		for j, change := range []string{`["k","v"]`, `["k",{"b":1,"2":[true,null,-1.5e-7]}]`, `["\u00e9\ud83d\ude00","\u2028\ud800"]`, `"raw"`} {
			u := Update{Change: json.RawMessage(change), Timestamp: 1700000000000 + float64(j)/4, Source: sec.ID()}
			sig, err := sec.Sign(u)
			if err != nil {
				f.Fatal(err)
			}
			u.Extra = []json.RawMessage{sig}
			signed[i] = append(signed[i], u.String())
		}
	}
	return secs, signed
}

// FuzzVerify feeds the signed-update verifiers lines derived from genuine
// signed updates. Whatever the line, verification never panics, fails
// only with ErrUnverified, and accepts only an update whose change,
// timestamp and source are exactly those of one the key signed (however
// the line spells them).
func FuzzVerify(f *testing.F) {
	secs, signed := fzSigners(f)
	genuine := make([]map[string]bool, len(secs))
	for i := range secs {
		genuine[i] = map[string]bool{}
		for _, line := range signed[i] {
			_, u, _, err := decodeLine([]byte(line), nil, 0)
			if err != nil {
				f.Fatal(err)
			}
			genuine[i][string(signedPayload(nil, u))] = true
			f.Add([]byte(line))
			f.Add([]byte(strings.Replace(line, ",", " , ", -1)))
			f.Add([]byte(strings.Replace(line, `"k"`, `"\u006b"`, 1)))
			f.Add([]byte(strings.Replace(line, `1700000000000`, `1.700000000000e12`, 1)))
		}
	}
	f.Add([]byte(`[["k","v"],1700000000000,"@AAAA.ed25519","x.sig.ed25519"]`))
	f.Fuzz(func(t *testing.T, line []byte) {
		kind, u, _, err := decodeLine(line, nil, 0)
		if err != nil || kind != lineUpdate {
			return
		}
		for i, sec := range secs {
			err := sec.Verify(context.Background(), u)
			if err != nil {
				if !errors.Is(err, ErrUnverified) {
					t.Fatalf("Verify(%q) = %v, want an ErrUnverified", line, err)
				}
				continue
			}
			if u.Source != sec.ID() || !genuine[i][string(signedPayload(nil, u))] {
				t.Fatalf("%T accepted %q, which its key never signed", sec, line)
			}
		}
	})
}

// FuzzJSStringify checks the JavaScript form that RSASHA1 signs: for any
// JSON, JSON.stringify's output (jsStringify of the canonical form) is
// valid JSON with the same value, whose canonical form is the one it came
// from.
func FuzzJSStringify(f *testing.F) {
	for _, s := range []string{
		`["h\u00e9llo\u20ac\ud83d\ude00\u2028<&>\u007f\u0001\"\\"]`, `{"b":1,"2":2,"1":3,"a":[-0,1e21,1e-7]}`,
		`"\ud800x\udc00\ud83d"`, `"\\u00e9"`, `"\\\ud83d\ude00"`, "\"\xff\xfe\"", `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		canon, err := jsjson.Canonical(data)
		if err != nil {
			return
		}
		js := jsStringify(nil, canon)
		var a, b any
		if err := json.Unmarshal(js, &a); err != nil {
			t.Fatalf("jsStringify(%q) = %q, not JSON: %v", canon, js, err)
		}
		json.Unmarshal(canon, &b)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("jsStringify(%q) = %q, another value", canon, js)
		}
		if back, err := jsjson.Canonical(js); err != nil || !bytes.Equal(back, canon) {
			t.Fatalf("canonical form of %q is %q, want %q (%v)", js, back, canon, err)
		}
		// JSON.stringify escapes only control characters and lone
		// surrogates.
		for i := 0; i < len(js); i++ {
			if js[i] != '\\' {
				continue
			}
			if js[i+1] == 'u' {
				if r := hex4(js[i+2 : i+6]); r >= 0x20 && (r < 0xd800 || r >= 0xe000) {
					t.Fatalf("jsStringify(%q) = %q: escapes U+%04X", canon, js, r)
				}
			}
			i++
		}
	})
}
