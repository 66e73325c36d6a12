package scuttlebutt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// A StreamOption configures a stream.
type StreamOption func(*streamConfig)

type streamConfig struct {
	readable, writable, sendClock, tail bool

	meta    any
	hasMeta bool

	onHeader       func(Header)
	onSyncSent     func()
	onSyncReceived func()
	onSync         func()
	onReceive      func(Update)
	onClose        func(error)
}

// Readable sets whether the stream sends this replica's updates to the peer
// (default true). A stream that is not readable sends nothing, not even its
// header unless SendClock is set; unlike npm scuttlebutt it does not start
// sending when the peer's header arrives.
func Readable(b bool) StreamOption { return func(c *streamConfig) { c.readable = b } }

// Writable sets whether the stream applies the updates the peer sends
// (default true). A stream that is not writable ignores them; if it is
// readable it sends its whole history at once, without waiting for the
// peer's clock, because such a peer may never send one.
func Writable(b bool) StreamOption { return func(c *streamConfig) { c.writable = b } }

// SendClock makes a stream that is not readable still send its header, so
// that the peer knows what it has and sends only the rest.
func SendClock(b bool) StreamOption { return func(c *streamConfig) { c.sendClock = b } }

// Tail sets whether the stream keeps sending live updates after its history
// (default true). With Tail(false) the stream's output ends right after its
// "SYNC"; it still applies what the peer sends until the peer ends.
func Tail(b bool) StreamOption { return func(c *streamConfig) { c.tail = b } }

// Meta adds a "meta" field with v, encoded as JSON, to the stream's header.
func Meta(v any) StreamOption { return func(c *streamConfig) { c.meta, c.hasMeta = v, true } }

// OnHeader registers a callback for the peer's header.
func OnHeader(fn func(Header)) StreamOption { return func(c *streamConfig) { c.onHeader = fn } }

// OnSyncSent registers a callback for when the stream has written its
// "SYNC": the peer now has this replica's history.
func OnSyncSent(fn func()) StreamOption { return func(c *streamConfig) { c.onSyncSent = fn } }

// OnSyncReceived registers a callback for the peer's "SYNC": this replica
// now has the peer's history.
func OnSyncReceived(fn func()) StreamOption {
	return func(c *streamConfig) { c.onSyncReceived = fn }
}

// OnSync registers a callback for when both sides have sent their history
// ("sync" and "synced" in npm scuttlebutt). It fires once per stream.
func OnSync(fn func()) StreamOption { return func(c *streamConfig) { c.onSync = fn } }

// OnReceive registers a callback for every update received on this stream
// that the replica applied.
func OnReceive(fn func(Update)) StreamOption { return func(c *streamConfig) { c.onReceive = fn } }

// OnClose registers a callback for when the stream has closed: nil after a
// clean end of both directions or Close, the error otherwise.
func OnClose(fn func(error)) StreamOption { return func(c *streamConfig) { c.onClose = fn } }

