// Package replicate replicates the feeds a server wants with every
// connected peer: with EBT (ssb-ebt's ebt.replicate), whose rules are the
// state machine of package ebt and whose driver is ebt.go here, or, with a
// peer that does not speak it, with legacy replication (ssb-replicate):
// for every wanted feed, createHistoryStream({id, seq, live: true, keys:
// false}) from after the latest stored message.
//
// The wanted set is the feeds within Config.Hops of the local feed in the
// follow graph, plus what the owner requested (Request), minus what it
// refused, recomputed whenever a contact message is stored, so
// replication widens as follows arrive. Invalid messages from a peer (bad
// signature, a fork, a gap) end that feed's stream from that peer, are
// logged and counted, and do not stop other feeds or peers. After a
// message out of order, the feed is asked again from the peer, from where
// it stopped, a bounded number of times with back-off. Feeds kept from a
// peer (Block, or a block in the follow graph) are neither sent to it nor
// taken from it.
package replicate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scuttlego/scuttle/ssb/graph"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate/ebt"
	"github.com/scuttlego/scuttle/ssb/store"
)

// batchSize bounds the messages appended in one call.
const batchSize = 256

// A Replicator replicates the wanted feeds from every peer it is given.
type Replicator struct {
	store *store.Store
	self  refs.Feed
	hops  int
	log   *slog.Logger
	graph *graph.Graph

	upd    sync.Mutex // serializes update: each computes from the graph as it is
	mu     sync.Mutex
	wanted map[refs.Feed]bool
	peers  map[*peer]struct{}
	byConn map[*muxrpc.Endpoint]*peer
	heard  map[*muxrpc.Endpoint]*event // of each connection AddPeer was given, until it is done with it
	// EBT: the machine (package ebt) and its driver's state, under mu.
	machine      *ebt.Machine
	ebts         map[ebt.SessionID]*ebtSession
	nextSession  uint64
	clockQueue   map[refs.Feed]map[refs.Feed]int64 // peers' clocks to store
	clockWriting map[refs.Feed]map[refs.Feed]int64 // and being stored
	saving       bool                              // saveClocks runs
	ticking      bool                              // the ticker runs
	stopped      bool                              // Run has ended: r.wg takes no more
	errors       map[refs.Feed]error               // the last invalid message of each feed
	forked       map[refs.Feed]bool
	requests     map[refs.Feed]bool               // Request: replicate (true) or not, whatever the graph says
	blocks       map[refs.Feed]map[refs.Feed]bool // Block: feed -> peers that do not get it
	serving      map[*served]struct{}             // live history streams served to peers (Serving)
	wantSubs     map[*wantSub]struct{}            // WatchWanted
	wg           sync.WaitGroup

	cfg Config

	stats Stats
}

// Stats counts replication sessions, requests and messages since New.
type Stats struct {
	EBTSessions    int   `json:"ebtSessions"`    // ebt.replicate streams that carried a note
	LegacyPeers    int   `json:"legacyPeers"`    // connections replicated with createHistoryStream
	InvalidBatches int   `json:"invalidBatches"` // appends refused for an invalid message from a peer
	Notes          int   `json:"notes"`          // EBT notes sent
	NoteFeeds      int   `json:"noteFeeds"`      // feeds in them
	NoteBytes      int64 `json:"noteBytes"`      // their JSON bodies' bytes
	SkippedFeeds   int   `json:"skippedFeeds"`   // feeds left out of first notes by request skipping
	Requests       int   `json:"requests"`       // createHistoryStream calls made
	RequestBytes   int64 `json:"requestBytes"`   // their arguments' JSON bytes
	Received       int   `json:"received"`       // messages received from peers
	Duplicates     int   `json:"duplicates"`     // of which were stored already
	ActiveEBT      int   `json:"activeEBT"`      // EBT sessions running now
}

// Stats returns the counters.
func (r *Replicator) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	ms := r.machine.Stats()
	st.ActiveEBT = len(r.ebts)
	st.EBTSessions = ms.Sessions
	st.Notes = ms.Notes
	st.NoteFeeds = ms.NoteFeeds
	st.SkippedFeeds = ms.Skipped
	st.Duplicates += ms.Duplicates
	return st
}

