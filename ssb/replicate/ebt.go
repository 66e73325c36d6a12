package replicate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

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

// note encodes a sequence and whether to receive.
func note(seq int64, rx bool) int64 {
	v := seq << 1
	if !rx {
		v |= 1
	}
	return v
}

// ebtSession is one EBT stream with a peer.
type ebtSession struct {
	r *Replicator
	p *peer
	s *muxrpc.Stream

	mu      sync.Mutex
	theirs  map[refs.Feed]int64 // the peer's sequence of each feed, as it said or sent
	sending map[refs.Feed]bool
	noted   map[refs.Feed]bool // feeds our notes asked for
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
	r.mu.Lock()
	p := r.byConn[e]
	r.mu.Unlock()
	if r.NoEBT {
		return errors.New("ebt.replicate is turned off here")
	}
	if p == nil {
		return errors.New("replicate: ebt.replicate on a connection that does not replicate")
	}
	p.ebtOnce.Do(func() { close(p.ebtCalled) })
	_, err := r.ebt(ctx, p, req.Stream(), true)
	return err
}

// ebt runs a session; the responder sends its note first. gotNote reports
// whether the peer sent a note: whether it speaks EBT.
func (r *Replicator) ebt(ctx context.Context, p *peer, s *muxrpc.Stream, responder bool) (gotNote bool, err error) {
	es := &ebtSession{r: r, p: p, s: s, theirs: make(map[refs.Feed]int64), sending: make(map[refs.Feed]bool), noted: make(map[refs.Feed]bool)}
	r.mu.Lock()
	r.ebts[es] = struct{}{}
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		delete(r.ebts, es)
		r.mu.Unlock()
		s.Close()
		es.wg.Wait()
	}()
	if responder {
		if err := es.sendNote(); err != nil {
			return false, err
		}
	}
	actx, stop := context.WithCancel(ctx)
	defer stop()
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
			es.mu.Unlock()
			select {
			case in <- inMsg{msg.author, pkt.Body}:
			case <-ctx.Done():
				return !first, ctx.Err()
			}
			continue
		}
		var n map[string]int64
		if err := json.Unmarshal(pkt.Body, &n); err != nil {
			return !first, fmt.Errorf("replicate: ebt: neither a note nor a message: %.80q", pkt.Body)
		}
		if first {
			r.mu.Lock()
			r.stats.EBTSessions++
			r.mu.Unlock()
		}
		if first && !responder {
			if err := es.sendNote(); err != nil {
				return true, err
			}
		}
		first = false
		es.receiveNote(ctx, n)
	}
}

// inMsg is a received message waiting to be appended.
type inMsg struct {
	author refs.Feed
	raw    []byte
}

// appendLoop appends received messages in batches of one author; after an
// invalid message, the rest of that author's messages in hand are dropped
// (the chain is broken there).
func (es *ebtSession) appendLoop(in <-chan inMsg) {
	var batch [][]byte
	var feed refs.Feed
	broken := make(map[refs.Feed]bool)
	flush := func() {
		if len(batch) > 0 && es.r.append(es.p, feed, batch) != nil {
			broken[feed] = true
		}
		batch = batch[:0]
	}
	for m := range in {
		if broken[m.author] {
			continue
		}
		if len(batch) > 0 && (m.author != feed || len(batch) >= batchSize) {
			flush()
		}
		feed = m.author
		batch = append(batch, m.raw)
		if len(in) == 0 {
			flush()
		}
	}
	flush()
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

// sendNote sends a note for every wanted feed not noted yet on this
// session: our sequence, asking to receive.
func (es *ebtSession) sendNote() error {
	n := make(map[string]int64)
	for _, f := range es.r.Wanted() {
		es.mu.Lock()
		done := es.noted[f]
		es.noted[f] = true
		es.mu.Unlock()
		if done {
			continue
		}
		seq := int64(0)
		if h, err := es.r.store.Latest(f); err == nil {
			seq = h.State.Sequence
		}
		n[f.String()] = note(seq, true)
	}
	if len(n) == 0 {
		return nil
	}
	return es.s.Send(n)
}

// receiveNote starts sending the feeds the peer asks for.
func (es *ebtSession) receiveNote(ctx context.Context, n map[string]int64) {
	for id, v := range n {
		f, err := refs.ParseFeed(id)
		if err != nil || v < 0 {
			continue
		}
		seq, rx := v>>1, v&1 == 0
		es.mu.Lock()
		if seq > es.theirs[f] {
			es.theirs[f] = seq
		}
		start := rx && !es.sending[f] && !es.r.IsBlocked(es.p.id)
		if start {
			es.sending[f] = true
		}
		es.mu.Unlock()
		if start {
			es.wg.Go(func() { es.send(ctx, f, seq+1) })
		}
	}
}

// send streams feed f to the peer from sequence from, live, skipping what
// the peer already has (what it sent us, or said it has).
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

// announce tells the peer, in notes, when feeds it replicates with us
// advance here, so that a peer that has less asks us for the rest. Feeds
// we are sending it already are left out: it gets their messages.
func (es *ebtSession) announce(ctx context.Context) {
	old, keys := false, false
	it, err := es.r.store.Log(ctx, store.LogQuery{Live: true, Old: &old, Keys: &keys})
	if err != nil {
		return
	}
	defer it.Close()
	pending := make(map[refs.Feed]int64)
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
		if !errors.Is(err, context.DeadlineExceeded) || len(pending) == 0 {
			if ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
				return
			}
			continue
		}
		n := make(map[string]int64)
		es.mu.Lock()
		for f, seq := range pending {
			if es.noted[f] && !es.sending[f] && seq > es.theirs[f] {
				n[f.String()] = note(seq, true)
			}
		}
		es.mu.Unlock()
		clear(pending)
		if len(n) > 0 && es.s.Send(n) != nil {
			return
		}
	}
}
