// Command ssbhostile measures what hostile peers cost this project's SSB
// server (sbot), and whether honest peers are still served meanwhile. The
// server runs in a child process (so the attackers' own memory is not
// counted; SSBHOSTILE_LOG=1 shows its log) on loopback; strangers with real handshakes then, all at once:
//
//   - idle: authenticate and say nothing (they read, never answer);
//   - streams: open many live createHistoryStreams each;
//   - big frames: announce a 1 MiB packet and send it 16 KiB at a time;
//   - non-readers: call manifest in a loop and never read the answers.
//
// Meanwhile, twice a second, an honest stranger and a known peer (in the
// server's gossip.json) connect and call manifest. It reports the server's
// peak heap in use and peak RSS, its heap after the attackers leave, what
// the limits refused or closed, and the honest calls that succeeded.
//
//	go run ./bench/ssbhostile          # about 2 min
//	go run ./bench/ssbhostile -quick   # under a minute, for CI
package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttlego/scuttle/internal/procmem"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// scale is the size of one run.
type scale struct {
	idle, streamers, streams, big, nonReaders int
	duration, timeout                         time.Duration
}

func main() {
	quick := flag.Bool("quick", false, "a smaller run, under a minute")
	serve := flag.String("serve", "", "internal: run the server on this data directory")
	timeout := flag.Duration("timeout", 0, "the server's idle, write and buffer timeouts (default 20s, quick 5s)")
	var only scale
	flag.IntVar(&only.idle, "idle", -1, "idle strangers (default 700, quick 200)")
	flag.IntVar(&only.streamers, "streamers", -1, "strangers opening streams (default 100, quick 20)")
	flag.IntVar(&only.big, "big", -1, "strangers sending a slow 1 MiB frame (default 100, quick 30)")
	flag.IntVar(&only.nonReaders, "nonreaders", -1, "strangers that do not read (default 100, quick 30)")
	flag.DurationVar(&only.duration, "duration", 0, "how long the attack lasts (default 90s, quick 20s)")
	flag.Parse()
	if *serve != "" {
		if err := runServer(*serve, *timeout); err != nil {
			fmt.Fprintln(os.Stderr, "ssbhostile server:", err)
			os.Exit(1)
		}
		return
	}
	sc := scale{idle: 700, streamers: 100, streams: 1100, big: 100, nonReaders: 100, duration: 90 * time.Second, timeout: 20 * time.Second}
	if *quick {
		sc = scale{idle: 200, streamers: 20, streams: 1100, big: 30, nonReaders: 30, duration: 20 * time.Second, timeout: 5 * time.Second}
	}
	for _, o := range []struct{ v, dst *int }{{&only.idle, &sc.idle}, {&only.streamers, &sc.streamers}, {&only.big, &sc.big}, {&only.nonReaders, &sc.nonReaders}} {
		if *o.v >= 0 {
			*o.dst = *o.v
		}
	}
	if only.duration > 0 {
		sc.duration = only.duration
	}
	if *timeout > 0 {
		sc.timeout = *timeout
	}
	if err := run(sc); err != nil {
		fmt.Fprintln(os.Stderr, "ssbhostile:", err)
		os.Exit(1)
	}
}

// stats is what the server process reports.
type stats struct {
	Addr      string `json:"addr,omitempty"`
	ID        string `json:"id,omitempty"`
	HeapInuse uint64 `json:"heapInuse"`
	RSS       uint64 `json:"rss"`
	HWM       uint64 `json:"hwm"`
	Handlers  int64  `json:"goroutines"`
}

