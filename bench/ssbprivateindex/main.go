// Command ssbprivateindex measures this project's server on private
// messages against the JavaScript reference, in one run:
//
//   - index scan: -n messages from -authors feeds, all boxed (private-box,
//     300 bytes of JSON, 1 to 7 recipients among the authors), -share of
//     them with the server's feed at a random slot, are appended to the
//     store with the server stopped. The server (internal/sbotrun, the
//     default plugins) is then timed from its start until the private
//     plugin's Status, polled every millisecond, says all were tried; the
//     index must hold exactly the messages to us (the plugin's UnboxItem
//     over the log). Node opens the same contents with ssb-keys unbox
//     (interop/private-box.js bench, the faster of 2 passes). The bound is
//     one X25519 per message (crypto/ecdh, prepared private key, one-time
//     keys decoded beforehand), on one goroutine and on GOMAXPROCS. Each of
//     -runs rounds deletes the index and does all four, so that load from
//     other processes hits them alike; each keeps its fastest round.
//   - publish: -publish {"type":"post","text":…,"recps":[…]} to 7 feeds
//     (the server's own and 6 others) through the RPC, one after the other,
//     by the owner over loopback (ssb/client), on a fresh server of ours
//     and on JavaScript ssb-server 16, in alternating chunks of a tenth,
//     after 10 untimed ones each.
//
// "Per core" divides a rate by GOMAXPROCS; node's scan runs on one core.
//
//	go run ./bench/ssbprivateindex          # 100,000 messages, a few minutes
//	go run ./bench/ssbprivateindex -quick   # 10,000 messages, for CI
//
// It needs node and interop/node_modules.
package main

