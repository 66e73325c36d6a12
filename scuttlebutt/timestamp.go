package scuttlebutt

import (
	"math"
	"sync/atomic"
	"time"
)

// lastTimestamp is the last timestamp handed out in this process, as
// float64 bits; like npm monotonic-timestamp, the state is per process.
var lastTimestamp atomic.Uint64

// Timestamp returns the wall clock in milliseconds since the Unix epoch as
// a float64, strictly greater than every value it returned before in this
// process. Within one millisecond it counts up by the smallest step a
// float64 holds there (about 0.00024 ms today); it never spins and never
// goes backwards when the wall clock does.
func Timestamp() float64 { return nextTimestamp(time.Now) }

func nextTimestamp(now func() time.Time) float64 {
	wall := float64(now().UnixMilli())
	for {
		old := lastTimestamp.Load()
		ts := wall
		if last := math.Float64frombits(old); ts <= last {
			ts = math.Nextafter(last, math.Inf(1))
		}
		if lastTimestamp.CompareAndSwap(old, math.Float64bits(ts)) {
			return ts
		}
	}
}
