// Package blobs is ssb-blobs (ssb-server 16, ssb-blobs 1.2.2) over the
// blob store of ssb/blobs, kept in <path>/blobs as multiblob lays it out:
// the local methods blobs.add, get, getSlice, has, size, ls, rm, changes,
// meta and help, and the exchange of blobs between peers: blobs.want,
// blobs.push and the blobs.createWants stream each peer serves the other,
// run by the state machine of ssb/blobs/wants (see its documentation for
// the protocol and where it differs from JavaScript on purpose). A
// stranger may call blobs.has, get, getSlice, changes and createWants, as
// ssb-server's anonymous permissions allow; its blobs.has of a missing
// blob is taken as its want, as ssb-blobs does.
//
// What peers make us fetch is bounded: 1,024 wants at once per peer and
// 16,384 in all, and 256 MiB an hour per peer, 2 GiB an hour in all
// (wants.Config). Fetches run at most 32 at once, 8 per peer; a fetch that gets no byte
// for fetchTimeout (30 s) is abandoned for another peer, as is one whose
// bytes do not hash to the id or pass the size the peer announced.
//
// Every stream holds one chunk at a time: an add is hashed and written as
// it arrives and refused as soon as it passes the size limit; a get reads
// and sends the blob in 64 KiB chunks.
package blobs

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	blobstore "github.com/scuttlego/scuttle/ssb/blobs"
	"github.com/scuttlego/scuttle/ssb/blobs/wants"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Config is the "blobs" section of <path>/config.
