package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// EBT (epidemic broadcast trees, ssb-ebt's ebt.replicate, version 3) runs
// on one duplex stream per connection, opened by the dialing side. Each
// side sends notes, {feed: value} maps where value is -1 (not replicated)
// or sequence<<1 | 1 if the sender does not want to receive the feed from
// this peer (so an even value asks for messages after sequence). The side
// that was called sends its note first. Messages then flow on the same
// stream as bare signed values, each side sending the feeds the other asked
// for, from the sequence its note gave, live.
//
// Two rules keep the traffic down, as in the JavaScript epidemic-broadcast-
// trees:
//
//   - Request skipping. The peer's clock (its sequence of each feed, from
//     its notes and the messages it sent) is kept on disk (ClockDir) when a
//     session ends. The first note of the next session leaves out every
//     feed whose sequence here equals the peer's stored one: neither side
//     has anything for the other there. If either side advances such a feed
//     later, a note says so and the feed is asked for then. After a restart
//     with nothing new, the first notes are empty.
//   - One peer at a time per feed (clock partitioning). Each feed is asked
//     to be received (the receive bit) from one session only; to the others
//     the note says "I have n, do not send". When a peer notes more than
//     the current one has, or the current one has promised more and sent
//     nothing for DefaultEBTStall, or its session ends, the feed moves to another
//     peer that has more, with a note to each.

// note encodes a sequence and whether to receive.
func note(seq int64, rx bool) int64 {
	v := seq << 1
	if !rx {
		v |= 1
	}
	return v
}

// DefaultEBTStall is how long a peer asked for a feed may promise messages
// (note a higher sequence) without sending any before the feed is asked
// from another peer that has more (Replicator.SetEBTStall changes it).
const DefaultEBTStall = 3 * time.Second

// SetEBTStall sets how long a peer may promise messages of a feed without
// sending any before the feed is asked from another peer (0: the default).
func (r *Replicator) SetEBTStall(d time.Duration) { r.ebtStall.Store(int64(d)) }

func (r *Replicator) stall() time.Duration {
	if d := time.Duration(r.ebtStall.Load()); d > 0 {
		return d
	}
	return DefaultEBTStall
}

// ebtSession is one EBT stream with a peer.
type ebtSession struct {
	r *Replicator
	p *peer
	s *muxrpc.Stream

	mu      sync.Mutex
	theirs  map[refs.Feed]int64 // the peer's sequence of each feed, -1 if it does not replicate it
	rx      map[refs.Feed]bool  // feeds noted this session: whether we asked to receive them
	skipped map[refs.Feed]bool  // wanted feeds left out of the first note
	sending map[refs.Feed]context.CancelFunc
	told    map[refs.Feed]int64 // the value of each feed in the last note sent
	asked   map[refs.Feed]bool  // feeds whose last note from the peer asks to receive
	ctx     context.Context     // the session's, for the sends it starts
	lastMsg time.Time           // when the peer last sent a message
	wantGen int                 // the replicator's wantGen when wanted feeds were last noted
	wg      sync.WaitGroup
}

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
	if r.NoEBT {
		return errors.New("ebt.replicate is turned off here")
	}
	p.ebtOnce.Do(func() { close(p.ebtCalled) })
	_, err := r.ebt(ctx, p, req.Stream(), true)
	return err
}