type peer struct {
	e         *muxrpc.Endpoint
	id        refs.Feed
	ctx       context.Context
	dialer    bool                    // we dialed this connection
	asking    map[refs.Feed]*fetching // feeds asked for, or refused on this connection
	legacy    bool                    // replicating with createHistoryStream
	ebtCalled chan struct{}           // closed when the peer calls ebt.replicate
	ebtOnce   sync.Once
	heard     *event         // the peer has called us (Heard)
	sessions  sync.WaitGroup // EBT sessions running on the connection
	gone      chan struct{}  // closed once unregistered
	received  int64          // messages received from the peer (r.mu)
}

// Config is the replicator's settings, set once in New; zero fields take
// the defaults.
type Config struct {
	// Hops is how far from our feed the follow graph is replicated
	// (ssb-friends' hops), as given: 0 wants our own feed only. The server
	// passes its friends.hops (default 2).
	Hops int
	// NoEBT replicates with createHistoryStream only: it neither calls nor
	// expects ebt.replicate.
	NoEBT bool
	// ClockDir, if set, is the directory where the clock of each EBT peer
	// is kept between sessions, for request skipping.
	ClockDir string
	// PolicyFile, if set, is the file where Request and Block keep what
	// the owner asked (see LoadPolicy).
	PolicyFile string
	// EBTWait is how long a peer that dialed us has to call ebt.replicate
	// before replication falls back to legacy createHistoryStream.
	// Default 2 s.
	EBTWait time.Duration
	// EBT holds the rules' settings (stall time, re-asks, clock saves);
	// see package ebt for each and its default.
	EBT ebt.Config
	// Log receives the replicator's messages; nil discards them.
	Log *slog.Logger
}

// DefaultEBTWait is Config.EBTWait's default.
const DefaultEBTWait = 2 * time.Second

// New returns a replicator for the store, wanting the feeds within
// cfg.Hops of self.
func New(st *store.Store, self refs.Feed, cfg Config) *Replicator {
	if cfg.EBTWait <= 0 {
		cfg.EBTWait = DefaultEBTWait
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Replicator{
		store: st, self: self, hops: cfg.Hops, log: log, graph: graph.New(), cfg: cfg,
		wanted:       map[refs.Feed]bool{self: true},
		peers:        make(map[*peer]struct{}),
		byConn:       make(map[*muxrpc.Endpoint]*peer),
		heard:        make(map[*muxrpc.Endpoint]*event),
		ebts:         make(map[ebt.SessionID]*ebtSession),
		clockQueue:   make(map[refs.Feed]map[refs.Feed]int64),
		clockWriting: make(map[refs.Feed]map[refs.Feed]int64),
		errors:       make(map[refs.Feed]error),
		forked:       make(map[refs.Feed]bool),

		requests: make(map[refs.Feed]bool),
		blocks:   make(map[refs.Feed]map[refs.Feed]bool),
		serving:  make(map[*served]struct{}),
		wantSubs: make(map[*wantSub]struct{}),
	}
	// A deletion (del) lowers what is stored of a feed: EBT sessions ask
	// for it again.
	// The machine knows what is stored: every head now, then every
	// commit's (sent on to the peers that asked, announced to the others)
	// and every deletion (a deleted feed is asked for again).
	clock := make(map[refs.Feed]int64)
	if st != nil { // (policy tests have no store)
		heads, err := st.Feeds(context.Background())
		if err != nil {
			log.Warn("replicate: reading the feeds' heads", "err", err)
		}
		for _, h := range heads {
			clock[h.Feed] = h.State.Sequence
		}
	}
	r.machine = ebt.New(cfg.EBT, self, clock, time.Now())
	if st == nil {
		return r
	}
	st.OnAppend(func(heads []store.FeedHead) {
		r.mu.Lock()
		for _, h := range heads {
			r.machine.Appended(h.Feed, h.Sequence)
		}
		r.flushLocked()
		r.mu.Unlock()
	})
	st.OnDelete(func(d store.Deletion) {
		r.mu.Lock()
		r.machine.Deleted(d.Feed, d.Head.Sequence)
		r.flushLocked()
		r.mu.Unlock()
	})
	return r
}

// Graph returns the follow graph the replicator keeps.
func (r *Replicator) Graph() *graph.Graph { return r.graph }

// Run follows the store's contact messages (old and new) into the graph
// until ctx ends, recomputing the wanted feeds as they change.
func (r *Replicator) Run(ctx context.Context) error {
	it, err := r.store.Type(ctx, store.TypeQuery{Type: "contact", Live: true})
	if err != nil {
		return fmt.Errorf("replicate: %w", err)
	}
	defer it.Close()
	for {
		item, err := it.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
				// From now on nothing starts a goroutine of r.wg: an
				// Add while Wait runs with none left is a race.
				r.mu.Lock()
				r.stopped = true
				r.mu.Unlock()
				r.wg.Wait()
				return nil
			}
			return fmt.Errorf("replicate: contacts: %w", err)
		}
		m, err := message.Decode(item.Value)
		if err != nil || m.Encrypted() {
			continue
		}
		var c struct{ Contact string }
		json.Unmarshal(m.Content, &c)
		to, terr := refs.ParseFeed(c.Contact)
		wasBlocking := terr == nil && r.graph.IsBlocking(m.Author, to)
		if r.graph.Contact(m.Author, m.Content) {
			r.update()
			if terr == nil && wasBlocking != r.graph.IsBlocking(m.Author, to) {
				r.blockChanged(m.Author, to) // as ssb-friends passes blocks to ebt.block
			}
		}
	}
}