// A Stream replicates its Replica with one peer over a byte stream, in the
// line protocol of npm scuttlebutt. Bytes written to it are the peer's
// output; bytes read from it are the output for the peer. Serve runs it over
// a connection.
//
// Read blocks until there is output; it returns io.EOF once the output has
// ended, which happens after Tail(false) history, after CloseWrite or
// Replica.Dispose once queued updates are out, or after Close. Write and
// Read may be called concurrently with each other.
//
// # Memory
//
// A stream that tails live updates (the default) holds at most: one page of
// history (WithPageSize updates; with WithMTU, one round of about MTU
// bytes), WithQueueLimit live updates (with WithMTU, about MTU bytes of
// them), one read's worth of encoded output, a partial line of at most
// WithMaxLine bytes plus the updates of one Write being applied, and its
// record of what the peer has (at most twice WithMaxSources entries). The
// Update values in these buffers share their bytes with the document; each
// is 72 bytes. A Doc that does not implement HistoryScanner is the
// exception: its history is taken whole, and so is the history of a
// Tail(false) stream, a snapshot of one moment.
//
// A peer that reads slowly therefore never makes the stream buffer more:
// once the live queue is full the stream drops it, and when the peer
// catches up it sends what the peer still lacks by its clock, a page at a
// time, which in a Model is at most one update per key however many
// changes were made meanwhile.
type Stream struct {
	r   *Replica
	cfg streamConfig

	ctx    context.Context // cancelled when the stream shuts; bounds verification
	cancel context.CancelFunc

	writeMu  sync.Mutex // serialises Write; guards the fields up to mu
	partial  []byte
	batch    []Update
	sources  sourceCache
	histLast map[string]float64 // per source, the last timestamp of the peer's history, until its "SYNC"
	histRun  bool               // histSrc, histTs: the last source of the history, ahead of histLast
	histSrc  string
	histTs   float64
	maxTs    float64 // the latest timestamp accepted from the peer in this Write

	mu        sync.Mutex
	cond      sync.Cond
	known     Clock   // what the peer has: its header, what it sent, what was sent to it
	header    *Header // our header, until it is written
	hist      histState
	page      []Update // history being sent
	pageHead  int
	queue     []Update // live updates
	qhead     int
	qbytes    int // estimated encoded size of queue[qhead:]
	started   bool
	peer      *Header
	syncDue   bool // write "SYNC" once the current history is out
	syncSent  bool
	syncRecv  bool
	synced    bool
	outEnding bool // end the output once the queue is empty
	outDone   bool
	inDone    bool
	finished  bool
	err       error
	out       []byte
	outOff    int

	syncedCh chan struct{}
	done     chan struct{}
}

// histState is where a stream is in sending history.
type histState struct {
	pending bool   // a history pass is under way: the first, or one after live updates were dropped
	first   bool   // it is the first, which ends with "SYNC"
	cursor  Update // the last update of the last page (paged passes)
	started bool   // cursor is set
	last    bool   // the page being sent is the pass's last
}

