// Command sbsim measures scuttlebutt replication at scale: N replicas of a
// Model in one process, linked by an in-memory network of random topology
// whose links have a bandwidth, a latency and a per-write overhead, take a
// sustained rate of changes, and the program reports:
//
//   - staleness: the time from a change (Set) until every replica holds
//     that value or a newer one, as median, 99th percentile and maximum;
//   - the changes not everywhere when the run ended (after updates stop,
//     the network gets a drain period to catch up);
//   - bytes and writes on the wire per change, all links together.
//
// Each rate is run in three modes on the same topology:
//
//	js   what npm scuttlebutt does: every update echoed back to the peer
//	     it came from, an unbounded queue per stream, one write per line
//	go   this package's defaults: no echo, a bounded queue per stream
//	     (WithQueueLimit) that falls back to sending what the peer lacks
//	     by its clock, output batched into one write per read
//	mtu  as go, with WithMTU: a backlog is sent in rounds of at most MTU
//	     bytes chosen by scuttle-depth, so a key changed many times
//	     while a link was busy costs one update
//
// Rates are changes per second over the whole network. The capacity is
// set by the links (-bandwidth, -overhead, -window): with the defaults a
// change costs about 60 to 160 bytes per link, so the network carries
// roughly 100 to 250 changes a second unbatched, and more when batching
// and coalescing cut the bytes per change. The default rates are below
// (50), around (200) and far above (1000) that.
//
// A link buffers -window bytes before its writer blocks (a socket's send
// buffer): data handed to it can no longer be coalesced, so under load
// every hop adds the buffer's drain time whatever the protocol does. The
// default, 4 KiB, is a quarter of a second at the default bandwidth.
//
//	go run ./bench/sbsim               # full run, about 10 minutes
//	go run ./bench/sbsim -small        # CI: 30 replicas, 3 s per rate, under a minute
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

type config struct {
	n        int
	degree   float64
	keys     int
	rates    []float64
	duration time.Duration
	drain    time.Duration
	mtu      int
	queue    int
	modes    []string
	seed     uint64
	net      netConfig
}

type result struct {
	Mode           string  `json:"mode"`
	Rate           float64 `json:"rate"`
	Changes        int     `json:"changes"`
	P50ms          float64 `json:"p50ms"`
	P99ms          float64 `json:"p99ms"`
	MaxMs          float64 `json:"maxMs"`
	NotEverywhere  int     `json:"notEverywhere"`
	BytesPerChange float64 `json:"bytesPerChange"`
	WritesPerChg   float64 `json:"writesPerChange"`
	DrainMs        float64 `json:"drainMs"`
	LateMs         float64 `json:"lateMs"` // how much longer than the duration making the changes took
}

func main() {
	var cfg config
	small := flag.Bool("small", false, "quick run for CI: 30 replicas, 3 s per rate")
	rates := flag.String("rates", "", "changes per second over the whole network, comma-separated (default 50,200,1000; -small: 60,900)")
	modes := flag.String("modes", "js,go,mtu", "modes to run")
	asJSON := flag.Bool("json", false, "print results as JSON lines")
	flag.IntVar(&cfg.n, "n", 100, "replicas")
	flag.Float64Var(&cfg.degree, "degree", 4, "average links per replica (random connected topology)")
	flag.IntVar(&cfg.keys, "keys", 5, "keys each replica writes")
	flag.DurationVar(&cfg.duration, "duration", 20*time.Second, "how long changes are made at each rate")
	flag.DurationVar(&cfg.drain, "drain", 30*time.Second, "how long the network may take to catch up after changes stop")
	flag.IntVar(&cfg.mtu, "mtu", 4096, "MTU of the mtu mode, in bytes")
	flag.IntVar(&cfg.queue, "queue", scuttlebutt.DefaultQueueLimit, "live queue limit of a stream in the go and mtu modes (WithQueueLimit)")
	flag.Uint64Var(&cfg.seed, "seed", 1, "seed of the topology and the changes")
	bw := flag.Float64("bandwidth", 16000, "bytes per second of each link direction")
	flag.DurationVar(&cfg.net.latency, "latency", 10*time.Millisecond, "one-way latency of each link")
	flag.IntVar(&cfg.net.overhead, "overhead", 40, "bytes on the wire per write (TCP/IP headers)")
	flag.IntVar(&cfg.net.window, "window", 4096, "bytes a link buffers before the writer blocks (a socket's send buffer)")
	flag.Parse()
	cfg.net.bandwidth = *bw
	def := "50,200,1000"
	if *small {
		cfg.n, cfg.duration, cfg.drain, def = 30, 3*time.Second, 8*time.Second, "60,900"
	}
	if *rates == "" {
		*rates = def
	}
	for _, s := range strings.Split(*rates, ",") {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || r <= 0 {
			fmt.Fprintln(os.Stderr, "sbsim: bad rate", s)
			os.Exit(2)
		}
		cfg.rates = append(cfg.rates, r)
	}
	cfg.modes = strings.Split(*modes, ",")

	edges := topology(cfg.n, cfg.degree, cfg.seed)
	if !*asJSON {
		fmt.Printf("%d replicas, %d links (random, connected), %d keys each; links %.0f B/s, %v latency, %d B per write\n",
			cfg.n, len(edges), cfg.keys, cfg.net.bandwidth, cfg.net.latency, cfg.net.overhead)
		fmt.Printf("%-5s %7s %8s %9s %9s %9s %13s %12s %13s %9s\n",
			"mode", "rate/s", "changes", "p50 ms", "p99 ms", "max ms", "not everywh.", "bytes/chg", "writes/chg", "drain ms")
	}
	for _, rate := range cfg.rates {
		for _, mode := range cfg.modes {
			res, err := run(cfg, edges, mode, rate)
			if err != nil {
				fmt.Fprintln(os.Stderr, "sbsim:", err)
				os.Exit(1)
			}
			if res.LateMs > 0.1*float64(cfg.duration.Milliseconds()) {
				fmt.Fprintf(os.Stderr, "sbsim: %s at %.0f/s: the changes took %.0f ms longer than planned (the machine is busy); figures are unreliable\n", res.Mode, res.Rate, res.LateMs)
			}
			if *asJSON {
				json.NewEncoder(os.Stdout).Encode(res)
				continue
			}
			fmt.Printf("%-5s %7.0f %8d %9.0f %9.0f %9.0f %13d %12.0f %13.1f %9.0f\n",
				res.Mode, res.Rate, res.Changes, res.P50ms, res.P99ms, res.MaxMs, res.NotEverywhere,
				res.BytesPerChange, res.WritesPerChg, res.DrainMs)
		}
	}
}

