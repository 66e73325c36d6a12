package links

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// ssb-links 3's links2.read({query, limit, reverse, live, old, sync,
// unlinkedValues}) as flumeview-links 1 answers it: the index whose
// leading fields the query's first $filter fixes best (or the one its
// $sort names) is read between the bounds the filter gives each field,
// then the query's stages run and limit takes the first results. A query
// that fixes none of source, dest and rel reads the log instead and
// returns every link, unfiltered, limit counting messages.

type l2index struct {
	key    string
	bucket []byte
	fields [4]string
}

var l2indexes = []l2index{
	{"SRD", bSRD, [4]string{"source", "rel", "dest", "ts"}},
	{"DRS", bDRS, [4]string{"dest", "rel", "source", "ts"}},
	{"RDS", bRDS, [4]string{"rel", "dest", "source", "ts"}},
}

// l2query is a parsed links2.read call.
type l2query struct {
	idx                *l2index // nil: read the log
	lo, hi             []byte
	stages             []stage
	limit              int // 0: none
	reverse, old, live bool
	sync, unlinked     bool
}

// parseQueryArg reads the query option: JSON text or a value.
func parseQueryArg(o message.Value, ok bool) (message.Value, opts, error) {
	if !ok || o.Kind() == message.Null {
		return message.Value{}, opts{message.ObjectValue()}, nil
	}
	if o.Kind() == message.String {
		q, err := message.Parse([]byte(o.Str()))
		if err != nil {
			return message.Value{}, opts{}, fmt.Errorf("links2: query: %w", err)
		}
		return q, opts{message.ObjectValue()}, nil
	}
	if o.Kind() != message.Object {
		return message.Value{}, opts{}, errors.New("links2: read takes an options object")
	}
	q, _ := get(o, "query")
	if q.Kind() == message.String {
		var err error
		if q, err = message.Parse([]byte(q.Str())); err != nil {
			return message.Value{}, opts{}, fmt.Errorf("links2: query: %w", err)
		}
	}
	return q, opts{o}, nil
}

func parseLinks2(arg message.Value, ok bool) (l2query, error) {
	qv, o, err := parseQueryArg(arg, ok)
	if err != nil {
		return l2query{}, err
	}
	for _, k := range []string{"live", "reverse", "old"} {
		if err := o.flag("links2", k); err != nil {
			return l2query{}, err
		}
	}
	q := l2query{reverse: o.truthy("reverse"), old: o.old(), live: o.live(), sync: !o.is("sync", false), unlinked: o.truthy("unlinkedValues")}
	if q.limit, err = parseLimit(o, "links2"); err != nil {
		return l2query{}, err
	}
	filter := message.ObjectValue()
	var sortBy message.Value
	hasSort := false
	switch qv.Kind() {
	case message.Array:
		els := qv.Elems()
		if len(els) > 0 {
			if f, ok := get(els[0], "$filter"); truthy(f, ok) {
				filter = f
			}
			if s, ok := get(els[len(els)-1], "$sort"); truthy(s, ok) {
				sortBy, hasSort = s, true
				qv = message.ArrayValue(els[:len(els)-1]...)
			}
		}
		if q.stages, err = compileQuery(qv); err != nil {
			return l2query{}, fmt.Errorf("links2: %w", err)
		}
	case message.Object:
		filter = qv
	}
	if hasSort {
		for i := range l2indexes {
			if sortBy.Kind() == message.Array && len(sortBy.Elems()) == 4 && sameFields(sortBy, l2indexes[i].fields) {
				q.idx = &l2indexes[i]
			}
		}
		if q.idx == nil {
			return l2query{}, fmt.Errorf("could not sort by:%s", sortBy)
		}
	} else {
		q.idx = selectIndex(filter)
	}
	if q.idx != nil {
		if q.lo, q.hi, err = l2bounds(q.idx, filter); err != nil {
			return l2query{}, fmt.Errorf("links2: %w", err)
		}
	}
	return q, nil
}

func sameFields(v message.Value, f [4]string) bool {
	for i, e := range v.Elems() {
		if e.Kind() != message.String || e.Str() != f[i] {
			return false
		}
	}
	return true
}

// parseLimit reads limit: a positive integer takes that many; anything
// else that is not a number is refused.
func parseLimit(o opts, method string) (int, error) {
	v, ok := o.get("limit")
	if !truthy(v, ok) {
		return 0, nil
	}
	if v.Kind() != message.Number {
		return 0, fmt.Errorf("%s: limit must be a number", method)
	}
	n := v.Number()
	if n < 1 || n != math.Trunc(n) {
		return 0, nil // pull.take never reaches 0 from there: no limit
	}
	return int(min(n, maxLimit)), nil
}