// NewStream returns a new stream of the replica. Each peer connection needs
// its own stream.
func (r *Replica) NewStream(opts ...StreamOption) *Stream {
	s := &Stream{
		r:        r,
		cfg:      streamConfig{readable: true, writable: true, tail: true},
		known:    make(Clock),
		histLast: make(map[string]float64),
		syncedCh: make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.cond.L = &s.mu
	for _, o := range opts {
		o(&s.cfg)
	}
	var meta []byte
	var metaErr error
	if s.cfg.hasMeta {
		if meta, metaErr = jsjson.Marshal(s.cfg.meta); metaErr != nil {
			metaErr = fmt.Errorf("meta: %w", metaErr)
		} else if string(meta) == "null" {
			meta = nil // npm scuttlebutt sends meta only when it is set
		}
	}
	s.syncRecv = !s.cfg.writable
	s.syncSent = !s.cfg.readable
	r.addStream(s)

	r.mu.Lock()
	s.mu.Lock()
	if s.cfg.readable || s.cfg.sendClock {
		s.header = &Header{ID: r.id, Clock: r.clock.Clone(), Meta: meta}
	}
	if s.cfg.readable && !s.cfg.writable {
		s.startLocked()
	}
	s.mu.Unlock()
	r.mu.Unlock()
	if metaErr != nil {
		s.fail(metaErr)
	}
	return s
}

// startLocked starts the history the peer lacks, to be followed by "SYNC",
// and the live tail. Both locks are held, so no update falls between the
// two: every update applied from now on is either found by the history
// pass or offered to the live queue.
//
// A Tail(false) stream takes its history whole, at once: it is then the
// state at this moment, which a snapshot (such as package persist's) needs.
func (s *Stream) startLocked() {
	s.hist = histState{pending: true, first: true}
	if !s.cfg.tail {
		s.page, s.pageHead = s.r.doc.History(s.known), 0
		s.hist.last = true
	}
	s.started = true
	if s.cfg.tail && !s.outEnding {
		s.r.live[s] = struct{}{}
	}
	s.cond.Broadcast()
}

// offer queues a live update for the peer. The replica's lock is held.
func (s *Stream) offer(u Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outEnding || !s.known.Lacks(u) {
		return
	}
	if s.hist.pending && !s.hist.last && (s.r.cfg.mtu > 0 || !s.hist.started || u.Newer(s.hist.cursor)) {
		return // the history pass under way will find it
	}
	if s.qhead == len(s.queue) && s.qhead > 0 {
		s.queue, s.qhead, s.qbytes = s.queue[:0], 0, 0
	}
	size := encodedSize(u)
	if len(s.queue)-s.qhead >= s.r.cfg.queueLimit || s.r.cfg.mtu > 0 && s.qbytes+size > s.r.cfg.mtu {
		// The reader is too slow: forget the live updates and send what the
		// peer lacks, by its clock, instead.
		s.dropQueue()
		s.hist = histState{pending: true, first: s.hist.pending && s.hist.first}
		s.cond.Broadcast()
		return
	}
	s.queue = append(s.queue, u)
	s.qbytes += size
	s.cond.Broadcast()
}

func (s *Stream) dropQueue() {
	clear(s.queue[s.qhead:])
	if cap(s.queue) > 2*s.r.cfg.queueLimit {
		s.queue = nil
	}
	s.queue, s.qhead, s.qbytes = s.queue[:0], 0, 0
}

// encodedSize estimates the length of u's line.
func encodedSize(u Update) int {
	n := len(u.Change) + len(u.Source) + 26
	for _, x := range u.Extra {
		n += len(x) + 1
	}
	return n
}

// Read reads output for the peer, blocking until some is available.
func (s *Stream) Read(p []byte) (int, error) { return s.read(p, true) }

var errWouldBlock = errors.New("scuttlebutt: no output available")

// Drain writes all output available now to w, without waiting for more. It
// returns io.EOF once the output has ended.
func (s *Stream) Drain(w io.Writer) (int64, error) {
	var total int64
	buf := make([]byte, 32<<10)
	for {
		n, err := s.read(buf, false)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == errWouldBlock {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

func (s *Stream) read(p []byte, block bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	defer s.r.events.run()
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		switch {
		case s.outOff < len(s.out):
			n := copy(p, s.out[s.outOff:])
			s.outOff += n
			if s.outOff == len(s.out) {
				s.out, s.outOff = s.out[:0], 0
			}
			return n, nil
		case s.err != nil:
			return 0, s.err
		case s.outDone:
			return 0, io.EOF
		case s.header != nil || s.pageHead < len(s.page) || s.syncDue || !s.hist.pending && s.qhead < len(s.queue):
			s.fill(len(p))
		case s.hist.pending && (!s.outEnding || s.hist.first):
			// The next page of history needs the replica's lock, which
			// comes first.
			s.mu.Unlock()
			s.r.mu.Lock()
			s.mu.Lock()
			if s.hist.pending && s.pageHead == len(s.page) && s.err == nil && !s.outDone {
				s.nextPage()
			}
			s.r.mu.Unlock()
		case s.outEnding:
			s.outDone = true
			s.maybeFinish()
		case !block:
			return 0, errWouldBlock
		default:
			s.cond.Wait()
		}
	}
}

// nextPage fetches the next page of the history pass under way, or ends the
// pass. Both locks are held.
func (s *Stream) nextPage() {
	clear(s.page)
	if cap(s.page) > 2*s.r.cfg.pageSize {
		s.page = nil
	}
	s.page, s.pageHead = s.page[:0], 0
	if s.hist.last {
		s.endHistory()
		return
	}
	doc := s.r.doc
	sc, canScan := doc.(HistoryScanner)
	switch {
	case s.r.cfg.mtu > 0:
		var complete bool
		s.page, complete = s.round(sc, canScan)
		s.hist.last = complete
	case canScan:
		var after *Update
		if s.hist.started {
			after = &s.hist.cursor
		}
		limit := s.r.cfg.pageSize
		page := s.page
		sc.ScanHistory(s.known, after, func(u Update) bool {
			page = append(page, u)
			return len(page) < limit
		})
		s.page = page
		s.hist.last = len(page) < limit
		if len(page) > 0 {
			s.hist.cursor, s.hist.started = page[len(page)-1], true
		}
	default:
		s.page = doc.History(s.known)
		s.hist.last = true
	}
	if len(s.page) == 0 {
		s.endHistory()
	}
}

// endHistory ends the history pass: "SYNC" follows if it was the first.
func (s *Stream) endHistory() {
	if s.hist.first {
		s.syncDue = true
	}
	s.hist = histState{}
}

// round picks the next round of history with the scuttle-depth ordering of
// van Renesse et al.: the sources with the most updates the peer lacks
// first (ties in random order), each source's updates in timestamp order
// and without gaps, at most MTU bytes in all (at least one update). It
// reports whether the round holds everything the peer lacks. Both locks
// are held; a Doc that is a HistoryScanner is scanned twice, any other
// has its whole history taken.
func (s *Stream) round(sc HistoryScanner, canScan bool) ([]Update, bool) {
	var all []Update
	scan := func(fn func(Update) bool) {
		if canScan {
			sc.ScanHistory(s.known, nil, fn)
			return
		}
		if all == nil {
			all = s.r.doc.History(s.known)
		}
		for _, u := range all {
			if !fn(u) {
				return
			}
		}
	}
	type source struct {
		n, bytes int
		allow    int // bytes this round may take from it; -1 once it skipped one
		rank     int
	}
	bySource := make(map[string]*source)
	total := 0
	scan(func(u Update) bool {
		c := bySource[u.Source]
		if c == nil {
			c = &source{}
			bySource[u.Source] = c
		}
		c.n++
		c.bytes += encodedSize(u)
		total++
		return true
	})
	if total == 0 {
		return nil, true
	}
	order := make([]string, 0, len(bySource))
	for src := range bySource {
		order = append(order, src)
	}
	rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	slices.SortStableFunc(order, func(a, b string) int { return bySource[b].n - bySource[a].n })
	budget, complete := s.r.cfg.mtu, true
	for i, src := range order {
		c := bySource[src]
		c.rank = i
		c.allow = min(budget, c.bytes)
		budget -= c.allow
		if c.allow < c.bytes {
			complete = false
		}
	}
	page := s.page[:0]
	scan(func(u Update) bool {
		c := bySource[u.Source]
		if c == nil || c.allow < 0 {
			return true
		}
		size := encodedSize(u)
		if size > c.allow && !(len(page) == 0 && c.rank == 0) {
			c.allow = -1 // no gaps: nothing later from this source either
			return true
		}
		c.allow -= size
		page = append(page, u)
		return true
	})
	slices.SortStableFunc(page, func(a, b Update) int { return bySource[a.Source].rank - bySource[b.Source].rank })
	return page, complete && len(page) == total
}

// fill encodes our header, history, "SYNC" and live updates into the
// output buffer, about limit bytes. A page of history is written alone, so
// that with WithMTU each round is one write.
func (s *Stream) fill(limit int) {
	if s.header != nil {
		s.out = append(s.header.appendJSON(s.out), '\n')
		s.header = nil
	}
	if s.pageHead < len(s.page) {
		for s.pageHead < len(s.page) && len(s.out) < limit {
			u := s.page[s.pageHead]
			s.page[s.pageHead] = Update{}
			s.pageHead++
			s.send(u)
		}
		return
	}
	if s.syncDue {
		s.out = append(s.out, syncLine+"\n"...)
		s.syncDue = false
		s.syncSent = true
		s.post(s.cfg.onSyncSent)
		s.checkSynced()
		if !s.cfg.tail {
			s.outEnding = true
			return
		}
	}
	if s.hist.pending {
		return
	}
	for s.qhead < len(s.queue) && len(s.out) < limit {
		u := s.queue[s.qhead]
		s.queue[s.qhead] = Update{}
		s.qhead++
		s.qbytes -= encodedSize(u)
		s.send(u)
	}
	if s.qhead == len(s.queue) {
		if cap(s.queue) > 2*s.r.cfg.queueLimit {
			s.queue = nil // let a large burst go
		}
		s.queue, s.qhead, s.qbytes = s.queue[:0], 0, 0
	}
}

// send writes u unless the peer has it (it may have sent it meanwhile).
func (s *Stream) send(u Update) {
	if !s.known.Lacks(u) {
		return
	}
	s.out = append(u.appendJSON(s.out), '\n')
	s.known[u.Source] = u.Timestamp
}

func (s *Stream) post(fn func()) {
	if fn != nil {
		s.r.events.post(fn)
	}
}

func (s *Stream) checkSynced() {
	if s.syncSent && s.syncRecv && !s.synced {
		s.synced = true
		close(s.syncedCh)
		s.post(s.cfg.onSync)
	}
}

// Write takes output of the peer. Complete lines are applied before Write
// returns; a partial line waits for the rest. A line that breaks the
// protocol fails the stream: Write returns the error, the stream closes, and
// the replica and its other streams are unaffected.
//
// With WithSecurity, Write verifies the updates it received before it
// applies them, so it may take as long as the KeyStore takes.
func (s *Stream) Write(p []byte) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.inputErr(); err != nil {
		return 0, err
	}
	s.maxTs = math.MaxFloat64
	if skew := s.r.cfg.maxSkew; skew >= 0 {
		s.maxTs = float64(s.r.cfg.now().Add(skew).UnixMilli())
	}
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(s.partial)+len(p) > s.r.cfg.maxLine {
				return n, s.failInput(fmt.Errorf("%w: more than %d bytes without a newline", ErrLineTooLong, s.r.cfg.maxLine))
			}
			s.partial = append(s.partial, p...)
			break
		}
		line := p[:i]
		p = p[i+1:]
		if len(s.partial) > 0 {
			s.partial = append(s.partial, line...)
			line = s.partial
		}
		if len(line) > s.r.cfg.maxLine {
			return n - len(p), s.failInput(fmt.Errorf("%w: %d bytes", ErrLineTooLong, len(line)))
		}
		err := s.handleLine(line)
		s.partial = s.partial[:0]
		if err != nil {
			return n - len(p), s.failInput(err)
		}
	}
	if err := s.flushBatch(); err != nil {
		return n, s.failInput(err)
	}
	return n, nil
}

