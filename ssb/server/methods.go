package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// register adds the RPC methods, with ssb-server's names and semantics.
func (s *Server) register() {
	m := &s.mux
	m.Register("manifest", muxrpc.Sync, func(ctx context.Context, req *muxrpc.Request) { req.Return(m.Manifest()) })
	m.Register("version", muxrpc.Sync, func(ctx context.Context, req *muxrpc.Request) { req.Return(Version) })
	m.Register("whoami", muxrpc.Async, func(ctx context.Context, req *muxrpc.Request) {
		req.Return(map[string]string{"id": s.keys.ID.String()})
	})
	m.Register("status", muxrpc.Async, s.status)
	m.Register("progress", muxrpc.Sync, func(ctx context.Context, req *muxrpc.Request) {
		req.Return(map[string]any{"replication": s.repl.Progress(), "peers": s.repl.Peers()})
	})
	m.Register("publish", muxrpc.Async, s.publish)
	m.Register("ownFeed.accept", muxrpc.Async, s.ownFeedAccept)
	m.Register("add", muxrpc.Async, s.add)
	m.Register("createWriteStream", muxrpc.Sink, s.createWriteStream)
	m.Register("get", muxrpc.Async, withOpts("id", s.get))
	m.Register("getLatest", muxrpc.Async, s.getLatest)
	m.Register("latestSequence", muxrpc.Async, s.latestSequence)
	m.Register("createHistoryStream", muxrpc.Source, withOpts("id", s.createHistoryStream))
	m.Register("gossip.connect", muxrpc.Async, s.gossipConnect)
	m.Register("gossip.add", muxrpc.Async, s.gossipAdd)
	m.Register("gossip.remove", muxrpc.Async, s.gossipRemove)
	m.Register("gossip.peers", muxrpc.Sync, s.gossipPeers)
	m.Register("gossip.ping", muxrpc.Duplex, s.gossipPing)
	m.Register("ebt.replicate", muxrpc.Duplex, func(ctx context.Context, req *muxrpc.Request) {
		e, _ := ctx.Value(endpointKey{}).(*muxrpc.Endpoint)
		if err := s.repl.ServeEBT(ctx, req, e, caller(ctx)); err != nil {
			req.Fail(err)
		}
	})
	m.Register("createUserStream", muxrpc.Source, withOpts("id", s.createUserStream))
	m.Register("createLogStream", muxrpc.Source, withOpts("", s.createLogStream))
	m.Register("createFeedStream", muxrpc.Source, withOpts("", s.createFeedStream))
	m.Register("messagesByType", muxrpc.Source, withOpts("type", s.messagesByType))
}

// args decodes a request's arguments: the first into opts (an object, or
// for some methods a string), and reports whether there was one.
func firstArg(req *muxrpc.Request) json.RawMessage {
	var args []json.RawMessage
	if json.Unmarshal(req.Args, &args) != nil || len(args) == 0 {
		return nil
	}
	return args[0]
}

// streamOpts are the options common to ssb-db's streams.
type streamOpts struct {
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
}

// withOpts adapts a method that takes parsed options (see parseOpts); bad
// options fail the request.
func withOpts(field string, fn func(context.Context, *muxrpc.Request, streamOpts)) muxrpc.HandlerFunc {
	return func(ctx context.Context, req *muxrpc.Request) {
		o, err := parseOpts(req, field)
		if err != nil {
			req.Fail(err)
			return
		}
		fn(ctx, req, o)
	}
}

