package muxrpc

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors of the limits; each ends the connection it is reported on, except
// ErrTooManyStreams and ErrTooManyCalls, which answer only the request.
var (
	// ErrIdle reports a peer that sent nothing for Limits.IdleTimeout.
	ErrIdle = errors.New("muxrpc: peer idle")
	// ErrWriteTimeout reports a peer that did not read what was sent to it
	// within Limits.WriteTimeout.
	ErrWriteTimeout = errors.New("muxrpc: peer does not read")
	// ErrBufferFull reports a peer whose packets waited longer than
	// Limits.BufferTimeout for room in the buffers.
	ErrBufferFull = errors.New("muxrpc: peer buffers full")
	// ErrTooManyStreams answers a stream request past Limits.MaxStreams or
	// past the shared Limits.Handlers.
	ErrTooManyStreams = errors.New("muxrpc: too many open streams")
	// ErrTooManyCalls answers an async request past Limits.MaxCalls or past
	// the shared Limits.Handlers.
	ErrTooManyCalls = errors.New("muxrpc: too many calls in progress")
)

// Limits bound what one peer can make an Endpoint hold. A zero field is no
// limit, except MaxBody (DefaultMaxBody) and MaxPending
// (DefaultMaxPending).
//
// The memory an endpoint holds for its peer is then at most:
//   - received bodies not yet consumed: Buffer bytes (and, across all
//     endpoints sharing it, Budget's total);
//   - bytes waiting to be written: 2×MaxPending plus one packet (the
//     pending buffer, and the one being written);
//   - handlers: MaxStreams + MaxCalls goroutines (and, across endpoints,
//     Handlers' total), each a few KiB plus what the handler itself holds.
type Limits struct {
	// MaxBody bounds a packet body from the peer, in bytes; a larger one
	// ends the connection. Bodies are read as they arrive: a peer that
	// announces MaxBody and sends 10 bytes costs about 64 KiB.
	MaxBody uint32
	// IdleTimeout closes the connection when nothing was received for that
	// long. After half of it in silence, Ping is called once (it should make
	// a call the peer answers). Zero: never.
	IdleTimeout time.Duration
	// Ping is called, in its own goroutine, when the peer has been silent
	// for IdleTimeout/2; its context ends with the connection.
	Ping func(ctx context.Context, e *Endpoint)
	// MaxStreams bounds the streams the peer has open at once (from its
	// request until both sides ended). Past it a stream request is answered
	// with ErrTooManyStreams; the connection stays.
	MaxStreams int
	// MaxCalls bounds the peer's async requests being handled at once. Past
	// it a request is answered with ErrTooManyCalls at once.
	MaxCalls int
	// Handlers, if set, is a count of handler slots shared by the endpoints
	// (one per running stream or async handler): requests past it are
	// answered with ErrTooManyStreams or ErrTooManyCalls. Streams leave an
	// eighth of it free, for calls, which are short.
	Handlers *Budget
	// MaxPending bounds the bytes queued for the peer; a sender past it
	// waits for the writer.
	MaxPending int
	// WriteTimeout closes the connection when a write to the peer makes no
	// progress (64 KiB) for that long; senders waiting then get an error.
	// Zero: never.
	WriteTimeout time.Duration
	// Buffer bounds the received body bytes not yet consumed (queued on
	// streams, or being read); at it the reader waits for consumers, which
	// slows the peer through TCP. Zero: no bound but Budget's.
	Buffer int64
	// Budget, if set, is a byte count shared by the endpoints: every
	// received body is charged to it until consumed. When it is exhausted a
	// reader waits.
	Budget *Budget
	// BufferTimeout closes the connection when its reader waited that long
	// for room in Buffer or Budget (ErrBufferFull). Zero: wait as long as the
	// connection lasts.
	BufferTimeout time.Duration
	// Reserved lets this endpoint use the reserved part of Budget and
	// Handlers (for the owner and known peers).
	Reserved bool
}

