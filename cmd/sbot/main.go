// Command sbot is a Secure Scuttlebutt server and its command-line client.
//
//	sbot server [--path DIR] [--host H] [--port N] [--caps.shs KEY] [--caps.sign KEY] [--logging.level L] [--local]
//	sbot whoami
//	sbot publish --type post --text "hello"     (any --key value; nested keys with dots; JSON values)
//	sbot feed [--live] [--limit N] [--reverse]  (createFeedStream)
//	sbot log  [--live] [--limit N] [--reverse]  (createLogStream)
//	sbot hist @FEED [--seq N] [--live] [--limit N]   (createHistoryStream)
//	sbot get %MESSAGE
//	sbot blobs.add [FILE]                       (or < FILE; prints the blob's id)
//	sbot blobs.get ID                           (> FILE; the blob's bytes)
//	sbot blobs.has ID, blobs.size ID, blobs.ls, blobs.rm ID
//	sbot call METHOD [ARG...]                   (any method; each ARG is JSON, or a string)
//	sbot repair [--path DIR]                    (rebuild a damaged store; the server stopped)
//	sbot help [COMMAND]
//
// Client commands reach the running server over its local socket
// (<path>/socket) with the owner's rights, as ssb-server's CLI does, and
// print JSON, one value per message.
//
// As in ssb-server, the server options (--path, --host, --port,
// --caps.shs, --caps.sign, --logging.level, --friends.hops,
// --timers.handshake, --timers.inactivity, --local) may come anywhere on the line,
// before or after the command; they are not passed on to the method a
// client command calls. --path (default ~/.ssb-go) selects the data
// directory for every command. Their values are checked before anything is
// written. -h or --help anywhere prints help and does nothing else.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/plugins/lan"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "sbot:", err)
		os.Exit(1)
	}
}

// flags are the --name value pairs of a command line, in order, and its
// positional arguments.
type flags struct {
	names  []string
	values []string // "" for a flag without a value (true)
	args   []string
}

func (f *flags) get(name string) (string, bool) {
	for i := len(f.names) - 1; i >= 0; i-- {
		if f.names[i] == name {
			return f.values[i], true
		}
	}
	return "", false
}

// parseFlags splits args into --name value pairs and positional arguments.
// A flag followed by another flag, or last, has no value (true); --no-name
// is name false.
func parseFlags(args []string) flags {
	var f flags
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, ok := strings.CutPrefix(a, "--")
		if !ok || name == "" {
			f.args = append(f.args, a)
			continue
		}
		if n, v, ok := strings.Cut(name, "="); ok {
			f.names, f.values = append(f.names, n), append(f.values, v)
			continue
		}
		if n, ok := strings.CutPrefix(name, "no-"); ok {
			f.names, f.values = append(f.names, n), append(f.values, "false")
			continue
		}
		if i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") {
			f.names, f.values = append(f.names, name), append(f.values, args[i+1])
			i++
			continue
		}
		f.names, f.values = append(f.names, name), append(f.values, "true")
	}
	return f
}

// jsonValue is a command-line value as JSON: itself when it is JSON (a
// number, true, an object...), a string otherwise.
func jsonValue(s string) json.RawMessage {
	if json.Valid([]byte(s)) && s != "" {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s)
	return b
}

