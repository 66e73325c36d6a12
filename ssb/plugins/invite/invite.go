// Package invite is ssb-invite 2.1 (as ssb-server 16 ships it): pub
// invites. On a pub, invite.create (the owner's) makes a code that holds
// the pub's address and the seed of a fresh key pair; the uses and note of
// each invite are kept in <path>/invites.json. A peer that connects with
// an invite's key is confined to invite.use (server.Confiner): with it the
// pub follows the feed it names, once per use, and answers its contact
// message. On the joining side, invite.accept (the owner's) connects with
// the invite's key, calls invite.use, then publishes the follow of the pub
// and a pub message, and adds the pub to the known peers (source
// "invite"), so the scheduler replicates through it from then on.
package invite

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/graph"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Bounds of the methods.
const (
	// maxUses bounds the uses of one invite.
	maxUses = 1_000_000
	// maxNote bounds an invite's note (compact JSON): it goes into the
	// contact message, which must stay under 8 KiB.
	maxNote = 2048
	// acceptTimeout bounds invite.accept's connection and call to the pub.
	acceptTimeout = 30 * time.Second
	// dialTries is how often invite.accept dials the pub, as ssb-invite.
	dialTries = 3
)

// useMethod is the one method an invite's key may call.
const useMethod = "invite.use"

// Publisher publishes content on our feed (the db plugin does).
type Publisher interface {
	PublishContent(ctx context.Context, content []byte) (store.Item, error)
}

// replicator gives the follow graph (the replication plugin).
type replicator interface {
	Replicator() *replicate.Replicator
}

// Plugin is the invite plugin.
type Plugin struct {
	srv  *server.Server
	book *book
}

// New returns the invite plugin.
func New() *Plugin { return &Plugin{} }

// Name returns "invite".
func (p *Plugin) Name() string { return "invite" }

// Init opens <path>/invites.json.
func (p *Plugin) Init(s *server.Server) error {
	p.srv = s
	b, err := openBook(s.Config().Path)
	if err != nil {
		return err
	}
	p.book = b
	return nil
}

// Methods returns invite.create, use and accept, the owner's; a guest
// with an invite's key may call invite.use (Confine).
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "invite.create", Type: muxrpc.Async, Handler: p.create},
		{Name: useMethod, Type: muxrpc.Async, Handler: p.use},
		{Name: "invite.accept", Type: muxrpc.Async, Handler: p.accept},
	}
}

// Confine confines a peer that connects with the key of an open invite to
// invite.use (ssb-invite's auth hook). A used-up invite's key is a
// stranger.
func (p *Plugin) Confine(c *server.Conn) ([]string, bool) {
	if c.Dialed || !p.book.valid(c.ID) {
		return nil, false
	}
	return []string{useMethod}, true
}

// publisher finds the plugin that publishes on our feed (db).
func (p *Plugin) publisher() (Publisher, error) {
	for _, pl := range p.srv.Plugins() {
		if x, ok := pl.(Publisher); ok {
			return x, nil
		}
	}
	return nil, errors.New("invite: no plugin publishes")
}

// graph finds the follow graph, or nil without a replication plugin.
func (p *Plugin) graph() *graph.Graph {
	for _, pl := range p.srv.Plugins() {
		if r, ok := pl.(replicator); ok && r.Replicator() != nil {
			return r.Replicator().Graph()
		}
	}
	return nil
}

// createOpts are invite.create's options.
type createOpts struct {
	Uses     int
	Note     json.RawMessage
	External string
	Modern   bool
}

// parseCreate reads invite.create's argument as ssb-invite does: a
// number (the uses), an object {uses, note, external, modern}, or
// nothing. Uses absent or 0 is 1; modern invites have one use.
func parseCreate(arg json.RawMessage) (createOpts, error) {
	var o createOpts
	var n float64
	if len(arg) == 0 || string(arg) == "null" {
		return createOpts{Uses: 1}, nil
	}
	if json.Unmarshal(arg, &n) == nil {
		u, err := uses(n)
		return createOpts{Uses: u}, err
	}
	var raw struct {
		Uses     json.RawMessage `json:"uses"`
		Note     json.RawMessage `json:"note"`
		External json.RawMessage `json:"external"`
		Modern   json.RawMessage `json:"modern"`
	}
	if arg[0] != '{' || json.Unmarshal(arg, &raw) != nil {
		return o, fmt.Errorf("invite.create: the argument must be a number or {uses, note, external, modern}, not %s", arg)
	}
	o.Uses = 1
	if len(raw.Uses) > 0 && string(raw.Uses) != "null" {
		var s string
		if json.Unmarshal(raw.Uses, &n) != nil {
			if json.Unmarshal(raw.Uses, &s) != nil {
				return o, fmt.Errorf("invite.create: uses %s is not a number", raw.Uses)
			}
			var err error
			if n, err = strconv.ParseFloat(s, 64); err != nil {
				return o, fmt.Errorf("invite.create: uses %q is not a number", s)
			}
		}
		u, err := uses(n)
		if err != nil {
			return o, err
		}
		o.Uses = u
	}
	if truthy(raw.Note) {
		var b []byte
		if b, _ = json.Marshal(raw.Note); len(b) > maxNote {
			return o, fmt.Errorf("invite.create: the note is %d bytes of JSON, at most %d", len(b), maxNote)
		}
		o.Note = b
	}
	if truthy(raw.External) {
		if json.Unmarshal(raw.External, &o.External) != nil || !ValidHost(o.External) {
			return o, fmt.Errorf("invite.create: external %s is not a host name or IP address", raw.External)
		}
	}
	if truthy(raw.Modern) {
		o.Modern, o.Uses = true, 1
	}
	return o, nil
}