func (s *Stream) inputErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	if s.inDone {
		return ErrClosed
	}
	return nil
}

func (s *Stream) failInput(err error) error {
	s.flushBatch() // the lines before the bad one count, however the input was chunked
	s.fail(err)
	return s.Err()
}

func (s *Stream) handleLine(line []byte) error {
	kind, u, h, err := decodeLine(line, &s.sources, s.r.cfg.maxSources)
	if err != nil {
		return err
	}
	switch kind {
	case lineUpdate:
		if err := s.checkUpdate(u); err != nil {
			return err
		}
		// The line's buffer is reused: keep copies of what is retained.
		u.Change = slices.Clone(u.Change)
		for i, x := range u.Extra {
			u.Extra[i] = slices.Clone(x)
		}
		s.batch = append(s.batch, u)
	case lineHeader:
		if err := s.flushBatch(); err != nil {
			return err
		}
		return s.receiveHeader(h)
	case lineSync:
		if err := s.flushBatch(); err != nil {
			return err
		}
		s.receiveSync()
	}
	return nil
}

// checkUpdate rejects what no honest peer sends: a timestamp too far in the
// future, and, in the peer's history (before its first "SYNC"), an update
// older than an earlier one of the same source. npm scuttlebutt sends its
// history sorted, and any sender must keep each source's updates in
// order.
func (s *Stream) checkUpdate(u Update) error {
	if u.Timestamp > s.maxTs {
		return fmt.Errorf("%w: %s at %v, more than %v ahead of the local clock", ErrFutureTimestamp, strconvQuote(u.Source), u.Timestamp, s.r.cfg.maxSkew)
	}
	if s.histLast == nil {
		return nil
	}
	if s.histRun && u.Source == s.histSrc { // a run of one source, the common case
		if u.Timestamp < s.histTs {
			return fmt.Errorf("%w: history out of order: %s at %v after %v", ErrProtocol, strconvQuote(u.Source), u.Timestamp, s.histTs)
		}
		s.histTs = u.Timestamp
		return nil
	}
	if s.histRun {
		s.histLast[s.histSrc] = s.histTs
	}
	last, ok := s.histLast[u.Source]
	if ok && u.Timestamp < last {
		return fmt.Errorf("%w: history out of order: %s at %v after %v", ErrProtocol, strconvQuote(u.Source), u.Timestamp, last)
	}
	if !ok && len(s.histLast) >= s.r.cfg.maxSources {
		return fmt.Errorf("%w: the peer's history has more than %d sources", ErrTooManySources, s.r.cfg.maxSources)
	}
	s.histLast[u.Source] = u.Timestamp
	s.histRun, s.histSrc, s.histTs = true, u.Source, u.Timestamp
	return nil
}