import (
	"bytes"
	"context"
	"crypto/ecdh"
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
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/private"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

type config struct {
	n, authors, publish, runs int
	share                     float64
	interop                   string
	caps                      [32]byte
}

func main() {
	var c config
	quick := flag.Bool("quick", false, "a short run for CI: -n 10000 -publish 100 -runs 1")
	flag.IntVar(&c.n, "n", 100_000, "messages in the store, all boxed")
	flag.Float64Var(&c.share, "share", 0.01, "fraction of the messages boxed to the server")
	flag.IntVar(&c.authors, "authors", 100, "feeds the messages come from (also the recipients)")
	flag.IntVar(&c.publish, "publish", 1000, "messages published to 7 recipients on each server")
	flag.IntVar(&c.runs, "runs", 3, "rounds of the scan measurements; the fastest is reported")
	flag.StringVar(&c.interop, "interop", "interop", "the interop folder with node_modules")
	flag.Parse()
	if *quick {
		c.n, c.publish, c.runs = 10_000, 100, 1
	}
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ssbprivateindex:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.n < 1 || c.runs < 1 || c.authors < 7 || c.publish < 1 || c.share < 0 || c.share > 1 {
		return errors.New("bad flags: need n, runs, publish ≥ 1, authors ≥ 7, 0 ≤ share ≤ 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rand.Read(c.caps[:])
	tmp, err := os.MkdirTemp("", "ssbprivateindex")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	node, _ := exec.Command("node", "--version").Output()
	procs := runtime.GOMAXPROCS(0)
	fmt.Printf("go %s, %s/%s, GOMAXPROCS %d, node %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, procs, strings.TrimSpace(string(node)))

	dir := filepath.Join(tmp, "scan")
	srv, err := sbotrun.Start(ctx, server.Config{Path: dir, Caps: base64.StdEncoding.EncodeToString(c.caps[:])})
	if err != nil {
		return err
	}
	us := srv.Owner
	srv.Stop()
	corp, err := fill(ctx, c, dir, us.ID)
	if err != nil {
		return err
	}
	file := filepath.Join(tmp, "contents.txt")
	if err := os.WriteFile(file, []byte(strings.Join(corp.contents, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	var goRate, js, bound1, boundP float64
	var start time.Duration
	for range c.runs {
		d, s, err := scan(ctx, c, dir, corp)
		if err != nil {
			return err
		}
		if r := float64(c.n) / d.Seconds(); r > goRate {
			goRate, start = r, s
		}
		b1, err1 := bound(corp.oneTime, 1)
		bP, err2 := bound(corp.oneTime, procs)
		j, err3 := scanJS(c, file, us, corp)
		if err := errors.Join(err1, err2, err3); err != nil {
			return err
		}
		bound1, boundP, js = max(bound1, b1), max(boundP, bP), max(js, j)
	}
	goCore := goRate / float64(procs)
	fmt.Printf("\nindex scan of %d boxed messages (%d to us), messages tried per second, fastest of %d rounds:\n", c.n, len(corp.ours), c.runs)
	fmt.Printf("  %-34s %10s %10s\n", "", "total", "per core")
	row := func(name string, total, core float64) { fmt.Printf("  %-34s %10.0f %10.0f\n", name, total, core) }
	row("go server, private index", goRate, goCore)
	row("js ssb-keys.unbox (one core)", js, js)
	row("bound 1 X25519, one goroutine", bound1, bound1)
	row(fmt.Sprintf("bound 1 X25519, %d goroutines", procs), boundP, boundP/float64(procs))
	fmt.Printf("  (go: %v of server start included)\n", start.Round(time.Millisecond))
	fmt.Printf("per core: go/js %.2f (goal ≥ 5), go/bound(one goroutine) %.2f (goal ≥ 0.8), go/bound(%d goroutines) %.2f\n",
		goCore/js, goCore/bound1, procs, goRate/boundP)
	return publishBench(ctx, c, tmp)
}

// corpus is what the store was filled with.
type corpus struct {
	contents []string              // each message's content, in log order
	oneTime  [][]byte              // each content's one-time public key
	ours     map[refs.Message]bool // the messages to us
}

// fill writes c.n boxed messages into the store of dir, in log order
// message i from author i mod c.authors.
func fill(ctx context.Context, c config, dir string, us refs.Feed) (*corpus, error) {
	t0 := time.Now()
	authors, pool := make([]*keys.KeyPair, c.authors), make([]refs.Feed, c.authors)
	for i := range authors {
		authors[i], _ = keys.Generate(nil) // crypto/rand does not fail
		pool[i] = authors[i].ID
	}
	corp := &corpus{contents: make([]string, c.n), oneTime: make([][]byte, c.n), ours: map[refs.Message]bool{}}
	msgs := make([]*message.Message, c.n)
	toUs := make([]bool, c.n)
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for a := w; a < c.authors; a += workers {
				rng := mrand.New(mrand.NewPCG(uint64(a), 1))
				var prev message.FeedState
				for i := a; i < c.n; i += c.authors {
					recps := make([]refs.Feed, 0, privatebox.MaxRecipients)
					for _, j := range rng.Perm(len(pool))[:1+rng.IntN(privatebox.MaxRecipients)] {
						recps = append(recps, pool[j])
					}
					if rng.Float64() < c.share {
						recps[rng.IntN(len(recps))], toUs[i] = us, true
					}
					ct, err := privatebox.Box(plaintext(i, recps), recps)
					if err != nil {
						errs[w] = err
						return
					}
					corp.contents[i] = base64.StdEncoding.EncodeToString(ct) + privatebox.Suffix
					corp.oneTime[i] = ct[24:56]
					m, err := message.Create(authors[a], nil, &prev, float64(1_700_000_000_000+i), message.StringValue(corp.contents[i]))
					if err != nil {
						errs[w] = err
						return
					}
					msgs[i], prev = m, m.State()
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for i, ok := range toUs {
		if ok {
			corp.ours[msgs[i].Key] = true
		}
	}
	t1 := time.Now()
	st, err := store.Open(filepath.Join(dir, "db"), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return nil, err
	}
	for lo := 0; lo < c.n; lo += 1000 {
		if err := st.AppendMessages(ctx, msgs[lo:min(lo+1000, c.n)]...); err != nil {
			st.Close()
			return nil, err
		}
	}
	if err := st.Close(); err != nil {
		return nil, err
	}
	fmt.Printf("made %d messages (%d to us) from %d authors in %v, appended in %v\n",
		c.n, len(corp.ours), c.authors, t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	return corp, nil
}

// plaintext is the i-th message's content before boxing: about 300 bytes.
func plaintext(i int, recps []refs.Feed) []byte {
	ids := make([]string, len(recps))
	for j, r := range recps {
		ids[j] = r.String()
	}
	b, _ := json.Marshal(map[string]any{"type": "post", "text": fmt.Sprintf("private message %d: %s", i, strings.Repeat("lorem ipsum ", 8)), "recps": ids})
	return b
}

// scan deletes the index, starts the server on dir, and times it from the
// start until every message was tried (and the start alone); it checks
// that the index found exactly ours.
func scan(ctx context.Context, c config, dir string, corp *corpus) (total, start time.Duration, err error) {
	if err := os.RemoveAll(filepath.Join(dir, "private")); err != nil {
		return 0, 0, err
	}
	runtime.GC()
	t0 := time.Now()
	srv, err := sbotrun.Start(ctx, server.Config{Path: dir, Caps: base64.StdEncoding.EncodeToString(c.caps[:])})
	if err != nil {
		return 0, 0, err
	}
	defer srv.Stop()
	start = time.Since(t0)
	var p *private.Plugin
	for _, pl := range srv.Plugins() {
		if x, ok := pl.(*private.Plugin); ok {
			p = x
		}
	}
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	var st map[string]any
	for {
		s, err := p.Status(ctx)
		if err != nil {
			return 0, 0, err
		}
		st = s["private"].(map[string]any)
		if st["scanned"].(uint64) >= uint64(c.n) {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	total = time.Since(t0)
	if st["tried"] != c.n || st["messages"] != len(corp.ours) {
		return 0, 0, fmt.Errorf("the index tried %v messages and found %v, want %d and %d", st["tried"], st["messages"], c.n, len(corp.ours))
	}
	return total, start, checkOurs(ctx, srv, p, corp)
}

// checkOurs reads the log and checks that the plugin opens exactly ours.
func checkOurs(ctx context.Context, srv *sbotrun.Running, p *private.Plugin, corp *corpus) error {
	it, err := srv.Store().Log(ctx, store.LogQuery{})
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		item, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if _, ok := p.UnboxItem(item); ok != corp.ours[item.Key] {
			return fmt.Errorf("message %s (log %d): opened %v, to us %v", item.Key, item.Seq, ok, !ok)
		}
	}
}

// bound times one X25519 per one-time key on g goroutines and returns
// the total rate.
func bound(oneTime [][]byte, g int) (float64, error) {
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return 0, err
	}
	errs := make([]error, g)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := range g {
		wg.Go(func() {
			for i := w; i < len(oneTime) && errs[w] == nil; i += g {
				var pub *ecdh.PublicKey
				if pub, errs[w] = ecdh.X25519().NewPublicKey(oneTime[i]); errs[w] == nil {
					_, errs[w] = priv.ECDH(pub)
				}
			}
		})
	}
	wg.Wait()
	return float64(len(oneTime)) / time.Since(t0).Seconds(), errors.Join(errs...)
}

// scanJS has node open every content of file with ssb-keys unbox, in two
// passes (the first warms it up), and returns the faster pass's rate.
func scanJS(c config, file string, us *keys.KeyPair, corp *corpus) (float64, error) {
	script, err := filepath.Abs(filepath.Join(c.interop, "private-box.js"))
	if err != nil {
		return 0, err
	}
	cmd := exec.Command("node", script, "bench", file, base64.StdEncoding.EncodeToString(us.Private), "2")
	cmd.Dir = c.interop
	out, err := cmd.Output()
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		return 0, fmt.Errorf("node private-box.js bench: %w: %s", err, ee.Stderr)
	} else if err != nil {
		return 0, fmt.Errorf("node private-box.js bench: %w", err)
	}
	var res struct {
		N, Found int
		PerSec   float64
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return 0, fmt.Errorf("node private-box.js bench: output %q: %w", out, err)
	}
	if res.N != c.n || res.Found != len(corp.ours) {
		return 0, fmt.Errorf("js opened %d of %d messages, want %d", res.Found, res.N, len(corp.ours))
	}
	return res.PerSec, nil
}

// publishBench publishes c.publish private messages on a fresh server of
// ours and on ssb-server, alternating chunks of a tenth between them (so
// that load from other processes hits both alike), after 10 untimed ones
// each, and prints the rates.
func publishBench(ctx context.Context, c config, tmp string) error {
	srv, err := sbotrun.Start(ctx, server.Config{Path: filepath.Join(tmp, "pub"), Caps: base64.StdEncoding.EncodeToString(c.caps[:])})
	if err != nil {
		return err
	}
	defer srv.Stop()
	gc, err := client.Dial(ctx, srv.Addr, c.caps, srv.Owner, srv.Owner.Public, nil)
	if err != nil {
		return err
	}
	defer gc.Close()
	js, err := ssbtest.StartJSServer(ctx, ssbtest.ExecStarter(ctx, c.interop), filepath.Join(tmp, "js"), c.caps)
	if err != nil {
		return err
	}
	defer js.Close()
	targets := []*target{{name: "go server (sbot)", e: gc.Endpoint, self: srv.Owner.ID}, {name: "js ssb-server 16", e: js.Client.Endpoint, self: js.Keys.ID}}
	for _, t := range targets {
		if err := t.publish(ctx, 10); err != nil {
			return err
		}
		t.took = 0
	}
	chunk := max(1, c.publish/10)
	for done := 0; done < c.publish; done += chunk {
		for _, t := range targets {
			if err := t.publish(ctx, min(chunk, c.publish-done)); err != nil {
				return err
			}
		}
	}
	fmt.Printf("\npublish to 7 recipients (self and 6 others) through the RPC, one after the other, messages per second:\n")
	for _, t := range targets {
		fmt.Printf("  %-34s %10.0f\n", t.name, float64(c.publish)/t.took.Seconds())
	}
	fmt.Printf("go/js %.2f\n", targets[1].took.Seconds()/targets[0].took.Seconds())
	return nil
}

// A target is a server publishing.
type target struct {
	name  string
	e     *muxrpc.Endpoint
	self  refs.Feed
	recps []string
	took  time.Duration
}

// publish publishes n private messages to self and 6 other feeds, adds
// the time to t.took, and checks that each message came back encrypted.
func (t *target) publish(ctx context.Context, n int) error {
	if t.recps == nil {
		t.recps = []string{t.self.String()}
		for range 6 {
			kp, _ := keys.Generate(nil) // crypto/rand does not fail
			t.recps = append(t.recps, kp.ID.String())
		}
	}
	t0 := time.Now()
	for i := range n {
		var out struct{ Value map[string]json.RawMessage }
		content := map[string]any{"type": "post", "text": fmt.Sprintf("private message %d: %s", i, strings.Repeat("lorem ipsum ", 8)), "recps": t.recps}
		if err := t.e.AsyncJSON(ctx, &out, muxrpc.Method{"publish"}, content); err != nil {
			return fmt.Errorf("%s: %w", t.name, err)
		}
		if !bytes.HasSuffix(out.Value["content"], []byte(privatebox.Suffix+`"`)) {
			return fmt.Errorf("%s: publish returned content %.80s, not boxed", t.name, out.Value["content"])
		}
	}
	t.took += time.Since(t0)
	return nil
}
