package db

// The rest of ssb-db@20's core methods, which read the store's heads and
// its log: latest, getVectorClock, getFeedState, createSequenceStream,
// createRawLogStream, help, del (del.go) and rebuild, which also rebuilds
// the views plugins keep beside the log (Rebuilder).
//
// ssb-db's log positions are byte offsets of its flumelog-offset file;
// ours are receive sequences (store.Item.Seq: from 1, never given twice,
// with the positions of deleted messages left empty). So
// createSequenceStream and createRawLogStream give the same shapes as
// ssb-db, and positions that mean the same (the sequence stream's value is
// the seq of the raw log's last item), but not the same numbers.

import (
	"cmp"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Errors of getFeedState's argument, in muxrpc-validation's words (sic).
var (
	errParamRequired = errors.New("Param 0 is required")
	errParamFeedID   = errors.New("Param 0 must by of type feedId")
)

// A feedHead is a feed's head with what latest reports beside it.
type feedHead struct {
	store.Head
	first uint64          // receive sequence of the feed's first stored message
	ts    json.RawMessage // the head message's claimed timestamp
}

// headsInLogOrder returns the heads of all feeds in the order ssb-db's
// "last" index lists them: the order in which each feed's first message
// was received (the index is a JavaScript object keyed by author, whose
// keys keep their insertion order). It reads two records per feed.
func (p *Plugin) headsInLogOrder(ctx context.Context, withTS bool) ([]feedHead, error) {
	heads, err := p.store.Feeds(ctx)
	if err != nil {
		return nil, err
	}
	no := false
	out := make([]feedHead, 0, len(heads))
	for _, h := range heads {
		fh := feedHead{Head: h, first: h.Seq}
		it, err := p.store.History(ctx, store.HistoryQuery{ID: h.Feed, Limit: 1, Keys: &no, Values: &no})
		if err != nil {
			return nil, err
		}
		first, err := it.Next(ctx)
		it.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("db: first message of %s: %w", h.Feed, err)
		}
		if err == nil {
			fh.first = first.Seq
		}
		if withTS {
			item, err := p.store.GetSeq(h.Seq)
			if err != nil {
				return nil, fmt.Errorf("db: head of %s: %w", h.Feed, err)
			}
			var v struct {
				Timestamp json.RawMessage `json:"timestamp"`
			}
			if err := json.Unmarshal(item.Value, &v); err != nil || v.Timestamp == nil {
				return nil, fmt.Errorf("db: head of %s has no timestamp: %w", h.Feed, err)
			}
			fh.ts = v.Timestamp
		}
		out = append(out, fh)
	}
	slices.SortFunc(out, func(a, b feedHead) int { return cmp.Compare(a.first, b.first) })
	return out, nil
}

// latest streams {id, sequence, ts} for every feed: its id, the sequence
// of its latest message and that message's claimed timestamp, as ssb-db's
// last index does.
func (p *Plugin) latest(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	heads, err := p.headsInLogOrder(ctx, true)
	if err != nil {
		req.Fail(fmt.Errorf("latest: %w", err))
		return
	}
	var buf []byte
	for _, h := range heads {
		buf = append(buf[:0], `{"id":"`...)
		buf = append(buf, h.Feed.String()...)
		buf = append(buf, `","sequence":`...)
		buf = strconv.AppendInt(buf, h.State.Sequence, 10)
		buf = append(buf, `,"ts":`...)
		buf = append(buf, h.ts...)
		buf = append(buf, '}')
		if req.Stream().SendRaw(muxrpc.JSON, buf) != nil {
			return
		}
	}
}

// getVectorClock answers {feed: sequence of its latest message}, with the
// feeds in the order of latest. Its argument, if any, is ignored, as in
// ssb-db.
func (p *Plugin) getVectorClock(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	heads, err := p.headsInLogOrder(ctx, false)
	if err != nil {
		req.Fail(fmt.Errorf("getVectorClock: %w", err))
		return
	}
	buf := []byte{'{'}
	for i, h := range heads {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, '"')
		buf = append(buf, h.Feed.String()...)
		buf = append(buf, `":`...)
		buf = strconv.AppendInt(buf, h.State.Sequence, 10)
	}
	req.ReturnRaw(muxrpc.JSON, append(buf, '}'))
}

// getFeedState answers {id, sequence} of a feed's latest message, or
// {id: null, sequence: 0} for a feed the store does not hold, as ssb-db's
// validation state does.
func (p *Plugin) getFeedState(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	arg := FirstArg(req)
	if arg == nil {
		req.Fail(errParamRequired)
		return
	}
	var id string
	if json.Unmarshal(arg, &id) != nil {
		req.Fail(errParamFeedID)
		return
	}
	feed, err := refs.ParseFeed(id)
	if err != nil {
		req.Fail(errParamFeedID)
		return
	}
	h, err := p.store.Latest(feed)
	if errors.Is(err, store.ErrNotFound) {
		req.ReturnRaw(muxrpc.JSON, []byte(`{"id":null,"sequence":0}`))
		return
	}
	if err != nil {
		req.Fail(fmt.Errorf("getFeedState: %w", err))
		return
	}
	req.Return(struct {
		ID       string `json:"id"`
		Sequence int64  `json:"sequence"`
	}{h.State.ID.String(), h.State.Sequence})
}

