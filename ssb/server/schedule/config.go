package schedule

import (
	"fmt"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Defaults of Config. The outbound quota is ssb-gossip's (quota: 3 in
// each peer group of its schedule.js). The back-off is ours: ssb-gossip
// waits factor × 2^failures up to max (factor 2 s and max 10 min in its
// fastest groups); ours starts at 500 ms, so that a peer briefly away is
// back within a second, and stops at 5 min. ssb-gossip keeps every pub it
// saw; the bound on pub peers and their pruning after failures are ours.
const (
	DefaultOutbound        = 3
	DefaultTick            = 500 * time.Millisecond
	DefaultMinBackoff      = 500 * time.Millisecond
	DefaultMaxBackoff      = 5 * time.Minute
	DefaultJitter          = 0.5
	DefaultStableAfter     = 30 * time.Second
	DefaultMaxDialFailures = 10
	DefaultMaxPubPeers     = 1000
	DefaultDroppedFor      = time.Hour
	DefaultDroppedMax      = 4096
	DefaultCrossDialWithin = 10 * time.Second
)

// Config is the scheduler's settings. Zero fields take their defaults
// (WithDefaults); Self has none.
type Config struct {
	// Self is this server's feed. The cross-dial rule compares it with a
	// peer's key; zero turns the rule off.
	Self refs.Feed
	// Outbound is how many known peers the scheduler keeps connected or
	// being dialed (connections in either direction count). More
	// connections, fewer stale feeds, more bandwidth. Default 3.
	Outbound int
	// Tick is how often the driver calls Tick: dials start only then, so a
	// peer due now waits up to Tick. Default 500 ms.
	Tick time.Duration
	// MinBackoff and MaxBackoff bound the wait before dialing a peer
	// again after n failed dials (or short connections) in a row:
	// MinBackoff × 2^(n−1), at most MaxBackoff, plus jitter. Default
	// 500 ms and 5 min: 10 failures take about 8 minutes.
	MinBackoff, MaxBackoff time.Duration
	// Jitter is the part of the wait added at random, uniformly in
	// [0, Jitter × wait], so that peers that failed together are not
	// dialed again together. Default 0.5: a wait is at most
	// 1.5 × MaxBackoff.
	Jitter float64
	// Seed seeds the jitter's random source (PCG): the same seed and
	// inputs give the same outputs. The driver passes a random one.
	Seed uint64
	// StableAfter is how long a connection must last for its end not to
	// count as a flap: a peer that accepts and soon closes waits as if
	// its dial had failed, one more time in a row each time. Default 30 s.
	StableAfter time.Duration
	// MaxDialFailures is how many dials in a row a peer from pub messages
	// (SourcePub) may fail, never having connected since it was added,
	// before it is dropped. Default 10.
	MaxDialFailures int
	// MaxPubPeers bounds the known peers from pub messages; more are
	// refused (ErrTooManyPubs) until some are dropped. Default 1000.
	MaxPubPeers int
	// DroppedFor is how long a dropped peer is refused from pub messages
	// (ErrRecentlyDropped); DroppedMax bounds how many dropped peers are
	// remembered (the oldest is forgotten first). Default 1 h and 4096.
	DroppedFor time.Duration
	DroppedMax int
	// CrossDialWithin is how close in time an inbound and an outbound
	// connection with the same peer must open to be a cross-dial (both
	// dialed each other at once): then only the connection dialed by the
	// peer with the smaller public key is kept. An older connection
	// is not a cross-dial's twin (it may be half-open after the peer
	// restarted); both stay. Default 10 s.
	CrossDialWithin time.Duration
}

// WithDefaults returns c with its zero fields set to the defaults.
func (c Config) WithDefaults() Config {
	set := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	setInt := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	setInt(&c.Outbound, DefaultOutbound)
	set(&c.Tick, DefaultTick)
	set(&c.MinBackoff, DefaultMinBackoff)
	set(&c.MaxBackoff, DefaultMaxBackoff)
	if c.Jitter == 0 {
		c.Jitter = DefaultJitter
	}
	set(&c.StableAfter, DefaultStableAfter)
	setInt(&c.MaxDialFailures, DefaultMaxDialFailures)
	setInt(&c.MaxPubPeers, DefaultMaxPubPeers)
	set(&c.DroppedFor, DefaultDroppedFor)
	setInt(&c.DroppedMax, DefaultDroppedMax)
	set(&c.CrossDialWithin, DefaultCrossDialWithin)
	return c
}

// Validate reports a negative count or duration, a jitter outside 0..1,
// or MinBackoff above MaxBackoff (after defaults).
func (c Config) Validate() error {
	d := c.WithDefaults()
	for _, v := range []int{d.Outbound, d.MaxDialFailures, d.MaxPubPeers, d.DroppedMax} {
		if v < 0 {
			return fmt.Errorf("schedule: config: count %d is negative", v)
		}
	}
	for _, v := range []time.Duration{d.Tick, d.MinBackoff, d.MaxBackoff, d.StableAfter, d.DroppedFor, d.CrossDialWithin} {
		if v < 0 {
			return fmt.Errorf("schedule: config: duration %v is negative", v)
		}
	}
	if d.Jitter < 0 || d.Jitter > 1 {
		return fmt.Errorf("schedule: config: jitter %v is not in 0..1", d.Jitter)
	}
	if d.MinBackoff > d.MaxBackoff {
		return fmt.Errorf("schedule: config: MinBackoff %v is above MaxBackoff %v", d.MinBackoff, d.MaxBackoff)
	}
	return nil
}
