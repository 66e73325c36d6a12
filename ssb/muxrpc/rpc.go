// Package muxrpc implements the RPC protocol of Secure Scuttlebutt
// (muxrpc over packet-stream-codec): both peers call each other's methods
// on one connection, as async calls (one answer), sources (a stream of
// answers), sinks (a stream of arguments) and duplex streams.
//
// A request is a JSON packet {"name":[...],"type":...,"args":[...]} with a
// request number counted from 1 by each side; answers and stream packets
// of the callee carry the negated number. A stream ends when each side has
// sent an end packet (body true, or an error object). Nine zero bytes end
// the connection.
//
// Back-pressure: each stream buffers at most StreamBuffer packets from the
// peer; past that the connection's reader waits for the stream's consumer,
// which in turn slows the peer through TCP.
//
// Limits (WithLimits) bound what a peer can make an endpoint hold, and
// Budget shares a bound across endpoints. Bodies are read as they arrive
// and charged to the connection's Buffer and the shared Budget until
// consumed (read from a stream, a call's answer returned, a request
// parsed); a reader that finds no room waits, and the connection ends after
// BufferTimeout. Received-body memory is thus at most Buffer per
// connection and Budget's total in all. A peer that sends nothing for
// IdleTimeout is disconnected (pinged at half of it), one that does not read
// what is sent to it for WriteTimeout too; open streams (MaxStreams) and
// running async handlers (MaxCalls) are counted per connection and
// refused past the limit with an error answer, the connection staying up.
package muxrpc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// CallType is the kind of a method.
type CallType string

// Call types of a manifest. A "sync" method is called as "async".
const (
	Async  CallType = "async"
	Sync   CallType = "sync"
	Source CallType = "source"
	Sink   CallType = "sink"
	Duplex CallType = "duplex"
)

// StreamBuffer is how many packets a stream buffers before the reader of
// the connection waits.
const StreamBuffer = 64

// A Method is a method name as a path: blobs.has is ["blobs", "has"].
type Method []string

func (m Method) String() string { return strings.Join(m, ".") }

// ParseMethod splits a dotted name.
func ParseMethod(s string) Method { return strings.Split(s, ".") }

// UnmarshalJSON accepts the name of a request as an array of strings or,
// as ssb-client sends "manifest", a single string (split at dots).
func (m *Method) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		*m = ParseMethod(s)
		return nil
	}
	var path []string
	if err := json.Unmarshal(b, &path); err != nil {
		return fmt.Errorf("muxrpc: method name: %w", err)
	}
	*m = path
	return nil
}

// An Error is an error sent by the peer, or to it:
// {"name":"Error","message":...,"stack":...}.
type Error struct {
	Name    string `json:"name"`
	Message string `json:"message"`
	Stack   string `json:"stack,omitempty"`
}

func (e *Error) Error() string { return "muxrpc: remote error: " + e.Message }

// Errors of an Endpoint.
var (
	// ErrClosed reports a call or stream on an endpoint that has ended.
	ErrClosed = errors.New("muxrpc: connection closed")
	// ErrProtocol reports a packet that breaks the protocol.
	ErrProtocol = errors.New("muxrpc: protocol error")
)

// A Handler answers the peer's requests. HandleCall runs in its own
// goroutine per request; ctx ends with the connection. For an async
// request it must call Return or Fail; for a stream it uses Stream, and
// the stream is ended (with true) when HandleCall returns if it was not.
type Handler interface {
	HandleCall(ctx context.Context, req *Request)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, req *Request)

// HandleCall calls f.
func (f HandlerFunc) HandleCall(ctx context.Context, req *Request) { f(ctx, req) }

// A Request is a call from the peer.
type Request struct {
	Method Method
	Type   CallType
	Args   json.RawMessage // the JSON array of arguments

	e        *Endpoint
	num      int32 // the peer's request number
	stream   *Stream
	answered bool
}

// Stream returns the request's stream (nil for an async request).
func (r *Request) Stream() *Stream { return r.stream }

// Return answers an async request with v encoded as JSON. For a stream it
// sends v as one item.
func (r *Request) Return(v any) error {
	body, typ, err := encodeBody(v)
	if err != nil {
		return err
	}
	return r.ReturnRaw(typ, body)
}

