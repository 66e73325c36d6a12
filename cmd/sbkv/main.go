// Command sbkv is a live replicated key-value store: a scuttlebutt Model
// shared over TCP with other sbkv processes or with JavaScript peers running
// npm scuttlebutt/model.
//
//	sbkv -listen 127.0.0.1:7000                          # first terminal
//	sbkv -keys /tmp/sbkv-b.secret -connect 127.0.0.1:7000  # second terminal
//
// Type commands on standard input:
//
//	set KEY VALUE   set KEY (VALUE is JSON if it parses, a string otherwise)
//	del KEY         delete KEY
//	get KEY         print the value of KEY
//	dump            print the whole store as JSON
//	peers           print the number of connected peers
//	id              print this replica's id
//
// Every change, local or replicated, is printed as it is applied, and so is
// every update rejected because its signature does not verify. Dialed
// connections are retried with back-off until the program ends (Ctrl-D or
// SIGINT).
//
// # Signed updates
//
// Each replica is an Ed25519 identity, kept in an ssb-keys secret file
// (-keys, default $XDG_CONFIG_HOME/sbkv/secret, created on first use), so
// a restart keeps the id. The replica id is the public key
// ("@<base64>.ed25519"). Every update is signed, and an update from a peer
// is applied only when its signature verifies by the key of the id it
// claims (scuttlebutt.Ed25519): a peer, or anyone who can reach the port,
// can add its own keys and values but can never set or delete anything
// under another replica's id, and a forgery is neither applied nor passed
// on. Since the id is the key, no keys need to be exchanged.
//
// By default any replica that signs its own updates may join. With -trust
// (repeatable: an id, or a file of ids, one per line or the JSON key file
// of scuttlebutt.LoadKeys), only the listed replicas' updates (and this
// one's) are applied; the others are rejected as unknown.
//
// A key file is locked while sbkv runs: two processes sharing an id would
// lose each other's updates, so a second one on the same file fails and
// must be given its own -keys FILE.
//
// -insecure restores the unsigned protocol of npm scuttlebutt without
// security (for JavaScript peers that do not sign): a random id (or -id),
// and every update from a peer is believed.
//
// # Idle peers
//
// A connection on which nothing arrives for -idle (default 5 minutes), or
// whose peer reads nothing of what is sent for as long, is closed. The
// scuttlebutt protocol has no ping, so sbkv sends a line holding the JSON
// string "ping", which npm scuttlebutt and this package ignore, whenever it
// has sent nothing for a third of -idle (at most a minute): two sbkv
// processes stay connected however quiet they are, as long as each one's
// -idle is over twice the other's ping interval. A JavaScript peer sends no
// such line, so it is closed once quiet for -idle; dialed connections
// (-connect) are dialed again at once, and what was missed is exchanged
// by the clocks. -idle 0 keeps connections forever.
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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// DefaultIdle is how long a connection may stay silent (-idle).
const DefaultIdle = 5 * time.Minute

// options are the command line's settings.
type options struct {
	listen   string
	connect  []string
	keys     string        // the secret file; ignored with insecure
	trust    []string      // ids or files of ids; empty: any signed replica
	insecure bool          // unsigned updates, believed
	id       string        // the replica id with insecure ("" for random)
	idle     time.Duration // 0: never close a connection for silence
}

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

const usageHead = `usage: sbkv [-listen ADDR] [-connect ADDR]... [options]

A replicated key-value store. Type on standard input:
  set KEY VALUE | del KEY | get KEY | dump | peers | id

Updates are signed with this replica's Ed25519 key (-keys) and an update is
applied only if it is signed by the replica whose id it carries, so no peer
can forge another's updates. Any replica that signs may join, unless -trust
lists who may. -insecure speaks unsigned npm scuttlebutt and believes peers.
A connection silent for -idle is closed; sbkv sends a "ping" line when it has
been quiet for a third of that, so idle sbkv peers stay connected.

options:
`

func defaultKeys() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "sbkv.secret"
	}
	return filepath.Join(dir, "sbkv", "secret")
}

