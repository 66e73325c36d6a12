// Package db is the server's message store as ssb-db's RPC methods:
// publish (with own-feed protection, ownfeed.go), add,
// createWriteStream, get, getLatest, latestSequence, del (del.go), the
// queries createUserStream, createLogStream, createFeedStream and
// messagesByType, and the core methods of core.go.
// createHistoryStream, which replication serves, is in package
// replication; it uses this package's StreamOpts and Drain.
package db

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Plugin is the db plugin.
type Plugin struct {
	srv     *server.Server
	store   *store.Store
	keys    *keys.KeyPair
	hmacKey []byte
	own     *ownFeed

	privOnce sync.Once
	priv     Private
}

// A Private plugin encrypts and decrypts private messages for db (package
// ssb/plugins/private); db uses the first of the server's plugins that is
// one. Without it, publishing content with recps is refused.
type Private interface {
	server.Plugin
	// BoxContent encrypts content, which holds recps, into the content
	// string to sign; an error says why nothing can be published.
	BoxContent(content message.Value) (string, error)
	// UnboxItem returns the item in ssb-db's shape for a private message
	// that is ours (value.content decrypted, the markers meta, cyphertext,
	// private, unbox), or false: not private, not ours, or no value.
	UnboxItem(it store.Item) (store.Item, bool)
	// Ours returns the receive sequences of the private messages that are
	// ours, in order, once every message stored when it is called was
	// tried.
	Ours(ctx context.Context) ([]uint64, error)
}

// private returns the server's Private plugin, or nil.
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

// unboxer returns the transformation of items that private: true asks
// for, or nil.
func (p *Plugin) unboxer(o StreamOpts) func(store.Item) store.Item {
	priv := p.private()
	if !o.Private || priv == nil {
		return nil
	}
	return func(it store.Item) store.Item {
		if u, ok := priv.UnboxItem(it); ok {
			return u
		}
		return it
	}
}

// PublishContent publishes content (JSON) as the next message of our feed,
// encrypted when it has recps, and returns it as stored.
func (p *Plugin) PublishContent(ctx context.Context, content []byte) (store.Item, error) {
	m, err := p.publishContent(ctx, content)
	if err != nil {
		return store.Item{}, err
	}
	return p.store.Get(m.Key)
}

// New returns the db plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "db".
func (p *Plugin) Name() string { return "db" }

// Init opens own-feed protection.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.store, p.keys, p.hmacKey = s, s.Store(), s.Keys(), s.HMACKey()
	return p.openOwnFeed(s.Config().Path, s.NewIdentity(), s.Logger())
}

// Methods returns ssb-db's methods, for the owner only.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "publish", Type: muxrpc.Async, Handler: p.publish},
		{Name: "ownFeed.accept", Type: muxrpc.Async, Handler: p.ownFeedAccept},
		{Name: "add", Type: muxrpc.Async, Handler: p.add},
		{Name: "createWriteStream", Type: muxrpc.Sink, Handler: p.createWriteStream},
		{Name: "get", Type: muxrpc.Async, Handler: WithOpts("id", p.get)},
		{Name: "getLatest", Type: muxrpc.Async, Handler: p.getLatest},
		{Name: "latestSequence", Type: muxrpc.Async, Handler: p.latestSequence},
		{Name: "createUserStream", Type: muxrpc.Source, Handler: WithOpts("id", p.createUserStream)},
		{Name: "createLogStream", Type: muxrpc.Source, Handler: WithOpts("", p.createLogStream)},
		{Name: "createFeedStream", Type: muxrpc.Source, Handler: WithOpts("", p.createFeedStream)},
		{Name: "messagesByType", Type: muxrpc.Source, Handler: WithOpts("type", p.messagesByType)},
		{Name: "latest", Type: muxrpc.Source, Handler: p.latest},
		{Name: "getVectorClock", Type: muxrpc.Async, Handler: p.getVectorClock},
		{Name: "getFeedState", Type: muxrpc.Async, Handler: p.getFeedState},
		{Name: "createSequenceStream", Type: muxrpc.Source, Handler: p.createSequenceStream},
		{Name: "createRawLogStream", Type: muxrpc.Source, Handler: WithOpts("", p.createRawLogStream)},
		{Name: "help", Type: muxrpc.Sync, Handler: p.help},
		{Name: "rebuild", Type: muxrpc.Async, Handler: p.rebuild},
		{Name: "del", Type: muxrpc.Async, Handler: p.del},
	}
}

