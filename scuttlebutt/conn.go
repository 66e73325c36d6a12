package scuttlebutt

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
)

// ServeConn runs a new stream of the replica over conn until both sides
// have ended, ctx is done, or either side fails. See Stream.Serve.
func (r *Replica) ServeConn(ctx context.Context, conn io.ReadWriteCloser, opts ...StreamOption) error {
	return r.NewStream(opts...).Serve(ctx, conn)
}

// Serve runs the stream over conn: what conn delivers is written to the
// stream, and the stream's output is written to conn. When the stream's
// output ends, Serve half-closes conn (if it has CloseWrite, as
// *net.TCPConn does) and keeps reading until the peer ends; when the peer
// ends, the stream sends what it has queued, then ends too. Serve closes
// conn and the stream before it returns.
//
// It returns nil when both directions ended cleanly, ctx.Err() when ctx was
// done first, and otherwise the first error: a protocol error from the
// peer, or a read or write error on conn.
func (s *Stream) Serve(ctx context.Context, conn io.ReadWriteCloser) error {
	var (
		once     sync.Once
		firstErr error
	)
	abort := func(err error) {
		once.Do(func() { firstErr = err })
		conn.Close()
		s.Close()
	}
	stop := context.AfterFunc(ctx, func() { abort(ctx.Err()) })
	defer stop()

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // peer -> stream
		defer wg.Done()
		_, err := io.Copy(s, conn)
		if err != nil {
			abort(err)
			return
		}
		s.CloseWrite()
	}()
	go func() { // stream -> peer
		defer wg.Done()
		_, err := io.Copy(conn, s)
		if err != nil {
			abort(err)
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			if err := cw.CloseWrite(); err != nil && !errors.Is(err, net.ErrClosed) {
				abort(err)
			}
		}
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
