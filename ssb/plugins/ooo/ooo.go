// Package ooo is ssb-ooo 1.3.3 (out-of-order messages): ooo.get fetches one
// message by id from the local store or else from connected peers, over
// ooo.stream, gossip-query's duplex protocol. Each side sends objects
// {id: weight} (a request, weight -1 for its own, one less per hop, at most
// two hops) and {id: message} (the answer to a request it received). An
// answer is taken only if it is a valid message (ssb-validate's
// checkInvalidOOO) whose id, the hash of its canonical JSON, is the one
// asked for.
//
// Fetched messages are kept out of the main log, as ssb-ooo keeps them in
// its own log: here in memory, at most MaxStored, oldest dropped first
// (ssb-ooo's ooo/log.offset grows without bound and survives restarts).
// Like ssb-ooo, the plugin opens ooo.stream on the peers it dialed and
// serves it to anyone.
package ooo

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Timeouts of ooo.get.
const (
	// DefaultTimeout is ooo.get's timeout when neither the call nor the
	// config ("ooo": {"timeout": ms}) gives one (ssb-ooo's 5000 ms).
	DefaultTimeout = 5 * time.Second
	// MaxTimeout bounds every get: ssb-ooo waits forever on timeout 0; we
	// wait MaxTimeout.
	MaxTimeout = 5 * time.Minute
)

// Plugin is the ooo plugin.
type Plugin struct {
	timeout time.Duration
	srv     *server.Server
	log     *slog.Logger
	core    *core
}

// New returns the plugin.
func New() *Plugin { return &Plugin{timeout: DefaultTimeout} }

// Name implements server.Plugin.
func (p *Plugin) Name() string { return "ooo" }

// ConfigSection implements server.Configurable.
func (p *Plugin) ConfigSection() string { return "ooo" }