// createSequenceStream streams the log's position: first the receive
// sequence of the last stored message (-1 for an empty log, ssb-db's
// value for it), then, live, the new last one after each commit. Every
// commit of a batch of messages gives one value, as each append of a
// batch to ssb-db's log does. It takes no options.
func (p *Plugin) createSequenceStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	no := false
	// Open the live query first: whatever is committed after it is read
	// comes out of it, so nothing between the two is missed.
	it, err := p.store.Log(ctx, store.LogQuery{Live: true, Old: &no, Keys: &no, Values: &no})
	if err != nil {
		req.Fail(fmt.Errorf("createSequenceStream: %w", err))
		return
	}
	defer it.Close()
	last := p.store.Durable()
	st := req.Stream()
	first := int64(last)
	if last == 0 {
		first = -1
	}
	if st.Send(first) != nil {
		return
	}
	for {
		item, err := it.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				req.Fail(fmt.Errorf("createSequenceStream: %w", err))
			}
			return
		}
		if item.Seq <= last {
			continue // announced with an earlier value
		}
		last = max(item.Seq, p.store.Durable())
		if st.Send(last) != nil {
			return
		}
	}
}

// seqRange is the range of receive sequences a createRawLogStream asks
// for, from its bounds: lo..hi, both inclusive.
type seqRange struct{ lo, hi uint64 }

// rawRange reads the bounds of createRawLogStream as receive sequences.
// As in ltgt, gt wins over gte and lt over lte. A range with hi < lo is
// empty.
func rawRange(o StreamOpts) seqRange {
	r := seqRange{lo: 1, hi: math.MaxUint64}
	switch {
	case o.Gt != nil:
		r.lo = seqAtLeast(math.Floor(*o.Gt) + 1)
	case o.Gte != nil:
		r.lo = seqAtLeast(math.Ceil(*o.Gte))
	}
	switch {
	case o.Lt != nil:
		r.hi = seqAtMost(math.Ceil(*o.Lt) - 1)
	case o.Lte != nil:
		r.hi = seqAtMost(math.Floor(*o.Lte))
	}
	return r
}

// seqAtLeast returns the integer f as a lower bound: at least 1.
func seqAtLeast(f float64) uint64 {
	switch {
	case !(f > 1): // NaN too
		return 1
	case f >= math.MaxUint64:
		return math.MaxUint64
	}
	return uint64(f)
}

// seqAtMost returns the integer f as an upper bound: 0 (nothing) below 1.
func seqAtMost(f float64) uint64 {
	switch {
	case !(f >= 1):
		return 0
	case f >= math.MaxUint64:
		return math.MaxUint64
	}
	return uint64(f)
}

// logQuery returns the store query that reads range r, given the receive
// sequence durable of the last message stored when the stream starts.
// The store bounds its queries by receive timestamps, which strictly
// increase with receive sequences: a bound at a stored sequence is exactly
// the bound at its timestamp. The caller still filters by sequence, for
// what is appended after durable.
func (p *Plugin) logQuery(o StreamOpts, r seqRange, durable uint64) (store.LogQuery, error) {
	q := store.LogQuery{Limit: o.Limit, Reverse: o.Reverse, Live: o.Live && !o.Reverse, Old: o.Old}
	// The timestamp of the message at seq or, where it was deleted, of the
	// nearest stored one after it (before it): the same bound. None there
	// is a bound past every message (before every message).
	ts := func(seq uint64, before bool) (*float64, error) {
		it, err := p.store.GetSeqNear(seq, before)
		switch {
		case errors.Is(err, store.ErrNotFound) && before:
			return &negInf, nil
		case errors.Is(err, store.ErrNotFound):
			return nil, nil
		case err != nil:
			return nil, err
		}
		return &it.Timestamp, nil
	}
	var err error
	switch {
	case r.lo > 1 && r.lo <= durable:
		q.Gte, err = ts(r.lo, false)
	case r.lo > durable && durable > 0:
		q.Gt, err = ts(durable, true) // nothing old; live messages only
	}
	if err != nil {
		return q, err
	}
	if r.hi <= durable {
		q.Live = false // the range ends within what is stored
		if r.hi >= 1 {
			q.Lte, err = ts(r.hi, true)
		}
	}
	return q, err
}

var negInf = math.Inf(-1)