// Connected asks a peer for our feed while it is being recovered
// (ownfeed.go).
func (p *Plugin) Connected(ctx context.Context, c *server.Conn) {
	if c.Peer() {
		p.askOwnFeed(ctx, c.RPC, c.ID)
	}
}

// Disconnected does nothing: a fetch of our feed ends with its connection.
func (p *Plugin) Disconnected(*server.Conn) {}

// Status reports the number of feeds, the store's counters and the own
// feed's state.
func (p *Plugin) Status(ctx context.Context) (map[string]any, error) {
	heads, err := p.store.Feeds(ctx)
	if err != nil {
		return nil, err
	}
	st := p.store.Stats()
	return map[string]any{
		"feeds":   len(heads),
		"ownFeed": p.own.status(ctx),
		"store": map[string]any{
			"messages":  st.Messages,
			"commits":   st.Commits,
			"appended":  st.Appended,
			"fileBytes": st.FileBytes,
		},
	}, nil
}

// WaitOwnFeed waits until the own feed is in state ("ok", "recovering",
// "unconfirmed", "forked") or ctx ends.
func (p *Plugin) WaitOwnFeed(ctx context.Context, state string) error {
	o := p.own
	return o.waitFor(ctx, func() bool { return o.state == state })
}

// FirstArg returns a request's first argument, or nil.
func FirstArg(req *muxrpc.Request) json.RawMessage {
	var args []json.RawMessage
	if json.Unmarshal(req.Args, &args) != nil || len(args) == 0 {
		return nil
	}
	return args[0]
}

// StreamOpts are the options common to ssb-db's streams.
type StreamOpts struct {
	ID       string          `json:"id"`
	Seq      *int64          `json:"seq"`
	Sequence *int64          `json:"sequence"`
	Type     string          `json:"type"`
	Gt       *float64        `json:"gt"`
	Gte      *float64        `json:"gte"`
	Lt       *float64        `json:"lt"`
	Lte      *float64        `json:"lte"`
	Limit    int             `json:"limit"`
	Reverse  bool            `json:"reverse"`
	Live     bool            `json:"live"`
	Old      *bool           `json:"old"`
	Keys     *bool           `json:"keys"`
	Values   *bool           `json:"values"`
	Meta     bool            `json:"meta"`
	Content  json.RawMessage `json:"content"`
	// Private asks for the plaintext of the private messages that are
	// ours, as ssb-db's private: true (owner only: db's methods are).
	Private bool `json:"private"`
}

// WithOpts adapts a method that takes parsed options (see ParseOpts); bad
// options fail the request.
func WithOpts(field string, fn func(context.Context, *server.Conn, *muxrpc.Request, StreamOpts)) func(context.Context, *server.Conn, *muxrpc.Request) {
	return func(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
		o, err := ParseOpts(req, field)
		if err != nil {
			req.Fail(err)
			return
		}
		fn(ctx, c, req, o)
	}
}

// ParseOpts reads the first argument: an options object, or a bare string
// standing for opts.<field> (an id, a type).
func ParseOpts(req *muxrpc.Request, field string) (StreamOpts, error) {
	var o StreamOpts
	arg := FirstArg(req)
	if len(arg) == 0 || string(arg) == "null" {
		return o, nil
	}
	var str string
	if json.Unmarshal(arg, &str) == nil {
		switch field {
		case "id":
			o.ID = str
		case "type":
			o.Type = str
		}
		return o, nil
	}
	if err := json.Unmarshal(arg, &o); err != nil {
		return o, fmt.Errorf("%s: options: %w", req.Method, err)
	}
	return o, nil
}