// Wanted returns the feeds replication asks peers for.
func (r *Replicator) Wanted() []refs.Feed {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]refs.Feed, 0, len(r.wanted))
	for f := range r.wanted {
		out = append(out, f)
	}
	return out
}

func (r *Replicator) isWanted(f refs.Feed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wanted[f]
}

// Forked returns the feeds found forked, with the error that showed it.
func (r *Replicator) Forked() map[refs.Feed]error {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[refs.Feed]error)
	for f := range r.forked {
		out[f] = r.errors[f]
	}
	return out
}

// update recomputes the wanted feeds (the graph's within hops, plus the
// requested, minus the refused, our own always), asks every peer for new
// ones, gives up the ones no longer wanted, and rechecks the history
// streams served (a contact message may block a peer).
func (r *Replicator) update() {
	r.upd.Lock()
	defer r.upd.Unlock()
	want := r.graph.Replicate(r.self, r.hops)
	r.mu.Lock()
	next := make(map[refs.Feed]bool, len(want)+len(r.requests)+1)
	for _, f := range want {
		next[f] = true
	}
	for f, v := range r.requests {
		if v {
			next[f] = true
		} else {
			delete(next, f)
		}
	}
	next[r.self] = true
	var added, removed []refs.Feed
	for f := range next {
		if !r.wanted[f] {
			added = append(added, f)
			r.log.Debug("replicate: wanted", "feed", f.String())
		}
	}
	for f := range r.wanted {
		if !next[f] {
			removed = append(removed, f)
			r.log.Debug("replicate: no longer wanted", "feed", f.String())
		}
	}
	r.wanted = next
	wanted := make([]refs.Feed, 0, len(next))
	for f := range next {
		wanted = append(wanted, f)
	}
	// EBT sessions note the new feeds on the machine's next tick, so
	// that a burst of contacts makes one note; feeds given up are noted
	// -1 now.
	r.machine.SetWanted(wanted)
	r.flushLocked()
	for p := range r.peers {
		for _, f := range removed {
			if fe := p.asking[f]; fe != nil {
				fe.cancel()
				delete(p.asking, f)
			}
		}
		if p.legacy {
			r.askLocked(p)
		}
	}
	r.mu.Unlock()
	r.notifyWanted(added, removed)
	r.recheckServing()
}

