//go:build !unix

package blobs

import "time"

// cpuTime is not measured here: the benchmarks report cpu-ns/op as 0.
func cpuTime() time.Duration { return 0 }
