package gossip

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"

	"github.com/scuttlego/scuttle/ssb/keys"
)

// A LinkID names one link (one peer stream) of a Node.
type LinkID uint64

// Stats counts what a node did. Every dropped line is counted once.
type Stats struct {
	Published  uint64 // own messages published
	Delivered  uint64 // messages of others delivered to the application
	Duplicates uint64 // envelopes of a message already seen
	Own        uint64 // own messages that came back
	// Replayed counts envelopes of a seen message under another seq, of a
	// signed seq already seen with other content, or whose seq is not
	// the signed one.
	Replayed uint64

	// Lines dropped as invalid, by kind. Each counts toward closing the
	// link (Config.GarbageLimit).
	BadJSON      uint64
	BadShape     uint64
	BadCurve     uint64
	BadSignature uint64
	TooLarge     uint64

	DigestsReceived uint64
	DigestsSent     uint64
	Sent            uint64 // envelope lines written to links
	Resent          uint64 // envelopes sent again after a digest showed them lost
	NotQueued       uint64 // envelopes not queued: a link's queue was full
	Expired         uint64 // retained messages dropped by the retention bounds
	GarbageClosed   uint64 // links closed after GarbageLimit invalid lines in a row

	Links    int // open links
	Retained int // retained messages
	Seen     int // remembered message IDs
}

// Invalid returns the number of lines dropped as invalid.
func (s Stats) Invalid() uint64 {
	return s.BadJSON + s.BadShape + s.BadCurve + s.BadSignature + s.TooLarge
}

// A Node is the gossip protocol as a state machine, without goroutines,
// locks or I/O: lines go in with Receive, time passes with Round, lines
// come out with Output. It is not safe for concurrent use. Gossip wraps it
// with streams and a timer; use a Node directly to run many peers in one
// event loop, as package gossipsim does.
type Node struct {
	cfg   Config
	kp    *keys.KeyPair
	self  *publisher
	next  int64 // seq of the next own message
	round uint64

	links  []*link // in the order they were added
	byLink map[LinkID]*link
	lastID LinkID

	pubs       map[string]*publisher
	sorted     []*publisher // pubs by key, nil when it must be rebuilt
	haveCache  []byte       // the have member of this round's digests
	haveRound  uint64
	haveStale  bool
	store      retained
	seen       seenSet
	stats      Stats
	lineBuffer []byte
}

// link is the state of one peer stream.
type link struct {
	id     LinkID
	marks  map[*entry]mark // what the peer has, or was sent, of the retained messages
	queue  []*entry        // to send at the next round
	out    []string        // lines for the transport
	outLen int

	rounds      int  // rounds since the link was added
	goPeer      bool // the peer sent a digest
	backlogDone bool
	digestsOut  uint64 // digests sent; the n of the last one
	peerN       uint64 // highest n received from the peer, acknowledged in ours
	lastAsk     uint64 // round of the last request
	unconfirmed int    // marks in state sent
	invalidRun  int

	sentLines uint64 // envelope lines written
	recvLines uint64 // lines received, digests aside
	lostAck   uint64 // lines of ours the peer reported lost, as far as we know
	owe       bool   // the peer asked for an answer
	oweLost   uint64 // the peer's lines we never got, as of its last request
	oweHave   bool   // the answer must carry have: the peer lost lines, or asked
	resync    bool   // messages were not queued for lack of room: ask for have
}

type markState uint8

const (
	queued markState = iota + 1 // in the link's queue
	sent                        // written; not yet confirmed by a digest
	has                         // the peer has it: it sent it, or its digest says so
)

// maxResends is how often a message is sent again on one link before the
// node stops believing the peer's digest about it (see onDigest).
const maxResends = 2

type mark struct {
	state   markState
	resends uint8
	epoch   uint64 // for sent: digestsOut when it was written
}

func (l *link) setMark(e *entry, m mark) {
	if old, ok := l.marks[e]; ok && old.state == sent {
		l.unconfirmed--
	}
	if m.state == sent {
		l.unconfirmed++
	}
	l.marks[e] = m
}