// flushBatch verifies (with WithSecurity) and applies the updates decoded
// so far, under one acquisition of the replica's lock.
func (s *Stream) flushBatch() error {
	if len(s.batch) == 0 {
		return nil
	}
	r := s.r
	defer func() {
		clear(s.batch)
		s.batch = s.batch[:0]
	}()
	var verdicts []error
	if r.cfg.security != nil && s.cfg.writable {
		verdicts = r.verifyBatch(s.ctx, s.batch)
		if s.ctx.Err() != nil {
			return nil // closed meanwhile
		}
	}
	var err error
	r.mu.Lock()
	s.mu.Lock()
	for i, u := range s.batch {
		if (verdicts == nil || verdicts[i] == nil) && !r.cfg.echo {
			s.known.observe(u.Source, u.Timestamp)
		}
	}
	if len(s.known) > 2*r.cfg.maxSources {
		err = fmt.Errorf("%w: the peer has more than %d", ErrTooManySources, 2*r.cfg.maxSources)
	}
	apply := s.cfg.writable && s.err == nil && !s.inDone && err == nil
	s.mu.Unlock()
	for i, u := range s.batch {
		if !apply {
			break
		}
		if verdicts != nil && verdicts[i] != nil {
			r.onUnverified.post(&r.events, unverified{u, verdicts[i]})
			r.cfg.logger.Info("scuttlebutt: update not verified", "replica", r.id, "source", u.Source, "ts", u.Timestamp, "err", verdicts[i])
			continue
		}
		switch r.applyLocked(u, s) {
		case applyOK:
			if fn := s.cfg.onReceive; fn != nil {
				r.events.post(func() { fn(u) })
			}
		case applyTooMany:
			err = fmt.Errorf("%w: the replica has %d", ErrTooManySources, r.cfg.maxSources)
			apply = false
		}
	}
	r.mu.Unlock()
	r.events.run()
	return err
}