// createRawLogStream streams the log in receive order as {seq, value}:
// seq is the receive sequence, value the message as stored ({key, value,
// timestamp}, with its original, encrypted, content). The options are
// ssb-db's (flumelog-offset's): gt, gte, lt, lte on seq, reverse, limit
// (which counts live items too), live and old. As in ssb-db, a stream
// whose upper bound is reached ends, live or not, and a reverse stream is
// never live (reverse with old: false is empty here; ssb-db's cursor then
// skips the last message and streams the others). ssb-db's seqs: false and values: false fail there (ssb-db
// maps every item as {seq, value}); here they are ignored, as is keys.
func (p *Plugin) createRawLogStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request, o StreamOpts) {
	r := rawRange(o)
	durable := p.store.Durable()
	noOld := o.Old != nil && !*o.Old
	if r.hi < r.lo || noOld && (r.hi <= durable || o.Reverse) {
		return // empty, live or not
	}
	q, err := p.logQuery(o, r, durable)
	if err != nil {
		req.Fail(fmt.Errorf("createRawLogStream: %w", err))
		return
	}
	it, err := p.store.Log(ctx, q)
	if err != nil {
		req.Fail(fmt.Errorf("createRawLogStream: %w", err))
		return
	}
	defer it.Close()
	st := req.Stream()
	var buf []byte
	for sent := 0; o.Limit <= 0 || sent < o.Limit; {
		item, err := it.Next(ctx)
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) && !errors.Is(err, io.EOF) {
				req.Fail(fmt.Errorf("createRawLogStream: %w", err))
			}
			return
		}
		if item.Seq < r.lo || item.Seq > r.hi {
			if !o.Reverse && item.Seq > r.hi {
				return
			}
			continue
		}
		buf = append(buf[:0], `{"seq":`...)
		buf = strconv.AppendUint(buf, item.Seq, 10)
		buf = append(buf, `,"value":`...)
		buf = item.AppendJSON(buf)
		buf = append(buf, '}')
		if st.SendRaw(muxrpc.JSON, buf) != nil {
			return
		}
		sent++
		if !o.Reverse && item.Seq == r.hi {
			return // the last of the range: end without waiting for more
		}
	}
}

//go:embed help.json
var helpJSON []byte

// help answers ssb-db's help object (its help.js, as Node sends it: the
// message id's test, a RegExp, is {}).
func (p *Plugin) help(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.ReturnRaw(muxrpc.JSON, helpJSON)
}

// A Rebuilder is a plugin that keeps a view beside the log: state derived
// from the stored messages and kept in files of its own (the links index,
// the private messages' index), which can fall out of step with the log —
// after a deletion (del), a crash between the store's commit and the
// view's, a repaired or replaced store, or a bug. db's rebuild calls
// Rebuild on every plugin of the server that is one, in the order of the
// plugins, after the store's own check: Rebuild makes the view again from
// the log (store.Log) and returns once it is whole again, or with the
// reason it could not; it must end when ctx ends. The view may keep
// serving meanwhile.
type Rebuilder interface {
	Rebuild(ctx context.Context) error
}

// rebuild is ssb-db's rebuild of its views, which answers false once they
// are rebuilt. The store's indexes are written in the same transaction as
// the log, so they need no rebuilding: rebuild checks that they are
// consistent with the log (store.Check, which reads every message in one
// read transaction), then rebuilds the views plugins keep beside the log
// (every Rebuilder, one after the other), and answers false, or fails with
// the problems found and the views that failed (the others are rebuilt).
// A damaged store cannot be rebuilt while it is open: the error says how
// to repair it, and no view is rebuilt from it.
func (p *Plugin) rebuild(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	if err := p.store.Check(ctx); err != nil {
		if errors.Is(err, store.ErrCorrupt) {
			err = fmt.Errorf("%w (stop the server and run `sbot repair` to rebuild the store from its messages)", err)
		}
		req.Fail(fmt.Errorf("rebuild: %w", err))
		return
	}
	if err := p.rebuildViews(ctx); err != nil {
		req.Fail(err)
		return
	}
	req.Return(false)
}

// rebuildViews calls Rebuild on every Rebuilder among the server's
// plugins, and returns their errors, each named after its plugin.
func (p *Plugin) rebuildViews(ctx context.Context) error {
	var errs []error
	for _, pl := range p.srv.Plugins() {
		r, ok := pl.(Rebuilder)
		if !ok {
			continue
		}
		start := time.Now()
		if err := r.Rebuild(ctx); err != nil {
			p.srv.Logger().Error("db: rebuild of a view failed", "plugin", pl.Name(), "err", err)
			errs = append(errs, fmt.Errorf("rebuild: %s: %w", pl.Name(), err))
			continue
		}
		p.srv.Logger().Info("db: view rebuilt", "plugin", pl.Name(), "took", time.Since(start))
	}
	return errors.Join(errs...)
}