// topology returns the links of a random connected graph: a random tree,
// then random extra links up to the average degree.
func topology(n int, degree float64, seed uint64) [][2]int {
	rng := rand.New(rand.NewPCG(seed, 1))
	has := map[[2]int]bool{}
	var edges [][2]int
	add := func(a, b int) {
		if a == b {
			return
		}
		e := [2]int{min(a, b), max(a, b)}
		if !has[e] {
			has[e] = true
			edges = append(edges, e)
		}
	}
	for i := 1; i < n; i++ {
		add(i, rng.IntN(i))
	}
	for want := int(degree * float64(n) / 2); len(edges) < want && len(edges) < n*(n-1)/2; {
		add(rng.IntN(n), rng.IntN(n))
	}
	return edges
}

func run(cfg config, edges [][2]int, mode string, rate float64) (result, error) {
	var opts []scuttlebutt.Option
	perLine := false
	switch mode {
	case "js":
		opts = append(opts, scuttlebutt.WithEcho(true), scuttlebutt.WithQueueLimit(1<<30))
		perLine = true
	case "go":
		opts = append(opts, scuttlebutt.WithQueueLimit(cfg.queue))
	case "mtu":
		opts = append(opts, scuttlebutt.WithQueueLimit(cfg.queue), scuttlebutt.WithMTU(cfg.mtu))
	default:
		return result{}, fmt.Errorf("unknown mode %q", mode)
	}
	tr := newTracker(cfg.n)
	models := make([]*model.Model, cfg.n)
	for i := range models {
		models[i] = model.New(fmt.Sprintf("R%03d", i), opts...)
		tr.watch(i, models[i])
	}
	// Every replica starts with its keys set, so that the run measures
	// changes, not the first copy.
	for i, m := range models {
		for k := range cfg.keys {
			if err := m.Set(key(i, k), 0); err != nil {
				return result{}, err
			}
		}
	}
	var bytes, writes atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, e := range edges {
		a, b := link(cfg.net, perLine, &bytes, &writes)
		wg.Go(func() { models[e[0]].ServeConn(ctx, a) })
		wg.Go(func() { models[e[1]].ServeConn(ctx, b) })
	}
	defer func() {
		cancel()
		wg.Wait()
	}()
	if !tr.waitAll(cfg.n*cfg.keys, 60*time.Second) {
		return result{}, fmt.Errorf("%s: the initial keys did not reach every replica", mode)
	}
	tr.reset()
	bytes.Store(0)
	writes.Store(0)

	// Changes at the rate, on random replicas, for the duration: rate x
	// duration changes on schedule (catching up if the process was late).
	rng := rand.New(rand.NewPCG(cfg.seed, 2))
	total := int(rate * cfg.duration.Seconds())
	start := time.Now()
	for c := range total {
		time.Sleep(time.Until(start.Add(time.Duration(float64(c) / rate * float64(time.Second)))))
		i, k := rng.IntN(cfg.n), rng.IntN(cfg.keys)
		t0 := time.Now()
		u, err := models[i].LocalUpdate(json.RawMessage(fmt.Sprintf(`[%q,%d]`, key(i, k), c+1)))
		if err != nil {
			return result{}, err
		}
		tr.changed(key(i, k), u.Timestamp, t0)
	}
	changes := total
	stop := time.Now()
	late := stop.Sub(start) - cfg.duration
	tr.waitAll(0, cfg.drain)
	drained := time.Since(stop)
	st := tr.staleness()
	return result{
		Mode: mode, Rate: rate, Changes: changes,
		P50ms: st.p50, P99ms: st.p99, MaxMs: st.max, NotEverywhere: st.missing,
		BytesPerChange: float64(bytes.Load()) / float64(changes),
		WritesPerChg:   float64(writes.Load()) / float64(changes),
		DrainMs:        float64(drained.Milliseconds()),
		LateMs:         float64(late.Milliseconds()),
	}, nil
}