// AddPeer replicates with a connected peer until its connection or ctx
// ends. It returns at once. A second connection with a peer that is
// replicating on another one is not replicated on (ssb-ebt refuses a
// second session with a peer, too). Whether EBT runs or replication falls
// back to legacy is ebt.Start's rule: the side that dialed (dialer) starts
// EBT and falls back if the peer refuses it; the other side answers the
// peer's ebt.replicate (ServeEBT), and falls back if the peer has not
// called it within Config.EBTWait.
func (r *Replicator) AddPeer(ctx context.Context, e *muxrpc.Endpoint, id refs.Feed, dialer bool) {
	// Recorded now, so that Heard finds it for the connection's first call.
	heard := &event{ch: make(chan struct{})}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return // shutting down
	}
	r.heard[e] = heard
	r.wg.Go(func() {
		defer func() {
			r.mu.Lock()
			delete(r.heard, e)
			r.mu.Unlock()
		}()
		p := r.register(ctx, e, id, dialer, heard)
		if p == nil {
			r.log.Info("replicate: a second connection with a peer; replicating on the other", "peer", id.String())
			return
		}
		defer r.unregister(p)
		done := func() {
			select {
			case <-ctx.Done():
			case <-e.Done():
			}
		}
		// How replication starts (EBT, or the fallback to legacy) is
		// ebt.Start's to decide; this loop reports what happens.
		start, act := ebt.NewStart(dialer, r.cfg.NoEBT, time.Now(), r.cfg.EBTWait)
		heardCh, calledCh := p.heard.ch, p.ebtCalled
		for act != ebt.RunLegacy {
			switch act {
			case ebt.CallEBT:
				gotNote := false
				s, err := e.Open(muxrpc.Method{"ebt", "replicate"}, muxrpc.Duplex, map[string]any{"version": 3})
				if err == nil {
					p.sessions.Add(1)
					gotNote, _ = r.ebt(ctx, p, s, false)
					p.sessions.Done()
				}
				if !gotNote {
					r.log.Debug("replicate: peer refused EBT; legacy", "peer", id.String())
				}
				act = start.SessionEnded(gotNote)
			case ebt.Stop:
				return // EBT ran; the stream or the connection ended
			case ebt.RunEBT:
				done() // the peer's ebt.replicate runs (ServeEBT)
				return
			default:
				timer := time.NewTimer(time.Until(start.Deadline()))
				select {
				case <-heardCh:
					heardCh = nil
					act = start.Called(false)
				case <-calledCh:
					calledCh = nil
					act = start.Called(true)
				case now := <-timer.C:
					act = start.Tick(now)
				case <-ctx.Done():
					timer.Stop()
					return
				case <-e.Done():
					timer.Stop()
					return
				}
				timer.Stop()
			}
		}
		r.mu.Lock()
		p.legacy = true
		r.stats.LegacyPeers++
		r.askLocked(p)
		r.mu.Unlock()
		done()
	})
}

// register records a connection to replicate on, and returns nil if it
// should not be: one connection per peer replicates. When the peer already
// has one, the two are told apart as both sides will: if the same side
// dialed both, the old one is a dead connection not noticed yet, and the
// new one replaces it (the old is closed, and register waits for it to
// wind up); if each side dialed one, the connection dialed by the side
// with the smaller key is kept.
func (r *Replicator) register(ctx context.Context, e *muxrpc.Endpoint, id refs.Feed, dialer bool, heard *event) *peer {
	for {
		r.mu.Lock()
		var old *peer
		for p := range r.peers {
			if p.id == id {
				old = p
			}
		}
		if old == nil {
			p := &peer{e: e, id: id, ctx: ctx, dialer: dialer, asking: make(map[refs.Feed]*fetching),
				ebtCalled: make(chan struct{}), heard: heard, gone: make(chan struct{})}
			r.peers[p] = struct{}{}
			r.byConn[e] = p
			r.mu.Unlock()
			return p
		}
		r.mu.Unlock()
		if old.dialer != dialer {
			ours := bytes.Compare(r.self.PublicKey(), id.PublicKey()) < 0
			if ours != dialer { // keep the old one
				return nil
			}
		}
		old.e.Close()
		select {
		case <-old.gone:
		case <-ctx.Done():
			return nil
		case <-e.Done():
			return nil
		}
	}
}

