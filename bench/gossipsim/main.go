// Command gossipsim measures gossip: how fast one message reaches every
// peer of a simulated network, and how many messages one real peer can
// verify and forward.
//
//	go run ./bench/gossipsim                 # N = 100, 1,000, 10,000; loss 0 and 1%
//	go run ./bench/gossipsim -quick          # N = 100, 1,000; for CI (well under a minute)
//	go run ./bench/gossipsim -n 5000 -runs 3 -loss 0.05 -throughput=false
//
// Spread: package gossipsim runs N nodes in virtual time on a random graph
// of degree 3 to 8, each running a round every 100 ms at its own phase,
// links with 2 to 40 ms of latency. After the first digests settle, one
// random node publishes one message; the run ends when every node has it.
// Reported, as the median over runs (each on a new graph): rounds (virtual
// time / interval) to reach 99.9% and 100% of the other nodes, next to the
// push-gossip bound log2 N + ln N and to the publisher's eccentricity (hops
// to the farthest node, which no flooding can beat); envelope lines and
// duplicates received per node; digest lines per node; bytes per node on
// the wire, all and digests only.
//
// Throughput: one gossip.Gossip over in-memory streams gets distinct signed
// messages from 200 publishers on one or two input streams as fast as it
// takes them, and forwards them to three output streams; the clock stops
// when every message has been delivered and forwarded. crypto/ed25519.Verify
// alone is timed on the same machine for comparison.
package main

import (
	"bufio"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/gossip/gossipsim"
	"github.com/scuttlego/scuttle/ssb/keys"
)

func main() {
	sizes := flag.String("n", "100,1000,10000", "comma-separated network sizes")
	runs := flag.Int("runs", 3, "runs per size (median reported)")
	losses := flag.String("loss", "0,0.01", "comma-separated line loss probabilities")
	seed := flag.Uint64("seed", 1, "seed of the first run")
	quick := flag.Bool("quick", false, "N = 100, 1,000; 2 runs; loss 0 and 1%; short throughput run (CI)")
	throughput := flag.Bool("throughput", true, "measure verify-and-forward throughput of one peer")
	msgs := flag.Int("msgs", 40000, "messages in the throughput run")
	flag.Parse()
	if *quick {
		*sizes, *runs, *msgs = "100,1000", 2, 10000
	}
	ns, err := ints(*sizes)
	if err != nil {
		log.Fatal(err)
	}
	var ls []float64
	for _, s := range strings.Split(*losses, ",") {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			log.Fatalf("-loss: %v", err)
		}
		ls = append(ls, f)
	}

	fmt.Printf("gossipsim: one message, random graphs of degree 3-8, interval 100 ms, latency 2-40 ms, median of %d runs (%s, GOMAXPROCS %d)\n\n",
		*runs, time.Now().Format("2006-01-02"), runtime.GOMAXPROCS(0))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "N\tloss\trounds 99.9%\trounds 100%\ttime 100%\tlog2 N + ln N\teccentricity\tenvelopes/node\tduplicates/node\tdigests/node\tbytes/node\tdigest bytes/node\twall\t")
	for _, loss := range ls {
		for _, n := range ns {
			r, err := spread(n, loss, *runs, *seed)
			if err != nil {
				log.Fatal(err)
			}
			bound := math.Log2(float64(n)) + math.Log(float64(n))
			fmt.Fprintf(w, "%d\t%g%%\t%.1f\t%.1f\t%v\t%.1f\t%.0f\t%.2f\t%.2f\t%.2f\t%.0f\t%.0f\t%v\t\n",
				n, loss*100, r.r999, r.r100, r.t100.Round(time.Millisecond), bound, r.ecc,
				r.envelopes, r.dups, r.digests, r.bytes, r.digestBytes, r.wall.Round(time.Millisecond))
		}
	}
	w.Flush()
	if *throughput {
		fmt.Println()
		if err := measureThroughput(*msgs); err != nil {
			log.Fatal(err)
		}
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 2 {
			return nil, fmt.Errorf("-n: %q is not a size", f)
		}
		out = append(out, n)
	}
	return out, nil
}