// NewNode returns a node with cfg (see Config for the defaults).
func NewNode(cfg Config) (*Node, error) {
	cfg = cfg.withDefaults()
	kp := cfg.Keys
	if kp == nil {
		var err error
		if kp, err = keys.Generate(nil); err != nil {
			return nil, fmt.Errorf("gossip: %w", err)
		}
	}
	n := &Node{
		cfg:    cfg,
		kp:     kp,
		byLink: make(map[LinkID]*link),
		pubs:   make(map[string]*publisher),
		store:  retained{byRaw: make(map[string]*entry), byID: make(map[ID]*entry)},
		seen:   seenSet{max: cfg.MaxSeen, set: make(map[ID]struct{})},
	}
	n.self = &publisher{key: base64.StdEncoding.EncodeToString(kp.Public) + curveSuffix, last: cfg.Now()}
	n.next = min(max(cfg.Now().UnixMicro(), 0), maxSeq)
	if n.next > 0 {
		n.self.seen = spans{{0, n.next - 1}}
	}
	n.pubs[n.self.key] = n.self
	n.haveStale = true
	return n, nil
}

// Public returns the node's public key as secure-gossip writes it,
// base64 + ".ed25519".
func (n *Node) Public() string { return n.self.key }

// Keys returns the node's keypair.
func (n *Node) Keys() *keys.KeyPair { return n.kp }

// Stats returns the node's counters.
func (n *Node) Stats() Stats {
	s := n.stats
	s.Links = len(n.links)
	s.Retained = n.store.len()
	s.Seen = len(n.seen.set)
	return s
}

// AddLink adds a link to a new peer and queues its first line, a digest of
// what the node has seen.
func (n *Node) AddLink() LinkID {
	n.lastID++
	l := &link{id: n.lastID, marks: make(map[*entry]mark), lastAsk: n.round}
	n.links = append(n.links, l)
	n.byLink[l.id] = l
	n.sendDigest(l, false, false, true)
	return l.id
}

// RemoveLink forgets a link. Lines not yet taken with Output are lost.
func (n *Node) RemoveLink(id LinkID) {
	l := n.byLink[id]
	if l == nil {
		return
	}
	delete(n.byLink, id)
	n.links = slices.DeleteFunc(n.links, func(x *link) bool { return x == l })
}

// HasLink reports whether the link is open: added, and neither removed nor
// closed for garbage.
func (n *Node) HasLink(id LinkID) bool { return n.byLink[id] != nil }

// Output takes the lines waiting for a link's transport, each to be written
// followed by a newline.
func (n *Node) Output(id LinkID) []string {
	l := n.byLink[id]
	if l == nil || len(l.out) == 0 {
		return nil
	}
	out := l.out
	l.out, l.outLen = nil, 0
	return out
}

// Drain calls fn with the lines waiting for each link that has some, in
// the order the links were added, and takes them: Output for every link at
// once, for event loops with many links.
func (n *Node) Drain(fn func(id LinkID, lines []string)) {
	for _, l := range n.links {
		if len(l.out) > 0 {
			out := l.out
			l.out, l.outLen = nil, 0
			fn(l.id, out)
		}
	}
}

// Publish signs payload, a JSON object (a Go value encoding/json encodes as
// one, JSON text, or a message.Value), as the node's next message and
// queues it for every link's next round. The message is retained, so links
// added later get it too.
func (n *Node) Publish(payload any) (Message, error) {
	if n.next > maxSeq {
		return Message{}, fmt.Errorf("gossip: seq exhausted")
	}
	line, env, err := seal(n.kp, payload, n.next)
	if err != nil {
		return Message{}, err
	}
	if len(line) > n.cfg.MaxMessage {
		return Message{}, fmt.Errorf("%w: %d-byte envelope, the limit is %d", ErrTooLarge, len(line), n.cfg.MaxMessage)
	}
	n.next++
	n.stats.Published++
	n.self.seen = n.self.seen.add(env.seq, n.cfg.MaxRanges)
	n.haveStale = true
	n.seen.add(env.id)
	e := n.retain(env, line, n.self)
	for _, l := range n.links {
		n.enqueue(l, e)
	}
	return *env.toMessage(line), nil
}

