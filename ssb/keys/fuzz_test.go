package keys_test

import (
	"bytes"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
)

// FuzzParseSecret: ParseSecret never panics, and a key it accepts writes a
// file that reads back as the same key.
func FuzzParseSecret(f *testing.F) {
	kp, err := keys.FromSeedString("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(kp.Secret())
	f.Add([]byte(`{"curve":"ed25519"} # x`))
	f.Add([]byte("#\n#\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		kp, err := keys.ParseSecret(data)
		if err != nil {
			return
		}
		again, err := keys.ParseSecret(kp.Secret())
		if err != nil || again.ID != kp.ID || !bytes.Equal(again.Private, kp.Private) {
			t.Fatalf("ParseSecret(Secret()) = %v, %v", again, err)
		}
	})
}