type result struct {
	r999, r100, ecc          float64
	t100                     time.Duration
	envelopes, dups, digests float64
	bytes, digestBytes       float64
	wall                     time.Duration
}

// spread runs the one-message experiment runs times and returns medians.
func spread(n int, loss float64, runs int, seed uint64) (result, error) {
	var rs []result
	for i := range runs {
		start := time.Now()
		s, err := gossipsim.New(gossipsim.Config{Nodes: n, Seed: seed + uint64(i), Loss: loss})
		if err != nil {
			return result{}, err
		}
		const publishAt = time.Second
		s.RunUntil(publishAt)
		before := totals(s)
		bytes0, digestBytes0 := s.Bytes, s.DigestBytes
		nodes := s.Nodes()
		pub := nodes[s.Rand().IntN(len(nodes))]
		m, err := s.Publish(pub, map[string]any{"hello": "world", "from": pub.Index})
		if err != nil {
			return result{}, err
		}
		ecc, reached := s.Eccentricity(pub)
		if reached != n {
			return result{}, fmt.Errorf("the graph is not connected: %d of %d reached", reached, n)
		}
		s.RunUntilDone(publishAt+5*time.Minute, func() bool { return s.Reached(m.ID) == n-1 })
		if got := s.Reached(m.ID); got != n-1 {
			return result{}, fmt.Errorf("N=%d: only %d of %d nodes got the message", n, got, n-1)
		}
		// Let the confirmations settle, so that digests are counted whole.
		s.RunUntil(s.Now() + 3*time.Second)
		var times []time.Duration
		for _, v := range nodes {
			if v != pub {
				times = append(times, v.At[m.ID]-publishAt)
			}
		}
		slices.Sort(times)
		after := totals(s)
		k999 := int(math.Ceil(0.999*float64(len(times)))) - 1
		interval := float64(s.Interval())
		per := func(x uint64) float64 { return float64(x) / float64(n) }
		rs = append(rs, result{
			r999:        float64(times[k999]) / interval,
			r100:        float64(times[len(times)-1]) / interval,
			t100:        times[len(times)-1],
			ecc:         float64(ecc),
			envelopes:   per(after.Sent - before.Sent),
			dups:        per(after.Duplicates + after.Own - before.Duplicates - before.Own),
			digests:     per(after.DigestsSent - before.DigestsSent),
			bytes:       float64(s.Bytes-bytes0) / float64(n),
			digestBytes: float64(s.DigestBytes-digestBytes0) / float64(n),
			wall:        time.Since(start),
		})
	}
	med := func(f func(r result) float64) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = f(r)
		}
		slices.Sort(xs)
		return xs[len(xs)/2]
	}
	return result{
		r999:        med(func(r result) float64 { return r.r999 }),
		r100:        med(func(r result) float64 { return r.r100 }),
		t100:        time.Duration(med(func(r result) float64 { return float64(r.t100) })),
		ecc:         med(func(r result) float64 { return r.ecc }),
		envelopes:   med(func(r result) float64 { return r.envelopes }),
		dups:        med(func(r result) float64 { return r.dups }),
		digests:     med(func(r result) float64 { return r.digests }),
		bytes:       med(func(r result) float64 { return r.bytes }),
		digestBytes: med(func(r result) float64 { return r.digestBytes }),
		wall:        time.Duration(med(func(r result) float64 { return float64(r.wall) })),
	}, nil
}

func totals(s *gossipsim.Sim) gossip.Stats {
	var t gossip.Stats
	for _, n := range s.Nodes() {
		st := n.Stats()
		t.Sent += st.Sent
		t.Duplicates += st.Duplicates
		t.Own += st.Own
		t.DigestsSent += st.DigestsSent
	}
	return t
}

