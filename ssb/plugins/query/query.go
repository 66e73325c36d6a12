// Package query is ssb-query 2.4 as ssb-server 16 has it: query.read (a
// source of map-filter-reduce results), query.explain and query.help, all
// the owner's only (ssb-server grants strangers none of them).
//
// The planner (package ssb/query) chooses one of ssb-query's indexes as
// flumeview-query does, and the plugin answers from the store: the log by
// receive time for "log" and scans, a feed's history for "clk" and "aty"
// with one author, the type index for "typ" with one type; the other
// plans read the log and keep the messages within the index range, in the
// index's order (sorted by its keys when that is not the log's order).
// Private messages that are ours are read decrypted, as ssb-db's views
// see them.
package query

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"sync"

	mfr "github.com/scuttlego/scuttle/ssb/query"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Bounds of a read, past which it fails rather than hold more.
const (
	// MaxSorted is the most index entries a read sorts, for plans whose
	// order is not the log's (about 100 bytes each).
	MaxSorted = 1 << 18
	// Budget is the most bytes a read's $reduce and $sort stages hold.
	Budget = mfr.DefaultBudget
)

// maxSorted is MaxSorted; tests lower it.
var maxSorted = MaxSorted

// ErrTooMany is the error of a read whose plan would sort more than
// MaxSorted messages.
var ErrTooMany = errors.New("query: too many messages to sort for this index; narrow the filter")

// Plugin is the query plugin.
type Plugin struct {
	srv   *server.Server
	store *store.Store

	privOnce sync.Once
	priv     Private
}

// A Private plugin decrypts the private messages that are ours (package
// ssb/plugins/private); without one, they are read as stored.
type Private interface {
	UnboxItem(it store.Item) (store.Item, bool)
	Ours(ctx context.Context) ([]uint64, error)
}

// New returns the query plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "query".
func (p *Plugin) Name() string { return "query" }

// Init takes the server's store.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.store = s, s.Store()
	return nil
}

// Methods are ssb-query's: read (source), explain and help (sync).
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "query.read", Type: muxrpc.Source, Handler: p.read},
		{Name: "query.explain", Type: muxrpc.Sync, Handler: p.explain},
		{Name: "query.help", Type: muxrpc.Sync, Handler: func(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
			req.ReturnRaw(muxrpc.JSON, helpJSON)
		}},
	}
}

//go:embed help.json
var helpJSON []byte

func (p *Plugin) private() Private {
	p.privOnce.Do(func() {
		for _, pl := range p.srv.Plugins() {
			if pr, ok := pl.(Private); ok {
				p.priv = pr
				return
			}
		}
	})
	return p.priv
}

// firstArg returns a request's first argument, undefined when absent.
func firstArg(req *muxrpc.Request) (mfr.Value, error) {
	if len(req.Args) == 0 {
		return mfr.Value{}, nil
	}
	args, err := mfr.ParseJSON(req.Args)
	if err != nil {
		return mfr.Value{}, fmt.Errorf("%w: arguments: %w", mfr.ErrQuery, err)
	}
	return args.Index(0), nil
}

func options(req *muxrpc.Request) (mfr.Options, error) {
	if len(req.Args) > mfr.MaxQuerySize*2 {
		return mfr.Options{}, fmt.Errorf("%w: arguments of %d bytes", mfr.ErrTooLarge, len(req.Args))
	}
	arg, err := firstArg(req)
	if err != nil {
		return mfr.Options{}, err
	}
	return mfr.ParseOptions(arg)
}

func (p *Plugin) explain(_ context.Context, _ *server.Conn, req *muxrpc.Request) {
	o, err := options(req)
	if err != nil {
		req.Fail(err)
		return
	}
	plan, err := mfr.Explain(o)
	if err != nil {
		req.Fail(err)
		return
	}
	req.ReturnRaw(muxrpc.JSON, plan.JSON().AppendCompact(nil))
}

