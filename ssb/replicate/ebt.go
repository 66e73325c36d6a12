package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate/ebt"
	"github.com/scuttlego/scuttle/ssb/store"
)

// EBT (epidemic broadcast trees, ssb-ebt's ebt.replicate, version 3): the
// rules are the state machine of package ebt; this file is its driver.
// Every event goes to the machine under r.mu, and what the machine asks
// for is handed, still under r.mu and without blocking, to each session's
// outbox, whose writer goroutine sends the notes and the ranges of feeds
// in order; peers' clocks go to one saver goroutine. The store tells the
// machine of each commit and deletion (store.OnAppend, OnDelete: no
// message is read back for it), and a ticker, running while there are
// sessions, gives it its ticks.

// tickEvery is how often the machine is ticked: how long a burst of new
// messages or wanted feeds gathers into one note.
const tickEvery = 100 * time.Millisecond

// sendChunk bounds the messages read from the store at once for a range
// sent to a peer; notes go out between chunks.
const sendChunk = 256

// ebtSession is one EBT stream with a peer: its outbox, and the writer
// that empties it.
type ebtSession struct {
	r  *Replicator
	id ebt.SessionID
	p  *peer
	s  *muxrpc.Stream

	mu      sync.Mutex
	note    map[refs.Feed]int64 // the note to send, merged
	noteDue bool                // a note must go out, even empty
	spans   map[refs.Feed]*span // what to send of each feed
	order   []refs.Feed         // the feeds of spans, in turn
	wake    chan struct{}

	// gen counts the failed appends of each feed (under r.mu): messages
	// taken before the machine heard of a failure are dropped.
	gen map[refs.Feed]int
}

// span is a range of sequences of a feed to send, inclusive.
type span struct{ from, to int64 }

// ErrEBTVersion reports an ebt.replicate call with a version other than 2 or 3.
var ErrEBTVersion = errors.New("expected ebt.replicate({version: 3 or 2})")

// ServeEBT answers a peer's ebt.replicate call: it replicates with the peer
// over the request's stream until it ends. Call it from the handler of
// ebt.replicate; id is the peer's feed.
func (r *Replicator) ServeEBT(ctx context.Context, req *muxrpc.Request, e *muxrpc.Endpoint, id refs.Feed) error {
	var args []struct {
		Version int    `json:"version"`
		Format  string `json:"format"`
	}
	if json.Unmarshal(req.Args, &args) != nil || len(args) == 0 || args[0].Version != 3 || args[0].Format != "" && args[0].Format != "classic" {
		return ErrEBTVersion
	}
	p := r.peerOf(ctx, e)
	if p == nil {
		return errors.New("replicate: ebt.replicate on a connection that does not replicate")
	}
	defer p.sessions.Done()
	p.heard.fire()
	if r.cfg.NoEBT {
		return errors.New("ebt.replicate is turned off here")
	}
	p.ebtOnce.Do(func() { close(p.ebtCalled) })
	_, err := r.ebt(ctx, p, req.Stream(), true)
	return err
}

// ebt runs a session; the responder sends its note first. gotNote reports
// whether the peer sent a note: whether it speaks EBT.
func (r *Replicator) ebt(ctx context.Context, p *peer, s *muxrpc.Stream, responder bool) (gotNote bool, err error) {
	es := &ebtSession{r: r, p: p, s: s, note: make(map[refs.Feed]int64), spans: make(map[refs.Feed]*span), wake: make(chan struct{}, 1), gen: make(map[refs.Feed]int)}
	clock := r.loadClock(p.id)
	r.mu.Lock()
	r.nextSession++
	es.id = ebt.SessionID(r.nextSession)
	r.ebts[es.id] = es
	r.machine.Open(es.id, p.id, clock, responder)
	r.flushLocked()
	r.startTickerLocked()
	r.mu.Unlock()
	ctx, stop := context.WithCancel(ctx)

	var writer sync.WaitGroup
	writer.Go(func() { es.write(ctx) })
	// Received messages go to an appender goroutine, which appends what
	// has arrived in batches of one author: while it waits for an fsync,
	// the next batch fills.
	in := make(chan inMsg, 4*batchSize)
	appended := make(chan struct{})
	go func() {
		defer close(appended)
		es.appendLoop(in)
	}()
	defer func() {
		stop()
		s.Close()
		close(in)
		<-appended
		writer.Wait()
		r.mu.Lock()
		r.machine.Close(es.id)
		delete(r.ebts, es.id)
		r.flushLocked()
		saveNow := r.stopped && !r.saving
		if saveNow {
			r.saving = true
		}
		r.mu.Unlock()
		if saveNow { // shutting down: the peer's clock is saved before the session ends
			r.saveClocks()
		}
	}()
	first := true
	for {
		pkt, err := s.Recv(ctx)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return !first, nil
			}
			return !first, err
		}
		if msg, ok := asMessage(pkt.Body); ok {
			r.mu.Lock()
			take := r.machine.Message(es.id, msg.author, msg.seq)
			gen := es.gen[msg.author]
			r.flushLocked()
			r.mu.Unlock()
			if !take {
				continue
			}
			select {
			case in <- inMsg{msg.author, msg.seq, gen, pkt.Body}:
			case <-ctx.Done():
				return !first, ctx.Err()
			}
			continue
		}
		var raw map[string]int64
		r.log.Debug("replicate: ebt note received", "peer", p.id.String(), "note", string(pkt.Body))
		if err := json.Unmarshal(pkt.Body, &raw); err != nil {
			return !first, fmt.Errorf("replicate: ebt: neither a note nor a message: %.80q", pkt.Body)
		}
		n := make(map[refs.Feed]int64, len(raw))
		for id, v := range raw {
			if f, err := refs.ParseFeed(id); err == nil {
				n[f] = v
			}
		}
		first = false
		r.mu.Lock()
		r.machine.Note(es.id, n)
		r.flushLocked()
		r.mu.Unlock()
	}
}

