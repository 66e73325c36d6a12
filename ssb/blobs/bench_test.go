package blobs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scuttlego/scuttle/ssb/refs"
)

func BenchmarkAdd(b *testing.B) {
	for _, n := range []int{64 << 10, 1 << 20, 5 << 20} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			s := openStore(b)
			data := randBytes(1, n)
			b.SetBytes(int64(n))
			i := 0
			cpu0 := cpuTime()
			defer func() { b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op") }()
			for b.Loop() {
				// Distinct blobs: the first 8 bytes carry a counter.
				i++
				data[0], data[1], data[2], data[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
				if _, _, err := s.Add(b.Context(), bytes.NewReader(data), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGet(b *testing.B) {
	for _, n := range []int{64 << 10, 1 << 20, 5 << 20} {
		b.Run(fmt.Sprintf("%dKiB", n>>10), func(b *testing.B) {
			s := openStore(b)
			id, _, err := s.Add(b.Context(), bytes.NewReader(randBytes(2, n)), nil)
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, ChunkSize)
			b.SetBytes(int64(n))
			for b.Loop() {
				if _, err := serve(s, id, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// serve reads the blob id in chunks of buf, as an RPC handler sends it,
// and returns the hash of what it read.
func serve(s *Store, id refs.Blob, buf []byte) (refs.Blob, error) {
	rc, _, err := s.Get(id)
	if err != nil {
		return refs.Blob{}, err
	}
	defer rc.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, struct{ io.Reader }{rc}, buf); err != nil {
		return refs.Blob{}, err
	}
	return refs.NewBlob([32]byte(h.Sum(nil))), nil
}

// concurrentGets serves each blob of ids from its own goroutine at once,
// checks the bytes, and returns the peak growth of the live heap over what
// it was before, sampled after every chunk.
func concurrentGets(tb testing.TB, s *Store, ids []refs.Blob) uint64 {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	heap := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := heap()
	var peak atomic.Uint64
	var wg sync.WaitGroup
	errs := make([]error, len(ids))
	for i, id := range ids {
		wg.Go(func() {
			rc, _, err := s.Get(id)
			if err != nil {
				errs[i] = err
				return
			}
			defer rc.Close()
			h := sha256.New()
			buf := make([]byte, ChunkSize)
			for {
				n, err := rc.Read(buf)
				h.Write(buf[:n])
				for v, p := heap(), peak.Load(); v > p && !peak.CompareAndSwap(p, v); p = peak.Load() {
				}
				if err == io.EOF {
					break
				}
				if err != nil {
					errs[i] = err
					return
				}
			}
			if got := refs.NewBlob([32]byte(h.Sum(nil))); got != id {
				errs[i] = fmt.Errorf("read %s, want %s", got, id)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return peak.Load() - min(base, peak.Load())
}

// storeOf32 adds 32 distinct blobs of 5 MiB.
func storeOf32(tb testing.TB) (*Store, []refs.Blob) {
	s := openStore(tb)
	var ids []refs.Blob
	for i := range 32 {
		id, _, err := s.Add(tb.Context(), bytes.NewReader(randBytes(uint64(300+i), 5<<20)), nil)
		if err != nil {
			tb.Fatal(err)
		}
		ids = append(ids, id)
	}
	return s, ids
}

// TestConcurrentGetsMemory: serving 32 gets of 5 MiB at once (160 MiB)
// costs memory in proportion to the chunks in flight (32 × 64 KiB = 2
// MiB), not to the blobs.
func TestConcurrentGetsMemory(t *testing.T) {
	s, ids := storeOf32(t)
	growth := concurrentGets(t, s, ids)
	t.Logf("peak heap growth %.1f MiB serving %d blobs of 5 MiB", float64(growth)/(1<<20), len(ids))
	if growth > 16<<20 {
		t.Fatalf("peak heap grew by %d MiB serving 32 blobs of 5 MiB: more than chunks", growth>>20)
	}
}

func BenchmarkConcurrentGets(b *testing.B) {
	s, ids := storeOf32(b)
	b.SetBytes(32 * 5 << 20)
	var worst uint64
	for b.Loop() {
		worst = max(worst, concurrentGets(b, s, ids))
	}
	b.ReportMetric(float64(worst)/(1<<20), "peak-heap-MiB")
}

// BenchmarkAddParallel adds 64 KiB blobs from 16 goroutines, as a fetch of
// many small blobs from several peers does: the fsyncs overlap.
func BenchmarkAddParallel(b *testing.B) {
	for _, unnamed := range []bool{true, false} {
		b.Run(map[bool]string{true: "unnamed", false: "named"}[unnamed], func(b *testing.B) {
			s := openStore(b)
			if unnamed && !s.unnamed {
				b.Skip("no unnamed temporary files on this system")
			}
			s.unnamed = unnamed
			const n = 64 << 10
			var next atomic.Uint64
			b.SetBytes(n)
			b.SetParallelism(8)
			cpu0 := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				data := randBytes(next.Add(1)<<32, n)
				for pb.Next() {
					i := next.Add(1)
					data[0], data[1], data[2], data[3] = byte(i), byte(i>>8), byte(i>>16), byte(i>>24)
					if _, _, err := s.Add(b.Context(), bytes.NewReader(data), nil); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
		})
	}
}
