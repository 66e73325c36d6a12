package links

import (
	"context"
	"errors"
	"fmt"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// ssb-db 20's links(opts): the links of messages' top-level content
// fields, from source (a feed id or a sigil), to dest (an id or a sigil),
// of rel; ordered as its index is: by [source, rel, dest, sequence, key]
// or, when only dest is given, by [dest, rel, source, sequence, key].
// ssb-db ignores limit, and so does this.

// linksQuery is a parsed links call.
type linksQuery struct {
	src, dst, rel      string // src and dst: "", a sigil or an id
	back               bool
	keys, meta, values bool
	reverse, old, live bool
	sync               bool
}

// sigil maps ssb-db's type names (feed, msg, blob) to sigils.
func sigil(s string) string {
	switch s {
	case "feed":
		return "@"
	case "msg":
		return "%"
	case "blob":
		return "&"
	}
	return s
}

func isFilter(s string) bool {
	switch s {
	case "@", "%", "&", "feed", "msg", "blob":
		return true
	}
	return false
}

// parseLinks checks the options as ssb-db's linksOpts validator and
// index.links do.
func parseLinks(arg message.Value, ok bool) (linksQuery, error) {
	if !ok || arg.Kind() != message.Object {
		return linksQuery{}, errors.New("links: param 0 must be of type \"object\" (opts *must* be provided)")
	}
	o := opts{arg}
	for _, k := range []string{"source", "dest"} {
		v, ok := o.get(k)
		if truthy(v, ok) && (v.Kind() != message.String || (!isLink(v.Str()) && !isFilter(v.Str()))) {
			return linksQuery{}, fmt.Errorf("links: .%s of param 0 must be of type \"id|filter\"", k)
		}
	}
	if v, ok := o.get("rel"); truthy(v, ok) && v.Kind() != message.String {
		return linksQuery{}, errors.New("links: .rel of param 0 must be of type \"string\"")
	}
	for _, k := range []string{"live", "reverse", "keys", "values"} {
		if err := o.flag("links", k); err != nil {
			return linksQuery{}, err
		}
	}
	q := linksQuery{
		src: sigil(o.str("source")), dst: sigil(o.str("dest")), rel: o.str("rel"),
		keys: !o.is("keys", false), meta: !o.is("meta", false), values: o.is("values", true),
		reverse: o.truthy("reverse"), old: o.old(), live: o.live(), sync: !o.is("sync", false),
	}
	if !q.values && !q.meta && !q.keys {
		return linksQuery{}, errors.New("makes no sense to return stream without resultsset at least one of {keys, values, meta} to true")
	}
	q.back = q.dst != "" && q.src == ""
	return q, nil
}

// testLink is ssb-db's: a sigil matches ids of its kind, an id itself.
func testLink(actual, expected string) bool {
	if expected == "" {
		return true
	}
	if len(expected) == 1 {
		return actual != "" && actual[0] == expected[0]
	}
	return actual == expected
}

func (q linksQuery) match(source, rel, dest string) bool {
	return (q.rel == "" || q.rel == rel) && testLink(dest, q.dst) && testLink(source, q.src)
}

// bounds returns the bucket and key range the query reads.
func (q linksQuery) bounds() (bucket, lo, hi []byte) {
	from := q.src
	bucket = bLink
	if q.back {
		from, bucket = q.dst, bBack
	}
	var prefix []byte
	switch {
	case from == "":
	case len(from) == 1:
		prefix = []byte("J" + from)
	default:
		prefix = append(cwItem(nil, jsStr(from)), '"')
		if q.rel != "" {
			prefix = append(append(prefix, cwItem(nil, jsStr(q.rel))...), '"')
		}
	}
	lo, hi = prefixRange(prefix)
	return bucket, lo, hi
}

func (p *Plugin) links(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	q, err := parseLinks(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	finish(ctx, req, p.runLinks(ctx, req, q))
}

func (p *Plugin) runLinks(ctx context.Context, req *muxrpc.Request, q linksQuery) error {
	cp, err := p.ready(ctx)
	if err != nil {
		return err
	}
	s := &sender{req: req}
	if q.old {
		bucket, lo, hi := q.bounds()
		err := p.scan(ctx, bucket, lo, hi, q.reverse, cp.Seq, func(key []byte, msg store.Item) error {
			items, err := cwDecodeItems(key)
			if err != nil || len(items) != 4 {
				return fmt.Errorf("links: index entry %q: %v", key, err)
			}
			source, rel, dest := items[0].s, items[1].s, items[2].s
			if q.back {
				source, dest = dest, source
			}
			if !q.match(source, rel, dest) {
				return nil
			}
			return p.sendLink(s, q, source, rel, dest, msg.Key.String(), msg, store.Item{})
		})
		if err != nil {
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
		author, _ := get(d.value, "author")
		for _, l := range dbLinks(d.value) {
			if !q.match(author.Str(), l.rel, l.link) {
				continue
			}
			if err := p.sendLink(s, q, author.Str(), l.rel, l.link, d.item.Key.String(), d.stored, d.item); err != nil {
				return err
			}
		}
		return nil
	})
}

// sendLink sends one result in ssb-db's shape: with meta {source, rel,
// dest, key, value} (the value as stored: a private message boxed),
// without it the key, or the value (opened), or {key, value}. msg is the
// message as stored, plain the opened one when the caller has it.
func (p *Plugin) sendLink(s *sender, q linksQuery, source, rel, dest, key string, msg, plain store.Item) error {
	var value []byte
	if q.values {
		it := msg
		if !q.meta {
			if plain.Value != nil {
				it = plain
			} else {
				it = p.plain(it)
			}
		}
		value = it.Value
	}
	b := s.buf[:0]
	switch {
	case q.meta:
		b = append(b, `{"source":`...)
		b = appendStr(b, source)
		b = append(b, `,"rel":`...)
		b = appendStr(b, rel)
		b = append(b, `,"dest":`...)
		b = appendStr(b, dest)
		if q.keys {
			b = append(b, `,"key":`...)
			b = appendStr(b, key)
		}
		if q.values {
			b = append(b, `,"value":`...)
			b = append(b, value...)
		}
		b = append(b, '}')
	case q.keys && q.values:
		b = append(b, `{"key":`...)
		b = appendStr(b, key)
		b = append(b, `,"value":`...)
		b = append(b, value...)
		b = append(b, '}')
	case q.keys:
		return s.str(key)
	default:
		b = append(b, value...)
	}
	s.buf = b
	return s.json(b)
}
