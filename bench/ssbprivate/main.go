// Command ssbprivate measures private-box decryption as an index scan does
// it, and encryption for 7 recipients, against the JavaScript reference, in
// one run:
//
//   - scan: -n boxed contents ("base64.box" strings, 300 bytes of JSON
//     each, 1 to 7 recipients chosen at random), -share of them to us at a
//     random slot, are opened one after the other on one goroutine, by
//     privatebox (Key.Unbox, the string form) and by node with ssb-keys
//     unbox (interop/private-box.js bench), over the same file. The bound
//     is one X25519 scalar multiplication per message (crypto/ecdh with a
//     prepared private key, on each message's one-time key, decoded
//     beforehand), timed on each chunk of 1,000 messages right after the
//     Go scan of that chunk, so that load from other processes hits both
//     alike; each chunk's time is the fastest of -runs rounds. JS reports
//     its fastest whole pass of -runs. Both sides must find exactly the
//     messages to us.
//   - box: -box contents for 7 recipients, by privatebox.BoxString and by
//     ssb-keys box.
//
// It prints messages per second and the ratios Go/JS and Go/bound.
//
//	go run ./bench/ssbprivate                 # the default run, about a minute
//	go run ./bench/ssbprivate -n 10000 -js=false
//
// It needs node and interop/node_modules unless -js=false.
package main

import (
	"bytes"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
)

type config struct {
	n, box, runs, pool int
	share              float64
	interop            string
	js                 bool
}

func main() {
	var c config
	flag.IntVar(&c.n, "n", 100_000, "boxed messages in the scan")
	flag.Float64Var(&c.share, "share", 0.01, "fraction of the messages boxed to us")
	flag.IntVar(&c.box, "box", 2000, "messages boxed for 7 recipients in the box comparison (0 to skip it)")
	flag.IntVar(&c.runs, "runs", 3, "rounds of each measurement; the fastest is reported")
	flag.IntVar(&c.pool, "pool", 100, "other identities the messages are boxed to")
	flag.StringVar(&c.interop, "interop", "interop", "the interop folder with node_modules and private-box.js")
	flag.BoolVar(&c.js, "js", true, "also run ssb-keys in node")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "ssbprivate:", err)
		os.Exit(1)
	}
}

// corpus is the scan's input: the content strings, how many are to us,
// and each message's one-time key (for the bound).
type corpus struct {
	contents []string
	toUs     int
	oneTime  [][]byte
}

