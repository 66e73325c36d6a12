// Command ssbblobfetch measures fetching blobs from a peer over loopback,
// this project's server (sbot) and JavaScript ssb-server@16 (ssb-blobs
// 1.2.2) side by side in one run (issue 13).
//
// For each pair, Go to Go (two servers in the process) and JavaScript to
// JavaScript, server A holds n blobs (added through its owner with
// blobs.add), server B dials A (gossip.connect), then B's owner calls
// blobs.want for every id, 64 calls in flight (-inflight), with the same Go
// client (ssb/client) for both. The clock runs from the first want until
// every want has answered true; then blobs.has on B checks that B holds
// them all.
//
// The bound is the box-stream throughput of a loopback TCP connection
// (ssb/shs and ssb/boxstream, no muxrpc): one side writes the same number
// of bytes in 64 KiB writes, the other reads them (best of three).
//
// With -mem (default on), 32 clients each read a different 5 MiB blob from
// one Go server at once (blobs.get through the RPC), and the program
// reports the peak of its Go heap (HeapInuse) and of its resident set
// (VmRSS) above what they were before the clients dialed, next to the 160
// MiB that one blob-sized buffer per stream would take. The clients are in
// the same process as the server, so their memory is counted too; each
// reads and discards one chunk at a time.
//
//	go run ./bench/ssbblobfetch -n 1000 -size 65536
//	go run ./bench/ssbblobfetch -quick   # for CI: -n 200, 8 readers of 5 MiB
//
// A pair that fails is reported as such and the run goes on. It needs node
// and interop/node_modules (make test installs them).
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/procmem"
	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/shs"
)

func main() {
	n := flag.Int("n", 1000, "blobs fetched")
	size := flag.Int("size", 64<<10, "bytes per blob (at most 5 MiB, the servers' limit)")
	inflight := flag.Int("inflight", 64, "blobs.want calls in flight at once")
	pairs := flag.String("pairs", "go,js", "pairs to run: go, js or both")
	mem := flag.Bool("mem", true, "measure memory while serving concurrent blobs.get")
	readers := flag.Int("readers", 32, "concurrent blobs.get of 5 MiB in the memory run")
	quick := flag.Bool("quick", false, "a short run for CI: -n 200 -readers 8")
	interop := flag.String("interop", "interop", "path of the interop folder")
	flag.Parse()
	if *quick {
		*n, *readers = 200, 8
	}
	if err := run(*n, *size, *inflight, *pairs, *mem, *readers, *interop); err != nil {
		fmt.Fprintln(os.Stderr, "ssbblobfetch:", err)
		os.Exit(1)
	}
}

// peer is a running server; its identity is also its owner's.
type peer struct {
	addr string
	kp   *keys.KeyPair
	stop func()
}

// starter starts a server with its data in dir.
type starter func(dir string) (peer, error)

func run(n, size, inflight int, pairs string, mem bool, readers int, interop string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	tmp, err := os.MkdirTemp("", "ssbblobfetch")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	startGo := func(dir string) (peer, error) {
		srv, err := sbotrun.Start(ctx, server.Config{Path: dir, Caps: base64.StdEncoding.EncodeToString(caps[:])})
		if err != nil {
			return peer{}, err
		}
		return peer{srv.Addr, srv.Owner, srv.Stop}, nil
	}
	startJS := func(dir string) (peer, error) {
		js, err := ssbtest.StartJSServer(ctx, debugStarter(ctx, interop), dir, caps)
		if err != nil {
			return peer{}, err
		}
		return peer{js.Addr, js.Keys, js.Close}, nil
	}

	total := float64(n) * float64(size)
	fmt.Printf("%d blobs of %d bytes fetched over loopback: B dials A, B's owner calls blobs.want, %d in flight\n\n", n, size, inflight)
	fmt.Printf("%-10s %10s %10s %10s\n", "pair", "seconds", "MB/s", "blobs/s")
	var rates []float64
	for _, p := range []struct {
		name  string
		start starter
	}{{"go -> go", startGo}, {"js -> js", startJS}} {
		if !strings.Contains(pairs, p.name[:2]) {
			rates = append(rates, 0)
			continue
		}
		d, err := fetch(ctx, p.start, filepath.Join(tmp, p.name[:2]), caps, n, size, inflight)
		if err != nil {
			fmt.Printf("%-10s failed: %v\n", p.name, err)
			rates = append(rates, 0)
			continue
		}
		rates = append(rates, total/1e6/d.Seconds())
		fmt.Printf("%-10s %10.2f %10.1f %10.0f\n", p.name, d.Seconds(), total/1e6/d.Seconds(), float64(n)/d.Seconds())
	}
	bound, err := boxBound(ctx, n*size, 64<<10)
	if err != nil {
		fmt.Printf("\nbox-stream bound failed: %v\n", err)
	} else {
		fmt.Printf("\nbound: box-stream over loopback TCP (ssb/shs, ssb/boxstream), 64 KiB writes: %.1f MB/s\n", bound)
	}
	if rates[0] > 0 && rates[1] > 0 {
		fmt.Printf("ratio go / js: %.1fx (goal: at least 5x)\n", rates[0]/rates[1])
	}
	if rates[0] > 0 && bound > 0 {
		fmt.Printf("go fetch / box-stream bound: %.2f (goal: at least 0.5)\n", rates[0]/bound)
	}
	if mem {
		fmt.Println()
		if err := memory(ctx, startGo, filepath.Join(tmp, "mem"), caps, readers, 5<<20); err != nil {
			fmt.Printf("memory run failed: %v\n", err)
		}
	}
	return nil
}

