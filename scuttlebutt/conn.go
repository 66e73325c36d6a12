package scuttlebutt

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
)

// ServeConn runs a new stream of the replica over conn until both sides
// have ended, ctx is done, or either side fails. See Stream.Serve.
func (r *Replica) ServeConn(ctx context.Context, conn io.ReadWriteCloser, opts ...StreamOption) error {
	return r.NewStream(opts...).Serve(ctx, conn)
}

// Serve runs the stream over conn: what conn delivers is written to the
// stream, and the stream's output is written to conn. Serve closes conn
// and the stream before it returns.
//
// The end of each side's output is the end of its byte stream, as in npm
// scuttlebutt. When the stream's output ends (after its history with
// Tail(false), or after Replica.Dispose), Serve half-closes conn if it has
// CloseWrite, as *net.TCPConn does, and keeps reading until the peer ends;
// when the peer ends, the stream sends what it has queued, then ends too.
//
// A conn that cannot half-close (net.Pipe, any other io.ReadWriteCloser)
// carries the end of the output by closing, once nothing more is wanted
// from the peer: at once when the stream's input has ended too (the peer
// ended first, or Replica.Dispose), and otherwise once the peer has sent
// its history ("SYNC"), which is when npm scuttlebutt ends a stream with
// tail false (so a Tail(false) stream over such a conn needs a peer that
// sends "SYNC", as every readable stream does, or to be Writable(false)).
// The peer then reads the end of its input; what it still had to send
// cannot reach this side any more, and its Serve returns nil.
//
// It returns nil when both directions ended cleanly, ctx.Err() when ctx was
// done first, and otherwise the first error: a protocol error from the
// peer, an error wrapping io.ErrUnexpectedEOF when the peer's output ended
// in the middle of a line, or a read or write error on conn.
func (s *Stream) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	var (
		once     sync.Once
		firstErr error
		eof      atomic.Bool // the peer's output ended cleanly
		closing  atomic.Bool // Serve closed conn to end the output
	)
	abort := func(err error) {
		once.Do(func() { firstErr = err })
		conn.Close()
		s.Close()
	}
	stop := context.AfterFunc(ctx, func() { abort(ctx.Err()) })
	defer stop()

	cw, halfCloses := conn.(interface{ CloseWrite() error })
	readDone := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // peer -> stream
		defer wg.Done()
		defer close(readDone)
		_, err := io.Copy(s, conn)
		switch {
		case err != nil && closing.Load() && s.Err() == nil:
			s.shut(nil, false) // the output has ended and conn was closed for it
		case err != nil:
			abort(err)
		default:
			eof.Store(true)
			if err := s.CloseWrite(); err != nil {
				abort(err)
			}
		}
	}()
	go func() { // stream -> peer
		defer wg.Done()
		_, err := io.Copy(conn, s)
		if err != nil {
			if peerClosed(err) {
				// The peer may have closed conn: what it sent before, and
				// how it ended, are then waiting to be read, and the
				// reader's error, if any, comes first.
				select {
				case <-readDone:
				case <-ctx.Done():
				}
				if !halfCloses && eof.Load() {
					// Closing is how a peer on such a conn ends.
					s.Close() // nothing more can reach it
					return
				}
			}
			abort(err)
			return
		}
		if halfCloses {
			if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
				abort(err)
			}
			return
		}
		select {
		case <-s.Done(): // the input has ended too
		case <-s.Synced(): // the peer has sent its history
		case <-ctx.Done():
			return
		}
		closing.Store(true)
		conn.Close()
	}()
	wg.Wait()
	if !stop() { // ctx is done and its AfterFunc has started
		once.Do(func() { firstErr = ctx.Err() })
	}
	conn.Close()
	s.Close()
	once.Do(func() {})
	return firstErr
}

// peerClosed reports whether a write error may come from the peer having
// closed the connection.
func peerClosed(err error) bool {
	return errors.Is(err, io.ErrClosedPipe) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET)
}
