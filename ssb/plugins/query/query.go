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
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	mfr "github.com/scuttlego/scuttle/ssb/query"

	"github.com/scuttlego/scuttle/ssb/index"
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
	log   *slog.Logger
	dir   string // of the channel view

	// The channel view is opened by Run and closed when Run returns;
	// opened is closed once view is set.
	view   *index.View
	opened chan struct{}

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

// Init takes the server's store; the channel view lives in
// <path>/indexes.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.store, p.log = s, s.Store(), s.Logger()
	p.dir, p.opened = filepath.Join(s.Config().Path, "indexes"), make(chan struct{})
	if p.log == nil {
		p.log = slog.Default()
	}
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
	out := &sender{st: req.Stream(), buffered: true}
	r.endOld = func() error {
		out.buffered = false
		return out.flush()
	}
	err = r.run(ctx, out.send)
	if ferr := out.flush(); err == nil || errors.Is(err, errStop) {
		err = ferr
	}
	if err != nil && ctx.Err() == nil && !errors.Is(err, store.ErrClosed) && !errors.Is(err, errStop) {
		req.Fail(err)
	}
}

// A sender sends a read's results. While buffered (the old messages), it
// holds them until it has sendBurst bytes of them or has held the first
// for sendDelay, then sends them one after the other, so that the
// connection's writer takes many at once rather than waking for each.
type sender struct {
	st       *muxrpc.Stream
	buffered bool
	buf      []byte // the bodies held, back to back
	held     []heldPacket
	first    time.Time // when the first held was
}

type heldPacket struct {
	typ muxrpc.BodyType
	end int // of its body in buf
}

// How many bytes of results a sender holds, and for how long.
const (
	sendBurst = 16 << 10
	sendDelay = 10 * time.Millisecond
)

func (s *sender) send(v mfr.Value, raw []byte) error {
	typ := muxrpc.JSON
	switch {
	case raw != nil:
		s.buf = append(s.buf, raw...)
	case v.Kind() == mfr.String: // muxrpc sends a string as one
		typ = muxrpc.String
		s.buf = append(s.buf, v.UTF8()...)
	default:
		s.buf = v.AppendJSON(s.buf)
	}
	s.held = append(s.held, heldPacket{typ, len(s.buf)})
	if len(s.held) == 1 {
		s.first = time.Now()
	}
	if !s.buffered || len(s.buf) >= sendBurst || time.Since(s.first) >= sendDelay {
		return s.flush()
	}
	return nil
}

// flush sends what the sender holds.
func (s *sender) flush() error {
	start := 0
	for _, h := range s.held {
		if err := s.st.SendRaw(h.typ, s.buf[start:h.end]); err != nil {
			return err
		}
		start = h.end
	}
	s.buf, s.held = s.buf[:0], s.held[:0]
	return nil
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

	// rf is the query's first $filter on the stored JSON, nil when it has
	// none that can be: it drops what it surely does not match before the
	// message is decoded. When it is the whole query and implies the
	// plan's range (direct), what it surely matches is sent as stored.
	rf      *mfr.RawFilter
	direct  bool
	emitRaw func([]byte) error
	buf     []byte
	endOld  func() error // sends the results held, and the next at once
}

// rawFilters turns the raw filter off, for tests that compare the two
// ways.
var rawFilters = true

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
	if rawFilters {
		if r.rf = q.RawFilter(plan.Index != nil); r.rf != nil {
			r.direct = r.rf.Only() && plan.Implies(r.rf)
		}
	}
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
func (r *reader) run(ctx context.Context, send func(v mfr.Value, raw []byte) error) error {
	var sent int64
	count := func(err error) error {
		if err != nil {
			return err
		}
		sent++
		if r.o.Limit > 0 && sent >= r.o.Limit {
			return errStop
		}
		return nil
	}
	emit := func(v mfr.Value) error { return count(send(v, nil)) }
	r.emitRaw = func(raw []byte) error { return count(send(mfr.Value{}, raw)) }
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
	if err := r.endOld(); err != nil {
		return err
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
	it = r.unbox(it)
	if r.rf != nil {
		var key string
		if r.direct || r.rf.UsesKey() {
			key = it.Key.String()
		}
		match, sure := r.rf.Match(key, it.Value, it.Timestamp)
		if sure && !match {
			return nil
		}
		if sure && r.direct {
			var ok bool
			if r.buf, ok = mfr.AppendRawItem(r.buf[:0], key, it.Value, it.Timestamp, r.plan.Index != nil); ok {
				return r.emitRaw(r.buf)
			}
		}
	}
	v, ok, err := r.item(it)
	if err != nil || !ok {
		return err
	}
	return run.Push(v, emit)
}

// item makes the JavaScript item of a stored one (decrypted already when
// ours), and reports whether the plan's range holds it.
func (r *reader) item(it store.Item) (mfr.Value, bool, error) {
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