func (p *Plugin) read(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	o, err := options(req)
	if err != nil {
		req.Fail(err)
		return
	}
	r, err := p.start(o)
	if err != nil {
		req.Fail(err)
		return
	}
	var buf []byte
	err = r.run(ctx, func(v mfr.Value) error {
		if v.Kind() == mfr.String { // muxrpc sends a string as one
			return req.Stream().SendRaw(muxrpc.String, append(buf[:0], v.UTF8()...))
		}
		buf = v.AppendJSON(buf[:0])
		return req.Stream().SendRaw(muxrpc.JSON, buf)
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) && !errors.Is(err, errStop) {
		req.Fail(err)
	}
}

var syncMarker, _ = mfr.ParseJSON([]byte(`{"sync":true}`))

// errStop ends a read that has sent its limit.
var errStop = errors.New("query: limit reached")

// A reader is one query.read: its plan, its compiled query, and the
// source of messages the plan chose.
type reader struct {
	p     *Plugin
	o     mfr.Options
	plan  *mfr.Plan
	q     *mfr.Query
	unbox func(store.Item) store.Item
}

func (p *Plugin) start(o mfr.Options) (*reader, error) {
	plan, err := mfr.Explain(o)
	if err != nil {
		return nil, err
	}
	q, err := mfr.Compile(o.Query)
	if err != nil {
		return nil, err
	}
	if err := plan.Check(); err != nil {
		return nil, err
	}
	r := &reader{p: p, o: o, plan: plan, q: q, unbox: func(it store.Item) store.Item { return it }}
	if priv := p.private(); priv != nil {
		r.unbox = func(it store.Item) store.Item {
			if u, ok := priv.UnboxItem(it); ok {
				return u
			}
			return it
		}
	}
	return r, nil
}

// run reads the old messages (those stored when it starts, up to a
// receive sequence it knows exactly) in the plan's order, then, when live,
// every later message in receive order, through the query.
func (r *reader) run(ctx context.Context, send func(mfr.Value) error) error {
	var sent int64
	emit := func(v mfr.Value) error {
		if err := send(v); err != nil {
			return err
		}
		sent++
		if r.o.Limit > 0 && sent >= r.o.Limit {
			return errStop
		}
		return nil
	}
	run := r.q.NewRun(Budget)
	if r.o.Live && r.q.Buffers() {
		// A $reduce or $sort gives its result when the stream ends, and
		// a live stream never ends: ssb-query sends nothing, ever.
		<-ctx.Done()
		return nil
	}
	top := r.p.store.Durable()
	if r.o.Old {
		var err error
		if top, err = r.old(ctx, run, emit); err != nil {
			return err
		}
		if err := run.End(emit); err != nil {
			return err
		}
	}
	if !r.o.Live {
		return nil
	}
	if r.o.Old && r.plan.Index != nil && !r.o.Sync.IsFalse() {
		// pull-level (the index) marks the end of the old messages; a scan
		// of the log does not. Filters and maps pass it, limit counts it.
		if err := emit(syncMarker); err != nil {
			return err
		}
	}
	return r.live(ctx, top, run, emit)
}

// push runs one stored item through the query when it is in the plan's
// range.
func (r *reader) push(run *mfr.Run, it store.Item, emit func(mfr.Value) error) error {
	v, ok, err := r.item(it)
	if err != nil || !ok {
		return err
	}
	return run.Push(v, emit)
}

// item makes the JavaScript item of a stored one (decrypted when ours),
// and reports whether the plan's range holds it.
func (r *reader) item(it store.Item) (mfr.Value, bool, error) {
	it = r.unbox(it)
	value, err := mfr.ParseJSON(it.Value)
	if err != nil {
		return mfr.Value{}, false, fmt.Errorf("query: stored message %d: %w", it.Seq, err)
	}
	v := mfr.Item(it.Key.String(), value, it.Timestamp, r.plan.Index != nil)
	return v, r.plan.Contains(v), nil
}

// live reads the messages after receive sequence top, in receive order.
func (r *reader) live(ctx context.Context, top uint64, run *mfr.Run, emit func(mfr.Value) error) error {
	q := store.LogQuery{Live: true}
	if top > 0 {
		it, err := r.p.store.GetSeq(top)
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		q.Gt = &it.Timestamp
	}
	iter, err := r.p.store.Log(ctx, q)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	return drain(ctx, iter, func(it store.Item) error { return r.push(run, it, emit) })
}

func isEOF(err error) bool { return errors.Is(err, io.EOF) }

// drain gives every item of an iterator to fn until the iterator or fn
// ends.
func drain(ctx context.Context, iter *store.Iterator, fn func(store.Item) error) error {
	defer iter.Close()
	for {
		it, err := iter.Next(ctx)
		if isEOF(err) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(it); err != nil {
			return err
		}
	}
}
