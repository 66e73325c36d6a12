// Command sbrepl measures initial replication of a scuttlebutt Model from
// one process to another over loopback TCP: Go to Go with this project, and
// JavaScript to JavaScript with npm scuttlebutt, in the same run.
//
// Each pair is two processes: a server that holds a Model of N keys and
// listens, and a fetcher that starts empty, dials, and stops the clock when
// it holds all N keys (Go: on the server's "SYNC", after checking the
// count; JavaScript: on the Nth update event). The figure is N divided by
// the time from dialing to that moment.
//
//	go run ./bench/sbrepl -n 100000 -runs 3
//
// It needs node and interop/node_modules (make test installs them) unless
// -js=false.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

type result struct {
	N              int     `json:"n"`
	MS             float64 `json:"ms"`
	UpdatesPerSec  float64 `json:"updatesPerSec"`
	BytesPerUpdate float64 `json:"bytesPerUpdate,omitempty"`
}

func main() {
	role := flag.String("role", "", "internal: serve or fetch")
	n := flag.Int("n", 100000, "number of keys in the model")
	port := flag.Int("port", 0, "internal: port to fetch from")
	runs := flag.Int("runs", 3, "runs of each pair; the median is reported")
	js := flag.Bool("js", true, "also run the JavaScript pair")
	interop := flag.String("interop", "interop", "path of the interop folder with bench-sb.js")
	cpuprofile := flag.String("cpuprofile", "", "internal: write a CPU profile of this process's role to this file prefix")
	flag.Parse()
	if *cpuprofile != "" && *role != "" {
		f, err := os.Create(*cpuprofile + "." + *role)
		if err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}

	var err error
	switch *role {
	case "serve":
		err = serve(*n)
	case "fetch":
		err = fetch(*port, *n)
	case "":
		err = compare(*n, *runs, *js, *interop, *cpuprofile)
	default:
		err = fmt.Errorf("unknown role %q", *role)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbrepl:", err)
		os.Exit(1)
	}
}

func value(i int) any { return map[string]any{"i": i, "s": "value-" + strconv.Itoa(i)} }

func serve(n int) error {
	m := model.New("S")
	for i := range n {
		if err := m.Set("k"+strconv.Itoa(i), value(i)); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("{\"port\":%d}\n", ln.Addr().(*net.TCPAddr).Port)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel(); ln.Close() }()
	for {
		c, err := ln.Accept()
		if err != nil {
			return nil
		}
		go m.ServeConn(ctx, c)
	}
}

// countingConn counts the bytes read from the connection.
type countingConn struct {
	net.Conn
	n int64
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n += int64(n)
	return n, err
}

func fetch(port, n int) error {
	m := model.New("F")
	synced := make(chan struct{})
	t0 := time.Now()
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	cc := &countingConn{Conn: c}
	var tHeader time.Duration
	s := m.NewStream(scuttlebutt.OnSyncReceived(func() { close(synced) }),
		scuttlebutt.OnHeader(func(scuttlebutt.Header) { tHeader = time.Since(t0) }))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, cc) }()
	select {
	case <-synced:
	case err := <-done:
		return fmt.Errorf("connection ended before sync: %w", err)
	case <-time.After(120 * time.Second):
		return errors.New("no sync within 120 s")
	}
	elapsed := time.Since(t0)
	if os.Getenv("SBREPL_PHASES") != "" {
		fmt.Fprintf(os.Stderr, "header after %v, sync after %v\n", tHeader, elapsed)
	}
	cancel()
	<-done
	if got := m.Len(); got != n {
		return fmt.Errorf("fetched %d keys, want %d", got, n)
	}
	r := result{N: n, MS: float64(elapsed.Microseconds()) / 1000, UpdatesPerSec: float64(n) / elapsed.Seconds(),
		BytesPerUpdate: float64(cc.n) / float64(n)}
	return json.NewEncoder(os.Stdout).Encode(r)
}

// pair starts a server command, reads its port, runs a fetch command with
// that port and returns the fetcher's result.
func pair(server, fetcher func(port int) *exec.Cmd) (result, error) {
	srv := server(0)
	stdin, err := srv.StdinPipe()
	if err != nil {
		return result{}, err
	}
	out, err := srv.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return result{}, err
	}
	defer func() {
		stdin.Close() // the server exits when its input ends
		t := time.AfterFunc(5*time.Second, func() { srv.Process.Kill() })
		srv.Wait()
		t.Stop()
	}()
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		return result{}, fmt.Errorf("server: %w", err)
	}
	var hello struct{ Port int }
	if err := json.Unmarshal(line, &hello); err != nil {
		return result{}, fmt.Errorf("server said %q: %w", line, err)
	}
	f := fetcher(hello.Port)
	f.Stderr = os.Stderr
	res, err := f.Output()
	if err != nil {
		return result{}, fmt.Errorf("fetch: %w", err)
	}
	var r result
	if err := json.Unmarshal(res, &r); err != nil {
		return result{}, fmt.Errorf("fetch said %q: %w", res, err)
	}
	return r, nil
}

func median(rs []result) result {
	slices.SortFunc(rs, func(a, b result) int {
		switch {
		case a.UpdatesPerSec < b.UpdatesPerSec:
			return -1
		case a.UpdatesPerSec > b.UpdatesPerSec:
			return 1
		}
		return 0
	})
	return rs[len(rs)/2]
}

func compare(n, runs int, js bool, interop, cpuprofile string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	goCmd := func(args ...string) func(int) *exec.Cmd {
		return func(port int) *exec.Cmd {
			args = append(args, "-n", strconv.Itoa(n), "-port", strconv.Itoa(port), "-cpuprofile", cpuprofile)
			return exec.Command(self, args...)
		}
	}
	var goRuns, jsRuns []result
	for range runs {
		r, err := pair(goCmd("-role", "serve"), goCmd("-role", "fetch"))
		if err != nil {
			return fmt.Errorf("go pair: %w", err)
		}
		goRuns = append(goRuns, r)
		if js {
			script := filepath.Join(interop, "bench-sb.js")
			r, err := pair(
				func(int) *exec.Cmd { return exec.Command("node", script, "serve", strconv.Itoa(n)) },
				func(port int) *exec.Cmd {
					return exec.Command("node", script, "fetch", strconv.Itoa(port), strconv.Itoa(n))
				})
			if err != nil {
				return fmt.Errorf("js pair: %w", err)
			}
			jsRuns = append(jsRuns, r)
		}
	}
	g := median(goRuns)
	fmt.Printf("model initial sync, N=%d, median of %d runs, loopback TCP, two processes each\n", n, runs)
	fmt.Printf("%-28s %10.1f ms %12.0f updates/s %6.1f bytes/update\n", "go -> go (this project)", g.MS, g.UpdatesPerSec, g.BytesPerUpdate)
	if js {
		j := median(jsRuns)
		fmt.Printf("%-28s %10.1f ms %12.0f updates/s\n", "js -> js (npm scuttlebutt)", j.MS, j.UpdatesPerSec)
		fmt.Printf("ratio go/js: %.1fx\n", g.UpdatesPerSec/j.UpdatesPerSec)
	}
	return nil
}