// parseOpts reads the first argument: an options object, or a bare string
// standing for opts.<field> (an id, a type).
func parseOpts(req *muxrpc.Request, field string) (streamOpts, error) {
	var o streamOpts
	arg := firstArg(req)
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

func (s *Server) status(ctx context.Context, req *muxrpc.Request) {
	heads, err := s.store.Feeds(ctx)
	if err != nil {
		req.Fail(err)
		return
	}
	forked := map[string]string{}
	for f, err := range s.repl.Forked() {
		forked[f.String()] = err.Error()
	}
	st := s.store.Stats()
	req.Return(map[string]any{
		"id":          s.keys.ID.String(),
		"version":     Version,
		"feeds":       len(heads),
		"replicating": len(s.repl.Wanted()),
		"forked":      forked,
		"replication": s.repl.Stats(),
		"progress":    s.repl.Progress(),
		"peers":       s.repl.Peers(),
		"ownFeed":     s.own.status(ctx),
		"store": map[string]any{
			"messages":  st.Messages,
			"commits":   st.Commits,
			"appended":  st.Appended,
			"fileBytes": st.FileBytes,
		},
	})
}

// publish signs content as the next message of the server's feed.
func (s *Server) publish(ctx context.Context, req *muxrpc.Request) {
	content := firstArg(req)
	if len(content) == 0 {
		req.Fail(errors.New("publish: content required"))
		return
	}
	m, err := s.publishContent(ctx, content)
	if err != nil {
		req.Fail(err)
		return
	}
	it, err := s.store.Get(m.Key)
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
func (s *Server) publishContent(ctx context.Context, content []byte) (*message.Message, error) {
	v, err := message.Parse(content)
	if err != nil {
		return nil, fmt.Errorf("publish: content: %w", err)
	}
	if r, ok := v.Get("recps"); ok && r.Kind() != message.Null {
		return nil, errPrivate
	}
	if err := s.own.allowPublish(ctx); err != nil {
		return nil, err
	}
	now := float64(time.Now().UnixMilli())
	m, err := s.store.Publish(ctx, s.keys.ID, func(prev message.FeedState) (*message.Message, error) {
		if err := s.own.checkPrev(prev); err != nil {
			return nil, err
		}
		return message.Create(s.keys, s.hmacKey, &prev, now, v)
	})
	var refused *ownFeedError
	if errors.As(err, &refused) {
		return nil, refused // without the store's wrapping: it says all
	}
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	if err := s.own.published(m.State()); err != nil {
		return nil, fmt.Errorf("publish: %s (sequence %d) is stored, but our feed's head could not be recorded, so the publish is not acknowledged: %w", m.Key, m.Sequence, err)
	}
	return m, nil
}

// ownFeedAccept takes the store's head of our feed as its head and allows
// publishing from there: the operator's way out of a recovery no peer can
// complete (see ownfeed.go).
func (s *Server) ownFeedAccept(ctx context.Context, req *muxrpc.Request) {
	if _, err := s.own.accept(); err != nil {
		req.Fail(fmt.Errorf("ownFeed.accept: %w", err))
		return
	}
	req.Return(s.own.status(ctx))
}

// get returns a message's value (or, with {id, meta: true}, its key, value
// and timestamp).
func (s *Server) get(ctx context.Context, req *muxrpc.Request, o streamOpts) {
	id, err := refs.ParseMessage(o.ID)
	if err != nil {
		req.Fail(err)
		return
	}
	it, err := s.store.Get(id)
	if err != nil {
		req.Fail(err)
		return
	}
	if !o.Meta {
		it.Key = refs.Message{}
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

// head returns the latest message of the feed named by the request's
// first argument; on an error it fails the request and reports false.
func (s *Server) head(req *muxrpc.Request) (store.Head, bool) {
	o, err := parseOpts(req, "id")
	if err != nil {
		req.Fail(err)
		return store.Head{}, false
	}
	feed, err := refs.ParseFeed(o.ID)
	if err != nil {
		req.Fail(err)
		return store.Head{}, false
	}
	h, err := s.store.Latest(feed)
	if err != nil {
		req.Fail(err)
		return store.Head{}, false
	}
	return h, true
}

func (s *Server) getLatest(ctx context.Context, req *muxrpc.Request) {
	head, ok := s.head(req)
	if !ok {
		return
	}
	it, err := s.store.Get(head.State.ID)
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

func (s *Server) latestSequence(ctx context.Context, req *muxrpc.Request) {
	if head, ok := s.head(req); ok {
		req.Return(head.State.Sequence)
	}
}

func (s *Server) createHistoryStream(ctx context.Context, req *muxrpc.Request, o streamOpts) {
	feed, err := refs.ParseFeed(o.ID)
	if err != nil {
		req.Fail(fmt.Errorf("createHistoryStream: %w", err))
		return
	}
	if e, ok := ctx.Value(endpointKey{}).(*muxrpc.Endpoint); ok {
		s.repl.Heard(e) // a peer that dialed may be asked for feeds now
	}
	if s.repl.IsBlocked(caller(ctx)) {
		return // ssb-replicate ends the stream at once for a peer we block
	}
	seq := int64(0)
	switch {
	case o.Sequence != nil:
		seq = *o.Sequence
	case o.Seq != nil:
		seq = *o.Seq
	}
	it, err := s.store.History(ctx, store.HistoryQuery{ID: feed, Seq: seq, Limit: o.Limit, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values})
	s.drain(ctx, req, it, err)
}

// createUserStream is createHistoryStream with gt/gte/lt/lte on the
// sequence, and reverse.
func (s *Server) createUserStream(ctx context.Context, req *muxrpc.Request, o streamOpts) {
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
	it, err := s.store.History(ctx, store.HistoryQuery{ID: feed, Seq: from, Limit: limit, Live: o.Live && !o.Reverse, Old: o.Old})
	if err != nil {
		req.Fail(err)
		return
	}
	defer it.Close()
	shape := shaper(o)
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
func shaper(o streamOpts) func(store.Item) store.Item {
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

func (s *Server) createLogStream(ctx context.Context, req *muxrpc.Request, o streamOpts) {
	it, err := s.store.Log(ctx, store.LogQuery{Gt: o.Gt, Gte: o.Gte, Lt: o.Lt, Lte: o.Lte, Limit: o.Limit, Reverse: o.Reverse, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values})
	s.drain(ctx, req, it, err)
}

func (s *Server) createFeedStream(ctx context.Context, req *muxrpc.Request, o streamOpts) {
	// ssb-db compares [rts, author] keys with [bound, null]: its gt is
	// inclusive and its lte exclusive. Mimic it.
	q := store.FeedQuery{Gte: o.Gte, Lt: o.Lt, Limit: o.Limit, Reverse: o.Reverse, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values}
	if o.Gt != nil {
		q.Gte = o.Gt
	}
	if o.Lte != nil {
		q.Lt = o.Lte
	}
	it, err := s.store.Feed(ctx, q)
	s.drain(ctx, req, it, err)
}

func (s *Server) messagesByType(ctx context.Context, req *muxrpc.Request, o streamOpts) {
	if o.Type == "" {
		req.Fail(errors.New("messagesByType: type required"))
		return
	}
	it, err := s.store.Type(ctx, store.TypeQuery{Type: o.Type, Gt: o.Gt, Gte: o.Gte, Lt: o.Lt, Lte: o.Lte, Limit: o.Limit, Reverse: o.Reverse, Live: o.Live, Old: o.Old, Keys: o.Keys, Values: o.Values})
	s.drain(ctx, req, it, err)
}

// drain sends every item of it on the request's stream until it ends, the
// peer aborts, or the connection ends. The iterator pulls from the store
// as the stream sends, so a slow peer never makes the server buffer.
func (s *Server) drain(ctx context.Context, req *muxrpc.Request, it *store.Iterator, err error) {
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
		buf = item.AppendJSON(buf[:0])
		if req.Stream().SendRaw(muxrpc.JSON, buf) != nil {
			return
		}
	}
}

// gossipConnect adds a peer at a multiserver address
// ("net:HOST:PORT~shs:KEY") to the known peers and dials it now; the
// connection replicates until it or the server ends (the scheduler
// reconnects later). It answers once the handshake is done.
func (s *Server) gossipConnect(ctx context.Context, req *muxrpc.Request) {
	addr, err := addressArg(req)
	if err != nil {
		req.Fail(err)
		return
	}
	k, err := s.peers.add(addr)
	if err != nil {
		req.Fail(err)
		return
	}
	// One connection per peer: if one is open or being dialed (by the
	// scheduler), wait for it instead of dialing a second.
	for !s.peers.claim(k) {
		if s.peers.isConnected(k.feed) {
			req.Return(map[string]string{"id": k.feed.String(), "address": addr})
			return
		}
		select {
		case <-ctx.Done():
			req.Fail(fmt.Errorf("gossip.connect: %w", ctx.Err()))
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
	err = s.dialPeer(ctx, k.hostPort, k.feed)
	s.peers.dialed(k)
	if err != nil {
		req.Fail(fmt.Errorf("gossip.connect: %w", err))
		return
	}
	req.Return(map[string]string{"id": k.feed.String(), "address": addr})
}

// parseAddress reads the first net address of a multiserver address.
func parseAddress(addr string) (string, refs.Feed, error) {
	for _, a := range strings.Split(addr, ";") {
		transport, auth, ok := strings.Cut(a, "~")
		hostPort, isNet := strings.CutPrefix(transport, "net:")
		key, isSHS := strings.CutPrefix(auth, "shs:")
		if !ok || !isNet || !isSHS {
			continue
		}
		feed, err := refs.ParseFeed("@" + key + ".ed25519")
		if err != nil {
			return "", refs.Feed{}, fmt.Errorf("gossip.connect: %q: %w", addr, err)
		}
		return hostPort, feed, nil
	}
	return "", refs.Feed{}, fmt.Errorf("gossip.connect: %q is not a net:HOST:PORT~shs:KEY address", addr)
}

// add appends a message signed elsewhere (it must be the next of its feed)
// and returns it with its key.
func (s *Server) add(ctx context.Context, req *muxrpc.Request) {
	raw := firstArg(req)
	if len(raw) == 0 {
		req.Fail(errors.New("add: message required"))
		return
	}
	if err := s.own.allowAppend(ctx, "add", [][]byte{raw}); err != nil {
		req.Fail(err)
		return
	}
	msgs, err := s.store.Append(ctx, raw)
	if err != nil {
		req.Fail(fmt.Errorf("add: %w", err))
		return
	}
	if err := s.own.appended(ctx, msgs); err != nil {
		req.Fail(fmt.Errorf("add: stored, but our feed's head could not be recorded: %w", err))
		return
	}
	it, err := s.store.Get(msgs[0].Key)
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

// createWriteStream appends the messages written to it, in order, in
// batches; it answers the end of the stream once all are durable, or with
// the first error.
func (s *Server) createWriteStream(ctx context.Context, req *muxrpc.Request) {
	st := req.Stream()
	var batch [][]byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		defer func() { batch = batch[:0] }()
		if err := s.own.allowAppend(ctx, "createWriteStream", batch); err != nil {
			return err
		}
		msgs, err := s.store.Append(ctx, batch...)
		if err != nil {
			return err
		}
		return s.own.appended(ctx, msgs)
	}
	for {
		p, err := st.Recv(ctx)
		if err != nil {
			if err := flush(); err != nil {
				st.CloseWithError(fmt.Errorf("createWriteStream: %w", err))
			}
			return
		}
		batch = append(batch, p.Body)
		if len(batch) >= 256 || st.Pending() == 0 {
			if err := flush(); err != nil {
				st.CloseWithError(fmt.Errorf("createWriteStream: %w", err))
				return
			}
		}
	}
}