func main() {
	var o options
	var connect, trust list
	flag.StringVar(&o.listen, "listen", "", "address to accept peers on, e.g. 127.0.0.1:7000")
	flag.Var(&connect, "connect", "`ADDR` of a peer to dial (repeatable)")
	flag.StringVar(&o.keys, "keys", defaultKeys(), "this replica's key file (an ssb-keys secret), created if missing")
	flag.Var(&trust, "trust", "accept only these replicas: an `ID`, or a FILE of ids (repeatable; default: any replica that signs)")
	flag.BoolVar(&o.insecure, "insecure", false, "unsigned updates, believed from any peer (npm scuttlebutt without security)")
	flag.StringVar(&o.id, "id", "", "replica id with -insecure (random when empty)")
	flag.DurationVar(&o.idle, "idle", DefaultIdle, "close a connection silent for this long (0: never)")
	verbose := flag.Bool("v", false, "log connections")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usageHead)
		flag.PrintDefaults()
	}
	flag.Parse()
	o.connect, o.trust = connect, trust
	if o.listen == "" && len(o.connect) == 0 {
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
	if err := run(ctx, log, o, os.Stdin, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sbkv:", err)
		os.Exit(1)
	}
}

// newModel returns the replica o describes, and a function that releases
// its key file.
func newModel(o options, log *slog.Logger) (*model.Model, func(), error) {
	if o.insecure {
		if len(o.trust) > 0 {
			return nil, nil, errors.New("-trust needs signed updates: it cannot go with -insecure")
		}
		return model.New(o.id, scuttlebutt.WithLogger(log)), func() {}, nil
	}
	if o.id != "" {
		return nil, nil, errors.New("-id is for -insecure: a signed replica's id is its public key (-keys)")
	}
	var trusted scuttlebutt.KeyStore
	if len(o.trust) > 0 {
		k, err := loadTrust(o.trust)
		if err != nil {
			return nil, nil, err
		}
		trusted = k
	}
	kp, release, err := openIdentity(o.keys)
	if err != nil {
		return nil, nil, err
	}
	sec := scuttlebutt.NewEd25519(kp.Private, trusted)
	return model.New("", scuttlebutt.WithLogger(log), scuttlebutt.WithSecurity(sec)), release, nil
}

func run(ctx context.Context, log *slog.Logger, o options, in io.Reader, out io.Writer) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m, release, err := newModel(o, log)
	if err != nil {
		return err
	}
	defer release()
	var outMu sync.Mutex
	printf := func(format string, args ...any) {
		outMu.Lock()
		defer outMu.Unlock()
		fmt.Fprintf(out, format, args...)
	}
	m.OnUpdate(func(u scuttlebutt.Update) {
		var change []json.RawMessage
		if json.Unmarshal(u.Change, &change) == nil && len(change) == 2 {
			printf("change %s = %s (from %s)\n", printable(string(change[0])), printable(string(change[1])), printable(u.Source))
		}
	})
	m.OnUnverified(func(u scuttlebutt.Update, err error) {
		printf("rejected %s from %s: %v\n", printable(string(u.Change)), printable(u.Source), err)
	})
	printf("sbkv: replica %s\n", m.ID())

	var wg sync.WaitGroup
	defer wg.Wait()
	if o.listen != "" {
		ln, err := net.Listen("tcp", o.listen)
		if err != nil {
			return err
		}
		printf("sbkv: listening on %s\n", ln.Addr())
		wg.Go(func() { accept(ctx, log, m, ln, o.idle, &wg) })
		context.AfterFunc(ctx, func() { ln.Close() })
	}
	for _, addr := range o.connect {
		wg.Go(func() { dial(ctx, log, m, addr, o.idle) })
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

// printable returns s if it is printable ASCII, and else s quoted, so that
// an id chosen by a peer cannot send control sequences to the terminal.
func printable(s string) string {
	for i := range len(s) {
		if s[i] < ' ' || s[i] > '~' {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
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
	case "id":
		return m.ID()
	}
	return "commands: set KEY VALUE | del KEY | get KEY | dump | peers | id"
}

func accept(ctx context.Context, log *slog.Logger, m *model.Model, ln net.Listener, idle time.Duration, wg *sync.WaitGroup) {
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
			err := serve(ctx, m, c, idle)
			log.Info("peer gone", "remote", c.RemoteAddr(), "err", err)
		})
	}
}

// dial keeps a connection to addr, retrying with exponential back-off
// (100 ms doubling to 10 s) while ctx lasts.
func dial(ctx context.Context, log *slog.Logger, m *model.Model, addr string, idle time.Duration) {
	const minWait, maxWait = 100 * time.Millisecond, 10 * time.Second
	wait := minWait
	var d net.Dialer
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			log.Info("connected", "addr", addr)
			start := time.Now()
			err = serve(ctx, m, c, idle)
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
