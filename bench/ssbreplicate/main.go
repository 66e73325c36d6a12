// Command ssbreplicate measures replication of one feed between two
// servers on loopback, this project's (sbot) and JavaScript ssb-server@16,
// in one run: Go to Go, JavaScript to JavaScript, JavaScript to Go and Go to
// JavaScript. The sink follows the feed's author; the clock runs from the
// sink dialing the source (gossip.connect) until the sink holds the whole
// feed. Replication is whatever the pair negotiates (EBT here).
//
//	go run ./bench/ssbreplicate -n 20000
//
// With -feeds F it then measures many feeds (F feeds of -per messages,
// published by authors the source follows; the sink follows the source, so
// it wants them at two hops): EBT against legacy createHistoryStream, Go to
// Go, and JavaScript to JavaScript with EBT. It reports the time to hold
// everything, the bytes on the wire (a counting proxy between the two), and
// the sink's notes or requests; then the sink restarts on its data and
// connects again, and the bytes of the first two seconds show what a
// reconnect with nothing new costs.
//
//	go run ./bench/ssbreplicate -n 0 -feeds 1000 -per 100
//
// It needs node and interop/node_modules (make test installs them).
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// peer is a running server and an owner connection to it.
type peer struct {
	name string
	addr string
	id   *keys.KeyPair
	c    *client.Client
	stop func()
}

func main() {
	n := flag.Int("n", 20000, "messages in the feed (0: skip)")
	feeds := flag.Int("feeds", 0, "feeds in the many-feeds run (0: skip)")
	per := flag.Int("per", 100, "messages per feed in the many-feeds run")
	interop := flag.String("interop", "interop", "path of the interop folder")
	goOnly = flag.Bool("go-only", false, "run only the Go pairs (no JavaScript)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the first Go->Go transfer to this file")
	flag.Parse()
	profile = *cpuprofile
	if *n > 0 {
		if err := run(*n, *interop); err != nil {
			fmt.Fprintln(os.Stderr, "ssbreplicate:", err)
			os.Exit(1)
		}
	}
	if *feeds > 0 {
		if err := runMany(*feeds, *per, *interop); err != nil {
			fmt.Fprintln(os.Stderr, "ssbreplicate:", err)
			os.Exit(1)
		}
	}
}

var (
	goOnly  *bool
	profile string // -cpuprofile
)

// startProfile profiles the CPU until the returned function is called, if
// -cpuprofile asks and no profile was taken yet.
func startProfile() func() {
	if profile == "" {
		return func() {}
	}
	f, err := os.Create(profile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ssbreplicate:", err)
		return func() {}
	}
	profile = ""
	pprof.StartCPUProfile(f)
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// pairs returns the pairs of kinds to run: without the JavaScript ones
// under -go-only.
func pairs(all [][2]string) [][2]string {
	var out [][2]string
	for _, p := range all {
		if !*goOnly || p[0] != "js" && p[1] != "js" {
			out = append(out, p)
		}
	}
	return out
}

func run(n int, interop string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	tmp, err := os.MkdirTemp("", "ssbreplicate")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	author, _ := keys.Generate(nil)
	raws, err := ssbtest.Feed(author, n, float64(time.Now().UnixMilli())-float64(n))
	if err != nil {
		return err
	}
	fmt.Printf("one feed of %d messages (%d bytes on average), loopback\n", n, avg(raws))
	fmt.Printf("%-32s %10s %14s\n", "source -> sink", "seconds", "messages/s")
	var goGo, jsJS float64
	for i, pair := range pairs([][2]string{{"go", "go"}, {"js", "js"}, {"js", "go"}, {"go", "js"}}) {
		dir := filepath.Join(tmp, strconv.Itoa(i))
		src, err := start(ctx, pair[0], filepath.Join(dir, "src"), caps, interop)
		if err != nil {
			return err
		}
		dst, err := start(ctx, pair[1], filepath.Join(dir, "dst"), caps, interop)
		if err != nil {
			src.stop()
			return err
		}
		rate, err := replicateOne(ctx, src, dst, author, raws)
		dst.stop()
		src.stop()
		if err != nil {
			return fmt.Errorf("%s -> %s: %w", pair[0], pair[1], err)
		}
		fmt.Printf("%-32s %10.2f %14.0f\n", src.name+" -> "+dst.name, float64(n)/rate, rate)
		switch i {
		case 0:
			goGo = rate
		case 1:
			jsJS = rate
		}
	}
	if jsJS > 0 {
		fmt.Printf("ratio go->go / js->js: %.1fx\n", goGo/jsJS)
	}
	return nil
}

func avg(raws [][]byte) int {
	t := 0
	for _, r := range raws {
		t += len(r)
	}
	return t / len(raws)
}

// replicateOne loads the feed into src, makes dst follow its author, connects
// and times until dst holds it all. It returns messages per second.
func replicateOne(ctx context.Context, src, dst *peer, author *keys.KeyPair, raws [][]byte) (float64, error) {
	lctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	if err := ssbtest.Load(lctx, src.c, author.ID, raws); err != nil {
		return 0, fmt.Errorf("loading the source: %w", err)
	}
	// Both follow the author: a JavaScript server's EBT serves only the
	// feeds it replicates itself.
	var m any
	for _, p := range []*peer{src, dst} {
		if err := p.c.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, map[string]any{"type": "contact", "contact": author.ID.String(), "following": true}); err != nil {
			return 0, err
		}
	}
	stopProfile := func() {}
	if src.name == "go (sbot)" && dst.name == "go (sbot)" {
		stopProfile = startProfile()
	}
	defer stopProfile()
	t0 := time.Now()
	if err := dst.c.AsyncJSON(ctx, &m, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(src.addr, src.id.ID)); err != nil {
		return 0, err
	}
	if err := ssbtest.WaitSeq(lctx, dst.c, author.ID, int64(len(raws))); err != nil {
		return 0, err
	}
	return float64(len(raws)) / time.Since(t0).Seconds(), nil
}

// start runs a server of the kind ("go", "go-legacy" without EBT, or
// "js") in dir.
func start(ctx context.Context, kind, dir string, caps [32]byte, interop string) (*peer, error) {
	capsB64 := base64.StdEncoding.EncodeToString(caps[:])
	if kind == "go" || kind == "go-legacy" {
		run, err := sbotrun.Start(ctx, server.Config{Path: dir, Caps: capsB64, NoEBT: kind == "go-legacy"})
		if err != nil {
			return nil, err
		}
		addr, id, halt := run.Addr, run.Owner, run.Stop
		c, err := client.Dial(ctx, addr, caps, id, id.Public, nil)
		if err != nil {
			halt()
			return nil, err
		}
		name := "go (sbot)"
		if kind == "go-legacy" {
			name = "go (sbot, legacy)"
		}
		return &peer{name: name, addr: addr, id: id, c: c, stop: func() {
			c.Close()
			halt()
		}}, nil
	}
	js, err := ssbtest.StartJSServer(ctx, ssbtest.ExecStarter(ctx, interop), dir, caps)
	if err != nil {
		return nil, err
	}
	return &peer{name: "js (ssb-server)", addr: js.Addr, id: js.Keys, c: js.Client, stop: js.Close}, nil
}
