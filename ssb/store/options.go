package store

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
)

// Defaults of the options.
const (
	// DefaultMaxBatch is the default of WithMaxBatch: 10,000 messages per
	// transaction.
	DefaultMaxBatch = 10_000
	// DefaultMaxBatchBytes is the default of WithMaxBatchBytes: 16 MiB of
	// message JSON per transaction.
	DefaultMaxBatchBytes = 16 << 20
	// DefaultQueue is the default of WithQueue: 1,024 Append calls queued
	// for the committer before the next one waits.
	DefaultQueue = 1024
	// DefaultLockTimeout is the default of WithLockTimeout: one second.
	DefaultLockTimeout = time.Second
)

// config is what the options set.
type config struct {
	logger        *slog.Logger
	hmacKey       []byte
	maxBatch      int
	maxBatchBytes int
	queue         int
	lockTimeout   time.Duration
	now           func() time.Time
	// replay, set by Repair only, replaces now with the receive
	// timestamps (ms) of the records it copies.
	replay func() float64
}

// nowMS is the receive clock in milliseconds.
func (c *config) nowMS() float64 {
	if c.replay != nil {
		return c.replay()
	}
	return float64(c.now().UnixNano()) / 1e6
}

func defaultConfig() config {
	return config{
		logger:        slog.Default(),
		maxBatch:      DefaultMaxBatch,
		maxBatchBytes: DefaultMaxBatchBytes,
		queue:         DefaultQueue,
		lockTimeout:   DefaultLockTimeout,
		now:           time.Now,
	}
}

// An Option configures Open.
type Option func(*config) error

// WithLogger sets the logger (default slog.Default()). The store logs
// opening and closing at Info, each commit at Debug, and failures at Error.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return fmt.Errorf("store: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithHMACKey sets the network's HMAC signing key (ssb-caps' "sign", 32
// bytes; default none) with which Append verifies signatures. A key of
// another length fails Open with an error wrapping message.ErrHMACKey.
func WithHMACKey(key []byte) Option {
	return func(c *config) error {
		if len(key) != 0 && len(key) != message.HMACKeySize {
			return fmt.Errorf("store: %w: %d bytes, want %d", message.ErrHMACKey, len(key), message.HMACKeySize)
		}
		c.hmacKey = append([]byte(nil), key...)
		return nil
	}
}

// WithMaxBatch sets how many messages the committer puts in one
// transaction (default DefaultMaxBatch). It gathers queued Append calls
// until the next would pass the limit; one call larger than the limit is
// still written whole, in a transaction of its own. Larger transactions
// share an fsync among more messages but hold more dirty pages in memory
// (roughly 2 KiB per message) and make every appender in them wait longer.
func WithMaxBatch(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("store: max batch %d, want at least 1", n)
		}
		c.maxBatch = n
		return nil
	}
}

// WithMaxBatchBytes bounds a transaction by the bytes of message JSON it
// holds (default DefaultMaxBatchBytes), like WithMaxBatch bounds it by
// messages; whichever limit is reached first closes the transaction.
func WithMaxBatchBytes(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("store: max batch bytes %d, want at least 1", n)
		}
		c.maxBatchBytes = n
		return nil
	}
}

// WithQueue sets how many Append calls may wait for the committer (default
// DefaultQueue). Beyond that, Append blocks (or returns when its context
// ends) until the committer takes a call: this is the back-pressure on
// writers. The queue holds calls, not copies: its memory is that of the
// messages the callers already hold.
func WithQueue(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("store: queue %d, want at least 0", n)
		}
		c.queue = n
		return nil
	}
}

// WithLockTimeout sets how long Open waits for the database file's lock
// (default DefaultLockTimeout) before it fails with ErrLocked: the lock is
// held by another Store on the same directory, in this process or another.
func WithLockTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("store: lock timeout %v, want more than 0", d)
		}
		c.lockTimeout = d
		return nil
	}
}

// WithClock sets the clock of receive timestamps (default time.Now), for
// tests and import tools. Receive timestamps stay strictly increasing
// whatever the clock does (see Item.Timestamp).
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return fmt.Errorf("store: nil clock")
		}
		c.now = now
		return nil
	}
}
