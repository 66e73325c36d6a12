package gossip

import (
	"maps"
	"slices"
	"testing"
	"unicode/utf8"
)

// FuzzDigest: decodeDigest never panics, and what it decodes encodes back
// to a digest that decodes the same.
func FuzzDigest(f *testing.F) {
	f.Add([]byte(`{"gossip":"digest","n":3,"ack":2,"req":true,"sent":57,"lostAck":1,"lost":0,"have":{"a=.ed25519":[0,5,7,9]}}`))
	f.Add([]byte(`{"gossip":"digest" , "n":0,"ack":0,"x":{"y":[1,{"z":"\"\\u00e9"}],"w":true}}`))
	f.Add([]byte(`{"gossip":"other"}`))
	f.Add([]byte(`{"gossip":"digest","n":1,"ack":1,"have":{"\u00e9":[]}}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		d, err := decodeDigest(line)
		if err != nil || d == nil {
			return
		}
		for k := range d.have {
			if !utf8.ValidString(k) {
				return // written back as U+FFFD: publisher keys are ASCII
			}
		}
		var pubs []*publisher
		for _, k := range slices.Sorted(maps.Keys(d.have)) {
			pubs = append(pubs, &publisher{key: k, seen: d.have[k]})
		}
		b := appendDigest(nil, d)
		if d.have != nil {
			b = appendHave(b, pubs, 1<<30)
		}
		b = append(b, '}')
		again, err := decodeDigest(b)
		if err != nil || again == nil {
			t.Fatalf("re-encoded %s: %v", b, err)
		}
		if again.n != d.n || again.ack != d.ack || again.req != d.req || again.answer != d.answer ||
			again.lost != d.lost || len(again.have) != len(d.have) {
			t.Fatalf("%+v became %+v", d, again)
		}
		if d.req && (again.sent != d.sent || again.lostAck != d.lostAck || again.full != d.full) {
			t.Fatalf("%+v became %+v", d, again)
		}
		for k, s := range d.have {
			if !slices.Equal(again.have[k], s) {
				t.Fatalf("have[%q] %v became %v", k, s, again.have[k])
			}
		}
	})
}

// Spans: add keeps the set sorted, disjoint and non-adjacent, and contains
// agrees with a plain set while no merge was forced.
func TestSpans(t *testing.T) {
	var s spans
	in := map[int64]bool{}
	for _, x := range []int64{5, 3, 4, 10, 12, 11, 0, 2, 1, 7, 100, 99, 101} {
		s = s.add(x, 100)
		in[x] = true
		for i := range s {
			if s[i].lo > s[i].hi || i > 0 && s[i].lo <= s[i-1].hi+1 {
				t.Fatalf("spans %v", s)
			}
		}
		for y := int64(-1); y < 103; y++ {
			if s.contains(y) != in[y] {
				t.Fatalf("contains(%d) = %v in %v", y, !in[y], s)
			}
		}
	}
	if want := (spans{{0, 5}, {7, 7}, {10, 12}, {99, 101}}); !slices.Equal(s, want) {
		t.Errorf("spans %v, want %v", s, want)
	}
	s = s.add(50, 2) // past the limit, the lowest merge
	if want := (spans{{0, 50}, {99, 101}}); !slices.Equal(s, want) {
		t.Errorf("after the limit: %v, want %v", s, want)
	}
}