func id(b []byte) string {
	h := sha256.Sum256(b)
	return "&" + base64.StdEncoding.EncodeToString(h[:]) + ".sha256"
}

func dial(ctx context.Context, p peer, caps [32]byte) (*client.Client, error) {
	return client.Dial(ctx, p.addr, caps, p.kp, p.kp.Public, nil)
}

// fetch starts servers A and B, adds n random blobs to A, makes B dial A,
// and returns the time B's owner waited for blobs.want of them all.
func fetch(ctx context.Context, start starter, dir string, caps [32]byte, n, size, inflight int) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var ps [2]peer
	for i, name := range []string{"a", "b"} {
		p, err := start(filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		defer p.stop()
		ps[i] = p
	}
	fmt.Fprintln(os.Stderr, "DEBUG started", time.Now())
	ca, err := dial(ctx, ps[0], caps)
	if err != nil {
		return 0, err
	}
	defer ca.Close()
	ids, err := addBlobs(ctx, ca, n, size)
	if err != nil {
		return 0, fmt.Errorf("adding to A: %w", err)
	}
	fmt.Fprintln(os.Stderr, "DEBUG added", time.Now())
	cb, err := dial(ctx, ps[1], caps)
	if err != nil {
		return 0, err
	}
	defer cb.Close()
	var res json.RawMessage
	if err := cb.AsyncJSON(ctx, &res, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(ps[0].addr, ps[0].kp.ID)); err != nil {
		return 0, fmt.Errorf("gossip.connect: %w", err)
	}
	fmt.Fprintln(os.Stderr, "DEBUG connected", time.Now())
	if os.Getenv("DEBUGSLEEP") != "" {
		time.Sleep(3 * time.Second)
	}
	t0 := time.Now()
	if err := wantAll(ctx, cb, ids, inflight); err != nil {
		return 0, fmt.Errorf("wanting on B: %w", err)
	}
	d := time.Since(t0)
	var has []bool
	if err := cb.AsyncJSON(ctx, &has, muxrpc.Method{"blobs", "has"}, ids); err != nil {
		return 0, fmt.Errorf("blobs.has: %w", err)
	}
	for i, ok := range has {
		if !ok {
			return 0, fmt.Errorf("blobs.has: B lacks %s after its want answered", ids[i])
		}
	}
	if len(has) != len(ids) {
		return 0, fmt.Errorf("blobs.has: %d answers for %d ids", len(has), len(ids))
	}
	return d, nil
}

// addBlobs adds n random blobs of size bytes through c, in batches of 32,
// and returns their ids once blobs.has says each batch is stored. (Polling
// blobs.has rather than reading blobs.changes: a change that comes before
// the server has subscribed the stream would be missed.)
func addBlobs(ctx context.Context, c *client.Client, n, size int) ([]string, error) {
	ids := make([]string, n)
	b := make([]byte, size)
	for i := range ids {
		rand.Read(b)
		ids[i] = id(b)
		st, err := c.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
		if err != nil {
			return nil, err
		}
		for off := 0; off < len(b); off += 64 << 10 {
			if err := st.SendRaw(muxrpc.Binary, b[off:min(off+64<<10, len(b))]); err != nil {
				return nil, fmt.Errorf("blobs.add: %w", err)
			}
		}
		st.Close()
		if (i+1)%32 == 0 || i == n-1 {
			if err := waitHas(ctx, c, ids[i/32*32:i+1]); err != nil {
				return nil, err
			}
		}
	}
	return ids, nil
}