// ebt runs a session; the responder sends its note first. gotNote reports
// whether the peer sent a note: whether it speaks EBT.
func (r *Replicator) ebt(ctx context.Context, p *peer, s *muxrpc.Stream, responder bool) (gotNote bool, err error) {
	actx, stop := context.WithCancel(ctx)
	es := &ebtSession{
		r: r, p: p, s: s, ctx: actx,
		theirs:  r.loadClock(p.id),
		rx:      make(map[refs.Feed]bool),
		skipped: make(map[refs.Feed]bool),
		sending: make(map[refs.Feed]context.CancelFunc),
		told:    make(map[refs.Feed]int64),
		asked:   make(map[refs.Feed]bool),
		lastMsg: time.Now(),
	}
	r.mu.Lock()
	r.ebts[es] = struct{}{}
	r.mu.Unlock()
	defer func() {
		stop()
		// share starts sends under es.mu while actx is live: once it
		// is cancelled and es.mu passed, no send starts, so Wait is safe.
		es.mu.Lock()
		es.mu.Unlock()
		s.Close()
		es.wg.Wait()
		r.endSession(es)
	}()
	if responder {
		if err := es.sendFirstNote(); err != nil {
			return false, err
		}
	}
	es.wg.Go(func() { es.announce(actx) })
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
		close(in)
		<-appended
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
			es.mu.Lock()
			if msg.seq > es.theirs[msg.author] {
				es.theirs[msg.author] = msg.seq
			}
			es.lastMsg = time.Now()
			es.mu.Unlock()
			select {
			case in <- inMsg{msg.author, msg.seq, pkt.Body}:
			case <-ctx.Done():
				return !first, ctx.Err()
			}
			continue
		}
		var n map[string]int64
		r.log.Debug("replicate: ebt note received", "peer", p.id.String(), "note", string(pkt.Body))
		if err := json.Unmarshal(pkt.Body, &n); err != nil {
			return !first, fmt.Errorf("replicate: ebt: neither a note nor a message: %.80q", pkt.Body)
		}
		if first {
			r.mu.Lock()
			r.stats.EBTSessions++
			r.mu.Unlock()
		}
		if first && !responder {
			if err := es.sendFirstNote(); err != nil {
				return true, err
			}
		}
		first = false
		es.receiveNote(actx, n)
	}
}