// publish signs content as the next message of the server's feed.
func (p *Plugin) publish(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	content := FirstArg(req)
	if len(content) == 0 {
		req.Fail(errors.New("publish: content required"))
		return
	}
	m, err := p.publishContent(ctx, content)
	if err != nil {
		req.Fail(err)
		return
	}
	it, err := p.store.Get(m.Key)
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

// publishContent appends content, JSON, as the next message of our feed
// once it is durable in the store and recorded in the own-feed head file
// (ownfeed.go). It refuses content with recipients (it would be public)
// and any publish that could fork our feed.
func (p *Plugin) publishContent(ctx context.Context, content []byte) (*message.Message, error) {
	v, err := message.Parse(content)
	if err != nil {
		return nil, fmt.Errorf("publish: content: %w", err)
	}
	if r, ok := v.Get("recps"); ok && r.Kind() != message.Null {
		priv := p.private()
		if priv == nil {
			return nil, errPrivate
		}
		boxed, err := priv.BoxContent(v)
		if err != nil {
			return nil, fmt.Errorf("publish: %w; nothing was published", err)
		}
		v = message.StringValue(boxed)
	}
	if err := p.own.allowPublish(ctx); err != nil {
		return nil, err
	}
	now := float64(time.Now().UnixMilli())
	m, err := p.store.Publish(ctx, p.keys.ID, func(prev message.FeedState) (*message.Message, error) {
		if err := p.own.checkPrev(prev); err != nil {
			return nil, err
		}
		return message.Create(p.keys, p.hmacKey, &prev, now, v)
	})
	var refused *ownFeedError
	if errors.As(err, &refused) {
		return nil, refused // without the store's wrapping: it says all
	}
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := p.own.published(m.State()); err != nil {
		return nil, fmt.Errorf("publish: %s (sequence %d) is stored, but our feed's head could not be recorded, so the publish is not acknowledged: %w", m.Key, m.Sequence, err)
	}
	return m, nil
}

// ownFeedAccept takes the store's head of our feed as its head and allows
// publishing from there: the operator's way out of a recovery no peer can
// complete (see ownfeed.go).
func (p *Plugin) ownFeedAccept(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	if _, err := p.own.accept(); err != nil {
		req.Fail(fmt.Errorf("ownFeed.accept: %w", err))
		return
	}
	req.Return(p.own.status(ctx))
}

// get returns a message's value (or, with {id, meta: true}, its key, value
// and timestamp).
func (p *Plugin) get(ctx context.Context, _ *server.Conn, req *muxrpc.Request, o StreamOpts) {
	id, err := refs.ParseMessage(o.ID)
	if err != nil {
		req.Fail(err)
		return
	}
	it, err := p.store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		req.Fail(errKeyNotFound(id)) // ssb-db's words
		return
	}
	if err != nil {
		req.Fail(err)
		return
	}
	if u := p.unboxer(o); u != nil {
		it = u(it)
	}
	if !o.Meta {
		it.Key = refs.Message{}
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

// head returns the latest message of the feed named by the request's
// first argument; on an error it fails the request and reports false.
// head reads the feed argument's latest message; a feed the store lacks
// is a zero Head when missingOK, else ssb-db's "not found:@feed".
func (p *Plugin) head(req *muxrpc.Request, missingOK bool) (store.Head, bool) {
	o, err := ParseOpts(req, "id")
	if err != nil {
		req.Fail(err)
		return store.Head{}, false
	}
	feed, err := refs.ParseFeed(o.ID)
	if err != nil {
		req.Fail(err)
		return store.Head{}, false
	}
	h, err := p.store.Latest(feed)
	switch {
	case errors.Is(err, store.ErrNotFound) && missingOK:
		return store.Head{}, true
	case errors.Is(err, store.ErrNotFound):
		req.Fail(fmt.Errorf("not found:%s", feed))
		return store.Head{}, false
	case err != nil:
		req.Fail(err)
		return store.Head{}, false
	}
	return h, true
}

// getLatest answers {key, value} of a feed's latest message, as ssb-db
// (no timestamp), or nothing (false on the wire) for a feed it lacks.
func (p *Plugin) getLatest(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	head, ok := p.head(req, true)
	if !ok {
		return
	}
	if head.State.Sequence == 0 {
		req.Return(false)
		return
	}
	it, err := p.store.Get(head.State.ID)
	if err != nil {
		req.Fail(err)
		return
	}
	b := []byte(`{"key":"` + it.Key.String() + `","value":`)
	b = append(b, it.Value...)
	req.Return(json.RawMessage(append(b, '}')))
}

// latestSequence answers the sequence of a feed's latest message, or
// ssb-db's "not found:@feed".
func (p *Plugin) latestSequence(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	if head, ok := p.head(req, false); ok {
		req.Return(head.State.Sequence)
	}
}

// createUserStream is createHistoryStream with gt/gte/lt/lte on the
// sequence, and reverse.
func (p *Plugin) createUserStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request, o StreamOpts) {
	feed, err := refs.ParseFeed(o.ID)
	if err != nil {
		req.Fail(fmt.Errorf("createUserStream: %w", err))
		return
	}
	from := int64(1)
	if o.Gte != nil {
		from = int64(*o.Gte)
	}
	if o.Gt != nil {
		from = int64(*o.Gt) + 1
	}
	inRange := func(seq int64) bool {
		return (o.Lt == nil || float64(seq) < *o.Lt) && (o.Lte == nil || float64(seq) <= *o.Lte)
	}
	limit := o.Limit
	if o.Reverse {
		limit = 0 // applied after reversing
	}
	// Sequence numbers are needed to apply the bounds: read full items and
	// shape them afterwards.
	it, err := p.store.History(ctx, store.HistoryQuery{ID: feed, Seq: from, Limit: limit, Live: o.Live && !o.Reverse, Old: o.Old})
	if err != nil {
		req.Fail(err)
		return
	}
	defer it.Close()
	shape := shaper(o)
	if u := p.unboxer(o); u != nil {
		shape = func(it store.Item) store.Item { return shaper(o)(u(it)) }
	}
	var items []json.RawMessage
	for {
		item, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			req.Fail(err)
			return
		}
		var v struct{ Sequence int64 }
		json.Unmarshal(item.Value, &v)
		if !inRange(v.Sequence) {
			if o.Live {
				continue
			}
			break
		}
		out := json.RawMessage(shape(item).AppendJSON(nil))
		if o.Reverse {
			items = append(items, out)
			continue
		}
		if req.Stream().Send(out) != nil {
			return
		}
	}
	for i := len(items) - 1; i >= 0 && (o.Limit <= 0 || len(items)-1-i < o.Limit); i-- {
		if req.Stream().Send(items[i]) != nil {
			return
		}
	}
}