// uses checks a number of uses; 0 is the default, 1.
func uses(n float64) (int, error) {
	if n == 0 {
		return 1, nil
	}
	if n != float64(int(n)) || n < 1 || n > maxUses {
		return 0, fmt.Errorf("invite.create: uses must be a whole number in 1..%d, not %v", maxUses, n)
	}
	return int(n), nil
}

// truthy reports whether a JSON value is truthy in JavaScript.
func truthy(v json.RawMessage) bool {
	switch string(v) {
	case "", "null", "false", "0", "-0", `""`:
		return false
	}
	return true
}

// create answers invite.create: a new invite's code (legacy form, or the
// multiserver form when modern), for the pub's address or external.
func (p *Plugin) create(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	o, err := parseCreate(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	host, port, err := p.address(o.External)
	if err != nil {
		req.Fail(err)
		return
	}
	c := Code{Host: host, Port: port, Key: p.srv.ID()}
	if _, err := rand.Read(c.Seed[:]); err != nil {
		req.Fail(fmt.Errorf("invite.create: %w", err))
		return
	}
	guest, err := keys.FromSeed(c.Seed[:])
	if err != nil {
		req.Fail(fmt.Errorf("invite.create: %w", err))
		return
	}
	r := record{ID: guest.ID.String(), Total: o.Uses, Note: o.Note, Created: time.Now().UnixMilli()}
	if err := p.book.add(guest.ID, r); err != nil {
		req.Fail(err)
		return
	}
	p.srv.Logger().Info("invite created", "guest", r.ID, "uses", r.Total)
	if o.Modern {
		req.Return(c.Multiserver())
		return
	}
	req.Return(c.Legacy())
}

// address is the host and port an invite names: external or the
// configured host (an address this server listens on, not a wildcard),
// and the port it listens on.
func (p *Plugin) address(external string) (string, int, error) {
	la, ok := p.srv.ListenAddr().(*net.TCPAddr)
	if !ok {
		return "", 0, errors.New("invite.create: the server is not listening yet")
	}
	host := external
	if host == "" {
		host = p.srv.Config().Host
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			return "", 0, errors.New("no address available for creating an invite, configuration needed for server: set host, or give external")
		}
	}
	return host, la.Port, nil
}

// use answers invite.use({feed}) from a guest with an invite's key: the
// pub follows feed (a contact message with pub: true and the invite's
// note), counts the use, and answers the message.
func (p *Plugin) use(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
	var arg struct {
		Feed json.RawMessage `json:"feed"`
	}
	raw := firstArg(req)
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &arg) != nil {
		req.Fail(errors.New("invite.use: the argument must be an object {feed}"))
		return
	}
	if !p.book.valid(c.ID) {
		if c.Confined() { // it was open when the guest connected
			req.Fail(ErrExpired)
		} else {
			req.Fail(ErrUnknown)
		}
		return
	}
	var s string
	if !truthy(arg.Feed) || json.Unmarshal(arg.Feed, &s) != nil {
		req.Fail(errors.New("feed to follow is missing"))
		return
	}
	feed, err := refs.ParseFeed(s)
	if err != nil {
		req.Fail(fmt.Errorf("invite.use: %w", err))
		return
	}
	if g := p.graph(); g != nil {
		if v, ok := g.Edge(p.srv.ID(), feed); ok && v == graph.Follow {
			req.Fail(errors.New("already following"))
			return
		}
	}
	pub, err := p.publisher()
	if err != nil {
		req.Fail(err)
		return
	}
	r, err := p.book.take(c.ID)
	if errors.Is(err, ErrUnknown) && c.Confined() {
		err = ErrExpired
	}
	if err != nil {
		req.Fail(err)
		return
	}
	content := []byte(`{"type":"contact","contact":"` + feed.String() + `","following":true,"pub":true`)
	if len(r.Note) > 0 {
		content = append(append(content, `,"note":`...), r.Note...)
	}
	content = append(content, '}')
	it, err := pub.PublishContent(ctx, content)
	if err != nil {
		if gerr := p.book.giveBack(c.ID, r); gerr != nil {
			err = errors.Join(err, gerr)
		}
		req.Fail(fmt.Errorf("invite.use: %w", err))
		return
	}
	p.srv.Logger().Info("invite used", "guest", c.ID.String(), "feed", feed.String(), "used", r.Used+1, "of", r.Total)
	req.ReturnRaw(muxrpc.JSON, it.AppendJSON(nil))
}

