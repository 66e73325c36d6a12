// Command ssbstore measures the SSB message store and validation, in one
// run:
//
//   - (a) durable append throughput: N messages (default 1,000,000) of
//     -feeds feeds, made and signed beforehand in chunks of -chunk, are
//     appended with AppendMessages (no verification) by -appenders
//     goroutines in batches of -batch consecutive messages of one feed,
//     with group commit and an fsync per commit. Only the appends are
//     timed. After each chunk it prints the Go heap and the process's
//     resident memory, so that growth with the number of messages stored
//     shows; at the end, the file size.
//   - (b) validation: the same -validate messages (chained feeds, JSON
//     lines) are validated by Go message.Validate on one goroutine and on
//     all cores, and by node with ssb-validate@4.1.4
//     (interop/ssb-validate-bench.js), and the ratio is printed.
//
// Memory columns, measured after garbage collection and
// debug.FreeOSMemory (so that memory freed by the message generator is
// returned to the OS): "heap" is the Go heap in use
// (runtime.MemStats.HeapAlloc: live objects, what the store and the
// program keep); "rss" is the resident set from
// /proc/self/status, split into "anon" (Go heap, stacks, runtime) and
// "file" (pages of the memory-mapped database file that are resident).
// bbolt reads the database through mmap, so "file" grows with the pages
// touched, and the kernel reclaims those pages under memory pressure;
// "anon" and "heap" are what the process itself holds.
//
//	go run ./bench/ssbstore                     # the default run, ~2 minutes
//	go run ./bench/ssbstore -n 100000 -js=false # quick
//
// It needs node and interop/node_modules unless -js=false.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/procmem"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/store"
)

type config struct {
	n, feeds, appenders, batch, chunk, validate, runs int
	dir, interop                                      string
	js, keep                                          bool
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 1_000_000, "messages to append")
	flag.IntVar(&c.feeds, "feeds", 1000, "feeds the messages belong to")
	flag.IntVar(&c.appenders, "appenders", 32, "goroutines appending concurrently")
	flag.IntVar(&c.batch, "batch", 100, "messages per AppendMessages call (consecutive messages of one feed)")
	flag.IntVar(&c.chunk, "chunk", 100_000, "messages made and signed before each timed append phase")
	flag.IntVar(&c.validate, "validate", 20_000, "messages for the validation comparison (0 to skip it)")
	flag.IntVar(&c.runs, "runs", 3, "runs of each validation measurement; the fastest is reported")
	flag.StringVar(&c.dir, "dir", "", "directory for the store (default: a new temporary directory)")
	flag.StringVar(&c.interop, "interop", "interop", "the interop folder with node_modules and ssb-validate-bench.js")
	flag.BoolVar(&c.js, "js", true, "also run ssb-validate in node")
	flag.BoolVar(&c.keep, "keep", false, "keep the store directory")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ssbstore:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.n < 1 || c.feeds < 1 || c.appenders < 1 || c.batch < 1 || c.chunk < c.feeds {
		return fmt.Errorf("bad flags: need n, feeds, appenders, batch >= 1 and chunk >= feeds")
	}
	fmt.Printf("go %s, %d CPUs (GOMAXPROCS %d)\n", runtime.Version(), runtime.NumCPU(), runtime.GOMAXPROCS(0))
	if err := appendBench(c); err != nil {
		return err
	}
	if c.validate > 0 {
		return validateBench(c)
	}
	return nil
}

// A feed is an author and the state of its feed.
type feed struct {
	kp    *keys.KeyPair
	state message.FeedState
	n     int
}

func newFeeds(n int) ([]*feed, error) {
	fs := make([]*feed, n)
	for i := range fs {
		kp, err := keys.Generate(nil)
		if err != nil {
			return nil, err
		}
		fs[i] = &feed{kp: kp}
	}
	return fs, nil
}

// text makes the content text; with the message's other fields it comes
// to about 550 bytes of compact JSON, near the median SSB message.
var text = strings.Repeat("A scuttlebutt is a cask of water on a ship's deck. ", 4)

