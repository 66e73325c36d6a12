package blobs

import (
	"encoding/json"
	"testing"
)

// FuzzArgs feeds the argument decoders of the methods (an id, an array of
// ids, get and getSlice options, ls options) arbitrary JSON: they answer
// an error or a valid id, never panic.
func FuzzArgs(f *testing.F) {
	for _, s := range []string{
		`"&47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.sha256"`,
		`{"id":"&47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.sha256","size":0,"max":5}`,
		`{"key":"&x.sha256","start":1,"end":2}`, `{"hash":7}`, `["&a","&b"]`, `null`, `{"size":-1}`,
		`{"id":{"id":"&47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=.sha256"}}`, `{"start":1e300}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		raw := json.RawMessage(b)
		if id, err := parseID(raw); err == nil && id.IsZero() {
			t.Fatalf("parseID(%s): no error and no id", b)
		}
		for _, m := range []string{"get", "getSlice"} {
			if o, err := parseGetOpts(m, raw); err == nil {
				if o.id.IsZero() {
					t.Fatalf("parseGetOpts(%s): no error and no id", b)
				}
				for _, v := range []*int64{o.size, o.max, o.start, o.end} {
					if v != nil && *v < 0 {
						t.Fatalf("parseGetOpts(%s): a negative number", b)
					}
				}
			}
		}
		var o lsOpts
		json.Unmarshal(b, &o)
	})
}
