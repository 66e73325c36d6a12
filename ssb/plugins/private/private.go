// Package private is end-to-end encrypted messages as ssb-server 16 has
// them (ssb-db's box/unbox with ssb-private1, private-box): content with
// recps is encrypted before it is signed, and the owner reads the
// plaintext of the messages sent to it with private: true.
//
// It offers db (package ssb/plugins/db) its Private interface: BoxContent
// when a publish has recps, UnboxItem for the reads with private: true.
// Which messages are ours is found once, when a message is appended (ours
// or replicated), and kept in an index of log positions (index.go); the
// plaintext is never stored. Its own methods are those of older
// scuttlebots, which git-ssb calls: private.publish(content, recps) and
// private.unbox(ciphertext or message).
package private

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/privatebox"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Publisher publishes content on our feed (the db plugin does).
type Publisher interface {
	PublishContent(ctx context.Context, content []byte) (store.Item, error)
}

// Plugin is the private plugin.
type Plugin struct {
	srv     *server.Server
	log     *slog.Logger
	formats privatebox.Formats // every format we open (".box")
	idx     *index
}

// New returns the private plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "private".
func (p *Plugin) Name() string { return "private" }

// Init derives our X25519 key and opens the index in <path>/private.
func (p *Plugin) Init(s *server.Server) error {
	p.srv, p.log = s, s.Logger()
	if p.log == nil {
		p.log = slog.Default()
	}
	key, err := privatebox.NewKey(s.Keys().Private)
	if err != nil {
		return fmt.Errorf("private: %w", err)
	}
	p.formats = privatebox.NewUnboxer(key)
	idx, err := openIndex(filepath.Join(s.Config().Path, "private"), s.Store(), p.formats, p.log)
	if err != nil {
		return err
	}
	p.idx = idx
	return nil
}

// Run finds our private messages among those in the store, then among each
// new one, until the server stops.
func (p *Plugin) Run(ctx context.Context) error { return p.idx.run(ctx) }

// Methods returns private.publish and private.unbox, for the owner.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "private.publish", Type: muxrpc.Async, Handler: p.publish},
		{Name: "private.unbox", Type: muxrpc.Sync, Handler: p.unbox},
	}
}

// Status reports the index: {"private": {"messages", "scanned", "tried"}}.
func (p *Plugin) Status(context.Context) (map[string]any, error) {
	x := p.idx
	x.mu.Lock()
	defer x.mu.Unlock()
	return map[string]any{"private": map[string]any{
		"messages": len(x.ours),
		"scanned":  x.scanned.Seq,
		"tried":    x.stats.Tried,
	}}, nil
}

// IndexProgress is how far the index of our private messages has read the
// log.
func (p *Plugin) IndexProgress() (current, target uint64) {
	x := p.idx
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.scanned.Seq, x.st.Durable()
}

// recipients reads recps as ssb-server takes them: a feed id, or an array
// of feed ids or {link: id} objects; 1 to 7 of them.
func recipients(r message.Value) ([]refs.Feed, error) {
	elems := []message.Value{r}
	switch r.Kind() {
	case message.Array:
		elems = r.Elems()
	case message.String:
	default:
		return nil, errors.New(`private message field "recps" expects an Array of recipients`)
	}
	if len(elems) == 0 {
		return nil, errors.New(`private message field "recps" requires at least one recipient`)
	}
	if len(elems) > privatebox.MaxRecipients {
		return nil, fmt.Errorf("max recipients is:%d found:%d", privatebox.MaxRecipients, len(elems))
	}
	feeds := make([]refs.Feed, len(elems))
	for i, e := range elems {
		if e.Kind() == message.Object {
			e, _ = e.Get("link")
		}
		f, err := refs.ParseFeed(e.Str())
		if e.Kind() != message.String || err != nil {
			return nil, fmt.Errorf("private message requested, but no boxers could encrypt these recps: %s (%s is not a feed id)", r, e)
		}
		feeds[i] = f
	}
	return feeds, nil
}

// BoxContent encrypts content, JSON.stringify'd as ssb-keys' box does, to
// its recps.
func (p *Plugin) BoxContent(content message.Value) (string, error) {
	r, _ := content.Get("recps")
	feeds, err := recipients(r)
	if err != nil {
		return "", err
	}
	boxed, err := privatebox.BoxString(content.AppendCompact(nil), feeds)
	if err != nil {
		return "", fmt.Errorf("private: %w", err)
	}
	return boxed, nil
}

// UnboxItem decrypts an item that is a private message for us, in ssb-db's
// shape. Messages the index has tried are decrypted only when ours; one
// appended a moment ago and not tried yet is tried now.
func (p *Plugin) UnboxItem(it store.Item) (store.Item, bool) {
	if it.Value == nil {
		return it, false
	}
	if ours, known := p.idx.has(it.Seq); known && !ours {
		return it, false
	}
	content, ok := privateContent(it.Value, p.formats)
	if !ok {
		return it, false
	}
	v, err := message.Parse(it.Value)
	if err != nil {
		return it, false
	}
	plain, rk, ok := p.open(content)
	if !ok {
		return it, false
	}
	it.Value = decorate(v, plain, rk).AppendCompact(nil)
	return it, true
}

