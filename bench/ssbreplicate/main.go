// Command ssbreplicate measures replication of one feed between two
// servers on loopback, this project's (sbot) and JavaScript ssb-server@16,
// in one run: Go to Go, JavaScript to JavaScript, JavaScript to Go and Go to
// JavaScript. The sink follows the feed's author; the clock runs from the
// sink dialing the source (gossip.connect) until the sink holds the whole
// feed. Replication is whatever the pair negotiates (EBT here).
//
//	go run ./bench/ssbreplicate -n 20000
//
// It needs node and interop/node_modules (make test installs them).
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
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
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
	n := flag.Int("n", 20000, "messages in the feed")
	interop := flag.String("interop", "interop", "path of the interop folder")
	flag.Parse()
	if err := run(*n, *interop); err != nil {
		fmt.Fprintln(os.Stderr, "ssbreplicate:", err)
		os.Exit(1)
	}
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
	raws := make([][]byte, 0, n)
	var prev message.FeedState
	ts := float64(time.Now().UnixMilli()) - float64(n)
	for i := range n {
		m, err := message.Create(author, nil, &prev, ts+float64(i), map[string]any{"type": "post", "text": "message " + strconv.Itoa(i), "i": i})
		if err != nil {
			return err
		}
		raws = append(raws, m.Raw)
		prev = m.State()
	}
	fmt.Printf("one feed of %d messages (%d bytes on average), loopback\n", n, avg(raws))
	fmt.Printf("%-32s %10s %14s\n", "source -> sink", "seconds", "messages/s")
	var goGo, jsJS float64
	for i, pair := range [][2]string{{"go", "go"}, {"js", "js"}, {"js", "go"}, {"go", "js"}} {
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
		rate, err := replicate(ctx, src, dst, author, raws)
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
	fmt.Printf("ratio go->go / js->js: %.1fx\n", goGo/jsJS)
	return nil
}

func avg(raws [][]byte) int {
	t := 0
	for _, r := range raws {
		t += len(r)
	}
	return t / len(raws)
}

// replicate loads the feed into src, makes dst follow its author, connects
// and times until dst holds it all. It returns messages per second.
func replicate(ctx context.Context, src, dst *peer, author *keys.KeyPair, raws [][]byte) (float64, error) {
	sink, err := src.c.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		return 0, err
	}
	for _, raw := range raws {
		if err := sink.SendRaw(muxrpc.JSON, raw); err != nil {
			return 0, err
		}
	}
	sink.Close()
	if _, err := sink.Recv(ctx); err != nil && !errors.Is(err, io.EOF) {
		return 0, err
	}
	if err := waitSeq(ctx, src.c, author, int64(len(raws)), 10*time.Minute); err != nil {
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
	key := strings.TrimSuffix(strings.TrimPrefix(src.id.ID.String(), "@"), ".ed25519")
	t0 := time.Now()
	if err := dst.c.AsyncJSON(ctx, &m, muxrpc.Method{"gossip", "connect"}, "net:"+src.addr+"~shs:"+key); err != nil {
		return 0, err
	}
	if err := waitSeq(ctx, dst.c, author, int64(len(raws)), 10*time.Minute); err != nil {
		return 0, err
	}
	return float64(len(raws)) / time.Since(t0).Seconds(), nil
}

func waitSeq(ctx context.Context, c *client.Client, feed *keys.KeyPair, want int64, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		var got int64
		c.AsyncJSON(ctx, &got, muxrpc.Method{"latestSequence"}, feed.ID.String())
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d messages after %v", got, want, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// start runs a server of the kind ("go" or "js") in dir.
func start(ctx context.Context, kind, dir string, caps [32]byte, interop string) (*peer, error) {
	capsB64 := base64.StdEncoding.EncodeToString(caps[:])
	if kind == "go" {
		srv, err := server.Open(server.Config{Path: dir, Host: "127.0.0.1", Caps: capsB64}, nil)
		if err != nil {
			return nil, err
		}
		sctx, stop := context.WithCancel(ctx)
		ready := make(chan net.Addr, 1)
		served := make(chan error, 1)
		go func() { served <- srv.Serve(sctx, func(a net.Addr) { ready <- a }) }()
		addr := (<-ready).String()
		halt := func() { stop(); <-served; srv.Close() }
		id, err := keys.Load(filepath.Join(dir, "secret"))
		if err != nil {
			halt()
			return nil, err
		}
		c, err := client.Dial(ctx, addr, caps, id, id.Public, nil)
		if err != nil {
			halt()
			return nil, err
		}
		return &peer{name: "go (sbot)", addr: addr, id: id, c: c, stop: func() {
			c.Close()
			halt()
		}}, nil
	}
	id, _ := keys.Generate(nil)
	port, ws := freePort(), freePort()
	cfg, _ := json.Marshal(map[string]any{"dir": dir, "port": port, "wsPort": ws, "caps": capsB64, "secret": string(id.Secret())})
	cmd := exec.CommandContext(ctx, "node", filepath.Join(interop, "ssb-server-peer.js"), string(cfg))
	stdin, _ := cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var c *client.Client
	for c == nil {
		var err error
		if c, err = client.Dial(ctx, addr, caps, id, id.Public, nil); err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return &peer{name: "js (ssb-server)", addr: addr, id: id, c: c, stop: func() {
		c.Close()
		stdin.Close()
		cmd.Wait()
	}}, nil
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
