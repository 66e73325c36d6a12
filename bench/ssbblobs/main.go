// Command ssbblobs measures blobs.add and blobs.get through the RPC over
// loopback (secret handshake, box-stream, muxrpc), this project's server
// and JavaScript ssb-server@16 (ssb-blobs 1.2.2) side by side in one run,
// with the same Go client (ssb/client) as the owner.
//
// An add is timed until the server reports the blob stored (blobs.changes,
// opened before); a get until the last byte, which is checked against the
// id.
//
//	go run ./bench/ssbblobs -n 40 -size 524288
//
// JavaScript ssb-server's blobs.get of blobs of 512 KiB and more lost the
// connection in our runs (after the blob's last byte, before the stream's
// end; not investigated yet): a server that fails is reported as such and
// the run goes on.
//
// It needs node and interop/node_modules (make test installs them).
package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

func main() {
	n := flag.Int("n", 40, "blobs added and read")
	size := flag.Int("size", 512<<10, "bytes per blob (at most 5 MiB, the servers' limit)")
	interop := flag.String("interop", "interop", "path of the interop folder")
	flag.Parse()
	if err := run(*n, *size, *interop); err != nil {
		fmt.Fprintln(os.Stderr, "ssbblobs:", err)
		os.Exit(1)
	}
}

type target struct {
	name  string
	addr  string
	owner *keys.KeyPair
}

func run(n, size int, interop string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	tmp, err := os.MkdirTemp("", "ssbblobs")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	srv, err := sbotrun.Start(ctx, server.Config{Path: filepath.Join(tmp, "go"), Caps: base64.StdEncoding.EncodeToString(caps[:])})
	if err != nil {
		return err
	}
	defer srv.Stop()
	js, err := ssbtest.StartJSServer(ctx, ssbtest.ExecStarter(ctx, interop), filepath.Join(tmp, "js"), caps)
	if err != nil {
		return err
	}
	defer js.Close()

	blobs := make([][]byte, n)
	for i := range blobs {
		blobs[i] = make([]byte, size)
		rand.Read(blobs[i])
	}
	fmt.Printf("%d blobs of %d bytes, loopback, Go client (ssb/client) as the owner\n\n", n, size)
	fmt.Printf("%-18s %14s %14s\n", "server", "add MB/s", "get MB/s")
	var rates [][2]float64
	for _, t := range []target{{"go server (sbot)", srv.Addr, srv.Owner}, {"js ssb-server", js.Addr, js.Keys}} {
		add, get, err := measure(ctx, t, caps, blobs)
		if err != nil {
			fmt.Printf("%-18s failed: %v\n", t.name, err)
			continue
		}
		rates = append(rates, [2]float64{add, get})
		fmt.Printf("%-18s %14.1f %14.1f\n", t.name, add, get)
	}
	if len(rates) == 2 {
		fmt.Printf("\nratio go / js: add %.1fx, get %.1fx\n", rates[0][0]/rates[1][0], rates[0][1]/rates[1][1])
	}
	return nil
}

func id(b []byte) string {
	h := sha256.Sum256(b)
	return "&" + base64.StdEncoding.EncodeToString(h[:]) + ".sha256"
}

// measure adds then gets every blob on one connection and returns MB/s
// (10^6 bytes) of each.
func measure(ctx context.Context, t target, caps [32]byte, blobs [][]byte) (add, get float64, err error) {
	c, err := client.Dial(ctx, t.addr, caps, t.owner, t.owner.Public, nil)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	changes, err := c.Open(muxrpc.Method{"blobs", "changes"}, muxrpc.Source)
	if err != nil {
		return 0, 0, err
	}
	defer changes.Close()
	total := 0
	t0 := time.Now()
	for _, b := range blobs {
		total += len(b)
		st, err := c.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
		if err != nil {
			return 0, 0, err
		}
		for off := 0; off < len(b); off += 64 << 10 {
			if err := st.SendRaw(muxrpc.Binary, b[off:min(off+64<<10, len(b))]); err != nil {
				return 0, 0, fmt.Errorf("blobs.add: %w", err)
			}
		}
		st.Close()
		for want := id(b); ; {
			var got string
			if err := changes.RecvJSON(ctx, &got); err != nil {
				return 0, 0, fmt.Errorf("blobs.changes: %w", err)
			}
			if got == want {
				break
			}
		}
	}
	add = float64(total) / 1e6 / time.Since(t0).Seconds()

	t0 = time.Now()
	for _, b := range blobs {
		st, err := c.Open(muxrpc.Method{"blobs", "get"}, muxrpc.Source, id(b))
		if err != nil {
			return 0, 0, err
		}
		h := sha256.New()
		n := 0
		for {
			p, err := st.Recv(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return 0, 0, fmt.Errorf("blobs.get after %d bytes: %w", n, err)
			}
			h.Write(p.Body)
			n += len(p.Body)
		}
		if n != len(b) || "&"+base64.StdEncoding.EncodeToString(h.Sum(nil))+".sha256" != id(b) {
			return 0, 0, fmt.Errorf("blobs.get: %d bytes that do not hash to the id", n)
		}
	}
	get = float64(total) / 1e6 / time.Since(t0).Seconds()
	return add, get, nil
}