// Heard records that the peer on connection e (given to AddPeer) has
// called a method on it. With NoEBT, a peer that dialed us is asked for
// feeds only once it has, or EBTWait has passed: see AddPeer. ServeEBT
// calls it; the server calls it for the peer's createHistoryStream. It
// does not block, and does nothing for other connections.
func (r *Replicator) Heard(e *muxrpc.Endpoint) {
	r.mu.Lock()
	ev := r.heard[e]
	r.mu.Unlock()
	if ev != nil {
		ev.fire()
	}
}

// An event happens once; ch is closed when it does.
type event struct {
	once sync.Once
	ch   chan struct{}
}

func (ev *event) fire() { ev.once.Do(func() { close(ev.ch) }) }

// peerOf returns the replicating peer of a connection, waiting up to
// EBTWait for AddPeer to register it.
func (r *Replicator) peerOf(ctx context.Context, e *muxrpc.Endpoint) *peer {
	deadline := time.Now().Add(r.cfg.EBTWait)
	for {
		r.mu.Lock()
		p := r.byConn[e]
		if p != nil {
			p.sessions.Add(1)
		}
		r.mu.Unlock()
		if p != nil || time.Now().After(deadline) {
			return p
		}
		select {
		case <-ctx.Done():
			return nil
		case <-e.Done():
			return nil
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// unregister forgets a connection once its EBT sessions have ended (and
// stored the peer's clock).
func (r *Replicator) unregister(p *peer) {
	p.sessions.Wait()
	r.mu.Lock()
	delete(r.peers, p)
	delete(r.byConn, p.e)
	r.mu.Unlock()
	close(p.gone)
}

// fetching is a feed asked from a peer with createHistoryStream; cancel
// ends the stream (the feed is no longer wanted, or it excludes the peer).
type fetching struct {
	cancel context.CancelFunc
}

// askLocked starts a history stream from p for each wanted feed it is not
// asked for yet, except feeds found forked and feeds kept from p.
func (r *Replicator) askLocked(p *peer) {
	for f := range r.wanted {
		if p.asking[f] != nil || r.forked[f] || r.excludesLocked(f, p.id) {
			continue
		}
		ctx, cancel := context.WithCancel(p.ctx)
		fe := &fetching{cancel: cancel}
		p.asking[f] = fe
		if r.stopped {
			cancel()
			continue
		}
		r.wg.Go(func() { r.fetch(ctx, p, f, fe) })
	}
}

// A message out of order (a peer that sends 1, 3, 2, 4) ends its stream
// (legacy) or is dropped with what follows it (EBT); the feed is then
// asked again from the peer, from the latest message stored, after
// reaskBackoff, doubled at each re-ask, at most maxReasks times per feed
// per connection: a peer that keeps sending such messages cannot make us
// ask in a loop.
const (
	reaskBackoff = 250 * time.Millisecond
	maxReasks    = 3
)

// fetch streams feed f from peer p into the store until ctx ends, asking
// again after a message out of order.
func (r *Replicator) fetch(ctx context.Context, p *peer, f refs.Feed, fe *fetching) {
	// A stream that ends cleanly may be asked for again (on the next
	// change of the wanted feeds); one the peer refused or broke is not
	// asked again on this connection, or a peer that refuses
	// createHistoryStream would be asked once per contact message.
	refused := false
	defer func() {
		if !refused || ctx.Err() != nil {
			r.mu.Lock()
			if p.asking[f] == fe {
				delete(p.asking, f)
			}
			r.mu.Unlock()
		}
		fe.cancel()
	}()
	for reasks := 0; ; reasks++ {
		var err error
		refused, err = r.fetchOnce(ctx, p, f)
		if !errors.Is(err, message.ErrSequence) {
			return
		}
		if reasks == maxReasks {
			r.log.Info("replicate: a peer keeps sending messages out of order; not asking it again on this connection",
				"peer", p.id.String(), "feed", f.String())
			refused = true
			return
		}
		select {
		case <-time.After(reaskBackoff << reasks):
		case <-ctx.Done():
			return
		case <-p.e.Done():
			return
		}
		r.log.Debug("replicate: asking again after a message out of order", "peer", p.id.String(), "feed", f.String())
	}
}

// fetchOnce streams feed f from peer p into the store, from the latest
// message stored, until the stream ends. It reports whether the peer
// refused or broke the stream, and the error of an invalid message.
func (r *Replicator) fetchOnce(ctx context.Context, p *peer, f refs.Feed) (refused bool, invalid error) {
	seq := int64(1)
	if h, err := r.store.Latest(f); err == nil {
		seq = h.State.Sequence + 1
	}
	args, _ := json.Marshal(map[string]any{"id": f.String(), "seq": seq, "live": true, "keys": false})
	r.mu.Lock()
	r.stats.Requests++
	r.stats.RequestBytes += int64(len(args))
	r.mu.Unlock()
	s, err := p.e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, json.RawMessage(args))
	if err != nil {
		return false, nil
	}
	// A reader goroutine receives; this one appends what has arrived in
	// batches, so a fast peer costs one fsync per batch, not per message.
	var broke atomic.Bool
	msgs := make(chan []byte, batchSize)
	go func() {
		defer close(msgs)
		for {
			pkt, err := s.Recv(ctx)
			if err != nil {
				if !errors.Is(err, io.EOF) && ctx.Err() == nil {
					broke.Store(true)
					r.log.Debug("replicate: stream ended", "peer", p.id.String(), "feed", f.String(), "err", err)
				}
				return
			}
			select {
			case msgs <- pkt.Body:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		s.Close()
		for range msgs {
		}
		refused = broke.Load()
	}()
	for raw := range msgs {
		batch := r.takeNew(p, f, gather([][]byte{raw}, msgs))
		if len(batch) == 0 {
			continue
		}
		if _, err := r.append(p, f, batch); err != nil {
			r.mu.Lock()
			r.machine.Untake(f)
			r.mu.Unlock()
			return false, err
		}
	}
	return false, nil
}

// takeNew drops from a batch of f that a legacy peer sent the messages
// stored or being appended already (every legacy peer sends every feed it
// is asked for): they are counted, not verified again.
func (r *Replicator) takeNew(p *peer, f refs.Feed, batch [][]byte) [][]byte {
	seqs := make([]int64, len(batch))
	for i, raw := range batch {
		seqs[i] = -1 // not a message of f: the store refuses it
		if m, ok := asMessage(raw); ok && m.author == f {
			seqs[i] = m.seq
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := batch[:0]
	for i, raw := range batch {
		if seqs[i] < 0 || r.machine.Take(f, seqs[i]) {
			out = append(out, raw)
			continue
		}
		r.stats.Received++
		p.received++
	}
	return out
}

// gather adds to batch what has arrived on ch, without waiting, up to
// batchSize messages.
func gather[T any](batch []T, ch <-chan T) []T {
	for len(batch) < batchSize {
		select {
		case raw, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, raw)
		default:
			return batch
		}
	}
	return batch
}

// append stores a batch from a peer; on an invalid message it stores the
// valid ones before it, records the error and returns it. dups counts the
// messages that were stored already (sent by another peer first).
func (r *Replicator) append(p *peer, f refs.Feed, batch [][]byte) (dups int, err error) {
	r.mu.Lock()
	r.stats.Received += len(batch)
	p.received += int64(len(batch))
	r.mu.Unlock()
	defer func() {
		if dups > 0 {
			r.mu.Lock()
			r.stats.Duplicates += dups
			r.mu.Unlock()
		}
	}()
	for len(batch) > 0 {
		_, err := r.store.Append(p.ctx, batch...)
		if err == nil {
			return dups, nil
		}
		var ae *store.AppendError
		if !errors.As(err, &ae) {
			return dups, err // the store or the context
		}
		if errors.Is(err, store.ErrDuplicate) {
			// Another peer sent it first: keep what came before it (a
			// batch is stored whole or not at all), skip it, go on.
			if ae.Index > 0 {
				if _, err := r.store.Append(p.ctx, batch[:ae.Index]...); err != nil {
					return dups, err
				}
			}
			dups++
			batch = batch[ae.Index+1:]
			continue
		}
		if ae.Index > 0 { // keep the valid messages before the bad one
			if _, err := r.store.Append(p.ctx, batch[:ae.Index]...); err != nil {
				return dups, err
			}
		}
		r.mu.Lock()
		r.stats.InvalidBatches++
		r.errors[f] = err
		if errors.Is(err, message.ErrFork) {
			r.forked[f] = true
		}
		r.mu.Unlock()
		r.log.Warn("replicate: invalid message from a peer", "peer", p.id.String(), "feed", f.String(), "err", err)
		return dups, err
	}
	return dups, nil
}

// Progress is how far replication has come: for the wanted feeds, the
// messages stored here (Current) out of the most any peer has said or
// shown it has (Target). Target is a lower bound of what there is: a peer
// replicating with legacy createHistoryStream tells nothing ahead.
type Progress struct {
	Feeds   int   `json:"feeds"`
	Current int64 `json:"current"`
	Target  int64 `json:"target"`
}

// Progress returns the replication progress.
func (r *Replicator) Progress() Progress {
	r.mu.Lock()
	wanted := make([]refs.Feed, 0, len(r.wanted))
	for f := range r.wanted {
		wanted = append(wanted, f)
	}
	known := make(map[refs.Feed]int64)
	for id := range r.ebts {
		for f, seq := range r.machine.Clock(id) {
			known[f] = max(known[f], seq)
		}
	}
	r.mu.Unlock()
	var p Progress
	p.Feeds = len(wanted)
	for _, f := range wanted {
		var have int64
		if h, err := r.store.Latest(f); err == nil {
			have = h.State.Sequence
		}
		p.Current += have
		p.Target += max(have, known[f])
	}
	return p
}

// PeerProgress is replication with one connected peer: how (EBT or
// legacy), the messages received from it, and, for EBT, the messages of
// wanted feeds it has said or shown it has beyond what is stored here
// (Ahead), over how many feeds.
type PeerProgress struct {
	Peer       string `json:"peer"`
	Mode       string `json:"mode"` // "ebt", "legacy" or "starting"
	Received   int64  `json:"received"`
	AheadFeeds int    `json:"aheadFeeds"`
	Ahead      int64  `json:"ahead"`
}

// Peers returns the progress with each connected peer.
func (r *Replicator) Peers() []PeerProgress {
	r.mu.Lock()
	out := []PeerProgress{}
	at := make(map[*peer]int, len(r.peers))
	for p := range r.peers {
		mode := "starting"
		if p.legacy {
			mode = "legacy"
		}
		at[p] = len(out)
		out = append(out, PeerProgress{Peer: p.id.String(), Mode: mode, Received: p.received})
	}
	clocks := make(map[int]map[refs.Feed]int64)
	for id, es := range r.ebts {
		i, ok := at[es.p]
		if !ok {
			continue
		}
		out[i].Mode = "ebt"
		c := make(map[refs.Feed]int64)
		for f, seq := range r.machine.Clock(id) {
			if r.wanted[f] {
				c[f] = seq
			}
		}
		clocks[i] = c
	}
	r.mu.Unlock()
	for i, c := range clocks { // store reads without the lock
		for f, seq := range c {
			if ahead := seq - r.latest(f); ahead > 0 {
				out[i].AheadFeeds++
				out[i].Ahead += ahead
			}
		}
	}
	slices.SortFunc(out, func(a, b PeerProgress) int { return strings.Compare(a.Peer, b.Peer) })
	return out
}