// object builds a JSON object from the flags in their order, nesting dotted
// names: --a.b 1 --c x is {"a":{"b":1},"c":"x"}. A name given more than
// once makes an array: --recps @a --recps @b is {"recps":["@a","@b"]}.
func (f *flags) object() json.RawMessage {
	type node struct {
		keys []string
		vals map[string]any // json.RawMessage or *node
	}
	root := &node{vals: map[string]any{}}
	for i, name := range f.names {
		n := root
		parts := strings.Split(name, ".")
		for _, p := range parts[:len(parts)-1] {
			child, ok := n.vals[p].(*node)
			if !ok {
				child = &node{vals: map[string]any{}}
				if _, seen := n.vals[p]; !seen {
					n.keys = append(n.keys, p)
				}
				n.vals[p] = child
			}
			n = child
		}
		last := parts[len(parts)-1]
		v := jsonValue(f.values[i])
		switch prev := n.vals[last].(type) {
		case nil:
			n.keys = append(n.keys, last)
			n.vals[last] = v
		case json.RawMessage: // given again: an array, as minimist makes it
			n.vals[last] = []json.RawMessage{prev, v}
		case []json.RawMessage:
			n.vals[last] = append(prev, v)
		default:
			n.vals[last] = v
		}
	}
	var write func(n *node) []byte
	write = func(n *node) []byte {
		out := []byte{'{'}
		for i, k := range n.keys {
			if i > 0 {
				out = append(out, ',')
			}
			kb, _ := json.Marshal(k)
			out = append(append(out, kb...), ':')
			switch v := n.vals[k].(type) {
			case *node:
				out = append(out, write(v)...)
			case json.RawMessage:
				out = append(out, v...)
			case []json.RawMessage:
				out = append(out, '[')
				for j, e := range v {
					if j > 0 {
						out = append(out, ',')
					}
					out = append(out, e...)
				}
				out = append(out, ']')
			}
		}
		return append(out, '}')
	}
	return write(root)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	line, err := parseLine(args)
	if err != nil {
		return err
	}
	if line.help || line.cmd == "" {
		printHelp(stdout, line.topic)
		return nil
	}
	path := line.path()
	switch line.cmd {
	case "server":
		return runServer(ctx, path, line, stderr)
	case "repair":
		return runRepair(ctx, path, line, stdout, stderr)
	}
	// The socket is local: the server options select the data directory
	// and are checked, but the others mean nothing to a client.
	cfg := server.Config{Path: path, Port: server.DefaultPort, Caps: server.MainNetCaps}
	if err := line.configure(&cfg); err != nil {
		return err
	}
	c, err := dial(ctx, path)
	if err != nil {
		return err
	}
	defer c.close()
	switch line.cmd {
	case "export":
		return c.export(ctx, parseFlags(line.rest), stdin, stdout, stderr)
	case "import":
		return c.importBundle(ctx, parseFlags(line.rest), stdout, stderr)
	}
	return c.command(ctx, line.cmd, parseFlags(line.rest), stdin, stdout)
}

// runServer runs the server of the data directory path, with the
// configuration of its config file and the line. The configuration is
// validated before anything is written.
func runServer(ctx context.Context, path string, line commandLine, stderr io.Writer) error {
	if len(line.rest) > 0 {
		return fmt.Errorf("server takes only options, not %q (see sbot server -h)", line.rest)
	}
	cfg, err := server.LoadConfig(path)
	if err != nil {
		return err
	}
	if err := line.configure(&cfg); err != nil {
		return err
	}
	level, err := cfg.Level()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	plugins := all.Default()
	if on, given := line.local(); given {
		for _, p := range plugins {
			if l, ok := p.(*lan.Plugin); ok {
				l.SetEnabled(on)
			}
		}
	}
	srv, err := server.Open(cfg, log, plugins...)
	if errors.Is(err, store.ErrDamaged) {
		return fmt.Errorf("%w\nrepair it with: sbot --path %s repair", err, path)
	}
	if err != nil {
		return err
	}
	err = srv.Serve(ctx, nil)
	return errors.Join(err, srv.Close())
}

// client is a connection to the local socket of a running server.
type client struct {
	e    *muxrpc.Endpoint
	done chan error
}

func dial(ctx context.Context, path string) (*client, error) {
	sock := server.SocketPath(path)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server at %s: %w\nIs it running? Start it with: sbot --path %s server", sock, err, path)
	}
	c := &client{e: muxrpc.NewEndpoint(conn, nil), done: make(chan error, 1)}
	go func() { c.done <- c.e.Serve(context.Background()) }()
	return c, nil
}

func (c *client) close() {
	c.e.Close()
	<-c.done
}