type Config struct {
	// Max is the size limit of a blob in bytes (ssb-blobs' blobs.max,
	// default 5 MiB). Larger blobs are neither added nor fetched.
	Max int64 `json:"max"`
	// Sympathy is the farthest want of a peer taken up (ssb-blobs'
	// blobs.sympathy): 2 (the default) takes up what a peer itself wants
	// and forwards it to our peers as -2; 3 (JavaScript's default) also
	// takes up what the peers of a peer want; 1 takes up nothing.
	Sympathy int `json:"sympathy"`
	// Pushy is how many peers must hold a pushed blob (ssb-blobs'
	// blobs.pushy, default 3).
	Pushy int `json:"pushy"`
	// FetchTimeout is how long a fetch may get no byte before the blob is
	// fetched from another peer (default 30 s; config key fetchTimeout, in
	// milliseconds, our own).
	FetchTimeout time.Duration `json:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{Max: blobstore.DefaultMax, Sympathy: wants.DefaultSympathy, Pushy: wants.DefaultPushy, FetchTimeout: wants.DefaultFetchTimeout}
}

func (c Config) wants() wants.Config {
	return wants.Config{Max: c.Max, Sympathy: c.Sympathy, Pushy: c.Pushy, FetchTimeout: c.FetchTimeout}
}

// Plugin is the blobs plugin.
type Plugin struct {
	cfg   Config
	log   *slog.Logger
	store *blobstore.Store
	x     *exchange

	// added, if set (by tests), is told how each blobs.add ended.
	added func(id refs.Blob, err error)
}

// New returns the blobs plugin with the default config.
func New() *Plugin { return &Plugin{cfg: DefaultConfig()} }

// Name returns "blobs".
func (p *Plugin) Name() string { return "blobs" }

// ConfigSection returns "blobs".
func (p *Plugin) ConfigSection() string { return "blobs" }

// ReadConfig reads {"max": N, "sympathy": N, "pushy": N, "fetchTimeout":
// MS}; an absent or zero value keeps the default, as ssb-blobs' opts.max
// || 5 MiB.
func (p *Plugin) ReadConfig(section json.RawMessage) error {
	if section == nil {
		return nil
	}
	var c struct {
		Max, Sympathy, Pushy, FetchTimeout *float64
	}
	if err := json.Unmarshal(section, &c); err != nil {
		return fmt.Errorf("blobs: config: %w", err)
	}
	for _, f := range []struct {
		name string
		v    *float64
		set  func(int64)
	}{
		{"max", c.Max, func(n int64) { p.cfg.Max = n }},
		{"sympathy", c.Sympathy, func(n int64) { p.cfg.Sympathy = int(n) }},
		{"pushy", c.Pushy, func(n int64) { p.cfg.Pushy = int(n) }},
		{"fetchTimeout", c.FetchTimeout, func(n int64) { p.cfg.FetchTimeout = time.Duration(n) * time.Millisecond }},
	} {
		if f.v == nil || *f.v == 0 {
			continue
		}
		if *f.v < 0 || *f.v != float64(int64(*f.v)) || *f.v > 1<<40 {
			return fmt.Errorf("blobs: config: %s %v is not a whole positive number", f.name, *f.v)
		}
		f.set(int64(*f.v))
	}
	return nil
}

// Config returns the plugin's configuration.
func (p *Plugin) Config() Config { return p.cfg }

// Init opens the store in <path>/blobs, removing the temporary files of
// adds a crash interrupted.
func (p *Plugin) Init(s *server.Server) error {
	p.log = s.Logger()
	if p.log == nil {
		p.log = slog.Default()
	}
	st, err := blobstore.Open(filepath.Join(s.Config().Path, "blobs"), blobstore.WithMax(p.cfg.Max), blobstore.WithLogger(p.log),
		blobstore.WithOnAdd(func(info blobstore.Info) {
			if p.x != nil {
				p.x.added(info)
			}
		}))
	if err != nil {
		return fmt.Errorf("blobs: %w", err)
	}
	x, err := newExchange(p.cfg.wants(), st, p.log, s.Go, filepath.Join(s.Config().Path, "blobs_push.json"))
	if err != nil {
		st.Close()
		return err
	}
	p.store, p.x = st, x
	return nil
}

// Connected starts the exchange of wants with a peer (not the owner).
func (p *Plugin) Connected(ctx context.Context, c *server.Conn) {
	if c.Peer() {
		p.x.connected(ctx, c)
	}
}

// Disconnected ends the exchange with a peer: its wants end, and fetches
// from it go to other peers.
func (p *Plugin) Disconnected(c *server.Conn) {
	if c.Peer() {
		p.x.disconnected(c)
	}
}

// Status reports the exchange: {"blobs": {peers, wants, fetching, ...}}.
func (p *Plugin) Status(context.Context) (map[string]any, error) {
	return map[string]any{"blobs": p.x.status()}, nil
}

// Store returns the blob store (nil before Init).
func (p *Plugin) Store() *blobstore.Store { return p.store }

// Run looks for stalled fetches every second until the server stops, then
// closes the store, which ends the live streams (blobs.changes, blobs.ls
// with live).
func (p *Plugin) Run(ctx context.Context) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			p.x.tick(now, p.cfg.FetchTimeout)
		case <-ctx.Done():
			return p.store.Close()
		}
	}
}

// Methods returns blobs.*; a stranger may call has, get, getSlice,
// changes and createWants.
func (p *Plugin) Methods() []server.Method {
	return []server.Method{
		{Name: "blobs.has", Type: muxrpc.Async, Perm: server.Anyone, Handler: p.has},
		{Name: "blobs.get", Type: muxrpc.Source, Perm: server.Anyone, Handler: p.get},
		{Name: "blobs.getSlice", Type: muxrpc.Source, Perm: server.Anyone, Handler: p.getSlice},
		{Name: "blobs.changes", Type: muxrpc.Source, Perm: server.Anyone, Handler: p.changes},
		{Name: "blobs.createWants", Type: muxrpc.Source, Perm: server.Anyone, Handler: p.x.createWants},
		{Name: "blobs.want", Type: muxrpc.Async, Handler: p.want},
		{Name: "blobs.push", Type: muxrpc.Async, Handler: p.push},
		{Name: "blobs.add", Type: muxrpc.Sink, Handler: p.add},
		{Name: "blobs.size", Type: muxrpc.Async, Handler: p.size},
		{Name: "blobs.ls", Type: muxrpc.Source, Handler: p.ls},
		{Name: "blobs.rm", Type: muxrpc.Async, Handler: p.rm},
		{Name: "blobs.meta", Type: muxrpc.Async, Handler: p.meta},
		{Name: "blobs.help", Type: muxrpc.Sync, Handler: p.help},
	}
}

// marshal encodes v as JavaScript's JSON.stringify does the values
// answered here: without escaping the & of blob ids.
func marshal(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v) // ids, sizes and metas: cannot fail
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

// ret answers an async call with v, encoded by marshal.
func ret(req *muxrpc.Request, v any) { req.ReturnRaw(muxrpc.JSON, marshal(v)) }

// args returns the request's arguments (none when they are not an array).
func args(req *muxrpc.Request) []json.RawMessage {
	var a []json.RawMessage
	json.Unmarshal(req.Args, &a)
	return a
}

// firstArg returns the first argument, or nil.
func firstArg(req *muxrpc.Request) json.RawMessage {
	if a := args(req); len(a) > 0 && string(a[0]) != "null" {
		return a[0]
	}
	return nil
}

// show is an argument as JavaScript would print it in an error ("invalid
// id:" + id): a string as it is, anything else as its JSON, absent as
// undefined.
func show(raw json.RawMessage) string {
	if raw == nil {
		return "undefined"
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// parseID reads a blob id given as a string or as {id}, as ssb-blobs'
// toBlobId; an invalid one is "invalid id:…".
func parseID(raw json.RawMessage) (refs.Blob, error) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var o struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(raw, &o) == nil && o.ID != nil {
			if id, err := parseID(o.ID); err == nil {
				return id, nil
			}
		}
		return refs.Blob{}, fmt.Errorf("invalid id:%s", show(raw))
	}
	id, err := blobstore.ParseID(s)
	if err != nil {
		return refs.Blob{}, fmt.Errorf("invalid id:%s", s)
	}
	return id, nil
}

// has answers whether a blob is stored: for an id, a bool; for an array of
// ids, an array of bools. One invalid id fails the whole call, as JS. A
// peer's call takes the missing blobs as its wants, and answers false for
// the empty blob, as ssb-blobs does.
func (p *Plugin) has(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
	raw := firstArg(req)
	var list []json.RawMessage
	single := json.Unmarshal(raw, &list) != nil || raw == nil
	if single {
		list = []json.RawMessage{raw}
	}
	ids := make([]refs.Blob, len(list))
	for i, r := range list {
		id, err := parseID(r)
		if err != nil {
			req.Fail(err)
			return
		}
		ids[i] = id
	}
	var out []bool
	if c.Peer() {
		out = p.x.remoteHas(c, ids)
	} else {
		out = make([]bool, len(ids))
		for i, id := range ids {
			ok, err := p.store.Has(id)
			if err != nil {
				req.Fail(fmt.Errorf("blobs.has: %w", err))
				return
			}
			out[i] = ok
		}
	}
	if single {
		req.Return(out[0])
		return
	}
	req.Return(out)
}

// want answers true once the blob is stored, asking every peer for it
// (ssb-blobs' blobs.want; it waits as long as the caller does).
func (p *Plugin) want(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	id, err := parseID(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	if err := p.x.want(ctx, id); err != nil {
		return // the caller left
	}
	req.Return(true)
}

// push announces a stored blob to peers until three of them hold it
// (ssb-blobs' blobs.push; the pushes are kept across restarts).
func (p *Plugin) push(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	raw := firstArg(req)
	id, err := parseID(raw)
	if err != nil {
		req.Fail(fmt.Errorf("invalid hash:%s", show(raw)))
		return
	}
	if err := p.x.push(id); err != nil {
		req.Fail(err)
		return
	}
	req.Return(false) // ssb-blobs answers the level put's nothing, which muxrpc sends as false
}

// size answers the size of a stored blob, or null.
func (p *Plugin) size(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	id, err := parseID(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	n, err := p.store.Size(id)
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		req.Return(nil)
	case err != nil:
		req.Fail(fmt.Errorf("blobs.size: %w", err))
	default:
		req.Return(n)
	}
}

// meta is an entry of blobs.ls with long: {id, size, ts}.
type meta struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
	TS   int64  `json:"ts"` // milliseconds since 1970
}

func toMeta(info blobstore.Info) meta {
	return meta{ID: info.ID.String(), Size: info.Size, TS: info.Time.UnixMilli()}
}

// meta answers multiblob's meta of a blob: {id, size, ts}, or null when it
// is not stored. (ssb-blobs 1.2.2 declares blobs.meta in its manifest but
// does not implement it; this is what its store, multiblob, answers.)
func (p *Plugin) meta(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	id, err := parseID(firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	info, err := p.store.Stat(id)
	switch {
	case errors.Is(err, blobstore.ErrNotFound):
		req.Return(nil)
	case err != nil:
		req.Fail(fmt.Errorf("blobs.meta: %w", err))
	default:
		ret(req, toMeta(info))
	}
}

// rm removes a stored blob.
func (p *Plugin) rm(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	raw := firstArg(req)
	id, err := parseID(raw)
	if err != nil {
		req.Fail(fmt.Errorf("not valid id:%s", show(raw)))
		return
	}
	if err := p.store.Remove(id); err != nil {
		req.Fail(fmt.Errorf("blobs.rm: %w: %s", err, id))
		return
	}
	req.Return(false) // multiblob's rm answers fs.unlink's callback, with no value, which muxrpc sends as false

}

//go:embed help.json
var helpJSON []byte

// help answers ssb-blobs' help object (its help.js, as Node prints it).
func (p *Plugin) help(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	req.ReturnRaw(muxrpc.JSON, helpJSON)
}

// getOpts are the options of blobs.get and blobs.getSlice.
type getOpts struct {
	id         refs.Blob
	size, max  *int64
	start, end *int64
}

// parseGetOpts reads an id, or {id|key|hash, size, max, start, end} (the
// id key as multiblob's getId: id || key || hash).
func parseGetOpts(method string, raw json.RawMessage) (getOpts, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		id, err := parseID(raw)
		return getOpts{id: id}, err
	}
	var o struct {
		ID, Key, Hash         json.RawMessage
		Size, Max, Start, End *float64
	}
	if raw == nil || json.Unmarshal(raw, &o) != nil {
		return getOpts{}, fmt.Errorf("multiblob.%s: {id} is mandatory", method)
	}
	idRaw := o.ID
	if idRaw == nil {
		idRaw = o.Key
	}
	if idRaw == nil {
		idRaw = o.Hash
	}
	if idRaw == nil {
		return getOpts{}, fmt.Errorf("multiblob.%s: {id} is mandatory", method)
	}
	var str string
	if json.Unmarshal(idRaw, &str) != nil {
		return getOpts{}, fmt.Errorf("invalid id:%s", show(idRaw))
	}
	id, err := parseID(idRaw)
	if err != nil {
		return getOpts{}, err
	}
	opts := getOpts{id: id}
	for _, f := range []struct {
		name string
		v    *float64
		dst  **int64
	}{{"size", o.Size, &opts.size}, {"max", o.Max, &opts.max}, {"start", o.Start, &opts.start}, {"end", o.End, &opts.end}} {
		if f.v == nil {
			continue
		}
		if *f.v < 0 || *f.v != float64(int64(*f.v)) {
			return getOpts{}, fmt.Errorf("multiblob.%s: {%s} must be a whole number of bytes, not %v", method, f.name, *f.v)
		}
		n := int64(*f.v)
		*f.dst = &n
	}
	return opts, nil
}

// checkLength fails when the blob's size is not opts.size or is over
// opts.max, with multiblob's message.
func checkLength(opts getOpts, size int64) error {
	if (opts.size != nil && *opts.size != size) || (opts.max != nil && *opts.max < size) {
		requested := "undefined"
		if opts.size != nil {
			requested = fmt.Sprint(*opts.size)
		}
		return fmt.Errorf("incorrect file length, requested:%s file was:%d for file:%s", requested, size, opts.id)
	}
	return nil
}

// get sends a blob in binary chunks of 64 KiB.
func (p *Plugin) get(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	opts, err := parseGetOpts("get", firstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	r, size, err := p.store.Get(opts.id)
	if err != nil {
		req.Fail(fmt.Errorf("blobs.get: %w: %s", err, opts.id))
		return
	}
	defer r.Close()
	if err := checkLength(opts, size); err != nil {
		req.Fail(err)
		return
	}
	p.send(ctx, req, r)
}

// getSlice sends the bytes [start, end) of a blob.
func (p *Plugin) getSlice(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	opts, err := parseGetOpts("getSlice", firstArg(req))
	if err == nil && opts.start == nil {
		err = errors.New("multiblob.getSlice: {start} must be a number")
	}
	if err == nil && opts.end == nil {
		err = errors.New("multiblob.getSlice: {end} must be a number")
	}
	if err != nil {
		req.Fail(err)
		return
	}
	size, err := p.store.Size(opts.id)
	if err == nil {
		err = checkLength(opts, size)
	} else {
		err = fmt.Errorf("blobs.getSlice: %w: %s", err, opts.id)
	}
	if err != nil {
		req.Fail(err)
		return
	}
	r, _, err := p.store.GetSlice(opts.id, *opts.start, *opts.end)
	if err != nil {
		req.Fail(fmt.Errorf("blobs.getSlice: %w", err))
		return
	}
	defer r.Close()
	p.send(ctx, req, r)
}

// send writes r on the request's stream in binary chunks, one at a time,
// until its end, the peer's abort or the connection's end.
func (p *Plugin) send(ctx context.Context, req *muxrpc.Request, r io.Reader) {
	bp := chunkPool.Get().(*[blobstore.ChunkSize]byte)
	defer chunkPool.Put(bp)
	buf := bp[:] // SendRaw copies it into the connection's queue
	st := req.Stream()
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			if st.SendRaw(muxrpc.Binary, buf[:n]) != nil {
				return // the peer stopped reading, or left
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return // ended with true when the handler returns
		}
		if err != nil {
			req.Fail(fmt.Errorf("blobs: reading the blob: %w", err))
			return
		}
		if ctx.Err() != nil {
			return
		}
	}
}

// chunkPool holds send's buffers: serving many small blobs would otherwise
// allocate one per blob, and the collector run that often.
var chunkPool = sync.Pool{New: func() any { return new([blobstore.ChunkSize]byte) }}

// add stores the binary chunks written to the sink. With an expected id as
// argument, bytes that hash to another id are not stored. The stream is
// refused as soon as it passes the size limit; a stream the peer ends with
// an error, or a connection that ends, stores nothing.
//
// The end of the peer's stream is answered at once (as JavaScript muxrpc
// does for a sink), so errors found later (a hash mismatch) are logged, not
// sent; a client learns that the blob is stored with blobs.has or
// blobs.changes, as sbot blobs.add does.
func (p *Plugin) add(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
	var expected *refs.Blob
	if raw := firstArg(req); raw != nil {
		id, err := parseID(raw)
		if err != nil {
			req.Fail(fmt.Errorf("not a valid hash: %s", show(raw)))
			p.report(refs.Blob{}, err)
			return
		}
		expected = &id
	}
	// The chunks are read under ctx: a connection that ends mid-stream
	// ends the add. Once the peer has ended the stream cleanly the blob is
	// whole, and is stored even if the connection ends meanwhile (ssb-client
	// may close right after writing a sink's end).
	r := &sinkReader{ctx: ctx, st: req.Stream()}
	id, size, err := p.store.Add(context.WithoutCancel(ctx), r, expected)
	switch {
	case errors.Is(err, blobstore.ErrTooLarge):
		err = fmt.Errorf("blobs.add: blob over the limit of %d bytes", p.store.Max())
	case errors.Is(err, blobstore.ErrMismatch):
		err = fmt.Errorf("blobs.add: the bytes did not match expected id:%s", expected)
	case err != nil:
		err = fmt.Errorf("blobs.add: %w", err)
	}
	if err != nil {
		p.log.Info("blobs.add refused", "peer", c.ID, "err", err)
		req.Fail(err)
	} else {
		p.log.Debug("blobs.add", "peer", c.ID, "id", id, "size", size)
	}
	p.report(id, err)
}

func (p *Plugin) report(id refs.Blob, err error) {
	if p.added != nil {
		p.added(id, err)
	}
}

// sinkReader reads the chunks of a sink stream as one byte stream,
// holding one chunk at a time.
type sinkReader struct {
	ctx  context.Context
	st   *muxrpc.Stream
	rest []byte
}

func (r *sinkReader) Read(b []byte) (int, error) {
	for len(r.rest) == 0 {
		pkt, err := r.st.Recv(r.ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("the stream ended before its end: %w", err)
		}
		r.rest = pkt.Body // binary, or a string's UTF-8, as multiblob
	}
	n := copy(b, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// lsOpts are blobs.ls's options.
type lsOpts struct {
	Live, Old, Long, Meta, Size *bool
}

// ls lists the stored blobs (old, default true), then those added while
// it runs (live, default false): ids, or {id, size, ts} with long (or
// meta, or size).
func (p *Plugin) ls(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	var o lsOpts
	if raw := firstArg(req); raw != nil {
		if err := json.Unmarshal(raw, &o); err != nil {
			req.Fail(fmt.Errorf("blobs.ls: options: %w", err))
			return
		}
	}
	is := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	long := is(o.Long, false) || is(o.Meta, false) || is(o.Size, false)
	live, old := is(o.Live, false), is(o.Old, true)
	var sub *blobstore.Subscription
	if live {
		sub = p.store.Subscribe() // before listing: nothing is missed
		defer sub.Close()
	}
	st := req.Stream()
	emit := func(info blobstore.Info) bool {
		if long {
			return st.SendRaw(muxrpc.JSON, marshal(toMeta(info))) == nil
		}
		return st.SendRaw(muxrpc.JSON, marshal(info.ID.String())) == nil
	}
	if old {
		for info, err := range p.store.List(ctx) {
			if err != nil {
				if ctx.Err() == nil {
					req.Fail(fmt.Errorf("blobs.ls: %w", err))
				}
				return
			}
			if !emit(info) {
				return
			}
		}
	}
	if live {
		p.follow(ctx, req, sub, emit)
	}
}

// changes streams the ids of the blobs added from now on.
func (p *Plugin) changes(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	sub := p.store.Subscribe()
	defer sub.Close()
	st := req.Stream()
	p.follow(ctx, req, sub, func(info blobstore.Info) bool { return st.SendRaw(muxrpc.JSON, marshal(info.ID.String())) == nil })
}

// follow sends the subscription's blobs until the peer or the store ends
// it. A subscriber that fell too far behind gets an error.
func (p *Plugin) follow(ctx context.Context, req *muxrpc.Request, sub *blobstore.Subscription, emit func(blobstore.Info) bool) {
	for {
		select {
		case <-ctx.Done():
			return
		case info, ok := <-sub.C():
			if !ok {
				if err := sub.Err(); errors.Is(err, blobstore.ErrSlow) {
					req.Fail(fmt.Errorf("blobs: %w", err))
				}
				return
			}
			if !emit(info) {
				return
			}
		}
	}
}