// ReturnRaw answers an async request with a body of the given type.
func (r *Request) ReturnRaw(typ BodyType, body []byte) error {
	if r.stream != nil {
		return r.stream.SendRaw(typ, body)
	}
	if r.answered {
		return fmt.Errorf("muxrpc: %s answered twice", r.Method)
	}
	r.answered = true
	return r.e.send(Packet{Req: -r.num, Type: typ, Body: body})
}

// Fail answers the request with an error (an async error, or the end of
// its stream with the error).
func (r *Request) Fail(err error) error {
	if r.stream != nil {
		return r.stream.CloseWithError(err)
	}
	if r.answered {
		return fmt.Errorf("muxrpc: %s answered twice", r.Method)
	}
	r.answered = true
	return r.e.send(Packet{Req: -r.num, End: true, Type: JSON, Body: errorBody(err)})
}

func errorBody(err error) []byte {
	e, ok := err.(*Error)
	if !ok {
		// A wrapped *Error keeps its name (clients test err.name) under
		// the whole message.
		e = &Error{Name: "Error", Message: err.Error()}
		var inner *Error
		if errors.As(err, &inner) {
			e.Name = inner.Name
		}
	}
	b, _ := json.Marshal(e)
	return b
}

// encodeBody encodes a value for a packet: []byte as binary, anything else
// as JSON (a string as a JSON string, so it is never empty).
func encodeBody(v any) ([]byte, BodyType, error) {
	switch x := v.(type) {
	case []byte:
		return x, Binary, nil
	case json.RawMessage:
		return x, JSON, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, 0, fmt.Errorf("muxrpc: encoding: %w", err)
	}
	return b, JSON, nil
}

// An Endpoint is one side of a muxrpc connection.
type Endpoint struct {
	conn    io.ReadWriteCloser
	handler Handler
	log     *slog.Logger
	lim     Limits
	acct    *account

	lastRecv      atomic.Int64 // unix nanoseconds of the last packet received
	writeTimedOut atomic.Bool

	// The writer: send appends encoded packets to pending; the flusher
	// goroutine writes whatever has accumulated, so packets sent while a
	// write is in progress go out together in the next one.
	wmu     sync.Mutex
	wcond   sync.Cond
	pending []byte
	wdone   bool  // no more sends; the flusher writes what is pending and stops
	werr    error // a write failed
	flushed chan struct{}

	mu      sync.Mutex
	nextReq int32
	calls   map[int32]chan Packet // our async calls by request number
	ours    map[int32]*Stream     // our streams by request number
	theirs  map[int32]*Stream     // the peer's streams by its request number
	running int                   // the peer's async requests being handled
	closed  bool
	closing bool // Close was called
	err     error

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	done   chan struct{}
}

// An Option configures an Endpoint.
type Option func(*Endpoint)

// WithLogger sets the endpoint's logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(e *Endpoint) { e.log = l } }

// WithMaxBody bounds the body of a packet from the peer (default
// DefaultMaxBody); the same as Limits.MaxBody.
func WithMaxBody(n uint32) Option { return func(e *Endpoint) { e.lim.MaxBody = n } }

// NewEndpoint returns an endpoint on conn whose incoming calls go to h
// (nil refuses every call). Run Serve to start it.
func NewEndpoint(conn io.ReadWriteCloser, h Handler, opts ...Option) *Endpoint {
	e := &Endpoint{
		conn:    conn,
		handler: h,
		log:     slog.New(slog.DiscardHandler),
		nextReq: 1,
		calls:   make(map[int32]chan Packet),
		ours:    make(map[int32]*Stream),
		theirs:  make(map[int32]*Stream),
		done:    make(chan struct{}),
	}
	for _, o := range opts {
		o(e)
	}
	if e.lim.MaxBody == 0 {
		e.lim.MaxBody = DefaultMaxBody
	}
	if e.lim.MaxPending <= 0 {
		e.lim.MaxPending = DefaultMaxPending
	}
	e.acct = newAccount(&e.lim)
	e.lastRecv.Store(time.Now().UnixNano())
	e.wcond.L = &e.wmu
	e.flushed = make(chan struct{})
	go e.flush()
	return e
}

// closeFlushTimeout bounds how long Close waits for pending packets and
// goodbye to be written.
const closeFlushTimeout = 5 * time.Second

