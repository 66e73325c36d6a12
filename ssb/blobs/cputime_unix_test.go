//go:build unix

package blobs

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process has used (user and system), for
// the benchmarks' cpu-ns/op: on a shared machine it varies less than the
// wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