// shaper applies keys and values options to a full item.
func shaper(o StreamOpts) func(store.Item) store.Item {
	keys := o.Keys == nil || *o.Keys
	values := o.Values == nil || *o.Values
	return func(it store.Item) store.Item {
		if !keys {
			it.Key = refs.Message{}
		}
		if !values {
			it.Value = nil
		}
		return it
	}
}

func (p *Plugin) createLogStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request, o StreamOpts) {
	it, err := p.store.Log(ctx, store.LogQuery{Gt: o.Gt, Gte: o.Gte, Lt: o.Lt, Lte: o.Lte, Limit: o.Limit, Reverse: o.Reverse, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values})
	DrainWith(ctx, req, it, err, p.unboxer(o))
}

func (p *Plugin) createFeedStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request, o StreamOpts) {
	// ssb-db compares [rts, author] keys with [bound, null]: its gt is
	// inclusive and its lte exclusive. Mimic it.
	q := store.FeedQuery{Gte: o.Gte, Lt: o.Lt, Limit: o.Limit, Reverse: o.Reverse, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values}
	if o.Gt != nil {
		q.Gte = o.Gt
	}
	if o.Lte != nil {
		q.Lt = o.Lte
	}
	it, err := p.store.Feed(ctx, q)
	DrainWith(ctx, req, it, err, p.unboxer(o))
}