// ReadConfig reads {"timeout": ms}, the default timeout of ooo.get.
func (p *Plugin) ReadConfig(raw json.RawMessage) error {
	if raw == nil {
		return nil
	}
	var cfg struct {
		Timeout *float64 `json:"timeout"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return fmt.Errorf("ooo: config: %w", err)
	}
	if cfg.Timeout != nil {
		p.timeout = millis(*cfg.Timeout)
	}
	return nil
}

// millis converts a JavaScript timeout; 0 or less (forever) is MaxTimeout.
func millis(ms float64) time.Duration {
	if ms <= 0 || math.IsNaN(ms) || ms >= float64(MaxTimeout/time.Millisecond) {
		return MaxTimeout
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// Init implements server.Plugin.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.log = s, s.Logger().With("plugin", "ooo")
	st := s.Store()
	p.core = newCore(func(id refs.Message) (json.RawMessage, bool) {
		it, err := st.Get(id)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				p.log.Warn("ooo: store", "err", err)
			}
			return nil, false
		}
		return it.Value, true
	}, s.HMACKey())
	return nil
}

// Methods implements server.Plugin.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "ooo.get", Type: muxrpc.Async, Handler: p.get},
		{Name: "ooo.stream", Type: muxrpc.Duplex, Perm: server.Anyone, Handler: p.stream},
		{Name: "ooo.help", Type: muxrpc.Sync, Handler: p.help},
	}
}

// Connected opens ooo.stream on a peer this server dialed, as ssb-ooo does
// on rpc:connect when it is the client.
func (p *Plugin) Connected(ctx context.Context, c *server.Conn) {
	if !c.Peer() || !c.Dialed {
		return
	}
	p.srv.Go(func() {
		st, err := c.RPC.Open(muxrpc.Method{"ooo", "stream"}, muxrpc.Duplex)
		if err != nil {
			return
		}
		p.serve(ctx, c.ID, st)
	})
}

// Disconnected implements server.Connector; the stream ends with the
// connection.
func (p *Plugin) Disconnected(*server.Conn) {}

// Progress adds ssb-ooo's section of progress, as gossip-query counts it:
// each query not yet answered adds its state (2 asked, 3 asked of every
// peer) to current and 7 (processed) to target.
func (p *Plugin) Progress(context.Context) map[string]any {
	prog := map[string]int{"start": 0, "current": 0, "target": 0}
	for _, q := range p.core.pending() {
		prog["current"] += q.(map[string]any)["state"].(int)
		prog["target"] += 7 // processed
	}
	return map[string]any{"ooo": prog}
}

// Status adds ssb-ooo's section: the pending queries.
func (p *Plugin) Status(context.Context) (map[string]any, error) {
	return map[string]any{"ooo": p.core.pending()}, nil
}

// stream serves a peer's ooo.stream.
func (p *Plugin) stream(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
	p.serve(ctx, c.ID, req.Stream())
}

// serve runs one session until the stream or ctx ends.
func (p *Plugin) serve(ctx context.Context, peer refs.Feed, st *muxrpc.Stream) {
	s := &session{peer: peer, wake: make(chan struct{}, 1)}
	p.core.add(s)
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { p.send(ctx, s, st) })
	defer func() {
		cancel()
		wg.Wait()
		p.core.remove(s)
		st.Close()
	}()
	for {
		var data map[string]json.RawMessage
		if err := st.RecvJSON(ctx, &data); err != nil {
			return
		}
		for _, err := range p.core.incoming(s, data) {
			p.log.Warn("ooo: refused an answer", "peer", peer, "err", err)
		}
	}
}

// send writes what the session has to send whenever it is woken.
func (p *Plugin) send(ctx context.Context, s *session, st *muxrpc.Stream) {
	for {
		if b := p.core.outgoing(s); b != nil {
			if err := st.SendRaw(muxrpc.JSON, b); err != nil {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
	}
}

// getArgs are ooo.get's arguments: an id, or {id, timeout}.
type getArgs struct {
	ID      string   `json:"id"`
	Timeout *float64 `json:"timeout"`
}

func parseGetArgs(raw json.RawMessage) (refs.Message, *float64, error) {
	var args []json.RawMessage
	if err := json.Unmarshal(raw, &args); err != nil || len(args) == 0 {
		return refs.Message{}, nil, errors.New("ooo.get: expects a message id")
	}
	var a getArgs
	if err := json.Unmarshal(args[0], &a.ID); err != nil {
		if err := json.Unmarshal(args[0], &a); err != nil {
			return refs.Message{}, nil, errors.New("ooo.get: expects a message id")
		}
	}
	id, err := refs.ParseMessage(a.ID)
	if err != nil {
		return refs.Message{}, nil, fmt.Errorf("ooo.get: not a message id: %q", a.ID)
	}
	return id, a.Timeout, nil
}

// get answers ooo.get as ssb-ooo does: {key, value, timestamp, ooo: true},
// timestamp being the time it was fetched (or found locally).
func (p *Plugin) get(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	id, ms, err := parseGetArgs(req.Args)
	if err != nil {
		req.Fail(err)
		return
	}
	timeout := p.timeout
	if ms != nil {
		timeout = millis(*ms)
	}
	v, err := p.Get(ctx, id, timeout)
	if err != nil {
		if errors.Is(err, ErrTimeout) {
			// ssb-ooo's message; the reason, if a peer answered badly, after it.
			msg := "ooo.get: took more than timeout:" + strconv.FormatInt(timeout.Milliseconds(), 10)
			if bad := errors.Unwrap(err); bad != nil && bad != ErrTimeout {
				msg += " (" + bad.Error() + ")"
			}
			err = errors.New(msg)
		}
		req.Fail(err)
		return
	}
	b := []byte(`{"key":"` + id.String() + `","value":`)
	b = append(b, v...)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, time.Now().UnixMilli(), 10)
	b = append(b, `,"ooo":true}`...)
	req.ReturnRaw(muxrpc.JSON, b)
}

// Get returns the message id (its value, compact JSON) from the log, the
// fetched messages or the connected peers, waiting at most timeout. The
// error wraps ErrTimeout (and the last invalid answer, if any), ErrBusy or
// ctx's error.
func (p *Plugin) Get(ctx context.Context, id refs.Message, timeout time.Duration) (json.RawMessage, error) {
	v, ch, err := p.core.want(id)
	if err != nil || ch == nil {
		return v, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case v := <-ch:
		return v, nil
	case <-t.C:
		bad := p.core.cancel(id, ch)
		select {
		case v := <-ch: // answered before the cancel
			return v, nil
		default:
		}
		if bad != nil {
			return nil, &timeoutError{bad}
		}
		return nil, ErrTimeout
	case <-ctx.Done():
		p.core.cancel(id, ch)
		return nil, fmt.Errorf("ooo: get %s: %w", id, ctx.Err())
	}
}

// timeoutError is ErrTimeout after an invalid answer.
type timeoutError struct{ bad error }

func (e *timeoutError) Error() string        { return ErrTimeout.Error() + ": " + e.bad.Error() }
func (e *timeoutError) Unwrap() error        { return e.bad }
func (e *timeoutError) Is(target error) bool { return target == ErrTimeout }

//go:embed help.json
var helpJSON []byte

// help answers ssb-ooo's help object (its help.js, as Node prints it).
func (p *Plugin) help(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.ReturnRaw(muxrpc.JSON, helpJSON)
}