// Ours returns the receive sequences of the private messages that are
// ours, in order, once the index has tried every message stored when it is
// called.
func (p *Plugin) Ours(ctx context.Context) ([]uint64, error) {
	x := p.idx
	if err := x.waitScanned(ctx, x.st.Durable()); err != nil {
		return nil, err
	}
	x.mu.Lock()
	seqs := make([]uint64, 0, len(x.ours))
	for seq := range x.ours {
		seqs = append(seqs, seq)
	}
	x.mu.Unlock()
	slices.Sort(seqs)
	return seqs, nil
}

// open decrypts a content string of ours into its JSON value, with its
// read key (nil when the format gives none).
func (p *Plugin) open(content string) (message.Value, []byte, bool) {
	body, rk, ok, err := p.formats.UnboxKey(content)
	if !ok || err != nil {
		return message.Value{}, nil, false
	}
	plain, err := message.Parse(body) // ssb-keys' unboxBody: JSON.parse or nothing
	if err != nil {
		return message.Value{}, nil, false
	}
	return plain, rk, true
}

// decorate is ssb-db's autobox decorate: content replaced by the
// plaintext, then meta {original: {content}, private, unbox}, cyphertext,
// private and unbox appended.
func decorate(v message.Value, plain message.Value, rk []byte) message.Value {
	var cipher message.Value
	members := make([]message.Member, 0, len(v.Members())+4)
	for _, m := range v.Members() {
		if m.Key == "content" {
			cipher = m.Value
			m.Value = plain
		}
		members = append(members, m)
	}
	yes := message.BoolValue(true)
	meta := []message.Member{
		{Key: "original", Value: message.ObjectValue(message.Member{Key: "content", Value: cipher})},
		{Key: "private", Value: yes},
	}
	var unbox []message.Member
	if rk != nil { // ssb-db sets unbox when the format gives a read key
		u := message.StringValue(base64.StdEncoding.EncodeToString(rk))
		meta = append(meta, message.Member{Key: "unbox", Value: u})
		unbox = []message.Member{{Key: "unbox", Value: u}}
	}
	members = append(members,
		message.Member{Key: "meta", Value: message.ObjectValue(meta...)},
		message.Member{Key: "cyphertext", Value: cipher},
		message.Member{Key: "private", Value: yes},
	)
	members = append(members, unbox...)
	return message.ObjectValue(members...)
}

// publish is private.publish(content, recps): content with recps set,
// published encrypted.
func (p *Plugin) publish(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var args []json.RawMessage
	json.Unmarshal(req.Args, &args)
	if len(args) < 2 {
		req.Fail(errors.New("private.publish: content and recps required"))
		return
	}
	content, err := message.Parse(args[0])
	if err != nil || content.Kind() != message.Object {
		req.Fail(errors.New("private.publish: content must be an object"))
		return
	}
	recps, err := message.Parse(args[1])
	if err != nil {
		req.Fail(fmt.Errorf("private.publish: recps: %w", err))
		return
	}
	members := []message.Member{}
	for _, m := range content.Members() {
		if m.Key != "recps" {
			members = append(members, m)
		}
	}
	members = append(members, message.Member{Key: "recps", Value: recps})
	var pub Publisher
	for _, pl := range p.srv.Plugins() {
		if x, ok := pl.(Publisher); ok {
			pub = x
			break
		}
	}
	if pub == nil {
		req.Fail(errors.New("private.publish: no plugin publishes"))
		return
	}
	it, err := pub.PublishContent(ctx, message.ObjectValue(members...).AppendCompact(nil))
	if err != nil {
		req.Fail(err)
		return
	}
	req.Return(json.RawMessage(it.AppendJSON(nil)))
}

// unbox is private.unbox(ciphertext | message | message value): the
// plaintext content, or null when it is not for us.
func (p *Plugin) unbox(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var args []json.RawMessage
	json.Unmarshal(req.Args, &args)
	if len(args) == 0 {
		req.Fail(errors.New("private.unbox: a ciphertext or a message required"))
		return
	}
	var s string
	if json.Unmarshal(args[0], &s) != nil {
		var m struct {
			Content json.RawMessage
			Value   *struct{ Content json.RawMessage }
		}
		json.Unmarshal(args[0], &m)
		c := m.Content
		if m.Value != nil {
			c = m.Value.Content
		}
		if json.Unmarshal(c, &s) != nil {
			req.Fail(errors.New("private.unbox: not a ciphertext, nor a message with one"))
			return
		}
	}
	if !p.formats.Has(s) {
		req.Fail(fmt.Errorf("private.unbox: not the content string of a private message (%s)", privatebox.Suffix))
		return
	}
	plain, _, ok := p.open(s)
	if !ok {
		req.Return(nil)
		return
	}
	req.ReturnRaw(muxrpc.JSON, plain.AppendCompact(nil))
}
