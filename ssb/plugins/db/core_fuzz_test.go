package db

import (
	"encoding/json"
	"testing"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// FuzzRawLogOpts decodes createRawLogStream's options as a request's
// argument and checks that the receive sequences rawRange keeps are
// exactly those the bounds allow (gt over gte, lt over lte, as ltgt).
func FuzzRawLogOpts(f *testing.F) {
	for _, s := range []string{`{}`, `null`, `"x"`, `{"gt":2}`, `{"gte":2.5,"lt":4}`, `{"gt":-1,"lte":1e300}`,
		`{"gt":3,"gte":9,"lt":7,"lte":2}`, `{"lt":0}`, `{"gt":1.7976931348623157e308}`, `{"live":true,"old":false,"limit":3}`, `{"gt":"a"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, arg string) {
		req := &muxrpc.Request{Method: muxrpc.Method{"createRawLogStream"}, Args: json.RawMessage("[" + arg + "]")}
		if !json.Valid(req.Args) {
			return
		}
		o, err := ParseOpts(req, "")
		if err != nil {
			return
		}
		r := rawRange(o)
		allowed := func(seq float64) bool {
			switch {
			case o.Gt != nil && !(seq > *o.Gt), o.Gt == nil && o.Gte != nil && !(seq >= *o.Gte):
				return false
			case o.Lt != nil && !(seq < *o.Lt), o.Lt == nil && o.Lte != nil && !(seq <= *o.Lte):
				return false
			}
			return true
		}
		for _, seq := range []uint64{1, 2, 3, 4, 5, 7, 1000, r.lo - 1, r.lo, r.lo + 1, r.hi - 1, r.hi, r.hi + 1} {
			if seq == 0 || float64(seq) >= 1<<53 {
				continue // not a receive sequence, or beyond exact floats
			}
			if in := seq >= r.lo && seq <= r.hi; in != allowed(float64(seq)) {
				t.Fatalf("%s: range %+v, seq %d kept %v", arg, r, seq, in)
			}
		}
	})
}
