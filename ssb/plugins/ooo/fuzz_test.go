package ooo

import (
	"encoding/json"
	"testing"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// FuzzIncoming feeds a peer's ooo.stream objects to the query state, with
// our own query pending for one message: nothing panics, and whatever is
// taken is a valid message whose id is the key it was taken for.
func FuzzIncoming(f *testing.F) {
	kp, err := keys.Generate(nil)
	if err != nil {
		f.Fatal(err)
	}
	raws, err := ssbtest.Feed(kp, 2, 1.7e12)
	if err != nil {
		f.Fatal(err)
	}
	m, err := message.Decode(raws[1])
	if err != nil {
		f.Fatal(err)
	}
	id := m.Key.String()
	f.Add([]byte(`{"` + id + `":` + string(raws[1]) + `}`))
	f.Add([]byte(`{"` + id + `":` + string(raws[0]) + `}`))
	f.Add([]byte(`{"` + id + `":-1,"%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256":-2}`))
	f.Add([]byte(`{"` + id + `":[1,2],"x":{}}`))
	f.Add([]byte(`{"` + id + `":-1.5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var data map[string]json.RawMessage
		if json.Unmarshal(b, &data) != nil {
			return
		}
		c := newCore(func(refs.Message) (json.RawMessage, bool) { return nil, false }, nil)
		if _, _, err := c.want(m.Key); err != nil {
			t.Fatal(err)
		}
		s := &session{wake: make(chan struct{}, 1)}
		c.add(s)
		c.incoming(s, data)
		c.outgoing(s)
		for k, q := range c.queries {
			if q.value == nil {
				continue
			}
			got, err := message.Decode(q.value)
			if err != nil || got.Key != k {
				t.Fatalf("took %s for %s: %v", q.value, k, err)
			}
			if q.weight <= maxWeight {
				t.Fatalf("weight %d", q.weight)
			}
		}
		c.remove(s)
	})
}