// DefaultMaxPending is the default of Limits.MaxPending.
const DefaultMaxPending = 256 << 10

// WithLimits sets the endpoint's limits.
func WithLimits(l Limits) Option { return func(e *Endpoint) { e.lim = l } }

// A Budget is a count shared by endpoints (bytes of received bodies, or
// handler slots), of which a part is reserved for privileged endpoints
// (Limits.Reserved). It is safe for concurrent use.
type Budget struct {
	mu       sync.Mutex
	total    int64
	reserved int64
	used     int64
	changed  chan struct{} // closed and replaced when used decreases
}

// NewBudget returns a budget of total units, of which reserved can be
// taken only by privileged endpoints.
func NewBudget(total, reserved int64) *Budget {
	return &Budget{total: total, reserved: min(reserved, total), changed: make(chan struct{})}
}

// InUse returns the units taken.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// take takes n units if they are free and keep more would remain.
func (b *Budget) take(n int64, privileged bool, keep int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	limit := b.total - keep
	if !privileged {
		limit -= b.reserved
	}
	if b.used+n > limit {
		return false
	}
	b.used += n
	return true
}

// give returns n units.
func (b *Budget) give(n int64) {
	if n == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.used -= n
	if b.used < 0 {
		panic("muxrpc: budget given back more than taken")
	}
	close(b.changed)
	b.changed = make(chan struct{})
}

// Changed returns a channel closed when units are next given back.
func (b *Budget) Changed() <-chan struct{} {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.changed
}

// An account is an endpoint's share of received bytes: its own bound
// (Limits.Buffer) and the shared Budget. Once closed, what it held is
// given back and later releases are ignored.
type account struct {
	lim    *Limits
	mu     sync.Mutex
	held   int64
	closed bool
	own    *Budget // the endpoint's own bound, as a budget without reserve
}

func newAccount(lim *Limits) *account {
	a := &account{lim: lim}
	if lim.Buffer > 0 {
		a.own = NewBudget(lim.Buffer, 0)
	}
	return a
}

// charge takes n bytes from the account, waiting for room up to
// BufferTimeout or until done ends.
func (a *account) charge(n int, done <-chan struct{}) error {
	if a.own == nil && a.lim.Budget == nil {
		return nil
	}
	var timeout <-chan time.Time
	for {
		var ownWait, budgetWait <-chan struct{}
		if a.own != nil {
			ownWait = a.own.Changed()
		}
		if a.lim.Budget != nil {
			budgetWait = a.lim.Budget.Changed()
		}
		if a.tryCharge(int64(n)) {
			return nil
		}
		if timeout == nil && a.lim.BufferTimeout > 0 {
			t := time.NewTimer(a.lim.BufferTimeout)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ownWait:
		case <-budgetWait:
		case <-timeout:
			return fmt.Errorf("%w: waited %v for %d bytes", ErrBufferFull, a.lim.BufferTimeout, n)
		case <-done:
			return ErrClosed
		}
	}
}

func (a *account) tryCharge(n int64) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return true // the connection is ending: nothing is held any more
	}
	if a.own != nil && !a.own.take(n, false, 0) {
		return false
	}
	if a.lim.Budget != nil && !a.lim.Budget.take(n, a.lim.Reserved, 0) {
		if a.own != nil {
			a.own.give(n)
		}
		return false
	}
	a.held += n
	return true
}

// release gives back n bytes that were consumed.
func (a *account) release(n int) {
	if n == 0 || a.own == nil && a.lim.Budget == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.held -= int64(n)
	a.giveLocked(int64(n))
}

func (a *account) giveLocked(n int64) {
	if a.own != nil {
		a.own.give(n)
	}
	if a.lim.Budget != nil {
		a.lim.Budget.give(n)
	}
}

// close gives back everything held.
func (a *account) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	a.closed = true
	a.giveLocked(a.held)
	a.held = 0
}
