// Command ssbapi measures the queries apps make of an SSB server, on ours
// and on JavaScript ssb-server 16 holding the same messages, in one run:
//
//   - the corpus: -n signed messages from -authors feeds, made in rounds (one
//     message of each author per round, in parallel), so a message can link
//     to any message of an earlier round: an about, 20 follows (an
//     occasional block), then posts (new threads, replies with root and
//     branch, mentions of feeds, channels) and votes on recent threads.
//
//   - append: the whole corpus appended to a bare store (ssb/store, 8
//     appenders, batches of 100), and to the store of a server running the
//     default plugins, timed until every plugin's index has caught up (the
//     links, backlinks and query methods and a private read each wait for
//     their index to reach what was acknowledged), and until the appends
//     alone were acknowledged (the views follow the log; appends never wait
//     for them). Goal: at least 0.7.
//
//   - queries: the corpus is loaded into ssb-server (createWriteStream, 8
//     feeds at once); each query kind is warmed up on both (ssb-server
//     builds its views on first use), then -queries targets are asked of
//     each server in turn over one owner connection each (ssb/client), and
//     the median latencies compared. Both must give the same number of
//     results for every target. The kinds: a thread's links
//     (`links({dest: root, values: true})`), a user's posts
//     (`query.read` with a $filter on author and content.type), a follow
//     graph at 2 hops (`friends.hops({start, max: 2})`), a feed's contacts
//     (`links({source, rel: "contact"})`); and a thread's backlinks
//     (`backlinks.read`), which ssb-server 16 does not ship, against JS
//     `links` of the same thread. Goal: at least 10 times faster.
//
//     go run ./bench/ssbapi                # 1,000,000 messages; JS takes ~15 min to load them
//     go run ./bench/ssbapi -quick         # 20,000 messages, for CI
//
// It needs node and interop/node_modules.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

type config struct {
	n, authors, queries int
	interop             string
	caps                [32]byte
}