// selectIndex is flumeview-links' select: the index with the best score
// of its leading fields (exact 3, range 2, present 1; s = s*s + score,
// stopping at the first absent field), the first on ties; nil when none
// scores.
func selectIndex(q message.Value) *l2index {
	var best *l2index
	bestScore := 0
	for i := range l2indexes {
		s := 0
		for _, f := range l2indexes[i].fields {
			v, ok := get(q, f)
			if !ok {
				break
			}
			sc := 1
			switch {
			case isExact(v, true):
				sc = 3
			case isRange(v, true):
				sc = 2
			}
			s = s*s + sc
		}
		if s > bestScore {
			best, bestScore = &l2indexes[i], s
		}
	}
	return best
}

// isExact and isRange are map-filter-reduce's.
func isExact(v message.Value, ok bool) bool {
	switch {
	case !ok || isBasic(v):
		return true
	case v.Kind() == message.Array:
		for _, e := range v.Elems() {
			if !isExact(e, true) {
				return false
			}
		}
		return true
	}
	_, has := v.Get("$eq")
	return has
}

var rangeTypes = map[string]bool{"string": true, "boolean": true, "array": true, "undefined": true, "null": true}

func isRange(v message.Value, ok bool) bool {
	if !ok || v.Kind() == message.Null {
		return false
	}
	if p, ok := get(v, "$prefix"); truthy(p, ok) {
		return true
	}
	if t, ok := get(v, "$is"); truthy(t, ok) && t.Kind() == message.String && rangeTypes[t.Str()] {
		return true
	}
	if v.Kind() == message.Array {
		for _, e := range v.Elems() {
			if isRange(e, true) {
				return true
			}
		}
		return false
	}
	for _, k := range []string{"$lt", "$gt", "$lte", "$gte"} {
		if _, ok := get(v, k); ok {
			return true
		}
	}
	return false
}

var (
	jsLO = jsv{kind: jsNull}
	jsHI = jsv{kind: jsUndefined}
)

// l2bounds builds flumeview-links' gte and lte keys for the filter.
func l2bounds(idx *l2index, filter message.Value) (lo, hi []byte, err error) {
	los, his := make([]jsv, 0, 5), make([]jsv, 0, 5)
	for _, f := range idx.fields {
		v, ok := get(filter, f)
		l, h, err := bound(v, ok)
		if err != nil {
			return nil, nil, err
		}
		los, his = append(los, l), append(his, h)
	}
	return cwKey(append(los, jsLO)...), cwKey(append(his, jsHI)...), nil
}

func bound(v message.Value, ok bool) (lo, hi jsv, err error) {
	if !ok || v.Kind() == message.Null {
		return jsLO, jsHI, nil
	}
	if !isRange(v, true) {
		j, err := fromJSON(v)
		if err != nil {
			return jsv{}, jsv{}, fmt.Errorf("can only encode arrays: %s", v)
		}
		return j, j, nil
	}
	if lo, err = lower(v); err == nil {
		hi, err = upper(v)
	}
	return lo, hi, err
}

func lower(v message.Value) (jsv, error) { return rangeEnd(v, true) }
func upper(v message.Value) (jsv, error) { return rangeEnd(v, false) }

// rangeEnd is map-filter-reduce's lower (low) or upper bound of a value.
func rangeEnd(v message.Value, low bool) (jsv, error) {
	switch v.Kind() {
	case message.Array:
		out := make([]jsv, len(v.Elems()))
		for i, e := range v.Elems() {
			var err error
			if out[i], err = rangeEnd(e, low); err != nil {
				return jsv{}, err
			}
		}
		return jsArr(out...), nil
	case message.Object:
	default:
		return fromJSON(v)
	}
	asKey := func(x message.Value) (jsv, error) {
		j, err := fromJSON(x)
		if err != nil {
			return jsv{}, fmt.Errorf("can only encode arrays: %s", x)
		}
		return j, nil
	}
	if p, ok := v.Get("$prefix"); ok && p.Kind() == message.Array {
		j, err := asKey(p)
		if err != nil {
			return jsv{}, err
		}
		if low {
			return jsArr(append(j.arr, jsHI)...), nil // sic: map-filter-reduce's
		}
		return jsArr(append(j.arr, jsLO)...), nil
	} else if ok && p.Kind() == message.String {
		if low {
			return jsStr(p.Str()), nil
		}
		return jsStr(p.Str() + "\uffff"), nil
	}
	order := []string{"$lt", "$lte", "$gt", "$gte"}
	if low {
		order = []string{"$gt", "$gte", "$lt", "$lte"}
	}
	for i, k := range order {
		if x, ok := v.Get(k); ok {
			if i < 2 {
				return asKey(x)
			}
			if low {
				return jsLO, nil
			}
			return jsHI, nil
		}
	}
	if t, ok := v.Get("$is"); ok && t.Kind() == message.String {
		switch t.Str() {
		case "string":
			if low {
				return jsStr(""), nil
			}
			return jsArr(), nil
		case "boolean":
			return jsBoolean(!low), nil
		case "array":
			if low {
				return jsArr(), nil
			}
		case "null":
			return jsLO, nil
		}
	}
	return jsHI, nil // undefined
}

