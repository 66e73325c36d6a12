package scuttlebutt

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// Errors returned by this package.
var (
	// ErrProtocol reports a line a peer sent that breaks the wire protocol.
	ErrProtocol = errors.New("scuttlebutt: protocol error")
	// ErrLineTooLong reports a line longer than the stream's limit.
	ErrLineTooLong = errors.New("scuttlebutt: line too long")
	// ErrClosed reports a write to a stream whose input has ended.
	ErrClosed = errors.New("scuttlebutt: stream closed")
	// ErrRejected reports a local change the data type refused.
	ErrRejected = errors.New("scuttlebutt: change rejected by the data type")
	// ErrTooManySources reports a peer that sent updates or a clock from
	// more sources than the replica accepts (WithMaxSources).
	ErrTooManySources = errors.New("scuttlebutt: too many sources")
	// ErrFutureTimestamp reports an update from a peer whose timestamp is
	// further ahead of the local wall clock than WithMaxClockSkew allows.
	ErrFutureTimestamp = errors.New("scuttlebutt: timestamp too far in the future")
)

// A Doc is a replicated data type. The Replica calls its methods with the
// replica's lock held, one at a time; they must not call back into the
// Replica (except Notify) and must not block.
type Doc interface {
	// History returns every retained update that a peer with the given
	// clock lacks (see Clock.Lacks), sorted by SortHistory, in a new slice:
	// the caller owns it and may modify it (a Stream queues it as is).
	History(clock Clock) []Update
	// ApplyUpdate applies an update that passed the freshness check. Its
	// Change is valid JSON in canonical form (jsjson.Canonical): single
	// line, no insignificant whitespace, ASCII only. It
	// returns false when the update is not kept (for example a Model
	// update superseded by a newer one for the same key); such an update is
	// not forwarded to other streams.
	ApplyUpdate(u Update) bool
}

// A HistoryScanner is a Doc that can visit its history in order without
// copying it. A stream then holds its peer's history a page at a time
// (WithPageSize) instead of whole. Model, Events and Value implement it.
type HistoryScanner interface {
	// ScanHistory calls fn, in history order (see SortHistory), with each
	// retained update that a peer with the given clock lacks and that sorts
	// after `after` (from the first when after is nil), until fn returns
	// false. It is called with the replica's lock held, like the Doc's
	// other methods, and fn does not call back into the Doc.
	ScanHistory(clock Clock, after *Update, fn func(Update) bool)
}

// A Journal makes the updates a replica applies durable (package
// scuttlebutt/persist provides one that appends to a file).
type Journal interface {
	// Record is called with every update the replica applies, local or
	// remote, in the order applied, with the replica's lock held. It must
	// not block or call back into the Replica; it queues the update for
	// the next Sync.
	Record(u Update)
	// Sync returns once every update recorded so far is durable.
	// Concurrent calls may share one write and fsync (group commit).
	Sync() error
}

// Defaults of the Replica options.
const (
	// DefaultMaxLine is the longest line, in bytes, a stream accepts.
	DefaultMaxLine = 1 << 20
	// DefaultQueueLimit is how many live updates a stream buffers for a
	// slow reader before it drops them and recomputes what the peer lacks
	// from its clock once the reader catches up.
	DefaultQueueLimit = 4096
	// DefaultMaxSources is how many sources a replica's clock, and a peer's
	// header, may hold.
	DefaultMaxSources = 100_000
	// DefaultMaxClockSkew is how far ahead of the local wall clock an
	// update from a peer may be.
	DefaultMaxClockSkew = 10 * time.Minute
	// DefaultPageSize is how many updates of history a stream holds at a
	// time.
	DefaultPageSize = 1024
)

// An Option configures a Replica.
type Option func(*config)

type config struct {
	logger     *slog.Logger
	maxLine    int
	queueLimit int
	now        func() time.Time
	security   Security
	verifiers  int
	maxSources int
	maxSkew    time.Duration
	pageSize   int
	mtu        int
	echo       bool
}

// WithLogger sets the logger for stream events (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMaxLine sets the longest line in bytes a stream of this replica
// accepts from a peer (default DefaultMaxLine). A longer line is a protocol
// error that closes the stream.
func WithMaxLine(n int) Option { return func(c *config) { c.maxLine = n } }

// WithQueueLimit bounds the live updates a stream buffers for a slow reader
// (default DefaultQueueLimit). Memory per stream is then bounded by this
// many updates on top of the history snapshot taken when the peer's header
// arrives: past the limit the buffer is dropped and, once the reader has
// caught up, the stream sends Doc.History of the peer's clock instead, which
// is never more than the document itself.
func WithQueueLimit(n int) Option { return func(c *config) { c.queueLimit = n } }