// waitHas waits until the server holds every blob of ids, or ctx ends.
func waitHas(ctx context.Context, c *client.Client, ids []string) error {
	for {
		var has []bool
		if err := c.AsyncJSON(ctx, &has, muxrpc.Method{"blobs", "has"}, ids); err != nil {
			return fmt.Errorf("blobs.has: %w", err)
		}
		fmt.Fprintln(os.Stderr, "DEBUG has", has)
		if len(has) == len(ids) && !slices.Contains(has, false) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("blobs.has: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// wantAll calls blobs.want for every id, inflight at a time, and returns
// when all have answered true, or at the first error.
func wantAll(ctx context.Context, c *client.Client, ids []string, inflight int) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, inflight)
	var wg sync.WaitGroup
	for _, blob := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			var ok bool
			err := c.AsyncJSON(ctx, &ok, muxrpc.Method{"blobs", "want"}, blob)
			if err == nil && !ok {
				err = errors.New("answered false")
			}
			if err != nil {
				cancel(fmt.Errorf("blobs.want %s: %w", blob, err))
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// boxBound returns the best of three box-stream transfers of total bytes
// in writes of chunk bytes over loopback TCP, in MB/s.
func boxBound(ctx context.Context, total, chunk int) (float64, error) {
	best := 0.0
	for range 3 {
		d, err := boxOnce(ctx, total, chunk)
		if err != nil {
			return 0, err
		}
		best = max(best, float64(total)/1e6/d.Seconds())
	}
	return best, nil
}

func boxOnce(ctx context.Context, total, chunk int) (time.Duration, error) {
	var network [32]byte
	rand.Read(network[:])
	srv, err := keys.Generate(nil)
	if err != nil {
		return 0, err
	}
	cli, err := keys.Generate(nil)
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	type result struct {
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			done <- result{0, err}
			return
		}
		bc, _, err := shs.ServerConn(ctx, conn, network, srv.Private, nil)
		if err != nil {
			done <- result{0, err}
			return
		}
		defer bc.Close()
		n, err := io.CopyBuffer(io.Discard, onlyReader{bc}, make([]byte, 64<<10))
		done <- result{n, err}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, err
	}
	bc, err := shs.ClientConn(ctx, raw, network, cli.Private, srv.Public)
	if err != nil {
		return 0, err
	}
	defer bc.Close()
	buf := make([]byte, chunk)
	rand.Read(buf)
	t0 := time.Now()
	for sent := 0; sent < total; sent += chunk {
		if _, err := bc.Write(buf[:min(chunk, total-sent)]); err != nil {
			return 0, fmt.Errorf("box-stream write: %w", err)
		}
	}
	if err := bc.CloseWrite(); err != nil {
		return 0, fmt.Errorf("box-stream goodbye: %w", err)
	}
	r := <-done
	d := time.Since(t0)
	if r.err != nil || r.n != int64(total) {
		return 0, fmt.Errorf("box-stream read %d of %d bytes: %v", r.n, total, r.err)
	}
	return d, nil
}

// onlyReader hides any WriterTo, so that io.CopyBuffer reads with its
// buffer.
type onlyReader struct{ io.Reader }

// memory adds readers blobs of size bytes to a Go server, then reads them
// with readers clients at once while sampling the process's memory.
func memory(ctx context.Context, start starter, dir string, caps [32]byte, readers, size int) error {
	p, err := start(dir)
	if err != nil {
		return err
	}
	defer p.stop()
	c, err := dial(ctx, p, caps)
	if err != nil {
		return err
	}
	ids, err := addBlobs(ctx, c, readers, size)
	c.Close()
	if err != nil {
		return err
	}
	runtime.GC()
	heap0, rss0 := sample()
	stop := make(chan struct{})
	peaks := make(chan [2]uint64)
	go func() {
		heap, rss := heap0, rss0
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				peaks <- [2]uint64{heap, rss}
				return
			case <-tick.C:
				h, r := sample()
				heap, rss = max(heap, h), max(rss, r)
			}
		}
	}()
	t0 := time.Now()
	errs := make(chan error, readers)
	for _, blob := range ids {
		go func() { errs <- readBlob(ctx, p, caps, blob, size) }()
	}
	var first error
	for range ids {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	d := time.Since(t0)
	close(stop)
	peak := <-peaks
	if first != nil {
		return first
	}
	fmt.Printf("memory: %d clients read a %d MiB blob each at once from the Go server, in this process (%.2f s)\n", readers, size>>20, d.Seconds())
	fmt.Printf("  peak above baseline: heap in use %.1f MiB, resident set %.1f MiB (a blob-sized buffer per stream: %d MiB)\n",
		float64(peak[0]-heap0)/(1<<20), float64(peak[1]-rss0)/(1<<20), readers*size>>20)
	return nil
}

// sample returns the Go heap in use and the resident set size, in bytes.
func sample() (heap, rss uint64) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if st, err := procmem.Status(); err == nil {
		rss = st["VmRSS"]
	}
	return ms.HeapInuse, rss
}

// readBlob dials p as its owner and reads one blob, discarding each chunk.
func readBlob(ctx context.Context, p peer, caps [32]byte, blob string, size int) error {
	c, err := dial(ctx, p, caps)
	if err != nil {
		return err
	}
	defer c.Close()
	st, err := c.Open(muxrpc.Method{"blobs", "get"}, muxrpc.Source, blob)
	if err != nil {
		return err
	}
	n := 0
	for {
		pkt, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("blobs.get after %d bytes: %w", n, err)
		}
		n += len(pkt.Body)
	}
	if n != size {
		return fmt.Errorf("blobs.get: %d bytes of %d", n, size)
	}
	return nil
}

func debugStarter(ctx context.Context, interop string) ssbtest.Starter {
	return func(config string) (func(), error) {
		cmd := exec.CommandContext(ctx, "node", filepath.Join(interop, "ssb-server-peer.js"), config)
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return func() { stdin.Close(); cmd.Wait() }, nil
	}
}
