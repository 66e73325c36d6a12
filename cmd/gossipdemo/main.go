// Command gossipdemo shows secure gossip over loopback TCP.
//
// With no flags it runs the secure-gossip example: three peers in a line
// (p1 - p2 - p3), each on its own TCP port; p1 publishes a message and it
// propagates through p2 to p3. Then a fourth peer connects to p3 late and
// still gets it, which npm secure-gossip cannot do.
//
//	go run ./cmd/gossipdemo             # the line of three, then a late joiner
//	go run ./cmd/gossipdemo -peers 6    # a longer line
//
// With -listen or -connect it is one interactive peer: every line typed is
// published as {"text": line}, and every message received is printed.
// Peers may be Go (this program) or JavaScript (npm secure-gossip).
//
//	go run ./cmd/gossipdemo -listen 127.0.0.1:7100 -keys /tmp/alice.secret
//	go run ./cmd/gossipdemo -connect 127.0.0.1:7100
//
// -keys names an ssb-keys secret file: loaded if it exists, created if not.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/ssb/keys"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "gossipdemo:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fl := flag.NewFlagSet("gossipdemo", flag.ContinueOnError)
	peers := fl.Int("peers", 3, "peers in the line (demo mode)")
	listen := fl.String("listen", "", "listen on this address (interactive mode)")
	connect := fl.String("connect", "", "comma-separated addresses to dial (interactive mode)")
	keyFile := fl.String("keys", "", "ssb-keys secret file, created if missing (interactive mode)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *listen == "" && *connect == "" {
		if *peers < 2 {
			return errors.New("-peers must be at least 2")
		}
		return line(ctx, *peers, stdout)
	}
	return interactive(ctx, *listen, *connect, *keyFile, stdin, stdout)
}

// printer serialises output lines.
type printer struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}

// A node is one demo peer with its TCP listener and connections.
type node struct {
	name string
	g    *gossip.Gossip
	ln   net.Listener
	got  chan gossip.Message
	wg   sync.WaitGroup
}

func newNode(ctx context.Context, name string, out *printer) (*node, error) {
	n := &node{name: name, got: make(chan gossip.Message, 16)}
	g, err := gossip.New(gossip.Options{OnMessage: func(m gossip.Message) {
		out.printf("%s message %s from %s\n", name, m.Data, m.Public)
		n.got <- m
	}})
	if err != nil {
		return nil, err
	}
	n.g = g
	if n.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		g.Close()
		return nil, err
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			conn, err := n.ln.Accept()
			if err != nil {
				return
			}
			n.serve(ctx, conn)
		}
	}()
	return n, nil
}

func (n *node) serve(ctx context.Context, conn net.Conn) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.g.ServeConn(ctx, conn)
	}()
}

func (n *node) dial(ctx context.Context, to *node) error {
	conn, err := net.Dial("tcp", to.ln.Addr().String())
	if err != nil {
		return err
	}
	n.serve(ctx, conn)
	return nil
}

func (n *node) close() {
	n.ln.Close()
	n.g.Close()
	n.wg.Wait()
}

// wait returns the next message n delivers, or an error after a timeout.
func (n *node) wait(ctx context.Context) (gossip.Message, error) {
	select {
	case m := <-n.got:
		return m, nil
	case <-time.After(5 * time.Second):
		return gossip.Message{}, fmt.Errorf("%s got nothing within 5 s", n.name)
	case <-ctx.Done():
		return gossip.Message{}, ctx.Err()
	}
}

// line runs the secure-gossip example with k peers, then a late joiner.
func line(ctx context.Context, k int, stdout io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &printer{w: stdout}
	var nodes []*node
	defer func() {
		cancel()
		for _, n := range nodes {
			n.close()
		}
	}()
	for i := range k {
		n, err := newNode(ctx, fmt.Sprintf("p%d", i+1), out)
		if err != nil {
			return err
		}
		nodes = append(nodes, n)
		out.printf("%s is %s, listening on %s\n", n.name, n.g.Public(), n.ln.Addr())
		if i > 0 {
			if err := n.dial(ctx, nodes[i-1]); err != nil {
				return err
			}
		}
	}
	out.printf("%d peers in a line, p1 - ... - p%d; p1 publishes:\n", k, k)
	start := time.Now()
	if _, err := nodes[0].g.Publish(map[string]string{"data": "hello warld"}); err != nil {
		return err
	}
	for _, n := range nodes[1:] {
		if _, err := n.wait(ctx); err != nil {
			return err
		}
	}
	out.printf("every peer has it after %v (a round every %v)\n", time.Since(start).Round(time.Millisecond), gossip.DefaultInterval)

	late, err := newNode(ctx, "late", out)
	if err != nil {
		return err
	}
	nodes = append(nodes, late)
	out.printf("a late peer connects to p%d:\n", k)
	if err := late.dial(ctx, nodes[k-1]); err != nil {
		return err
	}
	if _, err := late.wait(ctx); err != nil {
		return err
	}
	for _, n := range nodes {
		s := n.g.Stats()
		out.printf("%s: %d published, %d delivered, %d duplicates dropped, %d envelope lines sent, %d digests sent\n",
			n.name, s.Published, s.Delivered, s.Duplicates+s.Own, s.Sent, s.DigestsSent)
	}
	return nil
}

// interactive runs one peer: stdin lines are published, messages printed.
func interactive(ctx context.Context, listen, connect, keyFile string, stdin io.Reader, stdout io.Writer) error {
	out := &printer{w: stdout}
	var kp *keys.KeyPair
	if keyFile != "" {
		var err error
		if kp, err = loadOrCreate(keyFile); err != nil {
			return err
		}
	}
	g, err := gossip.New(gossip.Options{
		Config: gossip.Config{Keys: kp},
		OnMessage: func(m gossip.Message) {
			out.printf("%s (seq %d, signed seq %v): %s\n", m.Public, m.Seq, m.SignedSeq, m.Data)
		},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		g.Close()
		wg.Wait()
	}()
	serve := func(conn net.Conn) {
		out.printf("connected to %s\n", conn.RemoteAddr())
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := g.ServeConn(ctx, conn)
			out.printf("disconnected from %s (%v)\n", conn.RemoteAddr(), err)
		}()
	}
	out.printf("I am %s\n", g.Public())
	if listen != "" {
		ln, err := net.Listen("tcp", listen)
		if err != nil {
			return err
		}
		out.printf("listening on %s\n", ln.Addr())
		context.AfterFunc(ctx, func() { ln.Close() })
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				serve(conn)
			}
		}()
	}
	for addr := range strings.SplitSeq(connect, ",") {
		if addr = strings.TrimSpace(addr); addr == "" {
			continue
		}
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		serve(conn)
	}
	lines := make(chan string)
	go func() { // ends with stdin; not waited for, as a read cannot be interrupted
		sc := bufio.NewScanner(stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case text, ok := <-lines:
			if !ok {
				return nil
			}
			if _, err := g.Publish(map[string]string{"text": text}); err != nil {
				return err
			}
		}
	}
}

// loadOrCreate loads an ssb-keys secret file, or creates one.
func loadOrCreate(path string) (*keys.KeyPair, error) {
	kp, err := keys.Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return kp, err
	}
	if kp, err = keys.Generate(nil); err != nil {
		return nil, err
	}
	return kp, keys.Save(path, kp)
}
