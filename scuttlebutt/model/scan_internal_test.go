package model

import (
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/internal/doctest"
	"pgregory.net/rapid"
)

// ScanHistory from any point, under any clock, visits exactly the updates
// of History(clock) that sort after that point, in the same order, however
// keys were overwritten and in whatever order updates arrived.
func TestScanHistoryMatchesHistory(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		doctest.ScanMatchesHistory(t, func() (*scuttlebutt.Replica, scuttlebutt.HistoryScanner) {
			m := New("A")
			return m.Replica, m.st
		})
	})
}
