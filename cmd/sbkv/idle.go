package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// pingLine is what sbkv sends on a quiet connection: a JSON string, which
// npm scuttlebutt and package scuttlebutt read and ignore.
const pingLine = "\"ping\"\n"

// pingInterval returns how long a connection with idle timeout idle may go
// without output before a ping: a third of idle, at most a minute, so that
// the gap between two lines stays under idle.
func pingInterval(idle time.Duration) time.Duration { return min(idle/3, time.Minute) }

// serve runs a stream of m over c until it ends, closing c if the peer is
// silent, or reads nothing, for idle (never when idle is 0).
func serve(ctx context.Context, m *model.Model, c net.Conn, idle time.Duration) error {
	if idle <= 0 {
		return m.ServeConn(ctx, c)
	}
	ic := &idleConn{Conn: c, idle: idle}
	stop := ic.pinger(pingInterval(idle))
	defer stop()
	return m.ServeConn(ctx, ic)
}

// idleConn is a connection whose reads and writes fail once they wait for
// longer than idle, and on which pinger writes pingLine between lines when
// nothing else was written for a while.
type idleConn struct {
	net.Conn
	idle time.Duration

	mu      sync.Mutex // held by Write and ping
	lineEnd bool       // what was written so far ends with a whole line
	wrote   time.Time  // the time of the last write
	closed  bool       // CloseWrite was called, or a ping failed
}

// Read reads from the connection, failing if nothing arrives for idle.
func (c *idleConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(p)
	if isTimeout(err) {
		err = fmt.Errorf("sbkv: nothing received from the peer for %v: %w", c.idle, err)
	}
	return n, err
}

// Write writes to the connection, failing if the peer reads nothing for
// idle.
func (c *idleConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeLocked(p)
}

func (c *idleConn) writeLocked(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.idle)); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	if n > 0 {
		c.lineEnd = p[n-1] == '\n'
		c.wrote = time.Now()
	}
	if isTimeout(err) {
		err = fmt.Errorf("sbkv: the peer read nothing for %v: %w", c.idle, err)
	}
	return n, err
}

// CloseWrite ends the output (when the connection can half-close), and
// the pings with it.
func (c *idleConn) CloseWrite() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// pinger starts pinging the peer whenever nothing was written for every,
// until stop is called.
func (c *idleConn) pinger(every time.Duration) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				c.ping(every)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// ping writes pingLine if the output is between two lines and has been
// quiet for every. A write under way is left alone: it is output already.
func (c *idleConn) ping(every time.Duration) {
	if !c.mu.TryLock() {
		return
	}
	defer c.mu.Unlock()
	if c.closed || !c.lineEnd || time.Since(c.wrote) < every {
		return
	}
	if _, err := c.writeLocked([]byte(pingLine)); err != nil {
		c.closed = true // the stream's own writes will report the error
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }
