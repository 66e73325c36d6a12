package replication

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
)

// The owner's methods of ssb-replicate (request, block: sync; upto,
// changes: source) and ssb-ebt (request, block, peerStatus: sync), over
// the one replicator: legacy and EBT share the wanted feeds and the
// blocks, so replicate.request and ebt.request do the same (in ssb-server
// replicate.request reaches ssb-ebt through a hook, and ebt.request is in
// the manifest but fails), and so do the two blocks. What they change is
// kept across restarts (replicate.Replicator.PolicyFile).

// requestArgs decodes request(id, replicate) or request({id, replicate}):
// replicate is false only when it is the JSON false, as in ssb-replicate.
// ok is false when id is not a feed (ssb-ebt's hook then does nothing).
func requestArgs(raw json.RawMessage) (f refs.Feed, want, ok bool) {
	var args []json.RawMessage
	if json.Unmarshal(raw, &args) != nil || len(args) == 0 {
		return refs.Feed{}, false, false
	}
	idRaw, wantRaw := args[0], json.RawMessage(nil)
	if len(args) > 1 {
		wantRaw = args[1]
	}
	var obj struct {
		ID        json.RawMessage `json:"id"`
		Replicate json.RawMessage `json:"replicate"`
	}
	if isObject(args[0]) && json.Unmarshal(args[0], &obj) == nil {
		idRaw, wantRaw = obj.ID, obj.Replicate
	}
	f, ok = feedArg(idRaw)
	return f, !bytes.Equal(bytes.TrimSpace(wantRaw), []byte("false")), ok
}

// blockArgs decodes block(from, to, blocking) or block({from, to,
// blocking}); blocking is JavaScript truthiness. ok is false unless both
// are feeds.
func blockArgs(raw json.RawMessage) (from, to refs.Feed, blocking, ok bool) {
	var args []json.RawMessage
	if json.Unmarshal(raw, &args) != nil || len(args) == 0 {
		return refs.Feed{}, refs.Feed{}, false, false
	}
	for len(args) < 3 {
		args = append(args, nil)
	}
	fromRaw, toRaw, bRaw := args[0], args[1], args[2]
	var obj struct {
		From     json.RawMessage `json:"from"`
		To       json.RawMessage `json:"to"`
		Blocking json.RawMessage `json:"blocking"`
	}
	if isObject(args[0]) && json.Unmarshal(args[0], &obj) == nil {
		fromRaw, toRaw, bRaw = obj.From, obj.To, obj.Blocking
	}
	from, ok1 := feedArg(fromRaw)
	to, ok2 := feedArg(toRaw)
	return from, to, truthy(bRaw), ok1 && ok2
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

func feedArg(raw json.RawMessage) (refs.Feed, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return refs.Feed{}, false
	}
	f, err := refs.ParseFeed(s)
	return f, err == nil
}

// truthy is JavaScript's truthiness of a JSON value (absent is undefined).
func truthy(raw json.RawMessage) bool {
	switch s := string(bytes.TrimSpace(raw)); s {
	case "", "null", "false", `""`:
		return false
	default:
		var n float64
		if json.Unmarshal(raw, &n) == nil {
			return n != 0
		}
		return true
	}
}

// request is replicate.request and ebt.request: it answers false
// (ssb-replicate's undefined) once the request is kept.
func (p *Plugin) request(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	f, want, ok := requestArgs(req.Args)
	if ok {
		if err := p.repl.Request(f, want); err != nil {
			req.Fail(err)
			return
		}
	}
	req.Return(false)
}

// block is replicate.block and ebt.block. A block from our own feed also
// closes the connections with the peer, as ssb-ebt does.
func (p *Plugin) block(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	from, to, blocking, ok := blockArgs(req.Args)
	if ok {
		if err := p.repl.Block(from, to, blocking); err != nil {
			req.Fail(err)
			return
		}
		if blocking && from == p.srv.ID() && to != from {
			p.srv.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				p.srv.Disconnect(ctx, to)
			})
		}
	}
	req.Return(false)
}

// upto streams {id, sequence} of each wanted feed; with {live: true}, then
// {sync: true} and the changes ({id, sequence: -1} for a feed given up).
func (p *Plugin) upto(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var args []struct {
		Live json.RawMessage `json:"live"`
	}
	json.Unmarshal(req.Args, &args)
	live := len(args) > 0 && truthy(args[0].Live)
	var changes <-chan replicate.Upto
	if live {
		ch, stop := p.repl.WatchWanted()
		defer stop()
		changes = ch
	}
	s := req.Stream()
	for _, u := range p.repl.Upto() {
		if s.Send(u) != nil {
			return
		}
	}
	if !live {
		return
	}
	if s.Send(map[string]bool{"sync": true}) != nil {
		return
	}
	for {
		select {
		case u, ok := <-changes:
			if !ok {
				s.CloseWithError(errTooSlow)
				return
			}
			if s.Send(u) != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

// errTooSlow ends a live upto whose reader fell too far behind.
var errTooSlow = errors.New("replicate.upto: the reader fell behind the changes; ask again")

// changes streams replication's change events as ssb-replicate emits them.
func (p *Plugin) changes(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	s := req.Stream()
	if err := p.repl.Changes(ctx, func(c replicate.Change) error { return s.Send(c) }); err != nil && ctx.Err() == nil {
		s.CloseWithError(err)
	}
}

// peerStatus answers ssb-ebt's peerStatus(id): id (ours if absent or
// falsy) as given, our sequence, and each EBT peer's state of the feed.
func (p *Plugin) peerStatus(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var args []json.RawMessage
	json.Unmarshal(req.Args, &args)
	id := json.RawMessage(nil)
	if len(args) > 0 && truthy(args[0]) {
		id = args[0]
	}
	st := replicate.FeedStatus{Peers: map[string]replicate.PeerFeed{}}
	if id == nil {
		b, _ := json.Marshal(p.srv.ID().String())
		id = b
		st = p.repl.PeerStatus(p.srv.ID())
	} else if f, ok := feedArg(id); ok {
		st = p.repl.PeerStatus(f)
	}
	req.Return(struct {
		ID    json.RawMessage               `json:"id"`
		Seq   *int64                        `json:"seq,omitempty"`
		Peers map[string]replicate.PeerFeed `json:"peers"`
	}{id, st.Seq, st.Peers})
}
