package events

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"pgregory.net/rapid"
)

// ScanHistory from any point, under any clock, visits exactly the updates
// of History(clock) that sort after that point, in the same order, merging
// the events of every name, in whatever order they arrived.
func TestScanHistoryMatchesHistory(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := New("A")
		sources := []string{"P", "Q", "R"}
		next := map[string]float64{}
		for range rapid.IntRange(0, 200).Draw(t, "updates") {
			src := rapid.SampledFrom(sources).Draw(t, "source")
			next[src] += float64(rapid.IntRange(1, 5).Draw(t, "step"))
			key := rapid.IntRange(0, 20).Draw(t, "name")
			m.Apply(scuttlebutt.Update{Change: json.RawMessage(fmt.Sprintf(`["k%d",1]`, key)), Timestamp: next[src], Source: src})
		}
		clock := scuttlebutt.Clock{}
		for _, src := range sources {
			if rapid.Bool().Draw(t, "inClock") {
				clock[src] = float64(rapid.IntRange(0, 300).Draw(t, "clock"))
			}
		}
		all := m.History(clock)
		var after *scuttlebutt.Update
		want := all
		if len(all) > 0 && rapid.Bool().Draw(t, "after") {
			i := rapid.IntRange(0, len(all)-1).Draw(t, "afterIndex")
			after = &all[i]
			want = all[i+1:]
		}
		limit := rapid.IntRange(1, 300).Draw(t, "limit")
		var got []scuttlebutt.Update
		m.log.ScanHistory(clock, after, func(u scuttlebutt.Update) bool {
			got = append(got, u)
			return len(got) < limit
		})
		want = want[:min(limit, len(want))]
		if !slices.EqualFunc(got, want, func(a, b scuttlebutt.Update) bool { return a.String() == b.String() }) {
			t.Fatalf("ScanHistory after %v, limit %d:\n got %v\nwant %v", after, limit, got, want)
		}
	})
}