// WithTimeSource sets the wall clock used for timestamps (default time.Now).
func WithTimeSource(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithMaxSources bounds the number of sources (default DefaultMaxSources):
// an update from a new source when the replica's clock already holds n is
// refused, and a peer whose header lists more than n sources, or whose
// updates bring the replica past n, has its stream failed with
// ErrTooManySources. The replica's clock, and each stream's record of
// what its peer has, then hold at most n (a stream: 2n) entries.
func WithMaxSources(n int) Option { return func(c *config) { c.maxSources = n } }

// WithMaxClockSkew bounds how far ahead of the local wall clock (see
// WithTimeSource) a peer's update may be (default DefaultMaxClockSkew). A
// stream that receives a later update fails with ErrFutureTimestamp,
// without applying it. Local timestamps are raised above every applied one
// (see LocalUpdate), so without this bound one update from a peer with a
// wrong clock, or a hostile one, would move this replica's timestamps
// forward for good. A negative d removes the bound (any finite timestamp
// is accepted, as npm scuttlebutt does). Replica.Apply does not check it.
func WithMaxClockSkew(d time.Duration) Option { return func(c *config) { c.maxSkew = d } }

// WithPageSize sets how many updates of history a stream holds at a time
// (default DefaultPageSize), for a Doc that is a HistoryScanner.
func WithPageSize(n int) Option { return func(c *config) { c.pageSize = max(1, n) } }

// WithMTU turns on delta batching (default off). A stream then sends
// history, and catches up a peer that reads slower than updates arrive, in
// rounds of at most mtu bytes (at least one update each), written to the
// connection one round at a time. Each round holds the updates the peer
// lacks by its clock (so a Model key changed many times meanwhile costs one
// update), chosen with the scuttle-depth ordering of van Renesse et al.,
// "Efficient Reconciliation and Flow Control for Anti-Entropy Protocols"
// (2008): the sources the peer lacks the most updates of come first, each
// source's updates in timestamp order and without gaps, which is what npm
// scuttlebutt peers require. "SYNC" follows the round that completes the
// first history. A stream whose live updates waiting for the reader exceed
// mtu bytes switches to rounds until the peer has caught up.
//
// Each round scans the document twice, so its CPU cost is proportional to
// the document's size per mtu bytes sent: turn it on when bandwidth is the
// scarce resource (slow or metered links, many peers), not for the initial
// copy of a large document over a fast link.
func WithMTU(mtu int) Option { return func(c *config) { c.mtu = mtu } }

// WithEcho makes every stream send each update back to the peer it came
// from, as npm scuttlebutt does (default off; the peer drops the copy as
// old). It only costs bandwidth, and exists to measure what suppressing
// echoes saves (bench/sbsim) and to test peers against JavaScript's
// behaviour.
func WithEcho(on bool) Option { return func(c *config) { c.echo = on } }

// WithVerifiers sets how many updates of one received batch are verified at
// once (default GOMAXPROCS). It matters with WithSecurity only.
func WithVerifiers(n int) Option { return func(c *config) { c.verifiers = max(1, n) } }

// A Replica is one copy of a replicated document: the freshness gate and
// clock shared by all data types, and the streams that connect it to peers.
// It is safe for concurrent use.
type Replica struct {
	id  string
	doc Doc
	cfg config

	mu           sync.Mutex
	clock        Clock
	maxTs        float64              // the highest timestamp applied, from any source
	live         map[*Stream]struct{} // streams that tail live updates
	onUpdate     listeners[Update]
	onOld        listeners[Update]
	onUnverified listeners[unverified]
	journal      Journal

	streamsMu sync.Mutex
	streams   map[*Stream]struct{} // every open stream

	events eventQueue
}

// New returns a replica with the given id holding doc. When id is empty the
// id is that of the Security (WithSecurity), or else a new NewID. With a
// Security, an id that is not the Security's is a programming error: New
// panics.
func New(id string, doc Doc, opts ...Option) *Replica {
	r := &Replica{
		doc:     doc,
		clock:   make(Clock),
		live:    make(map[*Stream]struct{}),
		streams: make(map[*Stream]struct{}),
		cfg: config{
			logger:     slog.New(slog.DiscardHandler),
			maxLine:    DefaultMaxLine,
			queueLimit: DefaultQueueLimit,
			now:        time.Now,
			verifiers:  runtime.GOMAXPROCS(0),
			maxSources: DefaultMaxSources,
			maxSkew:    DefaultMaxClockSkew,
			pageSize:   DefaultPageSize,
		},
	}
	for _, o := range opts {
		o(&r.cfg)
	}
	if sec := r.cfg.security; sec != nil {
		if id != "" && id != sec.ID() {
			panic(fmt.Sprintf("scuttlebutt: New: id %q is not the id of the Security, %q", id, sec.ID()))
		}
		id = sec.ID()
	}
	if id == "" {
		id = NewID()
	}
	r.id = id
	return r
}

// NewID returns a random id: 40 upper-case hex digits, the shape of npm
// scuttlebutt's ids.
func NewID() string {
	var b [20]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// ID returns the replica's id, the source of its local updates.
func (r *Replica) ID() string { return r.id }

// Clock returns a copy of the replica's clock.
func (r *Replica) Clock() Clock {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock.Clone()
}

// History returns the updates a peer with the given clock lacks, in history
// order. A nil clock returns everything.
func (r *Replica) History(clock Clock) []Update {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.doc.History(clock)
}

// LocalUpdate applies a change made by this replica and returns the update.
// change must be one JSON value; it is stored in canonical form.
//
// Its timestamp is Timestamp(), raised above every timestamp this replica
// has applied from any source (a hybrid logical clock): timestamps strictly
// increase even when the wall clock goes backwards, and a local change
// always supersedes what the replica has seen, even from a peer with a fast
// clock.
func (r *Replica) LocalUpdate(change json.RawMessage) (Update, error) {
	c, err := jsjson.Canonical(change)
	if err != nil {
		return Update{}, fmt.Errorf("scuttlebutt: change: %w", err)
	}
	r.mu.Lock()
	u := Update{Change: c, Timestamp: r.nextTimestamp(), Source: r.id}
	if sec := r.cfg.security; sec != nil {
		sig, err := sec.Sign(u)
		if err != nil {
			r.mu.Unlock()
			return u, fmt.Errorf("scuttlebutt: sign: %w", err)
		}
		if sig, err = jsjson.Canonical(sig); err != nil {
			r.mu.Unlock()
			return u, fmt.Errorf("scuttlebutt: sign: %w", err)
		}
		u.Extra = []json.RawMessage{sig}
	}
	applied := r.applyLocked(u, nil) == applyOK
	j := r.journal
	r.mu.Unlock()
	r.events.run()
	if !applied {
		return u, ErrRejected
	}
	if j != nil {
		if err := j.Sync(); err != nil {
			return u, fmt.Errorf("scuttlebutt: journal: %w", err)
		}
	}
	return u, nil
}

// SetJournal makes the replica record every update it applies from now on
// in j, and LocalUpdate (and so Model.Set, Events.Emit, Value.Set) return
// only once j has made the change durable. Load the journal's contents
// into the replica (with Apply) before calling SetJournal.
func (r *Replica) SetJournal(j Journal) {
	r.mu.Lock()
	r.journal = j
	r.mu.Unlock()
}

// Sync waits until every update the replica has applied is durable in its
// journal; without a journal it returns nil at once.
func (r *Replica) Sync() error {
	r.mu.Lock()
	j := r.journal
	r.mu.Unlock()
	if j == nil {
		return nil
	}
	if err := j.Sync(); err != nil {
		return fmt.Errorf("scuttlebutt: journal: %w", err)
	}
	return nil
}

func (r *Replica) nextTimestamp() float64 {
	ts := nextTimestamp(r.cfg.now)
	if ts <= r.maxTs {
		ts = math.Nextafter(r.maxTs, math.Inf(1))
	}
	return ts
}

// Apply applies an update from any source, as if a stream had received it,
// for example one read back from storage. It returns false when the update
// is not newer than what the replica has from its source, when the data
// type does not keep it, or when it comes from a new source and the clock
// is full (WithMaxSources).
//
// Apply trusts its caller: it does not verify signatures (WithSecurity)
// nor bound timestamps (WithMaxClockSkew). It is for the replica's own
// storage; data from elsewhere should come in through a Stream.
func (r *Replica) Apply(u Update) bool {
	if !validTimestamp(u.Timestamp) {
		return false
	}
	c, err := jsjson.Canonical(u.Change)
	if err != nil {
		return false
	}
	u.Change = c
	for i, x := range u.Extra {
		if u.Extra[i], err = jsjson.Canonical(x); err != nil {
			return false
		}
	}
	r.mu.Lock()
	applied := r.applyLocked(u, nil) == applyOK
	r.mu.Unlock()
	r.events.run()
	return applied
}

// The outcomes of applyLocked.
type applyResult int

const (
	applyOK      applyResult = iota // applied and offered to the live streams
	applyOld                        // not newer than the source's clock
	applyDropped                    // the clock advanced, the data type did not keep it
	applyTooMany                    // a new source, and the clock is full
)

// applyLocked runs the freshness gate and the data type. An update the
// data type keeps is offered to every live stream but from (to from as
// well when echo is on).
func (r *Replica) applyLocked(u Update, from *Stream) applyResult {
	latest, known := r.clock[u.Source]
	if known && latest >= u.Timestamp {
		r.onOld.post(&r.events, u)
		return applyOld
	}
	if !known && len(r.clock) >= r.cfg.maxSources {
		return applyTooMany
	}
	r.clock[u.Source] = u.Timestamp
	if u.Timestamp > r.maxTs {
		r.maxTs = u.Timestamp
	}
	if !r.doc.ApplyUpdate(u) {
		return applyDropped
	}
	if r.journal != nil {
		r.journal.Record(u)
	}
	for s := range r.live {
		if s != from || r.cfg.echo {
			s.offer(u)
		}
	}
	r.onUpdate.post(&r.events, u)
	return applyOK
}

// OnUpdate registers fn to be called with every update the replica applies,
// local or remote. It returns a function that removes fn.
//
// Listeners of a replica, of its data type and of its streams run one at a
// time, in the order the replica applied the changes, after the replica's
// lock is released: a listener may call the replica (for example set a
// key), and the events that causes are delivered after it returns. A
// listener must not block.
func (r *Replica) OnUpdate(fn func(Update)) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.onUpdate.add(&r.mu, fn)
}

// OnOldData registers fn to be called with every update dropped because the
// replica already had it or something newer from its source.
func (r *Replica) OnOldData(fn func(Update)) (remove func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.onOld.add(&r.mu, fn)
}

// Notify schedules fn to run with the replica's listeners, in order, once
// the current operation has released the replica's lock. Data types call it
// from ApplyUpdate to emit their own events.
func (r *Replica) Notify(fn func()) { r.events.post(fn) }

// Streams returns the number of open streams.
func (r *Replica) Streams() int {
	r.streamsMu.Lock()
	defer r.streamsMu.Unlock()
	return len(r.streams)
}

// Dispose ends every open stream, as if each peer had ended its input: each
// stream sends what it has queued, then ends its output, and Serve ends the
// connection (see Stream.Serve), so that the peer ends its stream too.
func (r *Replica) Dispose() {
	r.streamsMu.Lock()
	all := make([]*Stream, 0, len(r.streams))
	for s := range r.streams {
		all = append(all, s)
	}
	r.streamsMu.Unlock()
	for _, s := range all {
		s.shut(nil, false) // not CloseWrite: the peer may be in the middle of a line
	}
}

func (r *Replica) addStream(s *Stream) {
	r.streamsMu.Lock()
	r.streams[s] = struct{}{}
	r.streamsMu.Unlock()
}

func (r *Replica) removeStream(s *Stream) {
	r.streamsMu.Lock()
	delete(r.streams, s)
	r.streamsMu.Unlock()
}

// listeners is a set of callbacks, guarded by the replica's lock.
type listeners[T any] struct {
	next int
	fns  map[int]func(T)
}

func (l *listeners[T]) add(mu *sync.Mutex, fn func(T)) func() {
	if l.fns == nil {
		l.fns = make(map[int]func(T))
	}
	id := l.next
	l.next++
	l.fns[id] = fn
	return func() {
		mu.Lock()
		defer mu.Unlock()
		delete(l.fns, id)
	}
}

// post schedules a call of every current listener with v.
func (l *listeners[T]) post(q *eventQueue, v T) {
	switch len(l.fns) {
	case 0:
		return
	case 1:
		for _, fn := range l.fns {
			q.post(func() { fn(v) })
		}
		return
	}
	fns := make([]func(T), 0, len(l.fns))
	for _, fn := range l.fns {
		fns = append(fns, fn)
	}
	q.post(func() {
		for _, fn := range fns {
			fn(v)
		}
	})
}

// eventQueue runs callbacks in the order they were posted, one at a time,
// on whichever goroutine calls run first; a callback that causes more events
// has them run after it returns, by the same loop.
type eventQueue struct {
	mu      sync.Mutex
	queue   []func()
	running bool
}

func (q *eventQueue) post(fn func()) {
	q.mu.Lock()
	q.queue = append(q.queue, fn)
	q.mu.Unlock()
}

func (q *eventQueue) run() {
	q.mu.Lock()
	if q.running || len(q.queue) == 0 {
		q.mu.Unlock()
		return
	}
	q.running = true
	done := false
	defer func() {
		if !done { // a callback panicked: let a later run deliver the rest
			q.mu.Lock()
			q.running = false
			q.mu.Unlock()
		}
	}()
	for len(q.queue) > 0 {
		batch := q.queue
		q.queue = nil
		q.mu.Unlock()
		for _, fn := range batch {
			fn()
		}
		q.mu.Lock()
	}
	q.running = false
	done = true
	q.mu.Unlock()
}
