// Package doctest holds checks shared by the tests of the data types.
package doctest

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"pgregory.net/rapid"
)

// ScanMatchesHistory checks one random case: after up to 200 updates from
// three sources on up to 21 keys (changes ["k<n>",1]), applied to r,
// doc.ScanHistory from any point, under any clock, with any limit, visits
// exactly the updates of r.History(clock) that sort after that point, in
// the same order. newDoc returns a new replica and its document.
func ScanMatchesHistory(t *rapid.T, newDoc func() (*scuttlebutt.Replica, scuttlebutt.HistoryScanner)) {
	r, doc := newDoc()
	sources := []string{"P", "Q", "R"}
	next := map[string]float64{}
	for range rapid.IntRange(0, 200).Draw(t, "updates") {
		src := rapid.SampledFrom(sources).Draw(t, "source")
		next[src] += float64(rapid.IntRange(1, 5).Draw(t, "step"))
		key := rapid.IntRange(0, 20).Draw(t, "key")
		r.Apply(scuttlebutt.Update{Change: json.RawMessage(fmt.Sprintf(`["k%d",1]`, key)), Timestamp: next[src], Source: src})
	}
	clock := scuttlebutt.Clock{}
	for _, src := range sources {
		if rapid.Bool().Draw(t, "inClock") {
			clock[src] = float64(rapid.IntRange(0, 300).Draw(t, "clock"))
		}
	}
	all := r.History(clock)
	var after *scuttlebutt.Update
	want := all
	if len(all) > 0 && rapid.Bool().Draw(t, "after") {
		i := rapid.IntRange(0, len(all)-1).Draw(t, "afterIndex")
		after = &all[i]
		want = all[i+1:]
	}
	limit := rapid.IntRange(1, 300).Draw(t, "limit")
	var got []scuttlebutt.Update
	doc.ScanHistory(clock, after, func(u scuttlebutt.Update) bool {
		got = append(got, u)
		return len(got) < limit
	})
	want = want[:min(limit, len(want))]
	if !slices.EqualFunc(got, want, func(a, b scuttlebutt.Update) bool { return a.String() == b.String() }) {
		t.Fatalf("ScanHistory after %v, limit %d:\n got %v\nwant %v", after, limit, got, want)
	}
}