func (e *Endpoint) flush() {
	defer close(e.flushed)
	var buf []byte
	e.wmu.Lock()
	for {
		for len(e.pending) == 0 && !e.wdone {
			e.wcond.Wait()
		}
		if len(e.pending) == 0 {
			e.wmu.Unlock()
			return
		}
		buf, e.pending = e.pending, buf[:0]
		e.wcond.Broadcast() // room for waiting senders
		e.wmu.Unlock()
		err := e.write(buf)
		e.wmu.Lock()
		if err != nil {
			e.werr = err
			e.pending, e.wdone = nil, true
			e.wcond.Broadcast()
			e.wmu.Unlock()
			e.conn.Close()
			return
		}
	}
}

// writeChunk is the progress a write must make within WriteTimeout: a
// packet of a 64 KiB body (a blob's chunk) and its header, so that such a
// packet is one write (and box-stream frames of 4 KiB, none of 9 bytes).
const writeChunk = 64<<10 + HeaderSize

// write writes buf in chunks, each within WriteTimeout.
func (e *Endpoint) write(buf []byte) error {
	for len(buf) > 0 {
		n := min(len(buf), writeChunk)
		var timer *time.Timer
		if e.lim.WriteTimeout > 0 {
			timer = time.AfterFunc(e.lim.WriteTimeout, func() {
				e.writeTimedOut.Store(true)
				e.shutdown(fmt.Errorf("%w: %d bytes not written in %v", ErrWriteTimeout, len(buf), e.lim.WriteTimeout))
				e.abort()
			})
		}
		_, err := e.conn.Write(buf[:n])
		if timer != nil {
			timer.Stop()
		}
		if e.writeTimedOut.Load() {
			return fmt.Errorf("%w after %v", ErrWriteTimeout, e.lim.WriteTimeout)
		}
		if err != nil {
			return fmt.Errorf("muxrpc: write: %w", err)
		}
		buf = buf[n:]
	}
	return nil
}

// abort closes the connection without waiting for a write in progress:
// the deadlines of a net.Conn are set to now first, so that a Close that
// says goodbye (box-stream's) does not wait behind a write to a peer that
// does not read; and a connection with SetLinger (TCP) is reset, so that
// what the peer did not read is dropped at once rather than kept by the
// kernel until it gives up.
func (e *Endpoint) abort() {
	if l, ok := e.conn.(interface{ SetLinger(sec int) error }); ok {
		l.SetLinger(0)
	}
	if d, ok := e.conn.(interface{ SetDeadline(time.Time) error }); ok {
		d.SetDeadline(time.Now())
	}
	e.conn.Close()
}

// endWriter stops sends: what is pending, then goodbye if asked, is still
// written.
func (e *Endpoint) endWriter(goodbye bool) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	if e.wdone {
		return
	}
	if goodbye && e.werr == nil {
		e.pending = append(e.pending, Goodbye[:]...)
	}
	e.wdone = true
	e.wcond.Broadcast()
}

// Serve reads and dispatches packets until the connection ends, ctx ends,
// or Close is called; then it fails every pending call and stream, waits
// for the handlers, and closes the connection. It returns nil after a
// goodbye from the peer or Close.
func (e *Endpoint) Serve(ctx context.Context) error {
	e.mu.Lock()
	e.ctx, e.cancel = context.WithCancel(ctx)
	e.mu.Unlock()
	stop := context.AfterFunc(e.ctx, func() { e.conn.Close() })
	defer stop()

	dec := NewDecoder(e.conn, e.lim.MaxBody)
	dec.charge = func(n int) error { return e.acct.charge(n, e.ctx.Done()) }
	if e.lim.IdleTimeout > 0 {
		e.wg.Go(func() { e.watchIdle(e.ctx) })
	}
	var err error
	for {
		var p Packet
		if p, err = dec.Next(); err != nil {
			break
		}
		e.lastRecv.Store(time.Now().UnixNano())
		if err = e.dispatch(p); err != nil {
			break
		}
	}
	e.mu.Lock()
	closing := e.closing
	e.mu.Unlock()
	if errors.Is(err, io.EOF) || closing {
		err = nil // goodbye, from the peer or from Close
	}
	e.shutdown(err)
	e.wg.Wait()
	e.endWriter(false)
	e.conn.Close()
	<-e.flushed
	e.acct.close()
	close(e.done)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil || errors.Is(e.err, ErrClosed) {
		return nil
	}
	return e.err
}