func (c *client) command(ctx context.Context, cmd string, f flags, in io.Reader, out io.Writer) error {
	switch cmd {
	case "whoami":
		return c.async(ctx, out, "whoami")
	case "publish":
		content := f.object()
		return c.async(ctx, out, "publish", content)
	case "get":
		if len(f.args) != 1 {
			return errors.New("usage: sbot get %MESSAGE [--private] [--meta]")
		}
		if len(f.names) == 0 {
			return c.async(ctx, out, "get", f.args[0])
		}
		id, _ := json.Marshal(f.args[0])
		return c.async(ctx, out, "get", json.RawMessage(`{"id":`+string(id)+strings.TrimPrefix(withComma(f.object()), "{")))
	case "feed":
		return c.source(ctx, out, "createFeedStream", f.object())
	case "log":
		return c.source(ctx, out, "createLogStream", f.object())
	case "hist":
		opts := f.object()
		if len(f.args) == 1 {
			id, _ := json.Marshal(f.args[0])
			opts = json.RawMessage(`{"id":` + string(id) + strings.TrimPrefix(withComma(opts), "{"))
		} else if _, ok := f.get("id"); !ok {
			return errors.New("usage: sbot hist @FEED [--seq N] [--live] [--limit N]")
		}
		return c.source(ctx, out, "createHistoryStream", opts)
	case "progress":
		if _, watch := f.get("watch"); watch {
			return c.watchProgress(ctx, out)
		}
		return c.async(ctx, out, "progress")
	case "blobs.add":
		if len(f.args) > 1 {
			return errors.New("usage: sbot blobs.add [FILE] (or < FILE)")
		}
		if len(f.args) == 1 {
			file, err := os.Open(f.args[0])
			if err != nil {
				return err
			}
			defer file.Close()
			in = file
		}
		return c.addBlob(ctx, in, out)
	case "call":
		if len(f.args) == 0 {
			return errors.New("usage: sbot call METHOD [ARG...]")
		}
		return c.call(ctx, in, out, f)
	}
	// Any other command is a method, as in ssb-server's command line:
	// sbot status, sbot getLatest @FEED.
	f.args = append([]string{cmd}, f.args...)
	return c.call(ctx, in, out, f)
}

