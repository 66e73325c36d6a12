package db

// ssb-db@20's del(target): target is a message id or a feed id
// (muxrpc-validation's 'msgLink|feedId'). ssb-db deletes a message by
// blanking its record in the log (its views keep it: latest, getLatest
// and getVectorClock still report it until rebuild, and its feed keeps a
// hole in createHistoryStream), and a feed by deleting each of its
// messages; it refuses nothing. Here:
//
//   - del(feed) deletes every message of the feed, its head and its index
//     entries in one durable step, and answers their ids in sequence order
//     as ssb-db does; a feed the store lacks answers [], as in ssb-db. Our
//     own feed is refused: the server never forks its feed, and a new
//     message 1 would.
//   - del(message) deletes the latest message of its feed and answers
//     false, as ssb-db does. A message in the middle of a feed is refused
//     (store.ErrGap): we serve feeds to peers, and a hole is a feed no
//     peer can validate past. The messages of a feed can be deleted from
//     the latest back, one call each. A message of our own feed is
//     refused: a new message in its place would fork our feed for every
//     peer that has the old one. An unknown message fails with ssb-db's
//     words, "Key not found in database [%…]".
//
// The store forgets a deleted feed's head at once, so latest,
// getVectorClock and getFeedState no longer list it (ssb-db's do until
// rebuild), and replication, which wants the feeds the follow graph
// reaches, fetches it again while we still follow it: from the next
// connection to a peer that has it (an EBT session in progress keeps its
// note of what we had). ssb-server fetches it again only after rebuild.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// errOwnFeed refuses to delete our own feed or any of its messages.
var errOwnFeed = errors.New("db: del: refusing to delete our own feed or a message of it: the server never forks its feed, and peers that hold its messages would see a fork in whatever we published in their place")

// del is ssb-db's del (see the top of this file).
func (p *Plugin) del(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	arg := FirstArg(req)
	if arg == nil {
		req.Fail(errParamRequired)
		return
	}
	var target string
	if json.Unmarshal(arg, &target) != nil {
		req.Fail(errParamFeedID)
		return
	}
	if id, err := refs.ParseMessage(target); err == nil {
		p.delMessage(ctx, req, id)
		return
	}
	feed, err := refs.ParseFeed(target)
	if err != nil {
		req.Fail(errParamFeedID)
		return
	}
	if feed == p.keys.ID {
		req.Fail(errOwnFeed)
		return
	}
	d, err := p.store.DeleteFeed(ctx, feed)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		req.Fail(fmt.Errorf("db: del: %w", err))
		return
	}
	keys := make([]string, len(d.Keys))
	for i, k := range d.Keys {
		keys[i] = k.String()
	}
	req.Return(keys)
}

// delMessage deletes message id, the latest of a feed not ours.
func (p *Plugin) delMessage(ctx context.Context, req *muxrpc.Request, id refs.Message) {
	it, err := p.store.Get(id)
	if errors.Is(err, store.ErrNotFound) {
		req.Fail(errKeyNotFound(id))
		return
	}
	if err != nil {
		req.Fail(fmt.Errorf("db: del: %w", err))
		return
	}
	var v struct {
		Author string `json:"author"`
	}
	if err := json.Unmarshal(it.Value, &v); err != nil {
		req.Fail(fmt.Errorf("db: del: message %s: %w", id, err))
		return
	}
	if v.Author == p.keys.ID.String() {
		req.Fail(errOwnFeed)
		return
	}
	_, err = p.store.DeleteMessage(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		req.Fail(errKeyNotFound(id))
	case errors.Is(err, store.ErrGap):
		req.Fail(fmt.Errorf("db: del: %w; we serve this feed to peers, so only a whole feed (del %s) or its latest message can be deleted", err, v.Author))
	case err != nil:
		req.Fail(fmt.Errorf("db: del: %w", err))
	default:
		req.Return(false)
	}
}

// errKeyNotFound is ssb-db's error for a message it lacks (flumeview-level
// via ssb-db's get and del), with its name, which clients test.
func errKeyNotFound(id refs.Message) error {
	return &muxrpc.Error{Name: "NotFoundError", Message: fmt.Sprintf("Key not found in database [%s]", id)}
}