// Receive handles one line from a link, without its newline. It returns
// the message if the line delivers one. A dropped line returns an error:
// wrapping ErrReplay for a replay, and for an invalid line wrapping its
// kind (ErrSyntax, ErrShape, ErrCurve, ErrSignature, ErrTooLarge), or
// ErrGarbage as well once the link has sent Config.GarbageLimit invalid
// lines in a row, in which case the link is closed. Duplicates, own
// messages and digests return neither.
func (n *Node) Receive(id LinkID, line []byte) (*Message, error) {
	l := n.byLink[id]
	if l == nil {
		return nil, ErrClosed
	}
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) == 0 || n.known(l, line) {
		return nil, nil
	}
	env, d, err := decodeLine(line, &n.cfg)
	if err != nil {
		return nil, n.invalid(l, err)
	}
	if env == nil {
		n.onDigest(l, d)
		return nil, nil
	}
	if ok, err := n.check(l, env); !ok {
		return nil, err
	}
	return n.accept(l, env, line, env.verify())
}

// known counts a line and handles it if it is identical to a retained
// message's: the common duplicate, since nodes forward the bytes they
// received.
func (n *Node) known(l *link, line []byte) bool {
	if !bytes.HasPrefix(line, []byte(digestPrefix)) {
		l.recvLines++
	}
	e := n.store.byRaw[string(line)]
	if e == nil {
		return false
	}
	l.invalidRun = 0
	if e.pub == n.self {
		n.stats.Own++
	} else {
		n.stats.Duplicates++
	}
	l.setMark(e, mark{state: has})
	return true
}

// invalid counts a dropped line and closes the link after too many in a
// row.
func (n *Node) invalid(l *link, err error) error {
	switch {
	case errors.Is(err, ErrReplay):
		n.stats.Replayed++
		l.invalidRun = 0 // JavaScript peers relay these: not the peer's fault
		return err
	case errors.Is(err, ErrSyntax):
		n.stats.BadJSON++
	case errors.Is(err, ErrCurve):
		n.stats.BadCurve++
	case errors.Is(err, ErrSignature):
		n.stats.BadSignature++
	case errors.Is(err, ErrTooLarge):
		n.stats.TooLarge++
	default:
		n.stats.BadShape++
	}
	l.invalidRun++
	if l.invalidRun < n.cfg.GarbageLimit {
		return err
	}
	n.stats.GarbageClosed++
	n.RemoveLink(l.id)
	return fmt.Errorf("%w: %d in a row, the last: %w", ErrGarbage, l.invalidRun, err)
}

// check decides whether an envelope is new and needs its signature
// verified. It reports false, with an error for a replay, when the
// envelope is dropped.
func (n *Node) check(l *link, env *envelope) (bool, error) {
	l.invalidRun = 0
	if env.public == n.self.key {
		n.stats.Own++
		if e := n.store.byID[env.id]; e != nil {
			l.setMark(e, mark{state: has})
		}
		return false, nil
	}
	if e := n.store.byID[env.id]; e != nil {
		if e.seq != env.seq {
			n.stats.Replayed++
		} else {
			n.stats.Duplicates++
		}
		l.setMark(e, mark{state: has})
		return false, nil
	}
	if n.seen.has(env.id) {
		n.stats.Duplicates++
		return false, nil
	}
	if env.signed {
		if p := n.pubs[env.public]; p != nil && p.seen.contains(env.seq) {
			n.stats.Replayed++
			return false, fmt.Errorf("%w: seq %d of %s was seen with other content", ErrReplay, env.seq, env.public)
		}
	}
	return true, nil
}

// accept takes a new envelope whose signature check gave ok: it is
// delivered, retained and queued for every other link.
func (n *Node) accept(l *link, env *envelope, line []byte, ok bool) (*Message, error) {
	if !ok {
		return nil, n.invalid(l, fmt.Errorf("%w: does not verify", ErrSignature))
	}
	if n.seen.has(env.id) { // another stream was first (Gossip verifies unlocked)
		n.stats.Duplicates++
		if e := n.store.byID[env.id]; e != nil {
			l.setMark(e, mark{state: has})
		}
		return nil, nil
	}
	p := n.publisher(env.public)
	p.seen = p.seen.add(env.seq, n.cfg.MaxRanges)
	p.last = n.cfg.Now()
	n.haveStale = true
	n.seen.add(env.id)
	e := n.retain(env, line, p)
	l.setMark(e, mark{state: has})
	for _, o := range n.links {
		n.enqueue(o, e)
	}
	n.stats.Delivered++
	return env.toMessage(line), nil
}