func (s *Stream) receiveHeader(h Header) error {
	r := s.r
	r.mu.Lock()
	s.mu.Lock()
	for src, ts := range h.Clock {
		s.known.observe(src, ts)
	}
	if len(s.known) > 2*r.cfg.maxSources {
		s.mu.Unlock()
		r.mu.Unlock()
		return fmt.Errorf("%w: the peer has more than %d", ErrTooManySources, 2*r.cfg.maxSources)
	}
	first := s.peer == nil
	s.peer = &h
	if first && s.cfg.readable && !s.started && !s.outEnding && s.err == nil {
		s.startLocked()
	}
	if fn := s.cfg.onHeader; fn != nil {
		r.events.post(func() { fn(h) })
	}
	s.mu.Unlock()
	r.mu.Unlock()
	r.events.run()
	return nil
}

func (s *Stream) receiveSync() {
	s.histLast = nil // the peer's history is over
	s.mu.Lock()
	s.syncRecv = true
	s.post(s.cfg.onSyncReceived)
	s.checkSynced()
	s.mu.Unlock()
	s.r.events.run()
}

// CloseWrite ends the stream's input: the peer has ended its output. The
// stream sends what it has queued (history and "SYNC" included, so a peer
// that half-closes early still gets them), then ends its output.
//
// If the peer's output ended in the middle of a line, the line is not
// applied, and the stream fails with an error wrapping io.ErrUnexpectedEOF,
// which CloseWrite returns: the peer died or was cut off, it did not end
// cleanly (a peer ends every line, the last one included).
func (s *Stream) CloseWrite() error {
	s.writeMu.Lock()
	n := len(s.partial)
	s.writeMu.Unlock()
	if n > 0 {
		s.fail(fmt.Errorf("%w: the peer's output ended in the middle of a line (%d bytes)", io.ErrUnexpectedEOF, n))
		return s.Err()
	}
	s.shut(nil, false)
	return nil
}