// watchProgress prints a progress line, rewritten in place, until
// replication has caught up with what peers have (or ctx ends).
func (c *client) watchProgress(ctx context.Context, out io.Writer) error {
	for {
		// status has replication's progress and peers (progress has
		// ssb-server's sections: indexes, ooo).
		var st struct {
			Progress struct{ Feeds, Current, Target int64 }
			Peers    []json.RawMessage
		}
		if err := c.e.AsyncJSON(ctx, &st, muxrpc.Method{"status"}); err != nil {
			return err
		}
		r := st.Progress
		pct := 100.0
		if r.Target > 0 {
			pct = 100 * float64(r.Current) / float64(r.Target)
		}
		fmt.Fprintf(out, "\rreplicating %d feeds with %d peers: %d of %d messages (%.1f%%)", r.Feeds, len(st.Peers), r.Current, r.Target, pct)
		if r.Current >= r.Target {
			fmt.Fprintln(out)
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(out)
			return nil
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// withComma turns "{...}" into "{,...}" minus the brace when not empty, so
// that a field can be put in front: used by hist.
func withComma(obj json.RawMessage) string {
	if string(obj) == "{}" {
		return "}"
	}
	return "," + strings.TrimPrefix(string(obj), "{")
}

// call calls any method, finding its type in the server's manifest. A
// sink is given stdin in binary chunks.
func (c *client) call(ctx context.Context, in io.Reader, out io.Writer, f flags) error {
	name := f.args[0]
	var manifest map[string]any
	if err := c.e.AsyncJSON(ctx, &manifest, muxrpc.Method{"manifest"}); err != nil {
		return err
	}
	var typ any = manifest
	for _, p := range strings.Split(name, ".") {
		m, ok := typ.(map[string]any)
		if !ok {
			typ = nil
			break
		}
		typ = m[p]
	}
	var args []any
	for _, a := range f.args[1:] {
		args = append(args, jsonValue(a))
	}
	if len(f.names) > 0 {
		args = append(args, f.object())
	}
	switch typ {
	case "async", "sync":
		return c.async(ctx, out, name, args...)
	case "source":
		return c.source(ctx, out, name, args...)
	case "sink":
		st, err := c.e.Open(muxrpc.ParseMethod(name), muxrpc.Sink, args...)
		if err != nil {
			return err
		}
		_, err = c.sink(ctx, st, in)
		return err
	case nil:
		return fmt.Errorf("no method %q in the server's manifest", name)
	}
	return fmt.Errorf("method %q is a %v method, which the command line cannot call", name, typ)
}

func (c *client) async(ctx context.Context, out io.Writer, name string, args ...any) error {
	p, err := c.e.Async(ctx, muxrpc.ParseMethod(name), args...)
	if err != nil {
		return err
	}
	return print(out, p)
}

func (c *client) source(ctx context.Context, out io.Writer, name string, args ...any) error {
	s, err := c.e.Open(muxrpc.ParseMethod(name), muxrpc.Source, args...)
	if err != nil {
		return err
	}
	defer s.Close()
	for {
		p, err := s.Recv(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil // interrupted
			}
			return err
		}
		if err := print(out, p); err != nil {
			return err
		}
	}
}

// print writes a packet's body: JSON with two-space indentation, as
// ssb-server's command line prints it; a string as it is; binary bytes
// raw (a blob), with nothing added.
func print(out io.Writer, p muxrpc.Packet) error {
	if p.Type == muxrpc.Binary {
		_, err := out.Write(p.Body)
		return err
	}
	if p.Type != muxrpc.JSON {
		_, err := fmt.Fprintf(out, "%s\n", p.Body)
		return err
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, p.Body, "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	_, err := fmt.Fprintln(out, buf.String())
	return err
}

// sink writes in to a sink stream in binary chunks of 64 KiB, ends it, and
// returns how the server ended it (its refusal, if it refused the stream
// before the end) and the SHA-256 of what was sent.
func (c *client) sink(ctx context.Context, st *muxrpc.Stream, in io.Reader) ([]byte, error) {
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for {
		n, err := io.ReadFull(in, buf)
		if n > 0 {
			h.Write(buf[:n])
			if st.SendRaw(muxrpc.Binary, buf[:n]) != nil {
				break // the server ended the stream: its reason is read below
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			st.CloseWithError(err)
			return nil, fmt.Errorf("reading the input: %w", err)
		}
	}
	st.Close()
	for {
		if _, err := st.Recv(ctx); errors.Is(err, io.EOF) {
			return h.Sum(nil), nil
		} else if err != nil {
			return nil, err
		}
	}
}

// blobStored is how long blobs.add waits, once the bytes are sent, for the
// server to report the blob stored.
const blobStored = 15 * time.Second

// addBlob adds a blob and prints its id once the server has stored it. As
// in ssb-server's command line the id is computed here (a sink answers
// nothing); the server is then asked: blobs.has, or the blobs.changes
// stream opened before the add, which tells when the add is done.
func (c *client) addBlob(ctx context.Context, in io.Reader, out io.Writer) error {
	changes, err := c.e.Open(muxrpc.Method{"blobs", "changes"}, muxrpc.Source)
	if err != nil {
		return err
	}
	defer changes.Close()
	add, err := c.e.Open(muxrpc.Method{"blobs", "add"}, muxrpc.Sink)
	if err != nil {
		return err
	}
	sum, err := c.sink(ctx, add, in)
	if err != nil {
		return err
	}
	id := "&" + base64.StdEncoding.EncodeToString(sum) + ".sha256"
	ctx, cancel := context.WithTimeout(ctx, blobStored)
	defer cancel()
	var has bool
	if err := c.e.AsyncJSON(ctx, &has, muxrpc.Method{"blobs", "has"}, id); err != nil {
		return err
	}
	for !has {
		var changed string
		if err := changes.RecvJSON(ctx, &changed); err != nil {
			return fmt.Errorf("the server did not report %s stored (see its log): %w", id, err)
		}
		has = changed == id
	}
	_, err = fmt.Fprintln(out, id)
	return err
}
