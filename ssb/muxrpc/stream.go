package muxrpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrStreamEnded reports a Send on a stream whose sending side has ended,
// by Close or because the peer ended the stream.
var ErrStreamEnded = errors.New("muxrpc: stream ended")

// A Stream is one source, sink or duplex call, from either side. Recv and
// Send may be called concurrently with each other.
type Stream struct {
	e   *Endpoint
	req int32 // the number on packets this side sends
	typ CallType

	mu          sync.Mutex
	cond        sync.Cond
	queue       []Packet
	inEnd       bool   // the peer ended the stream
	inErr       error  // the peer's error, nil for a clean end
	outEnd      bool   // this side sent its end
	peerStopped bool   // the peer ended a stream this side sends on
	discard     bool   // no one reads: drop the peer's packets
	abortErr    error  // the connection ended
	cancel      func() // ends the handler's context (streams the peer opened)
}

func newStream(e *Endpoint, req int32, typ CallType) *Stream {
	s := &Stream{e: e, req: req, typ: typ}
	s.cond.L = &s.mu
	return s
}

// receiveOnly reports whether only the peer sends data on this stream: a
// source this side called, or a sink the peer called.
func (s *Stream) receiveOnly() bool {
	return s.typ == Source && s.req > 0 || s.typ == Sink && s.req < 0
}

// receive queues a packet from the peer, waiting while the queue is full.
func (s *Stream) receive(p Packet) {
	s.mu.Lock()
	if p.End {
		s.e.acct.release(len(p.Body))
		s.receiveEnd(p)
		return
	}
	for len(s.queue) >= StreamBuffer && !s.discard && s.abortErr == nil {
		s.cond.Wait()
	}
	if !s.discard && s.abortErr == nil && !s.inEnd {
		s.queue = append(s.queue, p)
		s.cond.Broadcast()
	} else {
		s.e.acct.release(len(p.Body))
	}
	s.mu.Unlock()
}

// receiveEnd handles the peer's end; s.mu is held and released. Queued
// packets stay readable. When only the peer sends on the stream, this side
// answers with its own end at once (both sides must end, and JavaScript
// echoes an error). When this side sends, the peer's end stops its sends
// (Send returns ErrStreamEnded); a duplex goes on sending until Close.
func (s *Stream) receiveEnd(p Packet) {
	s.inEnd = true
	if string(p.Body) != "true" {
		s.inErr = decodeError(p.Body)
	}
	if s.typ != Duplex && !s.receiveOnly() {
		s.peerStopped = true
		if s.cancel != nil {
			s.cancel() // a handler sending on it can stop waiting
		}
	}
	reply := s.receiveOnly() && !s.outEnd
	if reply {
		s.outEnd = true
	}
	finished := s.outEnd
	s.cond.Broadcast()
	s.mu.Unlock()
	if reply {
		body := []byte("true")
		if s.inErr != nil {
			body = p.Body
		}
		s.e.send(Packet{Req: s.req, Stream: true, End: true, Type: JSON, Body: body})
	}
	if finished {
		s.e.forget(s)
	}
}

// abort ends the stream because the connection ended.
func (s *Stream) abort(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.abortErr == nil {
		s.abortErr = err
	}
	s.cond.Broadcast()
}

// Recv returns the next packet from the peer. It returns io.EOF when the
// peer ended the stream cleanly, the peer's *Error when it ended it with an
// error, and an error wrapping ErrClosed when the connection ended.
func (s *Stream) Recv(ctx context.Context) (Packet, error) {
	stop := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
	})
	defer stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case len(s.queue) > 0:
			p := s.queue[0]
			s.queue[0] = Packet{}
			s.queue = s.queue[1:]
			s.cond.Broadcast()
			s.e.acct.release(len(p.Body))
			return p, nil
		case s.inEnd && s.inErr != nil:
			return Packet{}, s.inErr
		case s.inEnd:
			return Packet{}, io.EOF
		case s.abortErr != nil:
			return Packet{}, fmt.Errorf("%w: %w", ErrClosed, s.abortErr)
		case ctx.Err() != nil:
			return Packet{}, ctx.Err()
		}
		s.cond.Wait()
	}
}

// RecvJSON decodes the next packet's body into v.
func (s *Stream) RecvJSON(ctx context.Context, v any) error {
	p, err := s.Recv(ctx)
	if err != nil {
		return err
	}
	if err := p.Decode(v); err != nil {
		return fmt.Errorf("muxrpc: stream item: %w", err)
	}
	return nil
}

// Send sends v (JSON, or binary for a []byte) to the peer.
func (s *Stream) Send(v any) error {
	body, typ, err := encodeBody(v)
	if err != nil {
		return err
	}
	return s.SendRaw(typ, body)
}

// SendRaw sends a body of the given type. An empty body is refused
// (JavaScript would read it as goodbye).
func (s *Stream) SendRaw(typ BodyType, body []byte) error {
	s.mu.Lock()
	ended, aborted := s.outEnd || s.peerStopped, s.abortErr
	s.mu.Unlock()
	switch {
	case aborted != nil:
		return fmt.Errorf("%w: %w", ErrClosed, aborted)
	case ended:
		return ErrStreamEnded
	}
	return s.e.send(Packet{Req: s.req, Stream: true, Type: typ, Body: body})
}

// Close ends this side of the stream cleanly (an end packet with true),
// once. Packets the peer still sends are dropped.
func (s *Stream) Close() error { return s.end(nil) }

// CloseWithError ends this side of the stream with an error.
func (s *Stream) CloseWithError(err error) error { return s.end(err) }

func (s *Stream) end(err error) error {
	s.mu.Lock()
	s.discard = true
	for _, p := range s.queue {
		s.e.acct.release(len(p.Body))
	}
	s.queue = nil
	s.cond.Broadcast()
	if s.outEnd || s.abortErr != nil {
		s.mu.Unlock()
		return nil
	}
	s.outEnd = true
	finished := s.inEnd
	s.mu.Unlock()
	body := []byte("true")
	if err != nil {
		body = errorBody(err)
	}
	sendErr := s.e.send(Packet{Req: s.req, Stream: true, End: true, Type: JSON, Body: body})
	if finished {
		s.e.forget(s)
	}
	return sendErr
}

// refuse ends a stream the peer opened, before any handler ran, with err;
// what the peer sends on it until it ends its side is dropped.
func (s *Stream) refuse(err error) error {
	s.mu.Lock()
	s.discard, s.outEnd = true, true
	s.mu.Unlock()
	return s.e.send(Packet{Req: s.req, Stream: true, End: true, Type: JSON, Body: errorBody(err)})
}

// Pending returns how many packets from the peer wait to be received.
func (s *Stream) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