func main() {
	var c config
	quick := flag.Bool("quick", false, "a short run for CI: -n 20000 -authors 200 -queries 10")
	flag.IntVar(&c.n, "n", 1_000_000, "messages in the store")
	flag.IntVar(&c.authors, "authors", 1000, "feeds the messages come from")
	flag.IntVar(&c.queries, "queries", 30, "targets asked per query kind and server")
	flag.StringVar(&c.interop, "interop", "interop", "the interop folder with node_modules")
	flag.Parse()
	if *quick {
		c.n, c.authors, c.queries = 20_000, 200, 10
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ssbapi:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.authors < 30 || c.n < c.authors*30 || c.queries < 1 {
		return errors.New("bad flags: need authors ≥ 30, n ≥ 30 × authors, queries ≥ 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()
	rand.Read(c.caps[:])
	tmp, err := os.MkdirTemp("", "ssbapi")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	node, _ := exec.Command("node", "--version").Output()
	fmt.Printf("go %s, %s/%s, GOMAXPROCS %d, node %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), strings.TrimSpace(string(node)))

	t0 := time.Now()
	corp, err := makeCorpus(c)
	if err != nil {
		return err
	}
	fmt.Printf("made %d messages from %d authors (%d threads) in %v\n", c.n, c.authors, len(corp.roots), time.Since(t0).Round(time.Millisecond))

	bare, err := appendBare(ctx, corp, filepath.Join(tmp, "bare"))
	if err != nil {
		return err
	}
	srv, acked, indexed, err := appendIndexed(ctx, c, corp, filepath.Join(tmp, "ours"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	rb, ra, ri := float64(c.n)/bare.Seconds(), float64(c.n)/acked.Seconds(), float64(c.n)/indexed.Seconds()
	fmt.Printf("\nappend of %d messages, messages/s:\n", c.n)
	fmt.Printf("  %-52s %10.0f (%v)\n", "bare store", rb, bare.Round(time.Millisecond))
	fmt.Printf("  %-52s %10.0f (%v)\n", "server, default plugins: appends acknowledged", ra, acked.Round(time.Millisecond))
	fmt.Printf("  %-52s %10.0f (%v)\n", "server, default plugins: every index caught up", ri, indexed.Round(time.Millisecond))
	fmt.Printf("  with indexes / without: %.2f acknowledged, %.2f caught up (goal ≥ 0.7)\n", ra/rb, ri/rb)

	ours, err := client.Dial(ctx, srv.Addr, c.caps, srv.Owner, srv.Owner.Public, nil)
	if err != nil {
		return err
	}
	defer ours.Close()
	t1 := time.Now()
	js, err := ssbtest.StartJSServer(ctx, ssbtest.ExecStarter(ctx, c.interop), filepath.Join(tmp, "js"), c.caps)
	if err != nil {
		return err
	}
	defer js.Close()
	if err := loadJS(ctx, js.Client, corp); err != nil {
		return err
	}
	fmt.Printf("\nloaded ssb-server 16 in %v (%.0f messages/s)\n", time.Since(t1).Round(time.Second), float64(c.n)/time.Since(t1).Seconds())
	return queries(ctx, c, corp, ours, js.Client)
}

// corpus is the messages of the run.
type corpus struct {
	authors []*keys.KeyPair
	feeds   [][]*message.Message // per author, in order
	log     []*message.Message   // in the order made: round by round
	roots   []refs.Message       // thread roots
	replies map[refs.Message]int // links to each root (replies and votes)
}

// makeCorpus makes the messages, round by round; within a round the authors
// are shared among the cores. Each author has its own random source, so
// the corpus is the same every run.
func makeCorpus(c config) (*corpus, error) {
	per := c.n / c.authors
	corp := &corpus{authors: make([]*keys.KeyPair, c.authors), feeds: make([][]*message.Message, c.authors), replies: map[refs.Message]int{}}
	rngs := make([]*mrand.Rand, c.authors)
	prev := make([]message.FeedState, c.authors)
	for a := range corp.authors {
		seed := make([]byte, 32)
		seed[0], seed[1] = byte(a), byte(a>>8)
		kp, err := keys.FromSeed(seed)
		if err != nil {
			return nil, err
		}
		corp.authors[a] = kp
		rngs[a] = mrand.New(mrand.NewPCG(uint64(a), 2))
	}
	channels := make([]string, 20)
	for i := range channels {
		channels[i] = fmt.Sprintf("channel%d", i)
	}
	workers := runtime.GOMAXPROCS(0)
	made := make([]*message.Message, c.authors)
	isRoot := make([]bool, c.authors)
	for round := range per {
		recent := corp.roots[max(0, len(corp.roots)-2000):] // threads still talked about
		errs := make([]error, workers)
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for a := w; a < c.authors; a += workers {
					rng := rngs[a]
					var content map[string]any
					isRoot[a] = false
					switch {
					case round == 0:
						content = map[string]any{"type": "about", "about": corp.authors[a].ID.String(), "name": fmt.Sprintf("user %d", a)}
					case round <= 20:
						other := corp.authors[rng.IntN(c.authors)].ID.String()
						if rng.IntN(50) == 0 {
							content = map[string]any{"type": "contact", "contact": other, "blocking": true}
						} else {
							content = map[string]any{"type": "contact", "contact": other, "following": true}
						}
					default:
						r := rng.Float64()
						text := fmt.Sprintf("message %d of user %d: %s", round, a, strings.Repeat("lorem ipsum ", 1+rng.IntN(12)))
						switch {
						case len(recent) > 0 && r < 0.3:
							root := recent[rng.IntN(len(recent))]
							content = map[string]any{"type": "vote", "vote": map[string]any{"link": root.String(), "value": 1, "expression": "Like"}}
						case len(recent) > 0 && r < 0.6:
							root := recent[rng.IntN(len(recent))]
							content = map[string]any{"type": "post", "text": text, "root": root.String(), "branch": root.String()}
						default:
							content = map[string]any{"type": "post", "text": text}
							isRoot[a] = true
						}
						if rng.IntN(5) == 0 {
							content["channel"] = channels[rng.IntN(len(channels))]
						}
						if rng.IntN(10) == 0 {
							who := corp.authors[rng.IntN(c.authors)].ID.String()
							content["mentions"] = []any{map[string]any{"link": who, "name": "someone"}}
						}
					}
					ts := float64(1_700_000_000_000 + round*c.authors + a)
					m, err := message.Create(corp.authors[a], nil, &prev[a], ts, content)
					if err != nil {
						errs[w] = err
						return
					}
					made[a], prev[a] = m, m.State()
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		for a, m := range made {
			corp.feeds[a] = append(corp.feeds[a], m)
			corp.log = append(corp.log, m)
			if isRoot[a] {
				corp.roots = append(corp.roots, m.Key)
			}
		}
	}
	for _, m := range corp.log {
		var v struct {
			Root string `json:"root"`
			Vote struct {
				Link string `json:"link"`
			} `json:"vote"`
		}
		if err := json.Unmarshal(m.Content, &v); err != nil {
			return nil, err
		}
		for _, l := range []string{v.Root, v.Vote.Link} {
			if id, err := refs.ParseMessage(l); err == nil {
				corp.replies[id]++
			}
		}
	}
	return corp, nil
}

// appendLog appends the corpus with 8 appenders, each the feeds of an eighth
// of the authors, in batches of 100.
func appendLog(ctx context.Context, st *store.Store, corp *corpus) error {
	const appenders = 8
	errs := make([]error, appenders)
	var wg sync.WaitGroup
	for k := range appenders {
		wg.Go(func() {
			var mine []*message.Message
			for _, m := range corp.log {
				if int(m.Author.String()[1])%appenders == k {
					mine = append(mine, m)
				}
			}
			for lo := 0; lo < len(mine); lo += 100 {
				if err := st.AppendMessages(ctx, mine[lo:min(lo+100, len(mine))]...); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// appendBare times the append to a store alone.
func appendBare(ctx context.Context, corp *corpus, dir string) (time.Duration, error) {
	st, err := store.Open(dir, store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return 0, err
	}
	defer st.Close()
	runtime.GC()
	t0 := time.Now()
	if err := appendLog(ctx, st, corp); err != nil {
		return 0, err
	}
	return time.Since(t0), nil
}

// appendIndexed times the append to a server's store until every index has
// what was appended: a query of each indexed method waits for that.
func appendIndexed(ctx context.Context, c config, corp *corpus, dir string) (_ *sbotrun.Running, acked, caughtUp time.Duration, _ error) {
	srv, err := sbotrun.Start(ctx, server.Config{Path: dir, Caps: base64.StdEncoding.EncodeToString(c.caps[:])})
	if err != nil {
		return nil, 0, 0, err
	}
	cl, err := client.Dial(ctx, srv.Addr, c.caps, srv.Owner, srv.Owner.Public, nil)
	if err != nil {
		srv.Stop()
		return nil, 0, 0, err
	}
	defer cl.Close()
	runtime.GC()
	t0 := time.Now()
	if err := appendLog(ctx, srv.Store(), corp); err != nil {
		srv.Stop()
		return nil, 0, 0, err
	}
	acked = time.Since(t0)
	last := corp.roots[len(corp.roots)-1].String()
	for _, q := range []struct {
		method string
		arg    any
	}{
		{"links", map[string]any{"dest": last, "limit": 1}},
		{"backlinks.read", map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"dest": last}}}, "limit": 1}},
		{"query.read", map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"value": map[string]any{"content": map[string]any{"type": "about"}}}}}, "limit": 1, "reverse": true}},
		{"createLogStream", map[string]any{"private": true, "limit": 1, "reverse": true}},
	} {
		if _, err := source(ctx, cl, q.method, q.arg); err != nil {
			srv.Stop()
			return nil, 0, 0, err
		}
	}
	var hops map[string]any
	if err := cl.AsyncJSON(ctx, &hops, muxrpc.Method{"friends", "hops"}, map[string]any{"start": corp.authors[0].ID.String(), "max": 2}); err != nil {
		srv.Stop()
		return nil, 0, 0, fmt.Errorf("friends.hops: %w", err)
	}
	return srv, acked, time.Since(t0), nil
}

// loadJS writes every feed to ssb-server, 8 at once.
func loadJS(ctx context.Context, c *client.Client, corp *corpus) error {
	next := make(chan int)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for k := range errs {
		wg.Go(func() {
			for a := range next {
				raws := make([][]byte, len(corp.feeds[a]))
				for i, m := range corp.feeds[a] {
					raws[i] = m.Raw
				}
				if err := ssbtest.Load(ctx, c, corp.authors[a].ID, raws); err != nil && errs[k] == nil {
					errs[k] = err
				}
			}
		})
	}
	for a := range corp.authors {
		next <- a
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}

// source collects a source call's items.
func source(ctx context.Context, c *client.Client, method string, arg any) ([]json.RawMessage, error) {
	s, err := c.Open(muxrpc.Method(strings.Split(method, ".")), muxrpc.Source, arg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", method, err)
	}
	var out []json.RawMessage
	for {
		var item json.RawMessage
		if err := s.RecvJSON(ctx, &item); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		out = append(out, item)
	}
}

// kind is one kind of query: ask gives the number of results.
type kind struct {
	name       string
	ours, js   func(ctx context.Context, c *client.Client, target int) (int, error)
	targets    func(i int) int
	jsMethodOf string // when JS answers with another method
}

func queries(ctx context.Context, c config, corp *corpus, ours, js *client.Client) error {
	// Threads with the most replies first, so the targets are threads people read.
	threads := slices.Clone(corp.roots)
	slices.SortStableFunc(threads, func(a, b refs.Message) int { return corp.replies[b] - corp.replies[a] })
	stride := max(1, len(threads)/(4*c.queries))
	thread := func(i int) int { return i * stride }
	user := func(i int) int { return (i * 7919) % len(corp.authors) }
	links := func(ctx context.Context, cl *client.Client, t int) (int, error) {
		items, err := source(ctx, cl, "links", map[string]any{"dest": threads[t].String(), "values": true})
		return len(items), err
	}
	backlinks := func(ctx context.Context, cl *client.Client, t int) (int, error) {
		items, err := source(ctx, cl, "backlinks.read", map[string]any{"query": []any{map[string]any{"$filter": map[string]any{"dest": threads[t].String()}}}})
		return len(items), err
	}
	posts := func(ctx context.Context, cl *client.Client, t int) (int, error) {
		q := []any{map[string]any{"$filter": map[string]any{"value": map[string]any{"author": corp.authors[t].ID.String(), "content": map[string]any{"type": "post"}}}}}
		items, err := source(ctx, cl, "query.read", map[string]any{"query": q})
		return len(items), err
	}
	hops := func(ctx context.Context, cl *client.Client, t int) (int, error) {
		var h map[string]any
		err := cl.AsyncJSON(ctx, &h, muxrpc.Method{"friends", "hops"}, map[string]any{"start": corp.authors[t].ID.String(), "max": 2})
		return len(h), err
	}
	contacts := func(ctx context.Context, cl *client.Client, t int) (int, error) {
		items, err := source(ctx, cl, "links", map[string]any{"source": corp.authors[t].ID.String(), "rel": "contact"})
		return len(items), err
	}
	// The messages that link to a thread (a reply links twice: root and
	// branch), as ssb-server 16 can tell them without ssb-backlinks.
	linkingMessages := func(ctx context.Context, cl *client.Client, t int) (int, error) {
		items, err := source(ctx, cl, "links", map[string]any{"dest": threads[t].String()})
		keys := map[string]bool{}
		for _, it := range items {
			var l struct{ Key string }
			json.Unmarshal(it, &l)
			keys[l.Key] = true
		}
		return len(keys), err
	}
	kinds := []kind{
		{name: "a thread's links (links dest, values)", ours: links, js: links, targets: thread},
		{name: "a thread's backlinks (backlinks.read)", ours: backlinks, js: linkingMessages, targets: thread, jsMethodOf: "links"},
		{name: "a user's posts (query.read)", ours: posts, js: posts, targets: user},
		{name: "follow graph, 2 hops (friends.hops)", ours: hops, js: hops, targets: user},
		{name: "a feed's contacts (links source, rel)", ours: contacts, js: contacts, targets: user},
	}
	fmt.Printf("\nquery latency, median of %d targets (ssb/client, owner connection):\n", c.queries)
	fmt.Printf("  %-40s %12s %12s %8s %10s\n", "", "ours", "ssb-server", "js/ours", "results")
	for _, k := range kinds {
		// Warm up: ssb-server builds its views on first use.
		tw := time.Now()
		if _, err := k.js(ctx, js, k.targets(0)); err != nil {
			return fmt.Errorf("%s, ssb-server: %w", k.name, err)
		}
		warm := time.Since(tw)
		if _, err := k.ours(ctx, ours, k.targets(0)); err != nil {
			return fmt.Errorf("%s, ours: %w", k.name, err)
		}
		var dOurs, dJS []time.Duration
		total := 0
		for i := range c.queries {
			t := k.targets(i)
			t0 := time.Now()
			nj, err := k.js(ctx, js, t)
			if err != nil {
				return fmt.Errorf("%s, ssb-server: %w", k.name, err)
			}
			dJS = append(dJS, time.Since(t0))
			t0 = time.Now()
			no, err := k.ours(ctx, ours, t)
			if err != nil {
				return fmt.Errorf("%s, ours: %w", k.name, err)
			}
			dOurs = append(dOurs, time.Since(t0))
			if no != nj {
				return fmt.Errorf("%s, target %d: ours gave %d results, ssb-server %d", k.name, t, no, nj)
			}
			total += no
		}
		mo, mj := median(dOurs), median(dJS)
		name := k.name
		if k.jsMethodOf != "" {
			name += " *"
		}
		fmt.Printf("  %-40s %12v %12v %8.1f %10.1f\n", name, mo.Round(time.Microsecond), mj.Round(time.Microsecond), float64(mj)/float64(mo), float64(total)/float64(c.queries))
		fmt.Printf("  %-40s (ssb-server's first query, building its view: %v)\n", "", warm.Round(time.Millisecond))
	}
	fmt.Println("  * ssb-server 16 has no backlinks: compared with its links of the same thread (the linking messages)")
	fmt.Println("goal: js/ours ≥ 10")
	return nil
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