// Close ends both directions of the stream at once, dropping queued output.
func (s *Stream) Close() error {
	s.shut(nil, true)
	return nil
}

func (s *Stream) fail(err error) {
	s.r.cfg.logger.Info("scuttlebutt: stream failed", "replica", s.r.id, "err", err)
	s.shut(err, true)
}

func (s *Stream) shut(err error, now bool) {
	r := s.r
	if now {
		s.cancel() // stop verifying what this stream received
	}
	r.mu.Lock()
	s.mu.Lock()
	if err != nil && s.err == nil && !s.finished {
		s.err = fmt.Errorf("scuttlebutt: stream: %w", err)
	}
	delete(r.live, s)
	s.inDone = true
	s.outEnding = true
	if !s.hist.first {
		s.hist = histState{} // live updates dropped for a slow reader are not sent after all
	}
	if !now && s.header == nil && s.pageHead == len(s.page) && !s.hist.pending && !s.syncDue && s.qhead == len(s.queue) && s.outOff == len(s.out) {
		now = true // nothing left to send
	}
	if now {
		s.outDone = true
		s.header = nil
		s.hist, s.syncDue = histState{}, false
		s.page, s.pageHead = nil, 0
		s.queue, s.qhead, s.qbytes, s.out, s.outOff = nil, 0, 0, nil, 0
	}
	s.cond.Broadcast()
	s.maybeFinish()
	s.mu.Unlock()
	r.mu.Unlock()
	r.events.run()
}

// maybeFinish closes the stream once both directions have ended.
func (s *Stream) maybeFinish() {
	if s.finished || !s.inDone || !s.outDone {
		return
	}
	s.finished = true
	s.cancel()
	close(s.done)
	s.r.removeStream(s)
	if fn := s.cfg.onClose; fn != nil {
		err := s.err
		s.r.events.post(func() { fn(err) })
	}
}

// PeerHeader returns the peer's header, once it has arrived.
func (s *Stream) PeerHeader() (Header, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.peer == nil {
		return Header{}, false
	}
	return *s.peer, true
}

// Synced is closed once both sides have sent their history.
func (s *Stream) Synced() <-chan struct{} { return s.syncedCh }

// Done is closed once the stream has closed.
func (s *Stream) Done() <-chan struct{} { return s.done }

// Err returns the error that failed the stream, if any.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// strconvQuote quotes a source id for an error message, shortened.
func strconvQuote(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.Quote(s)
}
