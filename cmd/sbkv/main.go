// Command sbkv is a live replicated key-value store: a scuttlebutt Model
// shared over TCP with other sbkv processes or with JavaScript peers running
// npm scuttlebutt/model.
//
//	sbkv -listen 127.0.0.1:7000            # first terminal
//	sbkv -connect 127.0.0.1:7000           # second terminal
//
// Type commands on standard input:
//
//	set KEY VALUE   set KEY (VALUE is JSON if it parses, a string otherwise)
//	del KEY         delete KEY
//	get KEY         print the value of KEY
//	dump            print the whole store as JSON
//	peers           print the number of connected peers
//
// Every change, local or replicated, is printed as it is applied. Dialed
// connections are retried with back-off until the program ends (Ctrl-D or
// SIGINT).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

type addrs []string

func (a *addrs) String() string     { return strings.Join(*a, ",") }
func (a *addrs) Set(s string) error { *a = append(*a, s); return nil }

func main() {
	var connect addrs
	listen := flag.String("listen", "", "address to accept peers on, e.g. 127.0.0.1:7000")
	flag.Var(&connect, "connect", "address of a peer to dial (repeatable)")
	id := flag.String("id", "", "replica id (random when empty)")
	verbose := flag.Bool("v", false, "log connections")
	flag.Parse()
	if *listen == "" && len(connect) == 0 {
		fmt.Fprintln(os.Stderr, "sbkv: give -listen ADDR and/or -connect ADDR")
		flag.Usage()
		os.Exit(2)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, log, *id, *listen, connect, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sbkv:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, log *slog.Logger, id, listen string, connect []string, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := model.New(id, scuttlebutt.WithLogger(log))
	var outMu sync.Mutex
	printf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	m.OnUpdate(func(u scuttlebutt.Update) {
		var change []json.RawMessage
		if json.Unmarshal(u.Change, &change) == nil && len(change) == 2 {
			printf("change %s = %s (from %s)\n", change[0], change[1], u.Source)
		}
	})
	printf("sbkv: replica %s\n", m.ID())

	var wg sync.WaitGroup
	defer wg.Wait()
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		printf("sbkv: listening on %s\n", ln.Addr())
		wg.Go(func() { accept(ctx, log, m, ln, &wg) })
		context.AfterFunc(ctx, func() { ln.Close() })
	}
	for _, addr := range connect {
		wg.Go(func() { dial(ctx, log, m, addr) })
	}

	lines := make(chan string)
	go func() { // ends with the input; not waited for, as stdin cannot be interrupted
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				cancel()
				return nil
			}
			if msg := command(m, line); msg != "" {
				printf("%s\n", msg)
			}
		}
	}
}

// command runs one line of input and returns what to print.
func command(m *model.Model, line string) string {
	verb, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
	key, arg, _ := strings.Cut(strings.TrimSpace(rest), " ")
	switch verb {
	case "":
		return ""
	case "set":
		if key == "" {
			return "usage: set KEY VALUE"
		}
		var v any = arg
		if json.Valid([]byte(arg)) {
			v = json.RawMessage(arg)
		}
		if err := m.Set(key, v); err != nil {
			return err.Error()
		}
		return ""
	case "del":
		if err := m.Delete(key); err != nil {
			return err.Error()
		}
		return ""
	case "get":
		if v, ok := m.Get(key); ok {
			return string(v)
		}
		return "(not set)"
	case "dump":
		b, _ := m.MarshalJSON()
		return string(b)
	case "peers":
		return fmt.Sprintf("%d peers", m.Streams())
	}
	return "commands: set KEY VALUE | del KEY | get KEY | dump | peers"
}

func accept(ctx context.Context, log *slog.Logger, m *model.Model, ln net.Listener, wg *sync.WaitGroup) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() == nil {
				log.Error("accept", "err", err)
			}
			return
		}
		log.Info("peer connected", "remote", c.RemoteAddr())
		wg.Go(func() {
			err := m.ServeConn(ctx, c)
			log.Info("peer gone", "remote", c.RemoteAddr(), "err", err)
		})
	}
}

// dial keeps a connection to addr, retrying with exponential back-off
// (100 ms doubling to 10 s) while ctx lasts.
func dial(ctx context.Context, log *slog.Logger, m *model.Model, addr string) {
	const minWait, maxWait = 100 * time.Millisecond, 10 * time.Second
	wait := minWait
	var d net.Dialer
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			log.Info("connected", "addr", addr)
			start := time.Now()
			err = m.ServeConn(ctx, c)
			log.Info("disconnected", "addr", addr, "err", err)
			if time.Since(start) > maxWait {
				wait = minWait
			}
		} else if !errors.Is(err, context.Canceled) {
			log.Warn("dial", "addr", addr, "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
		wait = min(2*wait, maxWait)
	}
}