func run(c config) error {
	if c.n < 1 || c.runs < 1 || c.pool < 7 || c.share < 0 || c.share > 1 {
		return fmt.Errorf("bad flags: need n ≥ 1, runs ≥ 1, pool ≥ 7, 0 ≤ share ≤ 1")
	}
	us, err := keys.Generate(nil)
	if err != nil {
		return err
	}
	key, err := privatebox.NewKey(us.Private)
	if err != nil {
		return err
	}
	pool := make([]refs.Feed, c.pool)
	for i := range pool {
		kp, err := keys.Generate(nil)
		if err != nil {
			return err
		}
		pool[i] = kp.ID
	}
	fmt.Printf("go %s, %s/%s, GOMAXPROCS %d, node %s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), nodeVersion(c))

	t0 := time.Now()
	corp, err := makeCorpus(c, us.ID, pool)
	if err != nil {
		return err
	}
	fmt.Printf("made %d boxed messages (%d to us) in %v\n", c.n, corp.toUs, time.Since(t0).Round(time.Millisecond))

	goRate, boundRate, err := scan(c, key, corp)
	if err != nil {
		return err
	}
	fmt.Printf("scan, one goroutine, messages tried per second:\n")
	fmt.Printf("  go privatebox      %10.0f\n", goRate)
	fmt.Printf("  bound (1 X25519)   %10.0f   go/bound %.2f\n", boundRate, goRate/boundRate)
	if c.js {
		js, err := scanJS(c, us, corp)
		if err != nil {
			return err
		}
		fmt.Printf("  js ssb-keys.unbox  %10.0f   go/js %.2f\n", js, goRate/js)
	}
	if c.box > 0 {
		return boxBench(c, pool[:7])
	}
	return nil
}

// content returns the i-th message's plaintext: JSON of a private post,
// about 300 bytes.
func content(i int, recps []refs.Feed) []byte {
	ids := make([]string, len(recps))
	for j, r := range recps {
		ids[j] = r.String()
	}
	v := map[string]any{"type": "post", "text": fmt.Sprintf("private message %d: %s", i, strings.Repeat("lorem ipsum ", 8)), "recps": ids}
	b, _ := json.Marshal(v)
	return b
}

// makeCorpus boxes the messages on all cores.
func makeCorpus(c config, us refs.Feed, pool []refs.Feed) (*corpus, error) {
	corp := &corpus{contents: make([]string, c.n), oneTime: make([][]byte, c.n)}
	toUs := make([]bool, c.n)
	rng := rand.New(rand.NewPCG(1, 2))
	recps := make([][]refs.Feed, c.n)
	for i := range recps {
		n := 1 + rng.IntN(privatebox.MaxRecipients)
		for _, j := range rng.Perm(len(pool))[:n] {
			recps[i] = append(recps[i], pool[j])
		}
		if rng.Float64() < c.share {
			recps[i][rng.IntN(n)] = us
			toUs[i] = true
			corp.toUs++
		}
	}
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < c.n; i += workers {
				ct, err := privatebox.Box(content(i, recps[i]), recps[i])
				if err != nil {
					errs[w] = err
					return
				}
				corp.contents[i] = base64.StdEncoding.EncodeToString(ct) + privatebox.Suffix
				corp.oneTime[i] = ct[24:56]
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return corp, nil
}

// scanChunk is how many messages scan times at once, alternating the Go
// scan and the bound.
const scanChunk = 1000

// scan times the Go scan and the bound over chunks of scanChunk messages,
// the two back to back on each chunk, in -runs rounds. A chunk's time is the
// fastest of the rounds, so that a burst of load from other processes
// spoils one measurement of one chunk and not a whole run. It returns the
// rates over the sums of those times.
func scan(c config, key *privatebox.Key, corp *corpus) (goRate, boundRate float64, err error) {
	priv, err := ecdh.X25519().GenerateKey(nil)
	if err != nil {
		return 0, 0, err
	}
	chunks := (len(corp.contents) + scanChunk - 1) / scanChunk
	goBest := make([]time.Duration, chunks)
	boundBest := make([]time.Duration, chunks)
	for r := range c.runs {
		found := 0
		runtime.GC()
		for k := range chunks {
			lo, hi := k*scanChunk, min((k+1)*scanChunk, len(corp.contents))
			t0 := time.Now()
			for _, s := range corp.contents[lo:hi] {
				_, ok, err := key.Unbox(s)
				if err != nil {
					return 0, 0, err
				}
				if ok {
					found++
				}
			}
			t1 := time.Now()
			for _, p := range corp.oneTime[lo:hi] {
				pub, err := ecdh.X25519().NewPublicKey(p)
				if err != nil {
					return 0, 0, err
				}
				if _, err := priv.ECDH(pub); err != nil {
					return 0, 0, err
				}
			}
			t2 := time.Now()
			if d := t1.Sub(t0); r == 0 || d < goBest[k] {
				goBest[k] = d
			}
			if d := t2.Sub(t1); r == 0 || d < boundBest[k] {
				boundBest[k] = d
			}
		}
		if found != corp.toUs {
			return 0, 0, fmt.Errorf("go found %d messages to us, want %d", found, corp.toUs)
		}
	}
	var goSum, boundSum time.Duration
	for k := range chunks {
		goSum += goBest[k]
		boundSum += boundBest[k]
	}
	n := float64(len(corp.contents))
	return n / goSum.Seconds(), n / boundSum.Seconds(), nil
}

// scanJS writes the contents to a file and has node open them all with
// ssb-keys unbox.
func scanJS(c config, us *keys.KeyPair, corp *corpus) (float64, error) {
	f, err := os.CreateTemp("", "ssbprivate-*.txt")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(strings.Join(corp.contents, "\n") + "\n"); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	var res struct {
		N      int     `json:"n"`
		Found  int     `json:"found"`
		PerSec float64 `json:"perSec"`
	}
	secret := base64.StdEncoding.EncodeToString(us.Private)
	if err := node(c, &res, "bench", f.Name(), secret, fmt.Sprint(c.runs)); err != nil {
		return 0, err
	}
	if res.N != len(corp.contents) || res.Found != corp.toUs {
		return 0, fmt.Errorf("js opened %d of %d messages, want %d", res.Found, res.N, corp.toUs)
	}
	return res.PerSec, nil
}

// boxBench compares boxing for 7 recipients.
func boxBench(c config, recps []refs.Feed) error {
	plain := content(0, recps)
	var best time.Duration
	for r := range c.runs {
		t0 := time.Now()
		for range c.box {
			if _, err := privatebox.BoxString(plain, recps); err != nil {
				return err
			}
		}
		if d := time.Since(t0); r == 0 || d < best {
			best = d
		}
	}
	goRate := float64(c.box) / best.Seconds()
	fmt.Printf("box for 7 recipients, one goroutine, messages per second:\n")
	fmt.Printf("  go privatebox      %10.0f\n", goRate)
	if !c.js {
		return nil
	}
	f, err := os.CreateTemp("", "ssbprivate-box-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	ids := make([]string, len(recps))
	for i, r := range recps {
		ids[i] = r.String()
	}
	spec, _ := json.Marshal(map[string]any{"content": json.RawMessage(plain), "recps": ids})
	if _, err := f.Write(spec); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	var res struct {
		PerSec float64 `json:"perSec"`
	}
	if err := node(c, &res, "boxbench", fmt.Sprint(c.box), fmt.Sprint(c.runs), f.Name()); err != nil {
		return err
	}
	fmt.Printf("  js ssb-keys.box    %10.0f   go/js %.2f\n", res.PerSec, goRate/res.PerSec)
	return nil
}

// node runs interop/private-box.js with args and decodes its one line of
// output into v.
func node(c config, v any, args ...string) error {
	script, err := filepath.Abs(filepath.Join(c.interop, "private-box.js"))
	if err != nil {
		return err
	}
	cmd := exec.Command("node", append([]string{script}, args...)...)
	cmd.Dir = c.interop
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("node private-box.js %s: %w: %s", args[0], err, stderr.String())
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("node private-box.js %s: output %q: %w", args[0], out, err)
	}
	return nil
}

func nodeVersion(c config) string {
	if !c.js {
		return "not used"
	}
	out, err := exec.Command("node", "--version").Output()
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(out))
}
