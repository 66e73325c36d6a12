package gossip

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
)

// DefaultInterval is the time between automatic rounds, as in
// secure-gossip.
const DefaultInterval = 100 * time.Millisecond

// Options configure a Gossip: the protocol Config, plus its timer, its
// receiver and its logger.
type Options struct {
	Config

	// Interval is the time between automatic rounds (DefaultInterval when
	// 0). A negative Interval disables them; call Gossip.Gossip instead
	// (secure-gossip's interval: -1).
	Interval time.Duration

	// OnMessage receives every message of another publisher, once. Calls
	// never overlap; they come from the goroutine writing to the stream
	// the message arrived on, so a slow OnMessage slows that stream down.
	// It may call the Gossip's methods.
	OnMessage func(Message)

	// Logger receives dropped lines (debug) and closed links (info). Nil
	// discards.
	Logger *slog.Logger
}

// A Gossip is a gossip peer: a Node, its streams, and a timer that runs a
// round every Interval. Its methods may be called from any goroutine.
type Gossip struct {
	mu      sync.Mutex
	node    *Node
	streams map[LinkID]*Stream
	closed  bool

	cbMu      sync.Mutex // serialises OnMessage
	onMessage func(Message)
	log       *slog.Logger

	stopOnce  sync.Once
	stop      chan struct{}
	timerDone chan struct{}
}

// New returns a peer with opts, running rounds every opts.Interval until
// Stop or Close.
func New(opts Options) (*Gossip, error) {
	node, err := NewNode(opts.Config)
	if err != nil {
		return nil, err
	}
	g := &Gossip{
		node:      node,
		streams:   make(map[LinkID]*Stream),
		onMessage: opts.OnMessage,
		log:       opts.Logger,
		stop:      make(chan struct{}),
		timerDone: make(chan struct{}),
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	interval := opts.Interval
	if interval == 0 {
		interval = DefaultInterval
	}
	if interval > 0 {
		go g.tick(interval)
	} else {
		close(g.timerDone)
	}
	return g, nil
}

func (g *Gossip) tick(d time.Duration) {
	defer close(g.timerDone)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			g.Gossip()
		case <-g.stop:
			return
		}
	}
}

// Public returns the peer's public key, base64 + ".ed25519".
func (g *Gossip) Public() string { return g.node.Public() }

// Keys returns the peer's keypair.
func (g *Gossip) Keys() *keys.KeyPair { return g.node.Keys() }

// Stats returns the peer's counters.
func (g *Gossip) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.node.Stats()
}

// Publish signs payload (see Node.Publish) and queues it for the next
// round. It is retained, so peers that connect later get it too.
func (g *Gossip) Publish(payload any) (Message, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return Message{}, ErrClosed
	}
	return g.node.Publish(payload)
}

// Gossip runs a round now: queued messages and due digests go to every
// peer.
func (g *Gossip) Gossip() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return
	}
	g.node.Round()
	for _, s := range g.streams {
		if l := g.node.byLink[s.id]; l != nil && len(l.out) > 0 {
			s.cond.Broadcast()
		}
	}
}

// Stop stops the automatic rounds, as secure-gossip's stop does. Streams
// keep working; Gossip still runs a round.
func (g *Gossip) Stop() {
	g.stopOnce.Do(func() { close(g.stop) })
	<-g.timerDone
}

// Close stops the rounds and closes every stream. Publish then fails.
func (g *Gossip) Close() error {
	g.Stop()
	g.mu.Lock()
	g.closed = true
	streams := make([]*Stream, 0, len(g.streams))
	for _, s := range g.streams {
		streams = append(streams, s)
	}
	g.mu.Unlock()
	for _, s := range streams {
		s.Close()
	}
	return nil
}

// ServeConn runs a new peer stream over conn (see Stream.Serve).
func (g *Gossip) ServeConn(ctx context.Context, conn io.ReadWriteCloser) error {
	return g.PeerStream().Serve(ctx, conn)
}

// receive handles one line of s. The signature is verified without the
// lock, so streams verify in parallel. It returns an error only when the
// stream must close.
func (g *Gossip) receive(s *Stream, line []byte) error {
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	if len(line) == 0 {
		return nil
	}
	g.mu.Lock()
	l := g.node.byLink[s.id]
	if l == nil {
		g.mu.Unlock()
		return ErrClosed
	}
	if g.node.known(l, line) {
		g.mu.Unlock()
		return nil
	}
	g.mu.Unlock()

	env, d, err := decodeLine(line, &g.node.cfg)

	g.mu.Lock()
	if err != nil {
		err = g.node.invalid(l, err)
		g.mu.Unlock()
		return g.dropped(s, err)
	}
	if env == nil {
		g.node.onDigest(l, d)
		g.mu.Unlock()
		return nil
	}
	fresh, err := g.node.check(l, env)
	g.mu.Unlock()
	if !fresh {
		return g.dropped(s, err)
	}

	ok := env.verify()

	g.mu.Lock()
	if g.node.byLink[s.id] != l { // closed meanwhile
		g.mu.Unlock()
		return ErrClosed
	}
	m, err := g.node.accept(l, env, line, ok)
	g.mu.Unlock()
	if m != nil {
		g.cbMu.Lock()
		defer g.cbMu.Unlock()
		if g.onMessage != nil {
			g.onMessage(*m)
		}
	}
	return g.dropped(s, err)
}

// dropped logs a dropped line and returns the error that closes the
// stream, if any.
func (g *Gossip) dropped(s *Stream, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrGarbage) {
		g.log.Info("gossip: closing a stream", "stream", s.id, "err", err)
		return err
	}
	g.log.Debug("gossip: dropped a line", "stream", s.id, "err", err)
	return nil
}