func (p *Plugin) messagesByType(ctx context.Context, _ *server.Conn, req *muxrpc.Request, o StreamOpts) {
	if o.Type == "" {
		req.Fail(errors.New("messagesByType: type required"))
		return
	}
	if priv := p.private(); o.Private && priv != nil {
		p.privateByType(ctx, req, o, priv)
		return
	}
	it, err := p.store.Type(ctx, store.TypeQuery{Type: o.Type, Gt: o.Gt, Gte: o.Gte, Lt: o.Lt, Lte: o.Lte, Limit: o.Limit, Reverse: o.Reverse, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values})
	Drain(ctx, req, it, err)
}

// privateByType is messagesByType with private: true, as ssb-db indexes
// types after decryption: the public messages of the type merged, in
// receive order, with our private messages whose plaintext has the type
// (decrypted for the query: the index holds positions only), then, live,
// every new message of the type, decrypted when ours.
func (p *Plugin) privateByType(ctx context.Context, req *muxrpc.Request, o StreamOpts, priv Private) {
	full := func(it store.Item) store.Item { return shaper(o)(it) }
	inBounds := func(ts float64) bool {
		return (o.Gt == nil || ts > *o.Gt) && (o.Gte == nil || ts >= *o.Gte) && (o.Lt == nil || ts < *o.Lt) && (o.Lte == nil || ts <= *o.Lte)
	}
	var live *store.Iterator
	if o.Live && !o.Reverse {
		no := false
		var err error
		if live, err = p.store.Log(ctx, store.LogQuery{Live: true, Old: &no}); err != nil { // before the old part: nothing is missed
			req.Fail(err)
			return
		}
		defer live.Close()
	}
	st := req.Stream()
	var last uint64
	if o.Old == nil || *o.Old {
		ours, err := priv.Ours(ctx)
		if err != nil {
			if ctx.Err() == nil {
				req.Fail(fmt.Errorf("messagesByType: %w", err))
			}
			return
		}
		var mine []store.Item
		for _, seq := range ours {
			it, err := p.store.GetSeq(seq)
			if err != nil || !inBounds(it.Timestamp) {
				continue
			}
			if u, ok := priv.UnboxItem(it); ok && typeOf(u.Value) == o.Type {
				mine = append(mine, u)
			}
		}
		if o.Reverse {
			slices.Reverse(mine)
		}
		pub, err := p.store.Type(ctx, store.TypeQuery{Type: o.Type, Gt: o.Gt, Gte: o.Gte, Lt: o.Lt, Lte: o.Lte, Limit: o.Limit, Reverse: o.Reverse})
		if err != nil {
			req.Fail(err)
			return
		}
		defer pub.Close()
		next, pubErr := pub.Next(ctx)
		for sent := 0; o.Limit <= 0 || sent < o.Limit; sent++ {
			var out store.Item
			switch {
			case pubErr != nil && len(mine) == 0:
				if !errors.Is(pubErr, io.EOF) {
					req.Fail(pubErr)
					return
				}
			case pubErr != nil || (len(mine) > 0 && (mine[0].Seq < next.Seq) != o.Reverse):
				out, mine = mine[0], mine[1:]
			default:
				out = next
				next, pubErr = pub.Next(ctx)
			}
			if out.Value == nil {
				break
			}
			last = max(last, out.Seq)
			if st.SendRaw(muxrpc.JSON, full(out).AppendJSON(nil)) != nil {
				return
			}
		}
	}
	if live == nil {
		return
	}
	for {
		it, err := live.Next(ctx)
		if err != nil {
			return
		}
		if it.Seq <= last || !inBounds(it.Timestamp) {
			continue
		}
		if u, ok := priv.UnboxItem(it); ok {
			it = u
		}
		if typeOf(it.Value) != o.Type {
			continue
		}
		if st.SendRaw(muxrpc.JSON, full(it).AppendJSON(nil)) != nil {
			return
		}
	}
}

