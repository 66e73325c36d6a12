package privatebox_test

import (
	"bytes"
	"testing"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// fuzzIdentity is a fixed identity, so that the fuzzer's corpus keeps
// meaning across runs: the seeds are boxes for it.
func fuzzIdentity(t testing.TB) identity {
	t.Helper()
	kp, err := keys.FromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	k, err := privatebox.NewKey(kp.Private)
	if err != nil {
		t.Fatal(err)
	}
	return identity{kp, k}
}

// fuzzSeeds returns real boxes: for us at every slot of 1 to 7, and for
// others only.
func fuzzSeeds(t testing.TB, us identity) [][]byte {
	t.Helper()
	var seeds [][]byte
	for n := 1; n <= privatebox.MaxRecipients; n++ {
		_, feeds := newIdentities(t, n)
		for _, at := range []int{-1, 0, n - 1} {
			recps := append([]refs.Feed(nil), feeds...)
			if at >= 0 {
				recps[at] = us.kp.ID
			}
			ct, err := privatebox.Box([]byte(`{"type":"post","text":"fuzz"}`), recps)
			if err != nil {
				t.Fatal(err)
			}
			seeds = append(seeds, ct)
		}
	}
	return append(seeds, nil, make([]byte, privatebox.MinSize))
}

// checkUnboxed checks the contract of every Unbox result.
func checkUnboxed(t *testing.T, plain []byte, ok bool, err error) {
	t.Helper()
	if ok && (err != nil || plain == nil) {
		t.Fatalf("ok with err %v, plaintext nil %v", err, plain == nil)
	}
	if !ok && plain != nil {
		t.Fatalf("not ok, but %d bytes of plaintext", len(plain))
	}
}

func FuzzUnbox(f *testing.F) {
	us := fuzzIdentity(f)
	for _, s := range fuzzSeeds(f, us) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct []byte) {
		plain, ok, err := privatebox.Unbox(ct, us.key)
		checkUnboxed(t, plain, ok, err)
		if ok {
			again, ok2, err2 := privatebox.Unbox(ct, us.key)
			if !ok2 || err2 != nil || !bytes.Equal(again, plain) {
				t.Fatal("a second Unbox differs")
			}
		}
	})
}

func FuzzUnboxString(f *testing.F) {
	us := fuzzIdentity(f)
	for _, s := range fuzzSeeds(f, us) {
		f.Add(b64(s) + privatebox.Suffix)
	}
	f.Add("x.box2")
	f.Add("")
	u := privatebox.NewUnboxer(us.key)
	f.Fuzz(func(t *testing.T, content string) {
		plain, ok, err := u.Unbox(content)
		checkUnboxed(t, plain, ok, err)
	})
}