func (p *Plugin) links2Read(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	q, err := parseLinks2(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	if q.idx == nil {
		finish(ctx, req, p.links2Log(ctx, req, q))
		return
	}
	finish(ctx, req, p.links2Index(ctx, req, q))
}

// recordJSON builds a result: the index's fields in its order, after the
// message's key, value and timestamp with unlinkedValues.
func recordJSON(fields [4]string, vals [4]jsv, msg *store.Item) message.Value {
	var ms []message.Member
	if msg != nil {
		it, _ := message.Parse(itemJSON(nil, *msg))
		ms = append(ms, it.Members()...)
	}
	for i, f := range fields {
		ms = append(ms, message.Member{Key: f, Value: vals[i].toJSON()})
	}
	return message.ObjectValue(ms...)
}

func (p *Plugin) links2Index(ctx context.Context, req *muxrpc.Request, q l2query) error {
	cp, err := p.ready(ctx)
	if err != nil {
		return err
	}
	s := &sender{req: req}
	sent := 0
	emit := func(v message.Value) error {
		out, ok := run(q.stages, v)
		if !ok {
			return nil
		}
		sent++
		if err := s.json(out.AppendCompact(s.buf[:0])); err != nil {
			return err
		}
		if q.limit > 0 && sent >= q.limit {
			return errStop
		}
		return nil
	}
	withMsg := func(msg store.Item, opened bool) *store.Item {
		if !q.unlinked {
			return nil
		}
		if !opened {
			msg = p.plain(msg)
		}
		return &msg
	}
	if q.old && bytes.Compare(q.lo, q.hi) <= 0 {
		err := p.scan(ctx, q.idx.bucket, q.lo, q.hi, q.reverse, cp.Seq, func(key []byte, msg store.Item) error {
			items, err := cwDecodeItems(key)
			if err != nil || len(items) != 5 {
				return fmt.Errorf("links: index entry %q: %v", key, err)
			}
			return emit(recordJSON(q.idx.fields, [4]jsv(items[:4]), withMsg(msg, false)))
		})
		if err != nil {
			return err
		}
	}
	if !q.live {
		return nil
	}
	if q.old && q.sync {
		sent++ // pull.take counts the sync marker too
		if err := s.sync(); err != nil {
			return err
		}
		if q.limit > 0 && sent >= q.limit {
			return nil
		}
	}
	return p.follow(ctx, cp, func(d decoded) error {
		for _, r := range links2Records(d.value, d.item.Timestamp) {
			vals := fieldsOf(q.idx, r)
			key := cwKey(vals[0], vals[1], vals[2], vals[3], jsNum(float64(d.item.Seq)))
			if bytes.Compare(key, q.lo) < 0 || bytes.Compare(key, q.hi) > 0 {
				continue
			}
			if err := emit(recordJSON(q.idx.fields, vals, withMsg(d.item, true))); err != nil {
				return err
			}
		}
		return nil
	})
}

func fieldsOf(idx *l2index, r record) [4]jsv {
	var out [4]jsv
	for i, f := range idx.fields {
		switch f {
		case "source":
			out[i] = jsStr(r.source)
		case "dest":
			out[i] = jsStr(r.dest)
		case "rel":
			out[i] = r.rel
		case "ts":
			out[i] = jsNum(r.ts)
		}
	}
	return out
}

// links2Log is the read without an index: every link of every message of
// the log (limit, reverse, live and old as createLogStream has them).
func (p *Plugin) links2Log(ctx context.Context, req *muxrpc.Request, q l2query) error {
	old := q.old
	it, err := p.st.Log(ctx, store.LogQuery{Limit: q.limit, Reverse: q.reverse, Live: q.live, Old: &old})
	if err != nil {
		return fmt.Errorf("links2: %w", err)
	}
	defer it.Close()
	s := &sender{req: req}
	for {
		item, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, store.ErrClosed) || ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		d, ok := decode(item, p.unbox)
		if !ok {
			continue
		}
		for _, r := range links2Records(d.value, item.Timestamp) {
			v := message.ObjectValue(
				message.Member{Key: "source", Value: message.StringValue(r.source)},
				message.Member{Key: "dest", Value: message.StringValue(r.dest)},
				message.Member{Key: "rel", Value: r.rel.toJSON()},
				message.Member{Key: "ts", Value: message.NumberValue(r.ts)},
			)
			if err := s.json(v.AppendCompact(s.buf[:0])); err != nil {
				return err
			}
		}
	}
}
