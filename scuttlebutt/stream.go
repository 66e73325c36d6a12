package scuttlebutt

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
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
type Stream struct {
	r   *Replica
	cfg streamConfig

	writeMu sync.Mutex // serialises Write; guards partial, batch and sources
	partial []byte
	batch   []Update
	sources sourceCache

	mu        sync.Mutex
	cond      sync.Cond
	known     Clock   // what the peer has: its header, what it sent, what was sent to it
	header    *Header // our header, until it is written
	queue     []Update
	qhead     int
	syncAt    int // index in queue before which "SYNC" is written, or -1
	liveFrom  int // index in queue of the first live update
	resync    bool
	started   bool
	peer      *Header
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

// NewStream returns a new stream of the replica. Each peer connection needs
// its own stream.
func (r *Replica) NewStream(opts ...StreamOption) *Stream {
	s := &Stream{
		r:        r,
		cfg:      streamConfig{readable: true, writable: true, tail: true},
		known:    make(Clock),
		syncAt:   -1,
		syncedCh: make(chan struct{}),
		done:     make(chan struct{}),
	}
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

// startLocked queues the history the peer lacks and "SYNC", and starts the
// live tail. Both locks are held, so no update falls between the two.
func (s *Stream) startLocked() {
	s.enqueueHistory()
	s.syncAt = len(s.queue)
	s.liveFrom = len(s.queue)
	s.started = true
	if s.cfg.tail && !s.outEnding {
		s.r.live[s] = struct{}{}
	}
	s.cond.Broadcast()
}

// enqueueHistory queues what the peer lacks by its clock. Both locks are
// held.
func (s *Stream) enqueueHistory() {
	hist := s.r.doc.History(s.known)
	if s.qhead == len(s.queue) && s.syncAt < 0 {
		s.queue, s.qhead = hist, 0 // the stream owns the slice History returned
		return
	}
	s.queue = append(s.queue, hist...)
}

// offer queues a live update for the peer. The replica's lock is held.
func (s *Stream) offer(u Update) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outEnding || s.resync || !s.known.Lacks(u) {
		return
	}
	if len(s.queue)-max(s.liveFrom, s.qhead) >= s.r.cfg.queueLimit {
		// The reader is too slow: forget the buffered live updates and send
		// what the peer lacks, by its clock, once the reader has caught up.
		clear(s.queue[max(s.liveFrom, s.qhead):])
		s.queue = s.queue[:max(s.liveFrom, s.qhead)]
		s.resync = true
		return
	}
	s.queue = append(s.queue, u)
	s.cond.Broadcast()
}

// resyncFromClock queues the history the peer lacks after live updates were
// dropped. It is called with no lock held and an empty queue.
func (s *Stream) resyncFromClock() {
	s.r.mu.Lock()
	s.mu.Lock()
	if s.resync && !s.outEnding && s.err == nil {
		s.resync = false
		s.enqueueHistory()
		s.liveFrom = len(s.queue)
	}
	s.mu.Unlock()
	s.r.mu.Unlock()
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
		case s.header != nil || s.qhead < len(s.queue) || s.syncAt >= 0:
			s.fill(len(p))
		case s.resync && !s.outEnding:
			s.mu.Unlock()
			s.resyncFromClock()
			s.mu.Lock()
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

// fill encodes our header, queued updates and "SYNC" into the output
// buffer, about limit bytes.
func (s *Stream) fill(limit int) {
	if s.header != nil {
		s.out = append(s.header.appendJSON(s.out), '\n')
		s.header = nil
	}
	for len(s.out) < limit {
		if s.qhead == s.syncAt {
			s.out = append(s.out, syncLine+"\n"...)
			s.syncAt = -1
			s.syncSent = true
			s.post(s.cfg.onSyncSent)
			s.checkSynced()
			if !s.cfg.tail {
				s.outEnding = true
			}
			continue
		}
		if s.qhead == len(s.queue) {
			break
		}
		u := s.queue[s.qhead]
		s.queue[s.qhead] = Update{}
		s.qhead++
		if !s.known.Lacks(u) {
			continue // the peer sent it meanwhile
		}
		s.out = append(u.appendJSON(s.out), '\n')
		s.known[u.Source] = u.Timestamp
	}
	if s.qhead == len(s.queue) && s.syncAt < 0 {
		if cap(s.queue) > 2*s.r.cfg.queueLimit {
			s.queue = nil // let a large history go
		}
		s.queue, s.qhead, s.liveFrom = s.queue[:0], 0, 0
	}
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
func (s *Stream) Write(p []byte) (int, error) {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := s.inputErr(); err != nil {
		return 0, err
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
	s.flushBatch()
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
	kind, u, h, err := decodeLine(line, &s.sources)
	if err != nil {
		return err
	}
	switch kind {
	case lineUpdate:
		// The line's buffer is reused: keep copies of what is retained.
		u.Change = slices.Clone(u.Change)
		for i, x := range u.Extra {
			u.Extra[i] = slices.Clone(x)
		}
		s.batch = append(s.batch, u)
	case lineHeader:
		s.flushBatch()
		s.receiveHeader(h)
	case lineSync:
		s.flushBatch()
		s.receiveSync()
	}
	return nil
}

// flushBatch applies the updates decoded so far under one acquisition of
// the replica's lock.
func (s *Stream) flushBatch() {
	if len(s.batch) == 0 {
		return
	}
	r := s.r
	r.mu.Lock()
	s.mu.Lock()
	for _, u := range s.batch {
		s.known.observe(u.Source, u.Timestamp)
	}
	apply := s.cfg.writable && s.err == nil && !s.inDone
	s.mu.Unlock()
	if apply {
		for _, u := range s.batch {
			if _, applied := r.applyLocked(u, s); applied && s.cfg.onReceive != nil {
				fn, u := s.cfg.onReceive, u
				r.events.post(func() { fn(u) })
			}
		}
	}
	r.mu.Unlock()
	clear(s.batch)
	s.batch = s.batch[:0]
	r.events.run()
}

func (s *Stream) receiveHeader(h Header) {
	r := s.r
	r.mu.Lock()
	s.mu.Lock()
	for src, ts := range h.Clock {
		s.known.observe(src, ts)
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
}

func (s *Stream) receiveSync() {
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
func (s *Stream) CloseWrite() error {
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
	r.mu.Lock()
	s.mu.Lock()
	if err != nil && s.err == nil && !s.finished {
		s.err = fmt.Errorf("scuttlebutt: stream: %w", err)
	}
	delete(r.live, s)
	s.inDone = true
	s.outEnding = true
	s.resync = false
	if !now && s.header == nil && s.qhead == len(s.queue) && s.syncAt < 0 && s.outOff == len(s.out) {
		now = true // nothing left to send
	}
	if now {
		s.outDone = true
		s.header = nil
		s.queue, s.qhead, s.syncAt, s.out, s.outOff = nil, 0, -1, nil, 0
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