// Done is closed when Serve has returned.
func (e *Endpoint) Done() <-chan struct{} { return e.done }

// Close sends goodbye and ends the connection.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	e.closing = true // what the reader sees from now on is the end we asked for
	e.mu.Unlock()
	e.endWriter(true)
	var err error
	select {
	case <-e.flushed:
		e.wmu.Lock()
		err = e.werr
		e.wmu.Unlock()
	case <-time.After(closeFlushTimeout):
		err = errors.New("muxrpc: goodbye not written in time")
		e.abort()
	}
	e.shutdown(ErrClosed)
	e.conn.Close()
	<-e.flushed
	return err
}

// shutdown fails everything pending with err (the first error wins).
func (e *Endpoint) shutdown(err error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	if err == nil {
		err = ErrClosed
	}
	e.err = err
	calls, ours, theirs := e.calls, e.ours, e.theirs
	e.calls, e.ours, e.theirs = nil, nil, nil
	cancel := e.cancel
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	for _, c := range calls {
		close(c)
	}
	for _, s := range ours {
		s.abort(err)
	}
	for _, s := range theirs {
		s.abort(err)
	}
	if !errors.Is(err, ErrClosed) {
		e.log.Info("muxrpc: connection ended", "err", err)
	}
}

// send queues a packet for the flusher; it waits while too much is
// pending.
func (e *Endpoint) send(p Packet) error {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	for len(e.pending) >= e.lim.MaxPending && !e.wdone {
		e.wcond.Wait()
	}
	switch {
	case e.werr != nil:
		return e.werr
	case e.wdone:
		return ErrClosed
	}
	var err error
	if e.pending, err = AppendPacket(e.pending, p); err != nil {
		return err
	}
	e.wcond.Broadcast()
	return nil
}

// dispatch routes one packet.
func (e *Endpoint) dispatch(p Packet) error {
	if p.Req == 0 {
		return fmt.Errorf("%w: packet with request number 0", ErrProtocol)
	}
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return ErrClosed
	}
	if p.Req < 0 { // an answer to one of our requests
		if c, ok := e.calls[-p.Req]; ok {
			delete(e.calls, -p.Req)
			e.mu.Unlock()
			c <- p
			return nil
		}
		s := e.ours[-p.Req]
		e.mu.Unlock()
		if s != nil {
			s.receive(p)
		} else {
			e.acct.release(len(p.Body)) // late packets of finished calls are dropped
		}
		return nil
	}
	if s, ok := e.theirs[p.Req]; ok {
		e.mu.Unlock()
		s.receive(p)
		return nil
	}
	e.mu.Unlock()
	if p.End {
		e.acct.release(len(p.Body))
		return nil // the end of a stream we already closed
	}
	err := e.request(p)
	e.acct.release(len(p.Body))
	return err
}

