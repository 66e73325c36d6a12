package links

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// ssb-backlinks' backlinks.read({query, index, limit, reverse, live, old,
// sync}): the messages whose content mentions dest anywhere (an id, or a
// channel), each with the dest it matched: {key, value, timestamp, dest}.
// Its index here is DTA ([dest, the message's own timestamp]: "asserted",
// the one apps ask for); index may name it, and a query whose first
// $filter has dest uses it. As in its fork of flumeview-query,
// limit bounds the index entries read (before the query's stages), the
// old part only; a query without dest reads the log and returns every
// message once per link, unfiltered.

type blIndex struct {
	key    string
	bucket []byte
	ts     []string // the path of the second field
}

var blIndexes = []blIndex{
	{"DTA", bDTA, []string{"value", "timestamp"}},
}

type blQuery struct {
	idx                *blIndex
	lo, hi             []byte
	stages             []stage
	limit              int
	reverse, old, live bool
	sync               bool
}

func getPath(v message.Value, path []string) (message.Value, bool) {
	ok := true
	for _, k := range path {
		if v, ok = get(v, k); !ok {
			return v, false
		}
	}
	return v, ok
}

func parseBacklinks(arg message.Value, ok bool) (blQuery, error) {
	qv, o, err := parseQueryArg(arg, ok)
	if err != nil {
		return blQuery{}, err
	}
	for _, k := range []string{"live", "reverse", "old"} {
		if err := o.flag("backlinks", k); err != nil {
			return blQuery{}, err
		}
	}
	q := blQuery{reverse: o.truthy("reverse"), old: o.old(), live: o.live(), sync: !o.is("sync", false)}
	if q.limit, err = parseLimit(o, "backlinks"); err != nil {
		return blQuery{}, err
	}
	filter := message.ObjectValue()
	switch qv.Kind() {
	case message.Array:
		if els := qv.Elems(); len(els) > 0 {
			if f, ok := get(els[0], "$filter"); truthy(f, ok) {
				filter = f
			}
		}
		if q.stages, err = compileQuery(qv); err != nil {
			return blQuery{}, fmt.Errorf("backlinks: %w", err)
		}
	case message.Object:
		filter = qv
	}
	if name := o.str("index"); name != "" {
		for i := range blIndexes {
			if blIndexes[i].key == name {
				q.idx = &blIndexes[i]
			}
		}
		if q.idx == nil {
			return blQuery{}, fmt.Errorf("backlinks: no index %q (this server has DTA)", name)
		}
	} else if _, ok := get(filter, "dest"); ok {
		q.idx = &blIndexes[0]
	}
	if q.idx != nil {
		d, dok := get(filter, "dest")
		t, tok := getPath(filter, q.idx.ts)
		dlo, dhi, err := bound(d, dok)
		if err != nil {
			return blQuery{}, fmt.Errorf("backlinks: %w", err)
		}
		tlo, thi, err := bound(t, tok)
		if err != nil {
			return blQuery{}, fmt.Errorf("backlinks: %w", err)
		}
		q.lo, q.hi = cwKey(dlo, tlo, jsLO), cwKey(dhi, thi, jsHI)
	}
	return q, nil
}

func (p *Plugin) backlinksRead(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	q, err := parseBacklinks(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	if q.idx == nil {
		finish(ctx, req, p.backlinksLog(ctx, req, q))
		return
	}
	finish(ctx, req, p.backlinksIndex(ctx, req, q))
}

// backlinkJSON is a result: the message (opened when it is ours) with the
// dest it links to.
func backlinkJSON(it store.Item, dest string) message.Value {
	v, _ := message.Parse(itemJSON(nil, it))
	return message.ObjectValue(append(v.Members(), message.Member{Key: "dest", Value: message.StringValue(dest)})...)
}

func (p *Plugin) backlinksIndex(ctx context.Context, req *muxrpc.Request, q blQuery) error {
	cp, err := p.ready(ctx)
	if err != nil {
		return err
	}
	s := &sender{req: req}
	emit := func(v message.Value) error {
		out, ok := run(q.stages, v)
		if !ok {
			return nil
		}
		return s.json(out.AppendCompact(s.buf[:0]))
	}
	if q.old && bytes.Compare(q.lo, q.hi) <= 0 {
		read := 0
		err := p.scan(ctx, q.idx.bucket, q.lo, q.hi, q.reverse, cp.Seq, func(key []byte, msg store.Item) error {
			if q.limit > 0 && read >= q.limit {
				return errStop
			}
			read++
			items, err := cwDecodeItems(key)
			if err != nil || len(items) != 3 {
				return fmt.Errorf("backlinks: index entry %q: %v", key, err)
			}
			return emit(backlinkJSON(p.plain(msg), items[0].s))
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
	}
	if !q.live {
		return nil
	}
	if q.old && q.sync {
		if err := s.sync(); err != nil {
			return err
		}
	}
	return p.follow(ctx, cp, func(d decoded) error {
		content, _ := get(d.value, "content")
		claimed, _ := get(d.value, "timestamp")
		ts := jsNum(claimed.Number())
		for _, dest := range backlinkDests(content) {
			key := cwKey(jsStr(dest), ts, jsNum(float64(d.item.Seq)))
			if bytes.Compare(key, q.lo) < 0 || bytes.Compare(key, q.hi) > 0 {
				continue
			}
			if err := emit(backlinkJSON(d.item, dest)); err != nil {
				return err
			}
		}
		return nil
	})
}

// backlinksLog is the read without an index: each message of the log once
// per link, unfiltered.
func (p *Plugin) backlinksLog(ctx context.Context, req *muxrpc.Request, q blQuery) error {
	old := q.old
	it, err := p.st.Log(ctx, store.LogQuery{Limit: q.limit, Reverse: q.reverse, Live: q.live, Old: &old})
	if err != nil {
		return fmt.Errorf("backlinks: %w", err)
	}
	defer it.Close()
	s := &sender{req: req}
	for {
		item, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, store.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		d, ok := decode(item, p.unbox)
		if !ok {
			continue
		}
		content, _ := get(d.value, "content")
		for _, dest := range backlinkDests(content) {
			if err := s.json(backlinkJSON(d.item, dest).AppendCompact(s.buf[:0])); err != nil {
				return err
			}
		}
	}
}