func key(replica, k int) string { return fmt.Sprintf("r%d-k%d", replica, k) }

// tracker records, for every replica and key, when each version arrived.
type tracker struct {
	n int

	mu      sync.Mutex
	arrived map[string][][]arrival // key -> replica -> versions in order
	sets    []set
	applied int // initial keys applied, across replicas
	cond    sync.Cond
}

type arrival struct {
	ts float64
	at time.Time
}

type set struct {
	key string
	ts  float64
	t0  time.Time
}

func newTracker(n int) *tracker {
	t := &tracker{n: n, arrived: map[string][][]arrival{}}
	t.cond.L = &t.mu
	return t
}

func (t *tracker) watch(i int, m *model.Model) {
	m.OnUpdate(func(u scuttlebutt.Update) {
		var change []json.RawMessage
		var k string
		if json.Unmarshal(u.Change, &change) != nil || len(change) == 0 || json.Unmarshal(change[0], &k) != nil {
			return
		}
		now := time.Now()
		t.mu.Lock()
		defer t.mu.Unlock()
		per := t.arrived[k]
		if per == nil {
			per = make([][]arrival, t.n)
			t.arrived[k] = per
		}
		per[i] = append(per[i], arrival{u.Timestamp, now})
		t.applied++
		t.cond.Broadcast()
	})
}

func (t *tracker) changed(k string, ts float64, t0 time.Time) {
	t.mu.Lock()
	t.sets = append(t.sets, set{k, ts, t0})
	t.mu.Unlock()
}

func (t *tracker) reset() {
	t.mu.Lock()
	t.sets = nil
	t.mu.Unlock()
}

// waitAll waits until initial keys have been applied want times (when
// want > 0), or until every change is everywhere, or for the timeout.
func (t *tracker) waitAll(want int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		var done bool
		if want > 0 {
			done = t.applied >= want*t.n
		} else {
			done = t.missingLocked() == 0
		}
		t.mu.Unlock()
		if done {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// visible returns when replica r first held key k at version ts or newer.
func (t *tracker) visibleLocked(k string, r int, ts float64) (time.Time, bool) {
	vs := t.arrived[k][r]
	i, _ := slices.BinarySearchFunc(vs, ts, func(a arrival, ts float64) int {
		switch {
		case a.ts < ts:
			return -1
		case a.ts > ts:
			return 1
		}
		return 0
	})
	if i == len(vs) {
		return time.Time{}, false
	}
	return vs[i].at, true
}

func (t *tracker) missingLocked() int {
	n := 0
	for _, s := range t.sets {
		for r := range t.n {
			if _, ok := t.visibleLocked(s.key, r, s.ts); !ok {
				n++
				break
			}
		}
	}
	return n
}

type stats struct {
	p50, p99, max float64 // ms
	missing       int
}

func (t *tracker) staleness() stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	var ms []float64
	missing := 0
	for _, s := range t.sets {
		var last time.Time
		ok := true
		for r := range t.n {
			at, seen := t.visibleLocked(s.key, r, s.ts)
			if !seen {
				ok = false
				break
			}
			if at.After(last) {
				last = at
			}
		}
		if !ok {
			missing++
			continue
		}
		ms = append(ms, float64(last.Sub(s.t0).Microseconds())/1000)
	}
	slices.Sort(ms)
	q := func(p float64) float64 {
		if len(ms) == 0 {
			return 0
		}
		return ms[min(len(ms)-1, int(p*float64(len(ms))))]
	}
	st := stats{p50: q(0.5), p99: q(0.99), missing: missing}
	if len(ms) > 0 {
		st.max = ms[len(ms)-1]
	}
	return st
}