// request starts a handler for a new request from the peer, or answers it
// with an error when a limit is reached.
func (e *Endpoint) request(p Packet) error {
	var body struct {
		Name Method          `json:"name"`
		Type CallType        `json:"type"`
		Args json.RawMessage `json:"args"`
	}
	if p.Type != JSON || json.Unmarshal(p.Body, &body) != nil || len(body.Name) == 0 {
		return fmt.Errorf("%w: request %d is not a call: %.100q", ErrProtocol, p.Req, p.Body)
	}
	if len(body.Args) == 0 || string(body.Args) == "null" {
		body.Args = json.RawMessage("[]")
	}
	if body.Type == "" && !p.Stream {
		body.Type = Async // JavaScript muxrpc 6 leaves the type out of async calls
	}
	req := &Request{Method: body.Name, Type: body.Type, Args: body.Args, e: e, num: p.Req}
	switch body.Type {
	case Async, Sync:
		req.Type = Async
		if p.Stream {
			return fmt.Errorf("%w: async request %d flagged as stream", ErrProtocol, p.Req)
		}
		if err := e.admitCall(); err != nil {
			e.log.Debug("muxrpc: request refused", "method", req.Method.String(), "err", err)
			return req.Fail(err)
		}
	case Source, Sink, Duplex:
		if !p.Stream {
			return fmt.Errorf("%w: %s request %d not flagged as stream", ErrProtocol, body.Type, p.Req)
		}
		req.stream = newStream(e, -p.Req, body.Type)
		refused, err := e.admitStream(p.Req, req.stream)
		if err != nil {
			return err
		}
		if refused != nil {
			e.log.Debug("muxrpc: stream refused", "method", req.Method.String(), "err", refused)
			return req.stream.refuse(refused)
		}
	default:
		return fmt.Errorf("%w: request %d of unknown type %q", ErrProtocol, p.Req, body.Type)
	}
	ctx := e.ctx
	if req.stream != nil {
		// The handler's context also ends when the peer ends a stream the
		// handler sends on (a source it serves, or a sink it called), so a
		// handler waiting for something to send can stop.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(e.ctx)
		req.stream.mu.Lock()
		req.stream.cancel = cancel
		req.stream.mu.Unlock()
	}
	e.wg.Go(func() {
		defer e.handlerDone(req.stream == nil)
		if req.stream != nil {
			defer req.stream.cancel()
		}
		if e.handler == nil {
			req.Fail(fmt.Errorf("method:%s is not in list of allowed methods", req.Method))
		} else {
			e.handler.HandleCall(ctx, req)
		}
		if req.stream != nil {
			req.stream.Close()
		} else if !req.answered {
			req.Fail(fmt.Errorf("%s: no answer", req.Method))
		}
	})
	return nil
}

// admitCall counts an async handler about to start, or returns the error
// that refuses it.
func (e *Endpoint) admitCall() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrClosed
	}
	if e.lim.MaxCalls > 0 && e.running >= e.lim.MaxCalls {
		return fmt.Errorf("%w: %d (limit %d per connection)", ErrTooManyCalls, e.running, e.lim.MaxCalls)
	}
	if e.lim.Handlers != nil && !e.lim.Handlers.take(1, e.lim.Reserved, 0) {
		return fmt.Errorf("%w: the server is busy", ErrTooManyCalls)
	}
	e.running++
	return nil
}

// admitStream registers the peer's new stream. Past the limits it
// registers it as already ended by this side, and returns the reason to
// send; the entry goes when the peer ends its side, as for any stream. A
// peer that leaves more than MaxStreams refused streams open breaks the
// protocol: the error ends the connection.
func (e *Endpoint) admitStream(req int32, s *Stream) (refused, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrClosed
	}
	open := len(e.theirs)
	switch {
	case e.lim.MaxStreams > 0 && open >= 2*e.lim.MaxStreams:
		return nil, fmt.Errorf("%w: %d streams left open after refusals", ErrProtocol, open)
	case e.lim.MaxStreams > 0 && open >= e.lim.MaxStreams:
		refused = fmt.Errorf("%w: %d (limit %d per connection)", ErrTooManyStreams, open, e.lim.MaxStreams)
	case e.lim.Handlers != nil && !e.lim.Handlers.take(1, e.lim.Reserved, e.lim.Handlers.total/8):
		refused = fmt.Errorf("%w: the server is busy", ErrTooManyStreams)
	}
	e.theirs[req] = s
	return refused, nil
}

// handlerDone gives back what admitCall or admitStream took.
func (e *Endpoint) handlerDone(async bool) {
	if async {
		e.mu.Lock()
		e.running--
		e.mu.Unlock()
	}
	if e.lim.Handlers != nil {
		e.lim.Handlers.give(1)
	}
}

// watchIdle ends the connection when nothing was received for
// IdleTimeout, and calls Ping once per silence of half of it.
func (e *Endpoint) watchIdle(ctx context.Context) {
	idle := e.lim.IdleTimeout
	var pinged int64 // lastRecv when Ping was last called
	t := time.NewTimer(idle / 2)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		last := e.lastRecv.Load()
		silent := time.Duration(time.Now().UnixNano() - last)
		switch {
		case silent >= idle:
			e.shutdown(fmt.Errorf("%w: nothing received for %v", ErrIdle, idle))
			e.abort()
			return
		case silent >= idle/2:
			if e.lim.Ping != nil && pinged != last {
				pinged = last
				e.wg.Go(func() { e.lim.Ping(ctx, e) })
			}
			t.Reset(idle - silent)
		default:
			t.Reset(idle/2 - silent)
		}
	}
}