// measureThroughput times one peer verifying and forwarding msgs distinct
// messages, with one and with two input streams.
func measureThroughput(msgs int) error {
	lines, err := makeLines(msgs, 200)
	if err != nil {
		return err
	}
	// ed25519 alone, on the same machine, one core.
	kp, _ := keys.FromSeedString("bench")
	payload := []byte(strings.Repeat("x", 200))
	sig := kp.Sign(payload)
	const k = 2000
	start := time.Now()
	for range k {
		ed25519.Verify(kp.Public, payload, sig)
	}
	perVerify := time.Since(start) / k
	fmt.Printf("throughput of one peer: %d distinct messages (%d bytes each on average) in, forwarded to 3 peers\n\n",
		len(lines), avgLen(lines))
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "input streams\tmessages/s\tper message\t")
	for _, inputs := range []int{1, 2} {
		d, err := runThroughput(lines, inputs)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%d\t%.0f\t%v\t\n", inputs, float64(len(lines))/d.Seconds(), (d / time.Duration(len(lines))).Round(100*time.Nanosecond))
	}
	fmt.Fprintf(w, "ed25519.Verify alone, 1 core\t%.0f\t%v\t\n", float64(time.Second)/float64(perVerify), perVerify.Round(100*time.Nanosecond))
	return w.Flush()
}

func avgLen(lines [][]byte) int {
	t := 0
	for _, l := range lines {
		t += len(l)
	}
	return t / len(lines)
}

// makeLines signs msgs messages of pubs Go publishers, each line ending in
// a newline.
func makeLines(msgs, pubs int) ([][]byte, error) {
	nodes := make([]*gossip.Node, pubs)
	for i := range nodes {
		kp, err := keys.FromSeedString(fmt.Sprintf("publisher %d", i))
		if err != nil {
			return nil, err
		}
		if nodes[i], err = gossip.NewNode(gossip.Config{Keys: kp, MaxRetained: 1, MaxSeen: 1}); err != nil {
			return nil, err
		}
	}
	lines := make([][]byte, msgs)
	for i := range lines {
		m, err := nodes[i%pubs].Publish(map[string]any{"type": "post", "i": i, "text": strings.Repeat("lorem ipsum ", 12)})
		if err != nil {
			return nil, err
		}
		lines[i] = append(m.Raw, '\n')
	}
	return lines, nil
}

// runThroughput feeds lines to one peer on inputs streams and returns the
// time until all are delivered and written to the three output streams.
func runThroughput(lines [][]byte, inputs int) (time.Duration, error) {
	var delivered atomic.Int64
	all := make(chan struct{})
	g, err := gossip.New(gossip.Options{
		Interval: 10 * time.Millisecond,
		Config:   gossip.Config{MaxRetained: len(lines), MaxRetainedBytes: 1 << 30, MaxQueue: len(lines), MaxBuffered: 64 << 20},
		OnMessage: func(gossip.Message) {
			if delivered.Add(1) == int64(len(lines)) {
				close(all)
			}
		},
	})
	if err != nil {
		return 0, err
	}
	defer g.Close()
	// Outputs: streams whose reader counts envelope lines.
	var outWG sync.WaitGroup
	outDone := make(chan struct{}, 3)
	for range 3 {
		s := g.PeerStream()
		outWG.Add(1)
		go func() {
			defer outWG.Done()
			sc := bufio.NewScanner(s)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			n := 0
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), `{"data"`) {
					if n++; n == len(lines) {
						outDone <- struct{}{}
					}
				}
			}
		}()
	}
	ins := make([]*gossip.Stream, inputs)
	for i := range ins {
		ins[i] = g.PeerStream()
		go io.Copy(io.Discard, ins[i])
	}
	time.Sleep(50 * time.Millisecond) // past the first digests
	start := time.Now()
	var wg sync.WaitGroup
	for i, s := range ins {
		wg.Add(1)
		go func() {
			defer wg.Done()
			bw := bufio.NewWriterSize(s, 64<<10)
			for j := i; j < len(lines); j += inputs {
				bw.Write(lines[j])
			}
			bw.Flush()
		}()
	}
	wg.Wait()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		return 0, fmt.Errorf("only %d of %d delivered", delivered.Load(), len(lines))
	}
	for range 3 {
		<-outDone
	}
	d := time.Since(start)
	g.Close()
	outWG.Wait()
	if st := g.Stats(); st.Delivered != uint64(len(lines)) || st.Invalid() != 0 {
		return 0, fmt.Errorf("stats %+v", st)
	}
	return d, nil
}
