package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer runs sbkv in-process with its input and output as pipes.
type peer struct {
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

func startPeer(t *testing.T, ctx context.Context, listen string, connect []string) *peer {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &peer{in: inW, lines: make(chan string, 100), done: make(chan error, 1)}
	log := slog.New(slog.DiscardHandler)
	go func() {
		p.done <- run(ctx, log, "", listen, connect, inR, outW)
		outW.Close()
		inR.Close()
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	return p
}

// expect waits for an output line containing want.
func (p *peer) expect(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no output line with %q within 10s", want)
		}
	}
}

func (p *peer) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

func TestTwoPeersReplicateLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startPeer(t, ctx, "127.0.0.1:0", nil)
	addr := strings.TrimPrefix(a.expect(t, "listening on "), "sbkv: listening on ")
	a.send(t, `set before {"n":1}`)
	a.expect(t, `change "before" = {"n":1}`)

	b := startPeer(t, ctx, "", []string{addr})
	b.expect(t, `change "before" = {"n":1}`) // history
	b.send(t, "set greeting héllo wörld")
	a.expect(t, `change "greeting" = "h\u00e9llo w\u00f6rld"`) // live, B to A
	a.send(t, "del before")
	b.expect(t, `change "before" = null`) // live, A to B
	b.send(t, "dump")
	b.expect(t, `{"greeting":"h\u00e9llo w\u00f6rld"}`)

	b.in.Close() // end of input ends the program
	if err := <-b.done; err != nil {
		t.Fatal(err)
	}
	a.in.Close()
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
	for range a.lines {
	}
	for range b.lines {
	}
}