// flushLocked hands out what the machine asks for: notes and sends to the
// sessions' outboxes, clocks to the saver. r.mu is held; nothing blocks.
func (r *Replicator) flushLocked() {
	rd := r.machine.Ready()
	if rd.Empty() {
		return
	}
	for _, n := range rd.Notes {
		if es := r.ebts[n.Session]; es != nil {
			es.queueNote(n.Feeds)
		}
	}
	for _, sd := range rd.Sends {
		if es := r.ebts[sd.Session]; es != nil {
			es.queueSend(sd)
		}
	}
	for _, c := range rd.Clocks {
		r.queueClockLocked(c.Peer, c.Feeds)
	}
}

func (es *ebtSession) queueNote(n map[refs.Feed]int64) {
	es.mu.Lock()
	for f, v := range n {
		es.note[f] = v
	}
	es.noteDue = true
	es.mu.Unlock()
	signal(es.wake)
}

func (es *ebtSession) queueSend(sd ebt.Send) {
	es.mu.Lock()
	defer es.mu.Unlock()
	sp := es.spans[sd.Feed]
	switch {
	case sd.Stop:
		delete(es.spans, sd.Feed)
		return
	case sp == nil:
		es.spans[sd.Feed] = &span{sd.From, sd.To}
		es.order = append(es.order, sd.Feed)
	default:
		sp.from, sp.to = min(sp.from, sd.From), max(sp.to, sd.To)
	}
	signal(es.wake)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// write sends the session's outbox until ctx ends: the note first, then a
// chunk of one feed's range at a time, feeds in turn.
func (es *ebtSession) write(ctx context.Context) {
	for {
		es.mu.Lock()
		note, due := es.note, es.noteDue
		if due {
			es.note, es.noteDue = make(map[refs.Feed]int64), false
		}
		var f refs.Feed
		var sp span
		found := false
		for len(es.order) > 0 && !found {
			f, es.order = es.order[0], es.order[1:]
			if p := es.spans[f]; p != nil {
				sp, found = *p, true
				delete(es.spans, f)
			}
		}
		es.mu.Unlock()
		if due && es.sendNote(note) != nil {
			return
		}
		if found {
			next, err := es.sendRange(ctx, f, sp)
			if err != nil {
				return
			}
			if next <= sp.to { // more to send: back in turn
				es.queueSend(ebt.Send{Session: es.id, Feed: f, From: next, To: sp.to})
			}
			continue
		}
		if due {
			continue
		}
		select {
		case <-es.wake:
		case <-ctx.Done():
			return
		}
	}
}

// sendNote sends a note and counts its bytes.
func (es *ebtSession) sendNote(n map[refs.Feed]int64) error {
	m := make(map[string]int64, len(n))
	for f, v := range n {
		m[f.String()] = v
	}
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	es.r.log.Debug("replicate: ebt note sent", "peer", es.p.id.String(), "note", string(body))
	es.r.mu.Lock()
	es.r.stats.NoteBytes += int64(len(body))
	es.r.mu.Unlock()
	return es.s.SendRaw(muxrpc.JSON, body)
}

// sendRange sends up to sendChunk messages of f from sp.from, and returns
// the sequence to go on from.
func (es *ebtSession) sendRange(ctx context.Context, f refs.Feed, sp span) (int64, error) {
	keys, values := false, true
	limit := int(min(sp.to-sp.from+1, sendChunk))
	it, err := es.r.store.History(ctx, store.HistoryQuery{ID: f, Seq: sp.from, Limit: limit, Keys: &keys, Values: &values})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	next := sp.from
	for {
		item, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		if err := es.s.SendRaw(muxrpc.JSON, item.Value); err != nil {
			return 0, err
		}
		next++
	}
	if next == sp.from {
		// Not stored (deleted since): nothing more of this range.
		return sp.to + 1, nil
	}
	return next, nil
}

// inMsg is a received message waiting to be appended.
type inMsg struct {
	author refs.Feed
	seq    int64
	gen    int // the session's count of failed appends of the feed when it came
	raw    []byte
}

// appendLoop hands received messages to one appender goroutine per
// author (started on the author's first message, ended with the session),
// as legacy replication has one per stream: the store commits concurrent
// appends together, so many feeds share each fsync, and each appender
// appends what has arrived for its feed in one batch.
func (es *ebtSession) appendLoop(in <-chan inMsg) {
	feeds := make(map[refs.Feed]chan inMsg)
	var wg sync.WaitGroup
	for m := range in {
		ch := feeds[m.author]
		if ch == nil {
			ch = make(chan inMsg, batchSize)
			feeds[m.author] = ch
			f := m.author
			wg.Go(func() { es.appendFeed(f, ch) })
		}
		ch <- m
	}
	for _, ch := range feeds {
		close(ch)
	}
	wg.Wait()
}

// appendFeed appends the messages of one feed in batches of what has
// arrived, and tells the machine when an append fails (it then drops the
// feed's messages from this peer until it asks again, or for good); the
// messages taken before it heard of it are dropped here.
func (es *ebtSession) appendFeed(f refs.Feed, ch <-chan inMsg) {
	r := es.r
	batch := make([]inMsg, 0, batchSize)
	raws := make([][]byte, 0, batchSize)
	for m := range ch {
		batch = gather(append(batch[:0], m), ch)
		r.mu.Lock()
		gen := es.gen[f]
		r.mu.Unlock()
		raws = raws[:0]
		for _, b := range batch {
			if b.gen == gen {
				raws = append(raws, b.raw)
			}
		}
		if len(raws) == 0 {
			continue
		}
		_, err := r.append(es.p, f, raws)
		var ae *store.AppendError
		if err == nil || !errors.As(err, &ae) {
			continue // stored, or the store or the context ended
		}
		r.mu.Lock()
		es.gen[f]++
		r.machine.AppendFailed(es.id, f, errors.Is(err, message.ErrSequence))
		r.flushLocked()
		r.mu.Unlock()
	}
}

type msgHead struct {
	author refs.Feed
	seq    int64
}

// asMessage tells a message (an object with author and sequence) from a
// note.
func asMessage(body []byte) (msgHead, bool) {
	var m struct {
		Author    string          `json:"author"`
		Sequence  int64           `json:"sequence"`
		Signature json.RawMessage `json:"signature"`
	}
	if json.Unmarshal(body, &m) != nil || m.Author == "" || m.Signature == nil {
		return msgHead{}, false
	}
	f, err := refs.ParseFeed(m.Author)
	if err != nil {
		return msgHead{}, false
	}
	return msgHead{f, m.Sequence}, true
}

// latest returns the sequence of the latest stored message of f.
func (r *Replicator) latest(f refs.Feed) int64 {
	if h, err := r.store.Latest(f); err == nil {
		return h.State.Sequence
	}
	return 0
}

// startTickerLocked starts the ticker if it is not running: it ticks the
// machine every tickEvery while there are sessions. r.mu is held.
func (r *Replicator) startTickerLocked() {
	if r.ticking || r.stopped {
		return
	}
	r.ticking = true
	r.wg.Go(func() {
		t := time.NewTicker(tickEvery)
		defer t.Stop()
		for now := range t.C {
			r.mu.Lock()
			if len(r.ebts) == 0 {
				r.ticking = false
				r.mu.Unlock()
				return
			}
			r.machine.Tick(now)
			r.flushLocked()
			r.mu.Unlock()
		}
	})
}

// queueClockLocked hands a peer's clock to the saver. r.mu is held.
func (r *Replicator) queueClockLocked(peer refs.Feed, clock map[refs.Feed]int64) {
	if r.cfg.ClockDir == "" {
		return
	}
	r.clockQueue[peer] = clock
	if !r.saving && !r.stopped { // stopped: the session's end saves it
		r.saving = true
		r.wg.Go(r.saveClocks)
	}
}

// saveClocks stores the queued clocks, the latest of each peer, until
// none is left. A clock being written stays readable in clockWriting, so
// that a session starting meanwhile reads it (loadClock).
func (r *Replicator) saveClocks() {
	for {
		r.mu.Lock()
		var peer refs.Feed
		var clock map[refs.Feed]int64
		for p, c := range r.clockQueue {
			peer, clock = p, c
			break
		}
		if clock == nil {
			r.saving = false
			r.mu.Unlock()
			return
		}
		delete(r.clockQueue, peer)
		r.clockWriting[peer] = clock
		r.mu.Unlock()
		if err := r.saveClock(peer, clock); err != nil {
			r.log.Warn("replicate: storing a peer's clock", "peer", peer.String(), "err", err)
		}
		r.mu.Lock()
		delete(r.clockWriting, peer)
		r.mu.Unlock()
	}
}
