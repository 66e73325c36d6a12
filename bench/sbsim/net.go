package main

import (
	"bytes"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// A link direction: bytes written at one end come out of the other after
// they have been transmitted at the link's bandwidth and then travelled
// for its latency. Each write also costs a fixed overhead on the wire (the
// headers of a TCP/IP segment), so a sender that batches lines into one
// write pays it once. A writer blocks while more than a window of bytes
// waits to be transmitted, as a TCP sender does when its buffer is full,
// which is the back-pressure the scuttlebutt streams see.
type pipe struct {
	bandwidth float64       // bytes per second
	latency   time.Duration // one way
	overhead  int           // bytes per write
	window    int           // bytes waiting to be transmitted before Write blocks

	mu       sync.Mutex
	cond     sync.Cond
	chunks   []chunk
	head     []byte // the rest of the first chunk, being read
	nextFree time.Time
	closed   bool // the writer closed
	broken   bool // the reader closed

	bytes, writes *atomic.Int64 // shared totals
}

type chunk struct {
	data []byte
	at   time.Time // when it arrives
}

func newPipe(bandwidth float64, latency time.Duration, overhead, window int, bytes, writes *atomic.Int64) *pipe {
	p := &pipe{bandwidth: bandwidth, latency: latency, overhead: overhead, window: window, bytes: bytes, writes: writes}
	p.cond.L = &p.mu
	return p
}

func (p *pipe) write(b []byte) (int, error) {
	p.mu.Lock()
	if p.closed || p.broken {
		p.mu.Unlock()
		return 0, io.ErrClosedPipe
	}
	now := time.Now()
	start := now
	if p.nextFree.After(now) {
		start = p.nextFree
	}
	cost := len(b) + p.overhead
	p.nextFree = start.Add(time.Duration(float64(cost) / p.bandwidth * float64(time.Second)))
	p.chunks = append(p.chunks, chunk{data: bytes.Clone(b), at: p.nextFree.Add(p.latency)})
	p.bytes.Add(int64(cost))
	p.writes.Add(1)
	p.cond.Broadcast()
	// Block while more than a window waits to be transmitted.
	backlog := time.Duration(float64(p.window) / p.bandwidth * float64(time.Second))
	wait := p.nextFree.Sub(now) - backlog
	p.mu.Unlock()
	if wait > 0 {
		time.Sleep(wait)
	}
	return len(b), nil
}

func (p *pipe) read(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if len(p.head) > 0 {
			n := copy(b, p.head)
			p.head = p.head[n:]
			return n, nil
		}
		if p.broken {
			return 0, io.ErrClosedPipe
		}
		if len(p.chunks) == 0 {
			if p.closed {
				return 0, io.EOF
			}
			p.cond.Wait()
			continue
		}
		if d := time.Until(p.chunks[0].at); d > 0 {
			p.mu.Unlock()
			time.Sleep(d)
			p.mu.Lock()
			continue
		}
		p.head = p.chunks[0].data
		p.chunks[0] = chunk{}
		p.chunks = p.chunks[1:]
	}
}

func (p *pipe) closeWrite() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *pipe) closeRead() {
	p.mu.Lock()
	p.broken = true
	p.chunks, p.head = nil, nil
	p.cond.Broadcast()
	p.mu.Unlock()
}

// conn is one end of a link, for scuttlebutt.Stream.Serve. With perLine,
// each line is a write of its own, as npm scuttlebutt does (its
// serializer emits every message separately).
type conn struct {
	in, out *pipe
	perLine bool
	once    sync.Once
}

func (c *conn) Read(b []byte) (int, error) { return c.in.read(b) }

func (c *conn) Write(b []byte) (int, error) {
	if !c.perLine {
		return c.out.write(b)
	}
	n := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n') + 1
		if i == 0 {
			i = len(b)
		}
		m, err := c.out.write(b[:i])
		n += m
		if err != nil {
			return n, err
		}
		b = b[i:]
	}
	return n, nil
}

func (c *conn) CloseWrite() error {
	c.out.closeWrite()
	return nil
}

func (c *conn) Close() error {
	c.once.Do(func() {
		c.out.closeWrite()
		c.in.closeRead()
	})
	return nil
}

// link returns the two ends of a link.
func link(cfg netConfig, perLine bool, bytes, writes *atomic.Int64) (*conn, *conn) {
	ab := newPipe(cfg.bandwidth, cfg.latency, cfg.overhead, cfg.window, bytes, writes)
	ba := newPipe(cfg.bandwidth, cfg.latency, cfg.overhead, cfg.window, bytes, writes)
	return &conn{in: ba, out: ab, perLine: perLine}, &conn{in: ab, out: ba, perLine: perLine}
}

type netConfig struct {
	bandwidth float64
	latency   time.Duration
	overhead  int
	window    int
}