func (e *Endpoint) newRequest(method Method, typ CallType, args []any) (int32, []byte, error) {
	if args == nil {
		args = []any{}
	}
	body, err := json.Marshal(struct {
		Name Method   `json:"name"`
		Type CallType `json:"type"`
		Args []any    `json:"args"`
	}{method, typ, args})
	if err != nil {
		return 0, nil, fmt.Errorf("muxrpc: %s: encoding arguments: %w", method, err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return 0, nil, ErrClosed
	}
	n := e.nextReq
	e.nextReq++
	return n, body, nil
}

// Async calls an async method and returns its JSON (or string or binary)
// answer.
func (e *Endpoint) Async(ctx context.Context, method Method, args ...any) (Packet, error) {
	n, body, err := e.newRequest(method, Async, args)
	if err != nil {
		return Packet{}, err
	}
	c := make(chan Packet, 1)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return Packet{}, ErrClosed
	}
	e.calls[n] = c
	e.mu.Unlock()
	if err := e.send(Packet{Req: n, Type: JSON, Body: body}); err != nil {
		return Packet{}, err
	}
	select {
	case p, ok := <-c:
		if !ok {
			return Packet{}, e.closedErr()
		}
		e.acct.release(len(p.Body))
		if p.End {
			return Packet{}, decodeError(p.Body)
		}
		return p, nil
	case <-ctx.Done():
		e.mu.Lock()
		_, waiting := e.calls[n]
		delete(e.calls, n)
		e.mu.Unlock()
		if !waiting { // the answer is on its way: give back its bytes
			if p, ok := <-c; ok {
				e.acct.release(len(p.Body))
			}
		}
		return Packet{}, ctx.Err()
	}
}

// AsyncJSON calls an async method and decodes its answer into out.
func (e *Endpoint) AsyncJSON(ctx context.Context, out any, method Method, args ...any) error {
	p, err := e.Async(ctx, method, args...)
	if err != nil {
		return err
	}
	if err := p.Decode(out); err != nil {
		return fmt.Errorf("muxrpc: %s: decoding answer: %w", method, err)
	}
	return nil
}

// Decode decodes the packet's body into v by its type: JSON with
// encoding/json; a string body (JavaScript sends string results as such)
// into a *string or as a JSON string; a binary body into a *[]byte.
func (p Packet) Decode(v any) error {
	switch p.Type {
	case String:
		if s, ok := v.(*string); ok {
			*s = string(p.Body)
			return nil
		}
		quoted, _ := json.Marshal(string(p.Body))
		return json.Unmarshal(quoted, v)
	case Binary:
		if b, ok := v.(*[]byte); ok {
			*b = p.Body
			return nil
		}
		return fmt.Errorf("muxrpc: binary body into %T", v)
	}
	return json.Unmarshal(p.Body, v)
}

// Open calls a source, sink or duplex method and returns its stream.
func (e *Endpoint) Open(method Method, typ CallType, args ...any) (*Stream, error) {
	if typ != Source && typ != Sink && typ != Duplex {
		return nil, fmt.Errorf("muxrpc: Open of a %s method", typ)
	}
	n, body, err := e.newRequest(method, typ, args)
	if err != nil {
		return nil, err
	}
	s := newStream(e, n, typ)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrClosed
	}
	e.ours[n] = s
	e.mu.Unlock()
	if err := e.send(Packet{Req: n, Stream: true, Type: JSON, Body: body}); err != nil {
		return nil, err
	}
	return s, nil
}

func (e *Endpoint) closedErr() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err != nil && !errors.Is(e.err, ErrClosed) {
		return fmt.Errorf("%w: %w", ErrClosed, e.err)
	}
	return ErrClosed
}

// forget removes a finished stream.
func (e *Endpoint) forget(s *Stream) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if s.req > 0 {
		delete(e.ours, s.req)
	} else {
		delete(e.theirs, -s.req)
	}
}

func decodeError(body []byte) error {
	var e Error
	if json.Unmarshal(body, &e) != nil || e.Message == "" {
		return &Error{Name: "Error", Message: string(body)}
	}
	return &e
}
