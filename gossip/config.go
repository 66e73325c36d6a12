package gossip

import (
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
)

// Defaults of Config. Each bound is a trade-off between memory and how much
// a peer can help others catch up; the package documentation explains the
// retention rules they set.
const (
	// DefaultMaxMessage bounds an envelope line: 64 KiB.
	DefaultMaxMessage = 64 << 10
	// DefaultMaxLine bounds any line, digests included: 1 MiB.
	DefaultMaxLine = 1 << 20
	// DefaultMaxRetained is how many messages a node keeps to forward and
	// to fill the gaps of peers that (re)connect.
	DefaultMaxRetained = 4096
	// DefaultMaxRetainedBytes bounds the retained envelope lines: 16 MiB.
	DefaultMaxRetainedBytes = 16 << 20
	// DefaultRetainFor is how long a message is retained: 10 minutes.
	DefaultRetainFor = 10 * time.Minute
	// DefaultMaxSeen is how many message hashes are remembered for
	// deduplication, retained or not.
	DefaultMaxSeen = 1 << 16
	// DefaultMaxPublishers is how many publishers' sequence ranges are
	// kept; past it the one least recently heard from that has no
	// retained message is forgotten.
	DefaultMaxPublishers = 8192
	// DefaultMaxRanges is how many disjoint seq ranges are kept per
	// publisher; past it the two lowest are merged.
	DefaultMaxRanges = 16
	// DefaultMaxQueue bounds the messages waiting for the next round on
	// one link.
	DefaultMaxQueue = 4096
	// DefaultMaxBuffered bounds the bytes written for a link and not yet
	// taken by its transport: 4 MiB.
	DefaultMaxBuffered = 4 << 20
	// DefaultDigestEvery is how many rounds a node waits before asking a
	// peer for a digest to confirm what it sent.
	DefaultDigestEvery = 10
	// DefaultJSAfter is how many rounds a link may stay silent about
	// digests before the node takes the peer for a JavaScript peer.
	DefaultJSAfter = 2
	// DefaultGarbageLimit is how many invalid lines in a row close a link.
	DefaultGarbageLimit = 16
)

// Config is the protocol state of a Node: its identity, its clock and its
// bounds. The zero value of every field selects its default.
type Config struct {
	// Keys is the node's identity, an ssb-keys ed25519 keypair (see
	// keys.Load for the secret file). Nil generates a new one.
	Keys *keys.KeyPair

	// Now is the node's clock (time.Now). It dates retained messages and
	// picks the first seq of the node's own messages: the current time in
	// microseconds, so that a restarted publisher's seqs stay above the
	// ones it used before, which JavaScript peers require.
	Now func() time.Time

	// MaxMessage is the longest envelope line accepted or published, in
	// bytes (DefaultMaxMessage). Longer ones are dropped and counted.
	MaxMessage int
	// MaxLine is the longest line of any kind, in bytes (DefaultMaxLine).
	// It also bounds the digests a node sends.
	MaxLine int

	// MaxRetained, MaxRetainedBytes and RetainFor bound the retained
	// messages: the oldest is dropped when any bound is passed. A peer
	// that reconnects after more than RetainFor, or after more than
	// MaxRetained messages, misses the messages dropped meanwhile.
	MaxRetained      int
	MaxRetainedBytes int
	RetainFor        time.Duration

	// MaxSeen is how many message hashes are remembered to drop
	// duplicates and replays (DefaultMaxSeen, raised to MaxRetained if
	// lower). Each costs about 100 bytes.
	MaxSeen int
	// MaxPublishers and MaxRanges bound the per-publisher seq ranges that
	// make the digest and reject replays of signed seqs.
	MaxPublishers int
	MaxRanges     int

	// MaxQueue bounds the messages queued on one link for the next round,
	// and MaxBuffered the bytes waiting for its transport. Past them
	// messages are not queued (JavaScript peers miss them; Go peers get
	// them later through the digest).
	MaxQueue    int
	MaxBuffered int

	// DigestEvery is the number of rounds between digest requests on a
	// link with unconfirmed messages (DefaultDigestEvery): how quickly a
	// message lost in transit is sent again.
	DigestEvery int
	// JSAfter is how many rounds a new link waits for the peer's digest
	// before taking it for a JavaScript peer and sending it every retained
	// message (DefaultJSAfter).
	JSAfter int
	// GarbageLimit is how many invalid lines in a row close a link
	// (DefaultGarbageLimit).
	GarbageLimit int
}

func (c Config) withDefaults() Config {
	def := func(p *int, v int) {
		if *p <= 0 {
			*p = v
		}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	def(&c.MaxMessage, DefaultMaxMessage)
	def(&c.MaxLine, DefaultMaxLine)
	c.MaxLine = max(c.MaxLine, c.MaxMessage)
	def(&c.MaxRetained, DefaultMaxRetained)
	def(&c.MaxRetainedBytes, DefaultMaxRetainedBytes)
	if c.RetainFor <= 0 {
		c.RetainFor = DefaultRetainFor
	}
	def(&c.MaxSeen, DefaultMaxSeen)
	c.MaxSeen = max(c.MaxSeen, c.MaxRetained)
	def(&c.MaxPublishers, DefaultMaxPublishers)
	def(&c.MaxRanges, DefaultMaxRanges)
	def(&c.MaxQueue, DefaultMaxQueue)
	def(&c.MaxBuffered, DefaultMaxBuffered)
	def(&c.DigestEvery, DefaultDigestEvery)
	def(&c.JSAfter, DefaultJSAfter)
	def(&c.GarbageLimit, DefaultGarbageLimit)
	return c
}
