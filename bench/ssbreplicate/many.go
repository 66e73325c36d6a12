package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
)

// runMany replicates feeds×per messages from a source to a sink for each
// pair of kinds, then reconnects the restarted sink.
func runMany(feeds, per int, interop string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	tmp, err := os.MkdirTemp("", "ssbreplicate-many")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	authors := make([]*keys.KeyPair, feeds)
	all := make([][][]byte, feeds)
	for i := range authors {
		authors[i], _ = keys.Generate(nil)
		if all[i], err = ssbtest.Feed(authors[i], per, 1.7e12); err != nil {
			return err
		}
	}
	fmt.Printf("\n%d feeds of %d messages, the sink follows the source, which follows them (loopback)\n", feeds, per)
	fmt.Printf("%-40s %8s %12s %12s %22s %14s\n", "source -> sink", "seconds", "messages/s", "wire bytes", "sink's notes/requests", "reconnect B")
	for i, pair := range pairs([][2]string{{"go", "go"}, {"go-legacy", "go-legacy"}, {"js", "js"}}) {
		dir := filepath.Join(tmp, strconv.Itoa(i))
		if err := many(ctx, pair, dir, caps, interop, authors, all); err != nil {
			return fmt.Errorf("%s -> %s: %w", pair[0], pair[1], err)
		}
	}
	return nil
}

func many(ctx context.Context, pair [2]string, dir string, caps [32]byte, interop string, authors []*keys.KeyPair, all [][][]byte) error {
	src, err := start(ctx, pair[0], filepath.Join(dir, "src"), caps, interop)
	if err != nil {
		return err
	}
	defer func() { src.stop() }()
	dst, err := start(ctx, pair[1], filepath.Join(dir, "dst"), caps, interop)
	if err != nil {
		return err
	}
	defer func() { dst.stop() }()
	var m any
	total := 0
	for i, a := range authors {
		if err := loadFeed(ctx, src, a.ID, all[i]); err != nil {
			return err
		}
		if err := src.c.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, map[string]any{"type": "contact", "contact": a.ID.String(), "following": true}); err != nil {
			return err
		}
		total += len(all[i])
	}
	if err := dst.c.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, map[string]any{"type": "contact", "contact": src.id.ID.String(), "following": true}); err != nil {
		return err
	}
	px, err := newCounter(src.addr)
	if err != nil {
		return err
	}
	defer px.close()
	stopProfile := func() {}
	if pair[0] == "go" {
		stopProfile = startProfile()
	}
	t0 := time.Now()
	if err := dst.c.AsyncJSON(ctx, &m, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(px.addr(), src.id.ID)); err != nil {
		return err
	}
	for _, a := range authors {
		if err := ssbtest.WaitSeq(ctx, dst.c, a.ID, int64(len(all[0]))); err != nil {
			return err
		}
	}
	secs := time.Since(t0).Seconds()
	stopProfile()
	wire := px.bytes.Load()
	ask := "-"
	if st, ok := replStats(ctx, dst); ok {
		if st.Notes > 0 {
			ask = fmt.Sprintf("%d notes, %d B", st.Notes, st.NoteBytes)
		} else {
			ask = fmt.Sprintf("%d requests, %d B", st.Requests, st.RequestBytes)
		}
	}

	// Restart the sink on its data and connect again: nothing is new.
	dst.stop()
	px.cut()
	if dst, err = start(ctx, pair[1], filepath.Join(dir, "dst"), caps, interop); err != nil {
		return err
	}
	px.bytes.Store(0)
	if err := dst.c.AsyncJSON(ctx, &m, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(px.addr(), src.id.ID)); err != nil {
		return err
	}
	time.Sleep(2 * time.Second)
	fmt.Printf("%-40s %8.2f %12.0f %12d %22s %14d\n", src.name+" -> "+dst.name, secs, float64(total)/secs, wire, ask, px.bytes.Load())
	return nil
}

// loadFeed adds a feed to a server: in one createWriteStream.
func loadFeed(ctx context.Context, p *peer, author refs.Feed, raws [][]byte) error {
	return ssbtest.Load(ctx, p.c, author, raws)
}

// replStats reads the replication counters from a Go server's status.
func replStats(ctx context.Context, p *peer) (replicate.Stats, bool) {
	var st struct {
		Replication *replicate.Stats `json:"replication"`
	}
	var raw json.RawMessage
	if err := p.c.AsyncJSON(ctx, &raw, muxrpc.Method{"status"}); err != nil || json.Unmarshal(raw, &st) != nil || st.Replication == nil {
		return replicate.Stats{}, false
	}
	return *st.Replication, true
}

// counter is a TCP proxy to a target that counts the bytes both ways.
type counter struct {
	ln     net.Listener
	bytes  atomic.Int64
	mu     sync.Mutex
	conns  []net.Conn
	wg     sync.WaitGroup
	target string
}

func newCounter(target string) (*counter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &counter{ln: ln, target: target}
	c.wg.Go(func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			c.mu.Lock()
			c.conns = append(c.conns, in, out)
			c.mu.Unlock()
			c.wg.Go(func() { c.copy(out, in) })
			c.wg.Go(func() { c.copy(in, out) })
		}
	})
	return c, nil
}

func (c *counter) copy(dst, src net.Conn) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			c.bytes.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

func (c *counter) addr() string { return c.ln.Addr().String() }

// cut closes the proxied connections.
func (c *counter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, x := range c.conns {
		x.Close()
	}
	c.conns = nil
}

func (c *counter) close() {
	c.ln.Close()
	c.cut()
	c.wg.Wait()
}
