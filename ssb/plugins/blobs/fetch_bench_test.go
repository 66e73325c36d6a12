package blobs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
)

// BenchmarkFetch fetches blobs of 65,535 bytes that only A holds through
// blobs.want on B, with a number of wants in flight, as bench/ssbblobfetch
// does with a whole server: each iteration is one blob.
func BenchmarkFetch(b *testing.B) {
	for _, inflight := range []int{8, 64} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) { benchFetch(b, 65535, inflight) })
	}
}

func benchFetch(b *testing.B, size, inflight int) {
	net := newNetwork()
	sa, sb := net.start(b, ""), net.start(b, "")
	ids := make([]string, b.N)
	data := randomBytes(size)
	for i := range ids {
		copy(data, fmt.Sprintf("%08d", i))
		id, _, err := sa.blobs.store.Add(context.Background(), bytes.NewReader(data), nil)
		if err != nil {
			b.Fatal(err)
		}
		ids[i] = id.String()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := sb.Connect(ctx, sa.address()); err != nil {
		b.Fatal(err)
	}
	e := sb.local(b)
	b.SetBytes(int64(size))
	b.ResetTimer()
	cpu0, r0, w0 := cpuTime(), ioCalls("syscr:"), ioCalls("syscw:")
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	for _, id := range ids {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			var ok bool
			if err := e.AsyncJSON(ctx, &ok, muxrpc.Method{"blobs", "want"}, id); err != nil || !ok {
				select {
				case errs <- fmt.Errorf("blobs.want %s: %v %v", id, ok, err):
				default:
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if r0 >= 0 {
		b.ReportMetric(float64(ioCalls("syscr:")-r0)/float64(b.N), "reads/op")
		b.ReportMetric(float64(ioCalls("syscw:")-w0)/float64(b.N), "writes/op")
	}
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
}

// ioCalls returns a counter of /proc/self/io (syscr: read system calls,
// syscw: write ones), or -1 without it.
func ioCalls(field string) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