// typeOf returns a message value's content.type, or "".
func typeOf(value []byte) string {
	var v struct {
		Content struct {
			Type string `json:"type"`
		} `json:"content"`
	}
	json.Unmarshal(value, &v)
	return v.Content.Type
}

// Drain sends every item of it on the request's stream until it ends, the
// peer aborts, or the connection ends. The iterator pulls from the store
// as the stream sends, so a slow peer never makes the server buffer.
func Drain(ctx context.Context, req *muxrpc.Request, it *store.Iterator, err error) {
	DrainWith(ctx, req, it, err, nil)
}

// DrainWith is Drain with each item passed through fn first (when not nil).
func DrainWith(ctx context.Context, req *muxrpc.Request, it *store.Iterator, err error, fn func(store.Item) store.Item) {
	if err != nil {
		req.Fail(err)
		return
	}
	defer it.Close()
	var buf []byte
	for {
		item, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
				req.Fail(err)
			}
			return
		}
		if fn != nil {
			item = fn(item)
		}
		buf = item.AppendJSON(buf[:0])
		if req.Stream().SendRaw(muxrpc.JSON, buf) != nil {
			return
		}
	}
}

// add appends a message signed elsewhere (it must be the next of its feed)
// and returns it with its key.
func (p *Plugin) add(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	raw := FirstArg(req)
	if len(raw) == 0 {
		req.Fail(errors.New("add: message required"))
		return
	}
	if err := p.own.allowAppend(ctx, "add", [][]byte{raw}); err != nil {
		req.Fail(err)
		return
	}
	msgs, err := p.store.Append(ctx, raw)
	if err != nil {
		req.Fail(fmt.Errorf("add: %w", err))
		return
	}
	if err := p.own.appended(ctx, msgs); err != nil {
		req.Fail(fmt.Errorf("add: stored, but our feed's head could not be recorded: %w", err))
		return
	}
	it, err := p.store.Get(msgs[0].Key)
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

// createWriteStream appends the messages written to it, in order, in
// batches; it answers the end of the stream once all are durable, or with
// the first error.
//
// It is a pipeline of four goroutines, so that a stream goes at the
// store's validated-append speed: one receives (keeping the stream's
// window of muxrpc.StreamBuffer packets open), one gathers what arrived
// into a batch while the next stage is busy, one verifies a batch
// (store.Verify, on every core) while the previous one commits, and one
// commits the batches, one at a time and in order (store.AppendMessages:
// each is durable before the next is submitted). The first invalid
// message ends the stream with its error, once the batches before it are
// stored; nothing of its batch or after it is stored. Our own messages are
// checked by own-feed protection before they are verified; a batch it
// refuses is checked again once every batch before it is stored (storing
// them may end a recovery), and then verified and appended alone.
func (p *Plugin) createWriteStream(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	st := req.Stream()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	packets := make(chan []byte)
	toVerify := make(chan *writeBatch)
	toCommit := make(chan *writeBatch)
	var firstErr error // set by the committer before it cancels ctx
	var wg sync.WaitGroup
	wg.Go(func() { receiveBodies(ctx, st, packets) })
	wg.Go(func() { p.verifyBatches(ctx, toVerify, toCommit) })
	wg.Go(func() {
		p.commitBatches(ctx, toCommit, func(err error) {
			firstErr = err
			cancel() // stops the receiver, the batcher and the verifier
		})
	})
	gatherBatches(ctx, packets, toVerify)
	close(toVerify)
	wg.Wait()
	if firstErr != nil {
		st.CloseWithError(fmt.Errorf("createWriteStream: %w", firstErr))
	}
}

// The bounds of a createWriteStream batch: a stream holds up to three
// batches (one being gathered, one verified, one committed), beyond the
// muxrpc.StreamBuffer packets muxrpc queues.
const (
	writeBatchMax   = 1024    // messages
	writeBatchBytes = 1 << 20 // bytes of JSON
)

// A writeBatch is a part of a createWriteStream on its way to the store.
type writeBatch struct {
	raws [][]byte
	size int
	msgs []*message.Message // verified
	err  error              // why it cannot be stored: the stream's error
	// recheck: own-feed protection refused the batch before the batches
	// ahead of it were stored; the committer checks it again.
	recheck bool
}

// receiveBodies sends the stream's packets' bodies on out until the stream
// or ctx ends, then closes out.
func receiveBodies(ctx context.Context, st *muxrpc.Stream, out chan<- []byte) {
	defer close(out)
	for {
		pk, err := st.Recv(ctx)
		if err != nil {
			return
		}
		select {
		case out <- pk.Body:
		case <-ctx.Done():
			return
		}
	}
}

// gatherBatches gathers bodies into batches and sends each on out as soon
// as out takes it: a batch grows while the verifier is busy, up to the
// bounds, and a partial batch is sent when the verifier is free.
func gatherBatches(ctx context.Context, bodies <-chan []byte, out chan<- *writeBatch) {
	b := &writeBatch{}
	for {
		in, send := bodies, out
		switch {
		case len(b.raws) == 0:
			send = nil
		case len(b.raws) >= writeBatchMax || b.size >= writeBatchBytes:
			in = nil
		}
		select {
		case body, ok := <-in:
			if !ok {
				if len(b.raws) > 0 {
					select {
					case out <- b:
					case <-ctx.Done():
					}
				}
				return
			}
			b.raws = append(b.raws, body)
			b.size += len(body)
		case send <- b:
			b = &writeBatch{}
		case <-ctx.Done():
			return
		}
	}
}

// verifyBatches verifies the batches of in and sends them, in order, on
// out (which it closes). After a batch that fails, it drops the rest.
func (p *Plugin) verifyBatches(ctx context.Context, in <-chan *writeBatch, out chan<- *writeBatch) {
	defer close(out)
	failed := false
	for b := range in {
		if failed {
			continue
		}
		if p.own.allowAppend(ctx, "createWriteStream", b.raws) != nil {
			b.recheck = true
		} else {
			b.msgs, b.err = p.store.Verify(ctx, b.raws...)
			failed = b.err != nil
		}
		select {
		case out <- b:
		case <-ctx.Done():
			failed = true
		}
	}
}

// commitBatches stores the batches of in, one at a time, until one fails:
// it calls fail with the error at once, and stores nothing after it.
func (p *Plugin) commitBatches(ctx context.Context, in <-chan *writeBatch, fail func(error)) {
	failed := false
	for b := range in {
		if failed {
			continue
		}
		if err := p.commitBatch(ctx, b); err != nil {
			failed = true
			fail(err)
		}
	}
}

func (p *Plugin) commitBatch(ctx context.Context, b *writeBatch) error {
	switch {
	case b.err != nil:
		return b.err
	case b.recheck:
		if err := p.own.allowAppend(ctx, "createWriteStream", b.raws); err != nil {
			return err
		}
		msgs, err := p.store.Append(ctx, b.raws...)
		if err != nil {
			return err
		}
		b.msgs = msgs
	default:
		if err := p.store.AppendMessages(ctx, b.msgs...); err != nil {
			return err
		}
	}
	return p.own.appended(ctx, b.msgs)
}
