// Command ssbrpc measures the SSB transport and RPC stack, Go and
// JavaScript side by side in one run, on loopback:
//
//   - connections per second: TCP connect, secret handshake, box-stream,
//     one whoami call, goodbye;
//   - createHistoryStream of one feed of N messages: messages per second.
//
// The same feed (N messages of one author, signed in Go) is loaded into
// this project's server (sbot) and into JavaScript ssb-server@16, then read
// by the Go client and by JavaScript ssb-client@4.9.0, each from each.
//
//	go run ./bench/ssbrpc -n 10000
//
// It needs node and interop/node_modules (make test installs them).
package main

import (
	"bufio"
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
	"time"

	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

type target struct {
	name  string
	addr  string
	owner *keys.KeyPair
}

type result struct {
	ConnectsPerSec float64 `json:"connectsPerSec"`
	Messages       int     `json:"messages"`
	MessagesPerSec float64 `json:"messagesPerSec"`
}

func main() {
	n := flag.Int("n", 10000, "messages in the feed")
	conns := flag.Int("connections", 100, "connections for the connection rate")
	interop := flag.String("interop", "interop", "path of the interop folder")
	flag.Parse()
	if err := run(*n, *conns, *interop); err != nil {
		fmt.Fprintln(os.Stderr, "ssbrpc:", err)
		os.Exit(1)
	}
}

func run(n, conns int, interop string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	capsB64 := base64.StdEncoding.EncodeToString(caps[:])
	tmp, err := os.MkdirTemp("", "ssbrpc")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	// The feed: n messages of one author.
	author, _ := keys.Generate(nil)
	raws, err := ssbtest.Feed(author, n, float64(time.Now().UnixMilli())-float64(n))
	if err != nil {
		return err
	}

	// This project's server.
	srv, err := sbotrun.Start(ctx, server.Config{Path: filepath.Join(tmp, "go"), Caps: capsB64})
	if err != nil {
		return err
	}
	defer srv.Stop()
	for i := 0; i < len(raws); i += 1000 {
		if _, err := srv.Store().Append(ctx, raws[i:min(i+1000, len(raws))]...); err != nil {
			return fmt.Errorf("loading the Go server: %w", err)
		}
	}
	goTarget := target{"go server (sbot)", srv.Addr, srv.Owner}

	// JavaScript ssb-server, loaded with the same feed.
	js, err := ssbtest.StartJSServer(ctx, ssbtest.ExecStarter(ctx, interop), filepath.Join(tmp, "js"), caps)
	if err != nil {
		return err
	}
	defer js.Close()
	jsTarget := target{"js ssb-server", js.Addr, js.Keys}
	t0 := time.Now()
	if err := ssbtest.Load(ctx, js.Client, author.ID, raws); err != nil {
		return fmt.Errorf("loading ssb-server: %w", err)
	}
	loadJS := time.Since(t0)

	fmt.Printf("feed of %d messages (%d bytes on average), loopback, %d connections\n", n, avg(raws), conns)
	fmt.Printf("loading ssb-server through createWriteStream: %.0f messages/s\n\n", float64(n)/loadJS.Seconds())
	fmt.Printf("%-22s %-18s %16s %18s\n", "client", "server", "connections/s", "history msgs/s")
	results := map[string]result{}
	for _, t := range []target{goTarget, jsTarget} {
		r, err := goClient(ctx, t, caps, author, conns)
		if err != nil {
			return fmt.Errorf("go client -> %s: %w", t.name, err)
		}
		results["go->"+t.name] = r
		fmt.Printf("%-22s %-18s %16.0f %18.0f\n", "go (ssb/client)", t.name, r.ConnectsPerSec, r.MessagesPerSec)
		r, err = jsClient(ctx, interop, t, capsB64, author, conns)
		if err != nil {
			return fmt.Errorf("js client -> %s: %w", t.name, err)
		}
		results["js->"+t.name] = r
		fmt.Printf("%-22s %-18s %16.0f %18.0f\n", "js ssb-client", t.name, r.ConnectsPerSec, r.MessagesPerSec)
	}
	g, j := results["go->"+goTarget.name], results["js->"+jsTarget.name]
	fmt.Printf("\nratio go<->go / js<->js: connections %.1fx, history stream %.1fx\n",
		g.ConnectsPerSec/j.ConnectsPerSec, g.MessagesPerSec/j.MessagesPerSec)
	return nil
}

func avg(raws [][]byte) int {
	total := 0
	for _, r := range raws {
		total += len(r)
	}
	return total / len(raws)
}

func goClient(ctx context.Context, t target, caps [32]byte, author *keys.KeyPair, conns int) (result, error) {
	var r result
	t0 := time.Now()
	for range conns {
		c, err := client.Dial(ctx, t.addr, caps, t.owner, t.owner.Public, nil)
		if err != nil {
			return r, err
		}
		var who struct{ ID string }
		if err := c.AsyncJSON(ctx, &who, muxrpc.Method{"whoami"}); err != nil {
			return r, err
		}
		c.Close()
	}
	r.ConnectsPerSec = float64(conns) / time.Since(t0).Seconds()

	c, err := client.Dial(ctx, t.addr, caps, t.owner, t.owner.Public, nil)
	if err != nil {
		return r, err
	}
	defer c.Close()
	t0 = time.Now()
	s, err := c.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, map[string]any{"id": author.ID.String()})
	if err != nil {
		return r, err
	}
	for {
		var item struct {
			Key   string
			Value json.RawMessage
		}
		err := s.RecvJSON(ctx, &item)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return r, err
		}
		r.Messages++
	}
	r.MessagesPerSec = float64(r.Messages) / time.Since(t0).Seconds()
	return r, nil
}

func jsClient(ctx context.Context, interop string, t target, caps string, author *keys.KeyPair, conns int) (result, error) {
	host, port, _ := net.SplitHostPort(t.addr)
	p, _ := strconv.Atoi(port)
	cfg, _ := json.Marshal(map[string]any{
		"host": host, "port": p, "key": t.owner.ID.String(), "caps": caps,
		"keys": map[string]string{
			"curve":   "ed25519",
			"public":  base64.StdEncoding.EncodeToString(t.owner.Public) + ".ed25519",
			"private": base64.StdEncoding.EncodeToString(t.owner.Private) + ".ed25519",
			"id":      t.owner.ID.String(),
		},
		"feed": author.ID.String(), "connections": conns,
	})
	cmd := exec.CommandContext(ctx, "node", filepath.Join(interop, "bench-ssb.js"), string(cfg))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return result{}, err
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer cmd.Wait()
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		return result{}, fmt.Errorf("bench-ssb.js: %w", err)
	}
	var r result
	return r, json.Unmarshal(line, &r)
}
