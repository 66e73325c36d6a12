package links

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	bolt "go.etcd.io/bbolt"

	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/store"
)

// What the three methods share: their options, reading a range of the
// view in chunks, and following the log for live results.

// opts are a call's options object, read as JavaScript reads them.
type opts struct{ v message.Value }

// firstArg returns the call's first argument, and whether there is one.
func firstArg(req *muxrpc.Request) (message.Value, bool) {
	args, err := message.Parse(req.Args)
	if err != nil || args.Kind() != message.Array || len(args.Elems()) == 0 {
		return message.Value{}, false
	}
	return args.Elems()[0], true
}

func (o opts) get(k string) (message.Value, bool) { return get(o.v, k) }
func (o opts) truthy(k string) bool               { return truthy(o.get(k)) }

// is reports whether option k is exactly the boolean b.
func (o opts) is(k string, b bool) bool {
	v, ok := o.get(k)
	return ok && v.Kind() == message.Bool && v.Bool() == b
}

// str returns option k when it is a string.
func (o opts) str(k string) string {
	v, ok := o.get(k)
	if ok && v.Kind() == message.String {
		return v.Str()
	}
	return ""
}

// flag checks option k as muxrpc-validation's boolean does: a truthy
// value must be a boolean or a number.
func (o opts) flag(method, k string) error {
	v, ok := o.get(k)
	if truthy(v, ok) && v.Kind() != message.Bool && v.Kind() != message.Number {
		return fmt.Errorf("%s: .%s of param 0 must be of type \"boolean\"", method, k)
	}
	return nil
}

// old and live: pull-live's reading (old unless old === false; live when
// live === true or old === false).
func (o opts) old() bool  { return !o.is("old", false) }
func (o opts) live() bool { return o.is("live", true) || o.is("old", false) }

// chunkSize is how many index entries are read per read transaction: a
// slow reader never holds one open.
const chunkSize = 256

// maxLimit bounds the limit option.
const maxLimit = 1 << 31

// ready waits until the view has seen every message the store holds, and
// returns its checkpoint: old results are the entries up to it.
func (p *Plugin) ready(ctx context.Context) (index.Checkpoint, error) {
	v, err := p.getView(ctx)
	if err != nil {
		return index.Checkpoint{}, err
	}
	if err := v.Wait(ctx, p.st.Durable()); err != nil {
		return index.Checkpoint{}, fmt.Errorf("links: %w", err)
	}
	return v.Checkpoint(), nil
}

// scan calls fn with each entry of bucket between lo and hi (inclusive),
// in key order or reversed, whose receive sequence is at most top, and
// its message. Entries of messages deleted from the store since the view
// saw them are skipped, as flumeview-level drops them when it reads them.
// fn runs outside the read transactions; it stops the scan with errStop.
func (p *Plugin) scan(ctx context.Context, bucket, lo, hi []byte, reverse bool, top uint64, fn func(key []byte, msg store.Item) error) error {
	var last []byte
	type entry struct {
		key []byte
		seq uint64
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		var chunk []entry
		done := true
		err := p.view.View(func(tx *bolt.Tx) error { // open: scans follow ready
			b := tx.Bucket(bucket)
			if b == nil {
				return nil
			}
			c := b.Cursor()
			var k, v []byte
			switch {
			case last == nil && !reverse:
				k, v = c.Seek(lo)
			case last == nil:
				if k, v = c.Seek(hi); k == nil {
					k, v = c.Last()
				} else if bytes.Compare(k, hi) > 0 {
					k, v = c.Prev()
				}
			case !reverse:
				if k, v = c.Seek(last); bytes.Equal(k, last) {
					k, v = c.Next()
				}
			default:
				if k, _ = c.Seek(last); k == nil {
					k, v = c.Last()
				} else {
					k, v = c.Prev()
				}
			}
			for ; k != nil; k, v = step(c, reverse) {
				if (!reverse && bytes.Compare(k, hi) > 0) || (reverse && bytes.Compare(k, lo) < 0) {
					return nil
				}
				last = append(last[:0], k...)
				if len(v) != 8 {
					return fmt.Errorf("links: index entry %q has a value of %d bytes", k, len(v))
				}
				if seq := binary.BigEndian.Uint64(v); seq <= top {
					chunk = append(chunk, entry{bytes.Clone(k), seq})
				}
				if len(chunk) >= chunkSize {
					done = false
					return nil
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range chunk {
			msg, err := p.st.GetSeq(e.seq)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return fmt.Errorf("links: %w", err)
			}
			if err := fn(e.key, msg); err != nil {
				return err
			}
		}
		if done {
			return nil
		}
	}
}

func step(c *bolt.Cursor, reverse bool) ([]byte, []byte) {
	if reverse {
		return c.Prev()
	}
	return c.Next()
}

// prefixRange returns the inclusive bounds of the keys that start with
// prefix (keys are UTF-8: 0xff never occurs).
func prefixRange(prefix []byte) ([]byte, []byte) {
	return prefix, append(bytes.Clone(prefix), 0xff)
}

// errStop ends a scan or a live stream early without an error.
var errStop = errors.New("links: stop")

// follow calls fn with each message stored after cp, as it is stored,
// until ctx ends or fn returns an error.
func (p *Plugin) follow(ctx context.Context, cp index.Checkpoint, fn func(d decoded) error) error {
	q := store.LogQuery{Live: true}
	if cp.Seq > 0 {
		ts := cp.Timestamp
		q.Gt = &ts
	}
	it, err := p.st.Log(ctx, q)
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		item, err := it.Next(ctx)
		if errors.Is(err, io.EOF) || errors.Is(err, store.ErrClosed) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		d, ok := decode(item, p.unbox)
		if !ok {
			continue
		}
		if err := fn(d); err != nil {
			return err
		}
	}
}

// plain returns the item with its value opened when it is a private
// message for us (ssb-db's views see it so).
func (p *Plugin) plain(it store.Item) store.Item {
	if p.unbox == nil {
		return it
	}
	if open, ok := p.unbox.UnboxItem(it); ok {
		return open
	}
	return it
}

// sender sends JSON items on a source stream.
type sender struct {
	req *muxrpc.Request
	buf []byte
}

func (s *sender) json(b []byte) error { return s.req.Stream().SendRaw(muxrpc.JSON, b) }

func (s *sender) str(v string) error { return s.req.Stream().SendRaw(muxrpc.String, []byte(v)) }

func (s *sender) sync() error { return s.json([]byte(`{"sync":true}`)) }

// finish ends a handler: an error is sent unless the caller went away.
func finish(ctx context.Context, req *muxrpc.Request, err error) {
	if err == nil || errors.Is(err, errStop) || ctx.Err() != nil || errors.Is(err, muxrpc.ErrStreamEnded) || errors.Is(err, muxrpc.ErrClosed) {
		return
	}
	req.Fail(err)
}

func appendStr(dst []byte, s string) []byte { return message.StringValue(s).AppendCompact(dst) }

// itemJSON is {key, value, timestamp} of an item.
func itemJSON(dst []byte, it store.Item) []byte {
	it.RTS = 0
	return it.AppendJSON(dst)
}