func readStats(final bool) stats {
	if final {
		runtime.GC()
		debug.FreeOSMemory()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := stats{HeapInuse: ms.HeapInuse, Handlers: int64(runtime.NumGoroutine())}
	if status, err := procmem.Status(); err == nil {
		st.RSS, st.HWM = status["VmRSS"], status["VmHWM"]
	}
	return st
}

// runServer serves dir, printing its address then its memory every 100 ms
// as JSON lines, and a collected measure for each line read on stdin,
// until stdin ends.
func runServer(dir string, timeout time.Duration) error {
	caps, err := os.ReadFile(filepath.Join(dir, "caps"))
	if err != nil {
		return err
	}
	cfg := server.Config{Path: dir, Host: "127.0.0.1", Caps: strings.TrimSpace(string(caps)),
		Limits: server.Limits{IdleTimeout: timeout, WriteTimeout: timeout, BufferTimeout: timeout}}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("SSBHOSTILE_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	srv, err := server.Open(cfg, log, all.Default()...)
	if err != nil {
		return err
	}
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx, func(a net.Addr) { ready <- a }) }()
	defer func() { cancel(); <-served }()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-served:
		return err
	}
	out := json.NewEncoder(os.Stdout)
	var mu sync.Mutex
	emit := func(st stats) {
		mu.Lock()
		defer mu.Unlock()
		out.Encode(st)
	}
	emit(stats{Addr: addr.String(), ID: srv.ID().String()})
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				emit(readStats(false))
			}
		}
	}()
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		emit(readStats(true))
	}
	close(done)
	return nil
}

// counters of a run.
type counters struct {
	idleClosed, streamsOpened, streamsRefused, bigClosed, nonReadersClosed atomic.Int64
	honestOK, honestFail, knownOK, knownFail                               atomic.Int64
	firstFailure                                                           sync.Map // by "honest"/"known": the first error
	refusedConns                                                           atomic.Int64
	slowest                                                                sync.Map // by "honest"/"known": time.Duration
}

type target struct {
	addr    string
	network [32]byte
	key     ed25519.PublicKey
	id      refs.Feed
}