// accept answers invite.accept(code) (or {invite: code}): it redeems the
// invite at its pub, then follows the pub, publishes its address and adds
// it to the known peers. The answer is the two messages published, as
// ssb-invite's.
func (p *Plugin) accept(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	code, err := codeArg(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	pub, err := p.publisher()
	if err != nil {
		req.Fail(err)
		return
	}
	if err := p.redeem(ctx, code); err != nil {
		req.Fail(err)
		return
	}
	// Known before the pub message is published: the gossip plugin adds
	// the addresses of pub messages too, from source "pub".
	if err := p.srv.AddPeerFrom(code.Address(), server.SourceInvite); err != nil {
		req.Fail(fmt.Errorf("invite.accept: %w", err))
		return
	}
	follow, err := pub.PublishContent(ctx, []byte(`{"type":"contact","following":true,"autofollow":true,"contact":"`+code.Key.String()+`"}`))
	if err != nil {
		req.Fail(fmt.Errorf("invite.accept: the invite was accepted, but following the pub failed: %w", err))
		return
	}
	host, _ := json.Marshal(code.Host)
	announce, err := pub.PublishContent(ctx, []byte(`{"type":"pub","address":{"host":`+string(host)+`,"port":`+strconv.Itoa(code.Port)+`,"key":"`+code.Key.String()+`"}}`))
	if err != nil {
		req.Fail(fmt.Errorf("invite.accept: the pub was followed, but its pub message failed: %w", err))
		return
	}
	out := append([]byte{'['}, follow.AppendJSON(nil)...)
	out = append(append(out, ','), announce.AppendJSON(nil)...)
	req.ReturnRaw(muxrpc.JSON, append(out, ']'))
}

// codeArg reads invite.accept's argument: a code, or {invite: code}.
func codeArg(arg json.RawMessage) (Code, error) {
	var s string
	if json.Unmarshal(arg, &s) != nil {
		var o struct {
			Invite string `json:"invite"`
		}
		if len(arg) == 0 || arg[0] != '{' || json.Unmarshal(arg, &o) != nil || o.Invite == "" {
			return Code{}, errors.New("invite.accept: the argument must be an invite code")
		}
		s = o.Invite
	}
	c, err := ParseCode(s)
	if err != nil {
		return Code{}, fmt.Errorf("ssb-invite failed to parse invite %s: %w", s, err)
	}
	return c, nil
}

// redeem connects to the pub with the invite's key (up to dialTries
// times) and calls invite.use with our feed.
func (p *Plugin) redeem(ctx context.Context, code Code) error {
	ctx, cancel := context.WithTimeout(ctx, acceptTimeout)
	defer cancel()
	guest, err := keys.FromSeed(code.Seed[:])
	if err != nil {
		return fmt.Errorf("invite.accept: %w", err)
	}
	var network [32]byte
	if err := refs.DecodeBase64(network[:], p.srv.Config().Caps); err != nil {
		return fmt.Errorf("invite.accept: caps: %w", err)
	}
	var c *client.Client
	for try := 1; ; try++ {
		c, err = client.Dial(ctx, code.HostPort(), network, guest, code.Key.PublicKey(), nil)
		if err == nil {
			break
		}
		if try == dialTries || ctx.Err() != nil {
			return fmt.Errorf("invite.accept: could not connect to server: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("invite.accept: could not connect to server: %w", err)
		case <-time.After(time.Duration(try) * 500 * time.Millisecond):
		}
	}
	defer c.Close()
	if _, err := c.Async(ctx, muxrpc.Method{"invite", "use"}, map[string]string{"feed": p.srv.ID().String()}); err != nil {
		return fmt.Errorf("invite.accept: invite not accepted: %w", err)
	}
	return nil
}

// firstArg is a request's first argument, or nil.
func firstArg(req *muxrpc.Request) json.RawMessage {
	var args []json.RawMessage
	if json.Unmarshal(req.Args, &args) != nil || len(args) == 0 {
		return nil
	}
	return args[0]
}
