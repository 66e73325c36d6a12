package persist

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// BenchmarkDurableSet measures Model.Set on a durable log: each Set returns
// after its line is written and fsynced. With one setter every Set costs
// an fsync; with 32, concurrent Sets share them (group commit). Keys cycle
// over 1,000, so the log is compacted as it grows.
func BenchmarkDurableSet(b *testing.B) {
	for _, setters := range []int{1, 32} {
		b.Run(fmt.Sprint("setters=", setters), func(b *testing.B) {
			m := model.New("B")
			l, err := Open(filepath.Join(b.TempDir(), "bench.log"), m.Replica, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range setters {
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if err := m.Set("key-"+strconv.Itoa(int(i%1000)), map[string]any{"i": i, "s": "value"}); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := l.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
			b.ReportMetric(float64(st.Records)/float64(max(st.Syncs, 1)), "sets/fsync")
		})
	}
}

// BenchmarkCompaction sets b.N keys over 1,000 keys with 64 setters (run
// it with -benchtime=1000000x for the 1M figure) and reports the bytes the
// log appended in all (what a file without compaction would hold), the
// largest file seen, the file when the Sets end, and the file after one
// more compaction (about the size of the history), the slowest Set, and
// the longest time a compaction held the file (Sets wait meanwhile).
func BenchmarkCompaction(b *testing.B) {
	path := filepath.Join(b.TempDir(), "bench.log")
	m := model.New("B")
	var held time.Time
	var longestHold time.Duration
	hook := func(stage string) { // runs on the compacting goroutine
		switch stage {
		case "swap":
			held = time.Now()
		case "swapped":
			longestHold = max(longestHold, time.Since(held))
		}
	}
	l, err := Open(path, m.Replica, Options{hook: hook})
	if err != nil {
		b.Fatal(err)
	}
	var next, largest, slowest atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // sample the file size
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			if fi, err := os.Stat(path); err == nil && fi.Size() > largest.Load() {
				largest.Store(fi.Size())
			}
		}
	})
	b.ResetTimer()
	var setters sync.WaitGroup
	for range 64 {
		setters.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := m.Set("key-"+strconv.Itoa(int(i%1000)), map[string]any{"i": i, "s": "value"}); err != nil {
					b.Error(err)
					return
				}
				for d := int64(time.Since(t0)); d > slowest.Load(); {
					if slowest.CompareAndSwap(slowest.Load(), d) {
						break
					}
				}
			}
		})
	}
	setters.Wait()
	b.StopTimer()
	close(stop)
	wg.Wait()
	st := l.Stats()
	if err := l.Compact(); err != nil {
		b.Fatal(err)
	}
	compacted := l.Stats().Size
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sets/s")
	b.ReportMetric(float64(st.Appended), "bytes-logged")
	b.ReportMetric(float64(max(largest.Load(), st.Size)), "bytes-largest")
	b.ReportMetric(float64(st.Size), "bytes-end")
	b.ReportMetric(float64(compacted), "bytes-compacted")
	b.ReportMetric(float64(st.Compactions), "compactions")
	b.ReportMetric(float64(slowest.Load())/1e6, "ms-slowest-set")
	b.ReportMetric(float64(longestHold)/1e6, "ms-longest-hold")
}

// BenchmarkLoad measures loading a file of 100,000 updates: a saved Model
// of 100,000 keys (LoadFile), and a durable log of 100,000 Sets over 1,000
// keys (Open, which also applies every superseded update).
func BenchmarkLoad(b *testing.B) {
	const n = 100000
	dir := b.TempDir()
	saved := filepath.Join(dir, "saved.txt")
	src := model.New("S")
	for i := range n {
		src.Apply(scuttlebutt.Update{Change: json.RawMessage(fmt.Sprintf(`["k%d",{"i":%d,"s":"value-%d"}]`, i, i, i)), Timestamp: 1795316000000 + float64(i), Source: "S"})
	}
	if err := SaveFile(saved, src.Replica); err != nil {
		b.Fatal(err)
	}
	var log bytes.Buffer
	log.WriteString(`{"id":"S","clock":{}}` + "\n")
	for i := range n {
		fmt.Fprintf(&log, `[["k%d",{"i":%d,"s":"value-%d"}],%d,"S"]`+"\n", i%1000, i, i, 1795316000000+i)
	}
	logData := log.Bytes()

	b.Run("LoadFile-100k-keys", func(b *testing.B) {
		fi, _ := os.Stat(saved)
		b.SetBytes(fi.Size())
		for b.Loop() {
			m := model.New("L")
			if err := LoadFile(saved, m.Replica); err != nil {
				b.Fatal(err)
			}
			if m.Len() != n {
				b.Fatalf("%d keys", m.Len())
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
	b.Run("Open-100k-sets-1k-keys", func(b *testing.B) {
		b.SetBytes(int64(len(logData)))
		path := filepath.Join(dir, "log.txt")
		for b.Loop() {
			b.StopTimer()
			if err := os.WriteFile(path, logData, 0o666); err != nil {
				b.Fatal(err)
			}
			m := model.New("S")
			b.StartTimer()
			l, err := Open(path, m.Replica, Options{CompactRatio: -1})
			if err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			l.Close()
			if m.Len() != 1000 {
				b.Fatalf("%d keys", m.Len())
			}
			b.StartTimer()
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	})
}