// inMsg is a received message waiting to be appended.
type inMsg struct {
	author refs.Feed
	seq    int64
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
// arrived. After a message out of order, the feed's messages are dropped
// until it is asked again (reask, after reaskBackoff, doubled at each
// re-ask, at most maxReasks times per session), and then until the peer
// starts over with the next message; after another invalid message, or
// too many out of order, the rest are dropped (the chain is broken
// there). A feed that brings duplicates from a peer not chosen for it is
// told to stop.
func (es *ebtSession) appendFeed(f refs.Feed, ch <-chan inMsg) {
	var (
		broken  bool
		reasks  int
		reaskAt <-chan time.Time // set while waiting to ask again
		resync  bool             // asked again: waiting for the next message
	)
	batch := make([]inMsg, 0, batchSize)
	raws := make([][]byte, 0, batchSize)
	for {
		var m inMsg
		select {
		case msg, ok := <-ch:
			if !ok {
				return
			}
			m = msg
		case <-reaskAt:
			reaskAt = nil
			resync = es.reask(f)
			continue
		}
		if broken || reaskAt != nil {
			continue
		}
		if es.r.withheld(f, es.p.id) {
			continue // ssb-ebt drops a feed it does not share with the peer
		}
		if resync {
			// Messages sent before the peer had the re-ask are
			// dropped: what it sends since starts at the next one.
			if m.seq != es.r.latest(f)+1 {
				continue
			}
			resync = false
		}
		batch = gather(append(batch[:0], m), ch)
		raws = raws[:0]
		for _, b := range batch {
			raws = append(raws, b.raw)
		}
		dups, err := es.r.append(es.p, f, raws)
		if dups > 0 {
			es.duplicates(f)
		}
		switch {
		case err == nil:
		case errors.Is(err, message.ErrSequence) && reasks < maxReasks:
			reaskAt = time.After(reaskBackoff << reasks)
			reasks++
		default:
			if errors.Is(err, message.ErrSequence) {
				es.r.log.Info("replicate: a peer keeps sending messages out of order; not asking it again this session",
					"peer", es.p.id.String(), "feed", f.String())
			}
			broken = true
		}
	}
}

// reask asks the peer again for f, from the latest message stored, if
// this session is the one f is received from, and reports whether it did.
func (es *ebtSession) reask(f refs.Feed) bool {
	r := es.r
	ours := r.latest(f)
	r.mu.Lock()
	es.mu.Lock()
	rx := es.rx[f] && r.rxFrom[f] == es
	es.mu.Unlock()
	r.mu.Unlock()
	if !rx {
		return false
	}
	r.log.Debug("replicate: asking again after a message out of order", "peer", es.p.id.String(), "feed", f.String(), "from", ours+1)
	return es.sendNote(map[refs.Feed]int64{f: note(ours, true)}, false) == nil
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

// claimLocked reports whether es should receive f: whether no other
// session is asked for it (then es is, from now on). r.mu is held.
func (r *Replicator) claimLocked(f refs.Feed, es *ebtSession) bool {
	if cur := r.rxFrom[f]; cur != nil && cur != es {
		return false
	}
	r.rxFrom[f] = es
	return true
}

// sendFirstNote sends the session's first note: every wanted feed but
// those the peer's stored clock shows at the same sequence as here. It is
// sent even when empty: the peer waits for it.
func (es *ebtSession) sendFirstNote() error {
	r := es.r
	n := make(map[refs.Feed]int64)
	skipped := 0
	for _, f := range r.Wanted() {
		if r.withheld(f, es.p.id) {
			continue // not shared with this peer: ssb-ebt leaves it out
		}
		seq := r.latest(f)
		r.mu.Lock()
		es.mu.Lock()
		if theirs, ok := es.theirs[f]; ok && theirs == seq {
			skipped++
			es.skipped[f] = true
		} else if _, noted := es.rx[f]; !noted {
			rx := r.claimLocked(f, es)
			es.rx[f] = rx
			n[f] = note(seq, rx)
		}
		es.mu.Unlock()
		r.mu.Unlock()
	}
	r.mu.Lock()
	r.stats.SkippedFeeds += skipped
	r.mu.Unlock()
	return es.sendNote(n, true)
}

// noteWanted notes feeds that became wanted during the session.
func (es *ebtSession) noteWanted() error {
	r := es.r
	n := make(map[refs.Feed]int64)
	for _, f := range r.Wanted() {
		es.mu.Lock()
		_, noted := es.rx[f]
		noted = noted || es.skipped[f]
		es.mu.Unlock()
		if noted || r.withheld(f, es.p.id) {
			continue
		}
		seq := r.latest(f)
		r.mu.Lock()
		es.mu.Lock()
		if theirs, ok := es.theirs[f]; ok && theirs == seq && !es.skipped[f] && !es.toldNotLocked(f) {
			// Request skipping applies to feeds that become wanted
			// later too (after a restart, the follow graph loads while
			// the first note goes out), but not to a feed the peer was
			// told -1 this session (we did not want it yet, or gave it
			// up): the peer then takes us for not replicating it, and
			// tells nothing of it until a note says otherwise.
			es.skipped[f] = true
			r.stats.SkippedFeeds++
		} else if _, noted := es.rx[f]; !noted && !es.skipped[f] {
			rx := r.claimLocked(f, es)
			es.rx[f] = rx
			n[f] = note(seq, rx)
		}
		es.mu.Unlock()
		r.mu.Unlock()
	}
	return es.sendNote(n, false)
}

// toldNotLocked reports whether the last note of f sent this session was
// -1 (we do not replicate it). es.mu is held.
func (es *ebtSession) toldNotLocked(f refs.Feed) bool {
	v, ok := es.told[f]
	return ok && v == -1
}

// sendNote sends a note and counts it; an empty note only if always.
func (es *ebtSession) sendNote(n map[refs.Feed]int64, always bool) error {
	if len(n) == 0 && !always {
		return nil
	}
	m := make(map[string]int64, len(n))
	es.mu.Lock()
	for f, v := range n {
		m[f.String()] = v
		es.told[f] = v
	}
	es.mu.Unlock()
	body, err := json.Marshal(m)
	if err != nil {
		return err
	}
	es.r.log.Debug("replicate: ebt note sent", "peer", es.p.id.String(), "note", string(body))
	es.r.mu.Lock()
	es.r.stats.Notes++
	es.r.stats.NoteFeeds += len(n)
	es.r.stats.NoteBytes += int64(len(body))
	es.r.mu.Unlock()
	return es.s.SendRaw(muxrpc.JSON, body)
}

// receiveNote starts or stops sending the feeds the peer asks for, and
// answers: with our sequence of feeds it noted that this session has not
// noted yet, and by moving a feed here when the peer has more than the
// peer it is asked from.
func (es *ebtSession) receiveNote(ctx context.Context, n map[string]int64) {
	r := es.r
	reply := make(map[refs.Feed]int64)
	others := make(map[*ebtSession]map[refs.Feed]int64)
	for id, v := range n {
		f, err := refs.ParseFeed(id)
		if err != nil || v < -1 {
			continue
		}
		if v == -1 {
			es.mu.Lock()
			es.theirs[f] = -1
			delete(es.asked, f)
			if stop := es.sending[f]; stop != nil {
				stop()
				delete(es.sending, f)
			}
			es.mu.Unlock()
			r.release(es, f)
			continue
		}
		seq, peerRx := v>>1, v&1 == 0
		wanted := r.isWanted(f)
		withheld := r.withheld(f, es.p.id)
		ours := r.latest(f)
		r.mu.Lock()
		es.mu.Lock()
		es.theirs[f] = seq // a note is what the peer has now
		es.asked[f] = peerRx
		if withheld {
			// Not shared with this peer (ssb-ebt's isShared): neither
			// sent nor received; said once.
			if _, noted := es.rx[f]; !noted {
				es.rx[f] = false
				reply[f] = -1
			}
			es.mu.Unlock()
			r.mu.Unlock()
			continue
		}
		if peerRx && es.sending[f] == nil {
			sctx, stop := context.WithCancel(ctx)
			es.sending[f] = stop
			from := seq + 1
			es.wg.Go(func() { es.send(sctx, f, from) })
		} else if !peerRx && es.sending[f] != nil {
			es.sending[f]()
			delete(es.sending, f)
		}
		if wanted {
			rx, noted := es.rx[f]
			switch {
			case !noted:
				rx = seq > ours && r.claimLocked(f, es)
				es.rx[f] = rx
				reply[f] = note(ours, rx)
			case !rx && seq > ours:
				cur := r.rxFrom[f]
				if cur == nil || cur == es || cur.theirsOf(f) < seq {
					es.rx[f] = true
					r.rxFrom[f] = es
					reply[f] = note(ours, true)
					if cur != nil && cur != es {
						cur.rxOff(f, ours, others)
					}
				}
			case !peerRx && ours > seq:
				// Lazy push: tell the peer we have more, so it can ask.
				reply[f] = note(ours, rx)
			}
		} else if _, noted := es.rx[f]; !noted {
			// Not replicated here: say what we hold of it (we serve it
			// all the same), or -1 if nothing. It is not marked noted,
			// so that a note asks for it if it becomes wanted.
			reply[f] = -1
			if ours > 0 {
				reply[f] = note(ours, false)
			}
		}
		es.mu.Unlock()
		r.mu.Unlock()
	}
	es.sendNote(reply, false)
	for o, n := range others {
		o.sendNote(n, false)
	}
}

// theirsOf returns the session peer's sequence of f.
func (es *ebtSession) theirsOf(f refs.Feed) int64 {
	es.mu.Lock()
	defer es.mu.Unlock()
	return es.theirs[f]
}

// rxOff records that es no longer receives f, adding the note that says so
// to notes. r.mu is held, es.mu is not.
func (es *ebtSession) rxOff(f refs.Feed, ours int64, notes map[*ebtSession]map[refs.Feed]int64) {
	es.mu.Lock()
	es.rx[f] = false
	es.mu.Unlock()
	if notes[es] == nil {
		notes[es] = make(map[refs.Feed]int64)
	}
	notes[es][f] = note(ours, false)
}

// duplicates handles messages of f the peer sent that were stored already:
// if another session is asked for f, this peer is told to stop.
func (es *ebtSession) duplicates(f refs.Feed) {
	r := es.r
	ours := r.latest(f)
	r.mu.Lock()
	es.mu.Lock()
	stop := es.rx[f] && r.rxFrom[f] != es
	if stop {
		es.rx[f] = false
	}
	es.mu.Unlock()
	r.mu.Unlock()
	if stop {
		es.sendNote(map[refs.Feed]int64{f: note(ours, false)}, false)
	}
}

// release stops asking es for f and asks another session that has more.
func (r *Replicator) release(es *ebtSession, f refs.Feed) {
	r.mu.Lock()
	if r.rxFrom[f] != es {
		r.mu.Unlock()
		return
	}
	delete(r.rxFrom, f)
	r.mu.Unlock()
	r.reassign(f, es)
}

// reassign asks f from a session, other than except, whose peer has more
// than is stored here.
func (r *Replicator) reassign(f refs.Feed, except *ebtSession) {
	ours := r.latest(f)
	r.mu.Lock()
	if r.rxFrom[f] != nil || !r.wanted[f] {
		r.mu.Unlock()
		return
	}
	var best *ebtSession
	var bestSeq int64
	for o := range r.ebts {
		if o == except {
			continue
		}
		if seq := o.theirsOf(f); seq > ours && seq > bestSeq {
			best, bestSeq = o, seq
		}
	}
	if best != nil {
		r.rxFrom[f] = best
		best.mu.Lock()
		best.rx[f] = true
		best.mu.Unlock()
	}
	r.mu.Unlock()
	if best != nil {
		best.sendNote(map[refs.Feed]int64{f: note(ours, true)}, false)
	}
}

// endSession forgets a session: its feeds are asked from other peers, and
// the peer's clock is stored for the next session's request skipping. A
// feed last noted -1 is left out of the stored clock: the peer keeps our
// -1 (epidemic-broadcast-trees stores it with our clock), does not ask for
// the feed and tells nothing of it, so the next session must note it if it
// is wanted then, not skip it.
func (r *Replicator) endSession(es *ebtSession) {
	es.mu.Lock()
	clock := maps.Clone(es.theirs)
	for f := range clock {
		if es.toldNotLocked(f) {
			delete(clock, f)
		}
	}
	es.mu.Unlock()
	if err := r.saveClock(es.p.id, clock); err != nil {
		r.log.Warn("replicate: storing a peer's clock", "peer", es.p.id.String(), "err", err)
	}
	r.mu.Lock()
	delete(r.ebts, es)
	var mine []refs.Feed
	for f, o := range r.rxFrom {
		if o == es {
			mine = append(mine, f)
			delete(r.rxFrom, f)
		}
	}
	r.mu.Unlock()
	for _, f := range mine {
		r.reassign(f, es)
	}
}

// send streams feed f to the peer from sequence from, live, until ctx
// ends, skipping what the peer already has (what it sent us, or said it
// has).
func (es *ebtSession) send(ctx context.Context, f refs.Feed, from int64) {
	keys, values := false, true
	it, err := es.r.store.History(ctx, store.HistoryQuery{ID: f, Seq: from, Live: true, Keys: &keys, Values: &values})
	if err != nil {
		return
	}
	defer it.Close()
	for {
		item, err := it.Next(ctx)
		if err != nil {
			return
		}
		var m struct{ Sequence int64 }
		json.Unmarshal(item.Value, &m)
		es.mu.Lock()
		has := m.Sequence <= es.theirs[f]
		if !has {
			es.theirs[f] = m.Sequence
		}
		es.mu.Unlock()
		if has {
			continue
		}
		if es.s.SendRaw(muxrpc.JSON, item.Value) != nil {
			return
		}
	}
}

// announceEvery is how often a session tells the peer that feeds advanced.
const announceEvery = 100 * time.Millisecond

// announce tells the peer, in notes, when wanted feeds advance here beyond
// what it has, so that it can ask for them (lazy push); feeds we are sending it
// already are left out: it gets their messages. It also moves feeds away
// from a peer that stalls.
func (es *ebtSession) announce(ctx context.Context) {
	old, keys := false, false
	it, err := es.r.store.Log(ctx, store.LogQuery{Live: true, Old: &old, Keys: &keys})
	if err != nil {
		return
	}
	defer it.Close()
	pending := make(map[refs.Feed]int64)
	lastCheck := time.Now()
	for ctx.Err() == nil {
		nctx, cancel := context.WithTimeout(ctx, announceEvery)
		item, err := it.Next(nctx)
		cancel()
		if err == nil {
			if m, ok := asMessage(item.Value); ok {
				pending[m.author] = max(pending[m.author], m.seq)
			}
			continue
		}
		if !errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return
		}
		es.r.mu.Lock()
		gen := es.r.wantGen
		es.r.mu.Unlock()
		if gen != es.wantGen {
			es.wantGen = gen
			if es.noteWanted() != nil {
				return
			}
		}
		if time.Since(lastCheck) >= es.r.stall()/3 {
			lastCheck = time.Now()
			es.unstall()
		}
		if len(pending) == 0 {
			continue
		}
		n := make(map[refs.Feed]int64)
		for f, seq := range pending {
			if !es.r.isWanted(f) || es.r.withheld(f, es.p.id) {
				continue
			}
			es.mu.Lock()
			// A peer that said -1 (it does not replicate f) is told too:
			// it may follow f later, and then asks if it knows there is
			// more here.
			theirs, known := es.theirs[f]
			if es.sending[f] == nil && (!known || seq > theirs) {
				rx, noted := es.rx[f]
				if !noted {
					es.rx[f] = false
				}
				n[f] = note(seq, rx)
			}
			es.mu.Unlock()
		}
		clear(pending)
		if es.sendNote(n, false) != nil {
			return
		}
	}
}

// unstall moves the feeds this session is asked for, whose peer promised
// more and has sent nothing for the stall time, to sessions that have more.
func (es *ebtSession) unstall() {
	r := es.r
	es.mu.Lock()
	stalled := time.Since(es.lastMsg) > r.stall()
	es.mu.Unlock()
	if !stalled {
		return
	}
	r.mu.Lock()
	var mine []refs.Feed
	for f, o := range r.rxFrom {
		if o == es {
			mine = append(mine, f)
		}
	}
	r.mu.Unlock()
	for _, f := range mine {
		ours := r.latest(f)
		if es.theirsOf(f) <= ours {
			continue // nothing promised
		}
		r.mu.Lock()
		better := false
		for o := range r.ebts {
			if o != es && o.theirsOf(f) > ours {
				better = true
				break
			}
		}
		r.mu.Unlock()
		if !better {
			continue
		}
		es.mu.Lock()
		es.rx[f] = false
		es.mu.Unlock()
		r.log.Debug("replicate: peer stalls; asking another", "peer", es.p.id.String(), "feed", f.String())
		es.sendNote(map[refs.Feed]int64{f: note(ours, false)}, false)
		r.release(es, f)
	}
}

// giveUp forgets f, no longer wanted: a peer that was noted f is noted -1,
// as ssb-ebt does on an unfollow. What the peer asked of f is still sent.
func (es *ebtSession) giveUp(f refs.Feed) {
	es.mu.Lock()
	_, noted := es.rx[f]
	delete(es.rx, f)
	delete(es.skipped, f)
	es.mu.Unlock()
	if noted {
		es.sendNote(map[refs.Feed]int64{f: -1}, false)
	}
}

// withhold stops exchanging f with the session's peer (a block): sending
// ends, and if f was noted it is noted -1 and asked from another peer.
func (es *ebtSession) withhold(f refs.Feed) {
	es.mu.Lock()
	wasSending := es.sending[f] != nil
	if wasSending {
		es.sending[f]()
		delete(es.sending, f)
	}
	es.rx[f] = false
	delete(es.skipped, f)
	told, known := es.told[f]
	_, theirs := es.theirs[f]
	es.mu.Unlock()
	if !(known && told == -1) && (known || theirs || wasSending) {
		es.sendNote(map[refs.Feed]int64{f: -1}, false)
	}
	es.r.release(es, f)
}

// share undoes withhold: f is noted again on the next tick if wanted, and
// sent if the peer's last note asked for it.
func (es *ebtSession) share(f refs.Feed) {
	es.mu.Lock()
	defer es.mu.Unlock()
	delete(es.rx, f)
	if es.asked[f] && es.sending[f] == nil && es.ctx.Err() == nil {
		sctx, stop := context.WithCancel(es.ctx)
		es.sending[f] = stop
		from := es.theirs[f] + 1
		es.wg.Go(func() { es.send(sctx, f, from) })
	}
}