// retain stores a new message, dropping the oldest past the count and
// size bounds.
func (n *Node) retain(env *envelope, line []byte, p *publisher) *entry {
	e := &entry{id: env.id, raw: string(line), pub: p, seq: env.seq, at: n.cfg.Now()}
	n.store.add(e)
	p.retained++
	for n.store.len() > n.cfg.MaxRetained || n.store.bytes > n.cfg.MaxRetainedBytes {
		n.evict()
	}
	return e
}

// evict drops the oldest retained message.
func (n *Node) evict() {
	e := n.store.popOldest()
	e.pub.retained--
	for _, l := range n.links {
		if m, ok := l.marks[e]; ok {
			if m.state == sent {
				l.unconfirmed--
			}
			delete(l.marks, e)
		}
	}
	n.stats.Expired++
}

// publisher returns the state of a key, creating it, and forgetting the
// least recently heard publisher without retained messages when there are
// too many.
func (n *Node) publisher(key string) *publisher {
	if p := n.pubs[key]; p != nil {
		return p
	}
	if len(n.pubs) > n.cfg.MaxPublishers {
		var victim *publisher
		for _, p := range n.pubs {
			if p == n.self || p.retained > 0 {
				continue
			}
			if victim == nil || p.last.Before(victim.last) || p.last.Equal(victim.last) && p.key < victim.key {
				victim = p
			}
		}
		if victim != nil {
			delete(n.pubs, victim.key)
		}
	}
	p := &publisher{key: key}
	n.pubs[key] = p
	n.sorted = nil
	return p
}

// enqueue queues e for l's next round unless l has it or has it queued or
// sent.
func (n *Node) enqueue(l *link, e *entry) {
	if _, ok := l.marks[e]; ok {
		return
	}
	if len(l.queue) >= n.cfg.MaxQueue {
		n.stats.NotQueued++
		l.resync = true
		return
	}
	l.queue = append(l.queue, e)
	l.setMark(e, mark{state: queued})
}

// onDigest handles a peer's digest, which makes it a Go peer. A request
// is answered at the next round; its line count tells whether lines of
// the peer were lost, in which case the answer carries have. An answer
// without have confirms every message written before the request it
// answers; a have queues what the peer lacks.
func (n *Node) onDigest(l *link, d *digest) {
	n.stats.DigestsReceived++
	l.invalidRun = 0
	if d == nil {
		return // a line of a later extension
	}
	l.goPeer = true
	l.peerN = max(l.peerN, d.n)
	if d.req {
		lost := d.sent - min(d.sent, l.recvLines)
		l.owe, l.oweLost = true, lost
		l.oweHave = l.oweHave || lost > d.lostAck || d.full
	}
	switch {
	case d.have != nil:
		n.reconcile(l, d)
		if d.answer {
			l.lostAck = max(l.lostAck, d.lost)
		}
	case d.answer && d.lost <= l.lostAck:
		for _, e := range n.store.all() {
			if m, ok := l.marks[e]; ok && m.state == sent && m.epoch < d.ack {
				l.setMark(e, mark{state: has})
			}
		}
	}
}

// reconcile queues what a peer's have lacks, and resends what it lacks
// although it was written before a digest the peer had when it wrote this
// one: lost on the way.
func (n *Node) reconcile(l *link, d *digest) {
	for _, e := range n.store.all() {
		m, ok := l.marks[e]
		switch {
		case ok && m.state == has:
		case d.have[e.pub.key].contains(e.seq):
			l.setMark(e, mark{state: has})
		case !ok:
			n.enqueue(l, e)
		case m.state == sent && m.epoch < d.ack:
			// A JavaScript publisher's seq is not signed, so a relayer
			// may have changed it and the peer may hold the message
			// under another seq: give up after maxResends.
			if m.resends >= maxResends {
				l.setMark(e, mark{state: has})
			} else if len(l.queue) < n.cfg.MaxQueue {
				l.queue = append(l.queue, e)
				l.setMark(e, mark{state: queued, resends: m.resends + 1})
				n.stats.Resent++
			}
		}
	}
}