func run(sc scale) error {
	dir, err := os.MkdirTemp("", "ssbhostile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var t target
	rand.Read(t.network[:])
	caps := base64.StdEncoding.EncodeToString(t.network[:])
	if err := os.WriteFile(filepath.Join(dir, "caps"), []byte(caps), 0o600); err != nil {
		return err
	}
	_, known, _ := ed25519.GenerateKey(nil)
	book := []map[string]string{{"address": "net:127.0.0.1:1~shs:" + base64.StdEncoding.EncodeToString(known.Public().(ed25519.PublicKey)), "key": "", "source": "manual"}}
	b, _ := json.Marshal(book)
	if err := os.WriteFile(filepath.Join(dir, "gossip.json"), b, 0o600); err != nil {
		return err
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-serve", dir, "-timeout", sc.timeout.String())
	cmd.Stderr = io.Discard
	if os.Getenv("SSBHOSTILE_LOG") != "" {
		cmd.Stderr = os.Stderr
	}
	toChild, _ := cmd.StdinPipe()
	fromChild, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	defer toChild.Close()
	lines := json.NewDecoder(fromChild)
	var first stats
	if err := lines.Decode(&first); err != nil {
		return fmt.Errorf("server start: %w", err)
	}
	t.addr = first.Addr
	if t.id, err = refs.ParseFeed(first.ID); err != nil {
		return err
	}
	t.key = t.id.PublicKey()

	var peak stats
	samples := make(chan stats, 16)
	go func() {
		defer close(samples)
		for {
			var st stats
			if lines.Decode(&st) != nil {
				return
			}
			samples <- st
		}
	}()
	var sampled sync.WaitGroup
	var last stats
	sampled.Go(func() {
		for st := range samples {
			peak.HeapInuse = max(peak.HeapInuse, st.HeapInuse)
			peak.RSS = max(peak.RSS, st.RSS)
			peak.HWM = max(peak.HWM, st.HWM)
			peak.Handlers = max(peak.Handlers, st.Handlers)
			last = st
		}
	})

	fmt.Printf("server: %s; attackers: %d idle, %d × %d live streams, %d slow 1 MiB frames, %d non-readers; server timeouts %v; %v\n",
		t.addr, sc.idle, sc.streamers, sc.streams, sc.big, sc.nonReaders, sc.timeout, sc.duration)
	ctx, cancel := context.WithTimeout(context.Background(), sc.duration)
	defer cancel()
	var c counters
	var wg sync.WaitGroup
	start := time.Now()
	for range sc.idle {
		wg.Go(func() { idle(ctx, t, &c) })
	}
	for range sc.streamers {
		wg.Go(func() { streamer(ctx, t, sc.streams, &c) })
	}
	for range sc.big {
		wg.Go(func() { bigFrame(ctx, t, &c) })
	}
	for range sc.nonReaders {
		wg.Go(func() { nonReader(ctx, t, &c) })
	}
	wg.Go(func() { honest(ctx, t, nil, &c.honestOK, &c.honestFail, &c, "honest") })
	wg.Go(func() { honest(ctx, t, known, &c.knownOK, &c.knownFail, &c, "known") })
	wg.Wait()
	elapsed := time.Since(start)

	// The attackers have left: what does the server keep?
	fmt.Fprintln(toChild, "measure")
	toChild.Close()
	sampled.Wait()
	cmd.Wait()

	mib := func(n uint64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
	fmt.Printf("after %v:\n", elapsed.Round(time.Second))
	fmt.Printf("  server peak: heap in use %s, RSS %s (VmHWM %s), %d goroutines\n", mib(peak.HeapInuse), mib(peak.RSS), mib(peak.HWM), peak.Handlers)
	fmt.Printf("  server after the attackers left (after GC): heap in use %s, RSS %s, %d goroutines\n", mib(last.HeapInuse), mib(last.RSS), last.Handlers)
	fmt.Printf("  idle strangers closed: %d of %d\n", c.idleClosed.Load(), sc.idle)
	fmt.Printf("  attackers' connections refused or failed: %d\n", c.refusedConns.Load())
	fmt.Printf("  live streams refused: %d, not refused: %d\n", c.streamsRefused.Load(), c.streamsOpened.Load())
	fmt.Printf("  slow big frames closed: %d of %d\n", c.bigClosed.Load(), sc.big)
	fmt.Printf("  non-readers closed: %d of %d\n", c.nonReadersClosed.Load(), sc.nonReaders)
	firstErr := func(name string) string {
		d, _ := c.slowest.Load(name)
		out := fmt.Sprintf(", slowest %v", d)
		if e, ok := c.firstFailure.Load(name); ok {
			out += " (first failure: " + e.(string) + ")"
		}
		return out
	}
	fmt.Printf("  honest strangers (manifest): %d ok, %d refused or failed%s\n", c.honestOK.Load(), c.honestFail.Load(), firstErr("honest"))
	fmt.Printf("  known peer (manifest): %d ok, %d failed%s\n", c.knownOK.Load(), c.knownFail.Load(), firstErr("known"))
	if c.knownFail.Load() > 0 || c.knownOK.Load() == 0 {
		return errors.New("the known peer was not served throughout")
	}
	return nil
}

// dial authenticates with key (a new one when nil).
func dial(ctx context.Context, t target, key ed25519.PrivateKey) (net.Conn, error) {
	if key == nil {
		_, key, _ = ed25519.GenerateKey(nil)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if ctx.Value(smallBuffers{}) != nil { // the kernel reads little for a non-reader
		raw.(*net.TCPConn).SetReadBuffer(4 << 10)
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := shs.ClientConn(hctx, raw, t.network, key, t.key)
	if err != nil {
		raw.Close()
		return nil, err
	}
	return c, nil
}

// abort closes conn at once: box-stream's Close says goodbye, which would
// wait behind a write blocked on a peer that does not read.
func abort(conn net.Conn) {
	conn.SetDeadline(time.Now())
	conn.Close()
}

// smallBuffers marks the context of a dial whose socket should buffer
// little.
type smallBuffers struct{}

// closedBefore reports whether the server ends conn before ctx ends; the
// connection is closed when it returns.
func closedBefore(ctx context.Context, conn net.Conn) bool {
	stop := context.AfterFunc(ctx, func() { abort(conn) })
	defer stop()
	io.Copy(io.Discard, conn)
	conn.Close()
	return ctx.Err() == nil
}

func idle(ctx context.Context, t target, c *counters) {
	conn, err := dial(ctx, t, nil)
	if err != nil {
		c.refusedConns.Add(1)
		return
	}
	if closedBefore(ctx, conn) {
		c.idleClosed.Add(1)
	}
}

func streamer(ctx context.Context, t target, n int, c *counters) {
	conn, err := dial(ctx, t, nil)
	if err != nil {
		c.refusedConns.Add(1)
		return
	}
	e := muxrpc.NewEndpoint(conn, nil)
	served := make(chan struct{})
	go func() { e.Serve(ctx); close(served) }()
	defer func() { e.Close(); <-served }()
	args := map[string]any{"id": t.id.String(), "live": true}
	var streams sync.WaitGroup
	for range n {
		s, err := e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, args)
		if err != nil {
			return
		}
		streams.Go(func() {
			_, err := s.Recv(ctx)
			var re *muxrpc.Error
			if errors.As(err, &re) {
				c.streamsRefused.Add(1)
			} else {
				c.streamsOpened.Add(1)
			}
		})
	}
	<-ctx.Done()
	streams.Wait()
}

func bigFrame(ctx context.Context, t target, c *counters) {
	conn, err := dial(ctx, t, nil)
	if err != nil {
		c.refusedConns.Add(1)
		return
	}
	head, _ := muxrpc.AppendPacket(nil, muxrpc.Packet{Req: 1, Type: muxrpc.Binary, Body: make([]byte, 1<<20)})
	closed := make(chan bool, 1)
	go func() { closed <- closedBefore(ctx, conn) }()
	conn.Write(head[:muxrpc.HeaderSize])
	chunk := make([]byte, 16<<10)
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for sent := 0; sent+len(chunk) < 1<<20; sent += len(chunk) {
		if _, err := conn.Write(chunk); err != nil {
			break
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	if <-closed {
		c.bigClosed.Add(1)
	}
}

func nonReader(ctx context.Context, t target, c *counters) {
	conn, err := dial(context.WithValue(ctx, smallBuffers{}, true), t, nil)
	if err != nil {
		c.refusedConns.Add(1)
		return
	}
	stop := context.AfterFunc(ctx, func() { abort(conn) })
	defer stop()
	req, _ := muxrpc.AppendPacket(nil, muxrpc.Packet{Req: 1, Type: muxrpc.JSON, Body: []byte(`{"name":["manifest"],"type":"async","args":[]}`)})
	for i := int32(1); ; i++ {
		req[5], req[6], req[7], req[8] = byte(i>>24), byte(i>>16), byte(i>>8), byte(i)
		if _, err := conn.Write(req); err != nil {
			break
		}
	}
	if ctx.Err() == nil {
		c.nonReadersClosed.Add(1)
	}
	conn.Close()
}

// honest connects twice a second with key (a new stranger when nil) and
// calls manifest.
func honest(ctx context.Context, t target, key ed25519.PrivateKey, ok, failed *atomic.Int64, c *counters, name string) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		began := time.Now()
		err := callManifest(context.Background(), t, key) // not cut short by the end of the attack
		if d, _ := c.slowest.Load(name); d == nil || d.(time.Duration) < time.Since(began) {
			c.slowest.Store(name, time.Since(began))
		}
		if err != nil {
			failed.Add(1)
			c.firstFailure.LoadOrStore(name, err.Error())
		} else {
			ok.Add(1)
		}
	}
}

func callManifest(ctx context.Context, t target, key ed25519.PrivateKey) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	conn, err := dial(ctx, t, key)
	if err != nil {
		return err
	}
	e := muxrpc.NewEndpoint(conn, nil)
	served := make(chan struct{})
	go func() { e.Serve(ctx); close(served) }()
	defer func() { e.Close(); <-served }()
	var m map[string]any
	return e.AsyncJSON(ctx, &m, muxrpc.Method{"manifest"})
}
