// Package ssbtest holds what the SSB tests and benchmarks share: feeds of
// signed messages, and a JavaScript ssb-server@16 on loopback with an owner
// connection to it.
package ssbtest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// Feed returns n signed post messages of author, in order, as compact JSON,
// with timestamps from start (milliseconds) one apart.
func Feed(author *keys.KeyPair, n int, start float64) ([][]byte, error) {
	raws := make([][]byte, 0, n)
	var prev message.FeedState
	for i := range n {
		m, err := message.Create(author, nil, &prev, start+float64(i), map[string]any{"type": "post", "text": "message " + strconv.Itoa(i), "i": i})
		if err != nil {
			return nil, err
		}
		raws = append(raws, m.Raw)
		prev = m.State()
	}
	return raws, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Address returns the multiserver address of a server: net:ADDR~shs:KEY.
func Address(addr string, id refs.Feed) string {
	key := strings.TrimSuffix(strings.TrimPrefix(id.String(), "@"), ".ed25519")
	return "net:" + addr + "~shs:" + key
}

// A Starter runs interop/ssb-server-peer.js with its configuration and
// returns a function that stops it.
type Starter func(config string) (stop func(), err error)

// ExecStarter runs the script with node from the interop folder, for
// programs; tests use oracle.Runner, which binds the process to the test.
func ExecStarter(ctx context.Context, interop string) Starter {
	return func(config string) (func(), error) {
		cmd := exec.CommandContext(ctx, "node", filepath.Join(interop, "ssb-server-peer.js"), config)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("starting ssb-server: %w", err)
		}
		return func() { stdin.Close(); cmd.Wait() }, nil // it stops when its input ends
	}
}

// A JSServer is a running JavaScript ssb-server and a connection to it as
// its owner.
type JSServer struct {
	Keys   *keys.KeyPair // the server's identity
	Port   int
	Addr   string // 127.0.0.1:Port
	Client *client.Client
	stop   func()
}

// StartJSServer starts ssb-server in dir on loopback with network key caps
// and a new identity, and connects to it as the owner, retrying while it
// starts (a few seconds) until ctx ends.
func StartJSServer(ctx context.Context, start Starter, dir string, caps [32]byte) (*JSServer, error) {
	kp, err := keys.Generate(nil)
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	ws, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg, _ := json.Marshal(map[string]any{"dir": dir, "port": port, "wsPort": ws,
		"caps": base64.StdEncoding.EncodeToString(caps[:]), "secret": string(kp.Secret())})
	stop, err := start(string(cfg))
	if err != nil {
		return nil, err
	}
	j := &JSServer{Keys: kp, Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), stop: stop}
	for j.Client == nil {
		if j.Client, err = client.Dial(ctx, j.Addr, caps, kp, kp.Public, nil); err != nil {
			if ctx.Err() != nil {
				stop()
				return nil, fmt.Errorf("ssb-server did not start: %w", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return j, nil
}

// Address returns the server's multiserver address.
func (j *JSServer) Address() string { return Address(j.Addr, j.Keys.ID) }

// Close closes the connection and stops the server.
func (j *JSServer) Close() {
	j.Client.Close()
	j.stop()
}

// Load writes the messages of one author to a server through
// createWriteStream (ssb-server's, or ours) and waits until the server holds
// them all: ssb-server answers the end of the stream before it has added
// everything.
func Load(ctx context.Context, c *client.Client, author refs.Feed, raws [][]byte) error {
	sink, err := c.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		return err
	}
	for _, raw := range raws {
		if err := sink.SendRaw(muxrpc.JSON, raw); err != nil {
			return fmt.Errorf("loading: %w", err)
		}
	}
	sink.Close()
	if _, err := sink.Recv(ctx); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("loading: %w", err)
	}
	return WaitSeq(ctx, c, author, int64(len(raws)))
}

// WaitSeq waits until the server holds feed up to seq, or ctx ends.
func WaitSeq(ctx context.Context, c *client.Client, feed refs.Feed, seq int64) error {
	for {
		var got int64
		c.AsyncJSON(ctx, &got, muxrpc.Method{"latestSequence"}, feed.String())
		if got >= seq {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the server holds %s up to %d of %d: %w", feed, got, seq, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// DialLocal connects to a server's local socket (the owner's rights), serves
// the endpoint, and closes it when the test ends.
func DialLocal(t testing.TB, socket string) *muxrpc.Endpoint {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	e := muxrpc.NewEndpoint(conn, nil)
	done := make(chan struct{})
	go func() { e.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { e.Close(); <-done })
	return e
}