// Round runs one round of gossip: it drops expired messages and, for each
// link, writes the queued messages, then a digest if one is due. A link
// that has not sent a digest within Config.JSAfter rounds is taken for a
// JavaScript peer and gets every retained message it was not sent.
func (n *Node) Round() {
	now := n.cfg.Now()
	n.round++
	for e := n.store.oldest(); e != nil && now.Sub(e.at) > n.cfg.RetainFor; e = n.store.oldest() {
		n.evict()
	}
	for _, l := range n.links {
		l.rounds++
		if !l.goPeer && !l.backlogDone && l.rounds >= n.cfg.JSAfter {
			l.backlogDone = true
			for _, e := range n.store.bySeq() {
				n.enqueue(l, e)
			}
		}
		n.flush(l)
		if l.outLen >= n.cfg.MaxBuffered {
			continue // the transport is not reading: no digest either
		}
		ask := l.unconfirmed > 0 && n.round-l.lastAsk >= uint64(n.cfg.DigestEvery)
		full := l.resync && len(l.queue) < n.cfg.MaxQueue/2
		switch {
		case l.goPeer && (l.owe || ask || full):
			n.sendDigest(l, ask || full, l.owe, l.oweHave)
		case !l.goPeer && l.backlogDone && n.round-l.lastAsk >= 5*uint64(n.cfg.DigestEvery):
			// A probe: a Go peer whose first digest was lost answers it.
			n.sendDigest(l, true, false, false)
		}
	}
}

// flush writes l's queue, as far as the buffer bound allows.
func (n *Node) flush(l *link) {
	i := 0
	for ; i < len(l.queue) && l.outLen < n.cfg.MaxBuffered; i++ {
		e := l.queue[i]
		m := l.marks[e]
		if e.gone || m.state != queued {
			continue
		}
		l.out = append(l.out, e.raw)
		l.outLen += len(e.raw) + 1
		l.sentLines++
		l.setMark(e, mark{state: sent, resends: m.resends, epoch: l.digestsOut})
		n.stats.Sent++
	}
	rest := copy(l.queue, l.queue[i:])
	clear(l.queue[rest:])
	l.queue = l.queue[:rest]
}

// sendDigest writes a digest on l: a request (ask), an answer, and with
// have what the node has seen.
func (n *Node) sendDigest(l *link, ask, answer, withHave bool) {
	l.digestsOut++
	d := digest{n: l.digestsOut, ack: l.peerN}
	if ask {
		d.req, d.sent, d.lostAck = true, l.sentLines, l.lostAck
		d.full, l.resync = l.resync, false
		l.lastAsk = n.round
	}
	if answer {
		d.answer, d.lost = true, l.oweLost
		l.owe, l.oweHave = false, false
	}
	b := appendDigest(n.lineBuffer[:0], &d)
	if withHave {
		b = append(b, n.have()...)
	}
	b = append(b, '}')
	n.lineBuffer = b
	l.out = append(l.out, string(b))
	l.outLen += len(b) + 1
	n.stats.DigestsSent++
}

// have returns the have member of the digests: the seen spans of the node
// itself and of every publisher heard from within RetainFor or with a
// retained message, by key.
func (n *Node) have() []byte {
	if !n.haveStale && n.haveRound == n.round {
		return n.haveCache
	}
	if n.sorted == nil {
		for _, p := range n.pubs {
			n.sorted = append(n.sorted, p)
		}
		slices.SortFunc(n.sorted, func(a, b *publisher) int { return cmp.Compare(a.key, b.key) })
	}
	now := n.cfg.Now()
	active := make([]*publisher, 0, len(n.sorted))
	n.sorted = slices.DeleteFunc(n.sorted, func(p *publisher) bool { return n.pubs[p.key] != p })
	for _, p := range n.sorted {
		if p == n.self || p.retained > 0 || now.Sub(p.last) <= n.cfg.RetainFor {
			active = append(active, p)
		}
	}
	n.haveCache = appendHave(n.haveCache[:0], active, n.cfg.MaxLine-200)
	n.haveRound, n.haveStale = n.round, false
	return n.haveCache
}