// make signs the next k messages of each feed, on all cores.
func makeMessages(fs []*feed, k int) ([][]*message.Message, error) {
	out := make([][]*message.Message, len(fs))
	var wg sync.WaitGroup
	errs := make(chan error, runtime.GOMAXPROCS(0))
	next := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range next {
				f := fs[i]
				ms := make([]*message.Message, k)
				for j := range ms {
					m, err := message.Create(f.kp, nil, &f.state, float64(1_700_000_000_000+f.n), map[string]any{
						"type": "post", "text": fmt.Sprintf("%s (%d)", text, f.n), "mentions": []any{},
					})
					if err != nil {
						errs <- err
						return
					}
					f.state, f.n, ms[j] = m.State(), f.n+1, m
				}
				out[i] = ms
			}
		})
	}
	for i := range fs {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	return out, <-errs
}

// appendAll appends msgs with c.appenders goroutines and returns the time.
func appendAll(ctx context.Context, s *store.Store, c config, msgs [][]*message.Message) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, c.appenders)
	for a := range c.appenders {
		wg.Go(func() {
			per := len(msgs[0])
			for from := 0; from < per; from += c.batch {
				for f := a; f < len(msgs); f += c.appenders {
					if err := s.AppendMessages(ctx, msgs[f][from:min(from+c.batch, len(msgs[f]))]...); err != nil {
						errs <- err
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

type memory struct {
	heap, rss, anon, file uint64
}

func measure() memory {
	runtime.GC()         // pooled buffers survive one collection
	debug.FreeOSMemory() // collects, and returns freed pages to the OS: anon shows what is live
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memory{heap: ms.HeapAlloc}
	if status, err := procmem.Status(); err == nil {
		m.rss, m.anon, m.file = status["VmRSS"], status["RssAnon"], status["RssFile"]
	}
	return m
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

func appendBench(c config) error {
	dir := c.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "ssbstore-")
		if err != nil {
			return err
		}
		dir = d
	}
	if !c.keep {
		defer os.RemoveAll(dir)
	}
	fs, err := newFeeds(c.feeds)
	if err != nil {
		return err
	}
	s, err := store.Open(dir, store.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	fmt.Printf("\n(a) durable append: %d messages of %d feeds, %d appenders, batches of %d, store in %s\n",
		c.n, c.feeds, c.appenders, c.batch, dir)
	base := measure()
	fmt.Printf("%10s %10s %12s %10s %10s %10s %10s %12s\n", "stored", "msgs/s", "msgs/commit", "heap MiB", "rss MiB", "anon MiB", "file MiB", "file size MiB")
	row := func(rate float64, m memory) {
		st := s.Stats()
		fmt.Printf("%10d %10.0f %12.0f %10.1f %10.1f %10.1f %10.1f %12.1f\n", st.Messages, rate,
			float64(st.Appended)/float64(max(st.Commits, 1)), mib(m.heap), mib(m.rss), mib(m.anon), mib(m.file), float64(st.FileBytes)/(1<<20))
	}
	row(0, base)
	var total time.Duration
	var bytes int
	for done := 0; done < c.n; {
		per := min(c.chunk, c.n-done) / c.feeds
		if per == 0 {
			break
		}
		msgs, err := makeMessages(fs, per)
		if err != nil {
			return err
		}
		for _, ms := range msgs {
			for _, m := range ms {
				bytes += len(m.Raw)
			}
		}
		d, err := appendAll(ctx, s, c, msgs)
		if err != nil {
			return err
		}
		total += d
		done += per * c.feeds
		msgs = nil
		row(float64(per*c.feeds)/d.Seconds(), measure())
	}
	st := s.Stats()
	end := measure()
	fmt.Printf("appended %d messages (%.0f bytes each on average) in %v of append time: %.0f messages/s durable, %.0f messages per commit (fsync)\n",
		st.Appended, float64(bytes)/float64(st.Appended), total.Round(time.Millisecond), float64(st.Appended)/total.Seconds(), float64(st.Appended)/float64(st.Commits))
	fmt.Printf("store file %.1f MiB (%.0f bytes per message); Go heap %.1f -> %.1f MiB; RSS %.1f -> %.1f MiB (anon %.1f -> %.1f, file-backed %.1f -> %.1f)\n",
		float64(st.FileBytes)/(1<<20), float64(st.FileBytes)/float64(st.Messages), mib(base.heap), mib(end.heap),
		mib(base.rss), mib(end.rss), mib(base.anon), mib(end.anon), mib(base.file), mib(end.file))
	checkStart := time.Now()
	if err := s.Check(ctx); err != nil {
		return err
	}
	fmt.Printf("Check: the store is consistent (%v)\n", time.Since(checkStart).Round(time.Millisecond))
	return nil
}

func validateBench(c config) error {
	const feeds = 20
	fs, err := newFeeds(feeds)
	if err != nil {
		return err
	}
	per := max(c.validate/feeds, 1)
	msgs, err := makeMessages(fs, per)
	if err != nil {
		return err
	}
	// Interleave the feeds, as replication from several peers does.
	var raws [][]byte
	for j := range per {
		for f := range msgs {
			raws = append(raws, msgs[f][j].Raw)
		}
	}
	fmt.Printf("\n(b) validation of %d messages of %d feeds (JSON in, chain + signature + id)\n", len(raws), feeds)
	one := best(c.runs, func() (time.Duration, error) { return validateGo(raws, 1) })
	all := best(c.runs, func() (time.Duration, error) { return validateGo(raws, runtime.GOMAXPROCS(0)) })
	if one.err != nil || all.err != nil {
		return fmt.Errorf("go validation: %v %v", one.err, all.err)
	}
	goOne := float64(len(raws)) / one.d.Seconds()
	goAll := float64(len(raws)) / all.d.Seconds()
	fmt.Printf("go message.Validate, 1 goroutine:  %8.0f messages/s\n", goOne)
	fmt.Printf("go message.Validate, %d goroutines: %8.0f messages/s (feeds split among them)\n", runtime.GOMAXPROCS(0), goAll)
	if !c.js {
		return nil
	}
	js, err := validateJS(c, raws)
	if err != nil {
		return err
	}
	fmt.Printf("node %s ssb-validate@4.1.4 append (one thread): %8.0f messages/s\n", nodeVersion(), js)
	fmt.Printf("ratio go/js: %.2f on one core, %.2f with all cores\n", goOne/js, goAll/js)
	return nil
}

type timing struct {
	d   time.Duration
	err error
}

func best(runs int, f func() (time.Duration, error)) timing {
	b := timing{d: 1<<63 - 1}
	for range runs {
		d, err := f()
		if err != nil {
			return timing{err: err}
		}
		b.d = min(b.d, d)
	}
	return b
}

// validateGo validates raws, whose feeds are chained in order, with
// workers goroutines that each take a share of the feeds.
func validateGo(raws [][]byte, workers int) (time.Duration, error) {
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			states := map[string]*message.FeedState{}
			for i, raw := range raws {
				// The bench feeds interleave in a fixed order: feed i%20.
				if (i%20)%workers != w {
					continue
				}
				key := fmt.Sprint(i % 20)
				st := states[key]
				if st == nil {
					st = &message.FeedState{}
					states[key] = st
				}
				m, err := message.Validate(st, raw, nil)
				if err != nil {
					errs <- err
					return
				}
				*st = m.State()
			}
		})
	}
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

func validateJS(c config, raws [][]byte) (float64, error) {
	f, err := os.CreateTemp("", "ssbstore-validate-*.jsonl")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	w := bufio.NewWriter(f)
	for _, raw := range raws {
		w.Write(raw)
		w.WriteByte('\n')
	}
	if err := w.Flush(); err != nil {
		return 0, err
	}
	f.Close()
	script, err := filepath.Abs(filepath.Join(c.interop, "ssb-validate-bench.js"))
	if err != nil {
		return 0, err
	}
	cmd := exec.Command("node", script, f.Name(), fmt.Sprint(c.runs))
	cmd.Dir = c.interop
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return 0, fmt.Errorf("node: %v: %s", err, stderr.Bytes())
	}
	var res struct {
		N          int     `json:"n"`
		MsgsPerSec float64 `json:"msgsPerSec"`
	}
	if err := json.Unmarshal(out, &res); err != nil || res.N != len(raws) {
		return 0, fmt.Errorf("node printed %q: %v", out, err)
	}
	return res.MsgsPerSec, nil
}

func nodeVersion() string {
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
