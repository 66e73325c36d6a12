package gossip

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
)

// A Stream is a duplex stream to one peer (secure-gossip's
// createPeerStream): bytes written to it are what the peer sent, bytes read
// from it are what to send to the peer. Each peer needs its own stream.
// Read and Write may be called concurrently with each other.
type Stream struct {
	g    *Gossip
	id   LinkID
	cond sync.Cond // L is g.mu; broadcast on output and on close

	// Guarded by g.mu.
	pending []string // lines taken from the node, being read
	off     int      // bytes of pending[0] already read
	closed  bool
	err     error
	done    chan struct{}

	wmu     sync.Mutex // serialises Write
	partial []byte     // a line not yet ended
	discard bool       // the current line is too long: skip to its end
}

var _ io.ReadWriteCloser = (*Stream)(nil)

// PeerStream returns a new stream for one peer. Its first output is a
// digest of what this peer has seen; a JavaScript peer ignores that line.
func (g *Gossip) PeerStream() *Stream {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := &Stream{g: g, done: make(chan struct{})}
	s.cond.L = &g.mu
	if g.closed {
		s.closed, s.err = true, ErrClosed
		close(s.done)
		return s
	}
	s.id = g.node.AddLink()
	g.streams[s.id] = s
	return s
}

// Read reads output for the peer. It blocks until there is some, and
// returns io.EOF once the stream is closed.
func (s *Stream) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	for len(s.pending) == 0 {
		if s.closed {
			return 0, io.EOF
		}
		if s.pending = g.node.Output(s.id); len(s.pending) == 0 {
			s.cond.Wait()
		}
	}
	n := 0
	for n < len(p) && len(s.pending) > 0 {
		line := s.pending[0]
		if s.off < len(line) {
			c := copy(p[n:], line[s.off:])
			s.off += c
			n += c
			continue
		}
		p[n] = '\n'
		n++
		s.pending[0] = ""
		s.pending = s.pending[1:]
		s.off = 0
	}
	return n, nil
}

// Write takes bytes from the peer: newline-separated lines, split anywhere.
// It fails once the stream is closed, and closes it, returning an error
// wrapping ErrGarbage, when the peer sends too many invalid lines in a row.
func (s *Stream) Write(p []byte) (int, error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.closedErr(); err != nil {
		return 0, err
	}
	limit := s.g.node.cfg.MaxLine
	n := 0
	for n < len(p) {
		i := bytes.IndexByte(p[n:], '\n')
		if i < 0 {
			s.buffer(p[n:], limit)
			return len(p), nil
		}
		chunk := p[n : n+i]
		n += i + 1
		var err error
		switch {
		case s.discard:
			s.discard = false
			err = s.tooLong(limit)
		case len(s.partial) > 0:
			if len(s.partial)+len(chunk) > limit {
				s.partial = s.partial[:0]
				err = s.tooLong(limit)
				break
			}
			s.partial = append(s.partial, chunk...)
			err = s.g.receive(s, s.partial)
			s.partial = s.partial[:0]
		default:
			err = s.g.receive(s, chunk)
		}
		if err != nil {
			s.closeWith(err)
			return n, err
		}
	}
	return n, nil
}

// buffer keeps the start of a line, or skips it once it is too long.
func (s *Stream) buffer(b []byte, limit int) {
	if s.discard {
		return
	}
	if len(s.partial)+len(b) > limit {
		s.partial, s.discard = s.partial[:0], true
		return
	}
	s.partial = append(s.partial, b...)
}

// tooLong counts a line over the limit; the error closes the stream.
func (s *Stream) tooLong(limit int) error {
	g := s.g
	g.mu.Lock()
	l := g.node.byLink[s.id]
	var err error
	if l == nil {
		err = ErrClosed
	} else {
		err = g.node.invalid(l, fmt.Errorf("%w: a line over %d bytes", ErrTooLarge, limit))
	}
	g.mu.Unlock()
	return g.dropped(s, err)
}

func (s *Stream) closedErr() error {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	if !s.closed {
		return nil
	}
	if s.err != nil {
		return s.err
	}
	return ErrClosed
}

// Close closes the stream: Read returns io.EOF, Write fails, and the peer
// is forgotten. Output not yet read is lost.
func (s *Stream) Close() error {
	s.closeWith(nil)
	return nil
}

func (s *Stream) closeWith(err error) {
	g := s.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.closed {
		return
	}
	s.closed, s.err = true, err
	g.node.RemoveLink(s.id)
	delete(g.streams, s.id)
	s.pending = nil
	s.cond.Broadcast()
	close(s.done)
}

// Done is closed when the stream is closed.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err returns the error that closed the stream (one wrapping ErrGarbage),
// or nil.
func (s *Stream) Err() error {
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return s.err
}

// Serve runs the stream over conn until the peer ends, ctx is done, or
// either side fails; then it closes both. It returns nil when the peer
// hung up or the stream was closed, ctx.Err() when ctx was done, and
// otherwise the first error: ErrGarbage from the peer, or a read or write
// error on conn.
func (s *Stream) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	var (
		once  sync.Once
		first error
	)
	end := func(err error) {
		if err == nil || errors.Is(err, ErrClosed) || hangup(err) {
			// Closed on this side, or the peer hung up. The stream's own
			// error (ErrGarbage) is set before its reader sees the end,
			// so whichever copy ends first reports it.
			err = s.Err()
		}
		once.Do(func() { first = err })
		conn.Close()
		s.Close()
	}
	stop := context.AfterFunc(ctx, func() { end(ctx.Err()) })
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // peer -> stream
		defer wg.Done()
		_, err := io.Copy(s, conn)
		end(err)
	}()
	go func() { // stream -> peer
		defer wg.Done()
		_, err := io.Copy(conn, s)
		end(err)
	}()
	wg.Wait()
	return first
}

// hangup reports whether err is what writing to a connection the peer
// closed returns.
func hangup(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
