// Command ebtsim runs the EBT simulation of package ebtsim (1,000 peers by
// default: a random follow graph, pubs, a split of the network and
// restarts, in virtual time) and prints what it measured: the messages
// sent against the minimum, the notes, and how long after the churn every
// peer had every message it wants.
//
//	go run ./bench/ebtsim
//	go run ./bench/ebtsim -peers 200 -quick
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/scuttlego/scuttle/ssb/replicate/ebt/ebtsim"
)

func main() {
	var cfg ebtsim.Config
	flag.IntVar(&cfg.Peers, "peers", 1000, "peers, pubs not counted")
	flag.IntVar(&cfg.Pubs, "pubs", 5, "pubs, which follow everyone")
	flag.IntVar(&cfg.Follows, "follows", 8, "feeds each peer follows")
	flag.IntVar(&cfg.Restarts, "restarts", 0, "peer restarts during the run (default peers/20)")
	flag.IntVar(&cfg.Publish, "publish", 0, "messages published during the run (default one per peer)")
	flag.DurationVar(&cfg.Duration, "duration", 60*time.Second, "virtual time of the churn")
	seed := flag.Uint64("seed", 1, "random seed")
	quick := flag.Bool("quick", false, "200 peers, 20 s of churn (for CI)")
	flag.Parse()
	cfg.Seed = *seed
	if *quick {
		cfg.Peers, cfg.Duration = 200, 20*time.Second
	}
	start := time.Now()
	r := ebtsim.Run(cfg)
	fmt.Println(r)
	fmt.Printf("wanted feeds %d in all; stalls %d, re-asks %d; %v simulated in %v\n",
		r.Wanted, r.Stalls, r.Reasks, r.VirtualTotal.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	if r.Missing != 0 {
		fmt.Fprintf(os.Stderr, "ebtsim: %d wanted messages missing at the end\n", r.Missing)
		os.Exit(1)
	}
}
