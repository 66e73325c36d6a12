package model_test

import (
	"bytes"
	"context"
	"io"
	"net"
	"strconv"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// BenchmarkInitialSync replicates a model of 100,000 keys to an empty one
// over loopback TCP in one process; see bench/sbrepl for the two-process
// comparison with npm scuttlebutt.
func BenchmarkInitialSync(b *testing.B) {
	const n = 100000
	src := model.New("S")
	for i := range n {
		src.Set("k"+strconv.Itoa(i), map[string]any{"i": i, "s": "value-" + strconv.Itoa(i)})
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go src.ServeConn(ctx, c)
		}
	}()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		dst := model.New("F")
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		synced := make(chan struct{})
		s := dst.NewStream(scuttlebutt.OnSyncReceived(func() { close(synced) }))
		cctx, ccancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Serve(cctx, c) }()
		<-synced
		ccancel()
		<-done
		if dst.Len() != n {
			b.Fatalf("got %d keys", dst.Len())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// BenchmarkReceive applies a 100,000-key history, already encoded as it
// arrives from a peer, to an empty model in 32 KiB writes.
func BenchmarkReceive(b *testing.B) {
	const n = 100000
	src := model.New("S")
	for i := range n {
		src.Set("k"+strconv.Itoa(i), map[string]any{"i": i, "s": "value-" + strconv.Itoa(i)})
	}
	var wire bytes.Buffer
	s := src.NewStream(scuttlebutt.Tail(false), scuttlebutt.Writable(false))
	if _, err := s.Drain(&wire); err != io.EOF {
		b.Fatal(err)
	}
	data := wire.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		dst := model.New("F")
		in := dst.NewStream(scuttlebutt.Readable(false))
		for p := data; len(p) > 0; {
			k := min(len(p), 32<<10)
			if _, err := in.Write(p[:k]); err != nil {
				b.Fatal(err)
			}
			p = p[k:]
		}
		if dst.Len() != n {
			b.Fatalf("got %d keys", dst.Len())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}
