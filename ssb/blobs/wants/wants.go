// Package wants is the want protocol of ssb-blobs (blobs.createWants,
// blobs.want, blobs.push, and a remote blobs.has taken as a want) as a state
// machine without I/O, goroutines or clock, in the shape of etcd raft's
// RawNode: the driver feeds it inputs (Connect, Receive, Want, Added,
// FetchDone, Tick, ...) and collects the outputs with Ready: messages to
// send to each peer, fetches to start or cancel, local wants resolved,
// pushes done. A Core is not safe for concurrent use; the driver holds a
// lock around it.
//
// The protocol, as ssb-blobs 1.2.2 inject.js runs it:
//
//   - Each peer gets one createWants stream from us. Its first message is
//     our whole want map (pushed blobs included as -1), possibly {}; then
//     every change of a want or a new blob here goes to every connected
//     peer as {id: n}.
//   - Our own wants go out as -1. A peer's -n for a blob we have is answered
//     on its stream with {id: size}; otherwise it becomes our want at
//     -(n+1) if that is within Sympathy, sent to every peer, and fetched
//     like our own. A want already held at that distance or closer is not
//     sent again.
//   - A have (n > 0) from a peer for a wanted blob starts a fetch from that
//     peer (blobs.get {key, max}) unless one is running. A fetch that fails
//     (bad hash, wrong size), stalls or loses its peer moves to the next
//     connected peer that announced the blob.
//   - When a blob arrives (Added), it is announced to every peer as a have
//     and its want is dropped: that is how a middle peer passes a blob on.
//   - blobs.push announces a blob as -1 until Pushy peers answered with a
//     have.
//
// Where this differs from inject.js, on purpose:
//
//   - Bounds (see Config): JS has none. Blobs fetched for peers' wants
//     are charged to hourly budgets, per peer and in total. Sympathy defaults to 2, so a
//     peer's forwarded want (-2) is answered but never taken up; JS's
//     default 3 takes it up as -3 (Config.Sympathy = 3 restores that).
//   - A peer's wants end when it disconnects (JS keeps them for ever).
//   - A have of Max bytes or more is dropped; JS records it, never fetches.
//   - A peer that failed a blob (lied or stalled) is not fetched from again
//     for it while it is wanted; JS fetches again on its next have.
//   - Fetches stall after Config.FetchTimeout; JS has no timeout.
//   - Want always sends the -1 (JS skips it when a holder is known), and
//     Push does not fetch again a blob that is here (JS's push records a
//     want, so the first have that comes back starts a useless fetch).
//   - A peer's want of the empty blob is ignored (JS takes it up: its size
//     0 is falsy).
//   - Changes queued for one peer within one Ready go as one message when
//     no id repeats (JS sends one message per change).
//   - The legacy fallback (blobs.changes and blobs.has polling of peers
//     without createWants) is not implemented.
package wants

import (
	"crypto/sha256"
	"slices"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Store is what the core needs from the blob store.
type Store interface {
	// Size reports whether the blob is here, and its size.
	Size(id refs.Blob) (size int64, ok bool)
}

// EmptyBlob is the id of the blob of zero bytes. It is always "here", never
// wanted nor announced (a have of 0 means nothing on the wire).
var EmptyBlob = refs.NewBlob(sha256.Sum256(nil))

// A FetchID names one fetch, so that a late FetchDone of a cancelled fetch
// is not taken for a newer one.
type FetchID uint64

// A Fetch asks the driver to get a blob from a peer: blobs.get({key: Blob,
// max: Max}) on Peer, written into the store with Blob as the expected id.
// Size is what the peer announced; more or fewer bytes mean the peer lies.
// The driver reports FetchProgress as bytes come and FetchDone at the end,
// and Added when the blob is in the store.
type Fetch struct {
	ID   FetchID
	Peer refs.Feed
	Blob refs.Blob
	Size int64
	Max  int64
}

// An Outgoing is a message for the createWants stream we serve to Peer.
type Outgoing struct {
	Peer refs.Feed
	Msg  Message
}

// Pushed reports a pushed blob that enough peers now hold, with the size
// each announced (JS's pushed() event {key, peers}).
type Pushed struct {
	Blob  refs.Blob
	Peers map[refs.Feed]int64
}

// Ready holds the outputs accumulated since the last call to Ready, in a
// deterministic order.
type Ready struct {
	// Messages to send, by peer in order of connection, and for each peer
	// in the order they must go. After a Connect, the peer's first message
	// here is the first of its stream (our want map, possibly {}).
	Messages []Outgoing
	// Fetches to start.
	Fetches []Fetch
	// Cancels are fetches to abort (stalled, or their peer left); their
	// FetchDone is ignored.
	Cancels []Fetch
	// Resolved are blobs wanted locally (Want, Push) that are now here.
	Resolved []refs.Blob
	// Pushed are pushes that are done.
	Pushed []Pushed
}

// Empty reports whether r holds nothing to do.
func (r Ready) Empty() bool {
	return len(r.Messages) == 0 && len(r.Fetches) == 0 && len(r.Cancels) == 0 &&
		len(r.Resolved) == 0 && len(r.Pushed) == 0
}

// Stats counts what the core ignored or retried.
type Stats struct {
	MalformedMessages int   // messages that were not JSON objects
	MalformedEntries  int   // entries with a bad id or value, or beyond MaxMessageEntries
	WantsDropped      int   // wants beyond MaxWantsPerPeer or MaxWants
	WantsTooFar       int   // wants beyond Sympathy (answered if here, else ignored)
	WantsOverBudget   int   // wants of a peer whose fetch budget (or the total) is spent
	FetchedForPeers   int64 // bytes fetched for peers' wants alone
	HavesOverMax      int   // haves of Max bytes or more
	HavesDropped      int   // haves beyond MaxHavesPerPeer, or from a peer that failed the blob
	FetchesFailed     int   // FetchDone with an error
	FetchesStalled    int   // fetches cancelled by Tick
	FetchesOrphaned   int   // fetches cancelled because their peer left
	Wants             int   // wants held now (local and taken up)
	Fetching          int   // fetches running now
}

// Core is the want protocol state of one node.
type Core struct {
	cfg   Config
	store Store
	now   time.Time

	peers  map[refs.Feed]*peer
	order  []refs.Feed // connected peers, in order of connection (JS isAvailable's order)
	wants  map[refs.Blob]*want
	taken  int // wants with an origin peer, limited by MaxWants
	pushes map[refs.Blob]map[refs.Feed]int64

	spent      map[refs.Feed]int64 // bytes charged to a peer's budget, draining at PeerBudget per hour
	spentTotal int64
	refilled   time.Time

	fetches   map[refs.Blob]*fetch // at most one per blob (JS getting[id])
	byID      map[FetchID]*fetch
	lastFetch FetchID

	out   Ready
	sends map[refs.Feed][]Message
	stats Stats
}

type peer struct {
	connected bool
	haves     map[refs.Blob]have // JS available[peer]
	unwanted  int                // haves counted against MaxHavesPerPeer
	failed    map[refs.Blob]bool // wanted blobs this peer failed to deliver
	wants     int                // wants taken up from this peer
}

type have struct {
	size    int64
	counted bool // recorded while the blob was neither wanted nor pushed
}

// forget drops what a peer said of a blob.
func (p *peer) forget(id refs.Blob) {
	if h, ok := p.haves[id]; ok {
		if h.counted {
			p.unwanted--
		}
		delete(p.haves, id)
	}
	delete(p.failed, id)
}

type want struct {
	local bool
	from  map[refs.Feed]int64 // origin peer -> our distance for it (-2, ...)
}

func (w *want) hops() int64 {
	if w.local {
		return -1
	}
	h := int64(0)
	for _, n := range w.from {
		if h == 0 || n > h {
			h = n
		}
	}
	return h
}

type fetch struct {
	Fetch
	since time.Time // start or last progress; zero until the next Tick
}

// New returns a Core that asks store what is here.
func New(cfg Config, store Store) *Core {
	return &Core{
		cfg:     cfg.withDefaults(),
		store:   store,
		peers:   map[refs.Feed]*peer{},
		wants:   map[refs.Blob]*want{},
		pushes:  map[refs.Blob]map[refs.Feed]int64{},
		spent:   map[refs.Feed]int64{},
		fetches: map[refs.Blob]*fetch{},
		byID:    map[FetchID]*fetch{},
		sends:   map[refs.Feed][]Message{},
	}
}

// Ready returns the outputs accumulated since the last call, and clears them.
func (c *Core) Ready() Ready {
	r := c.out
	for _, p := range c.order {
		for _, m := range c.sends[p] {
			r.Messages = append(r.Messages, Outgoing{Peer: p, Msg: m})
		}
	}
	c.out = Ready{}
	clear(c.sends)
	return r
}

// Stats returns the counters.
func (c *Core) Stats() Stats {
	s := c.stats
	s.Wants = len(c.wants)
	s.Fetching = len(c.fetches)
	return s
}

// Wanted reports the distance at which a blob is wanted (-1: by us), or 0.
func (c *Core) Wanted(id refs.Blob) int64 {
	if w := c.wants[id]; w != nil {
		return w.hops()
	}
	return 0
}

// Connect starts a peer's createWants stream: its first message is our
// whole want map. A Connect of a connected peer restarts it (JS: a new
// createWants after an abort gets the map again).
func (c *Core) Connect(id refs.Feed) {
	if p := c.peers[id]; p != nil && p.connected {
		c.Disconnect(id)
	}
	p := c.peer(id)
	p.connected = true
	c.order = append(c.order, id)
	first := Message{}
	for bid, w := range c.wants {
		first[bid] = w.hops()
	}
	for bid := range c.pushes {
		first[bid] = -1
	}
	c.sends[id] = []Message{first}
}

// Disconnect forgets a peer: what it has, and the wants taken up from it
// (JS keeps those for ever; here they end with the connection, so that
// peers coming and going cannot fill MaxWants — the peer's wants come back
// in its next first message). Fetches from it move to other peers.
func (c *Core) Disconnect(id refs.Feed) {
	p := c.peers[id]
	if p == nil {
		return
	}
	delete(c.peers, id)
	delete(c.sends, id)
	c.order = slices.DeleteFunc(c.order, func(f refs.Feed) bool { return f == id })
	for bid, w := range c.wants { // no output: order does not matter
		if _, ok := w.from[id]; !ok {
			continue
		}
		if len(w.from) == 1 && !w.local {
			c.dropWant(bid, w)
			continue
		}
		delete(w.from, id)
		if len(w.from) == 0 {
			c.taken--
		}
	}
	for _, bid := range sortedIDs(c.fetches) {
		if f := c.fetches[bid]; f.Peer == id {
			c.stats.FetchesOrphaned++
			c.out.Cancels = append(c.out.Cancels, f.Fetch)
			c.endFetch(f)
			c.fetchNext(bid)
		}
	}
}

func (c *Core) peer(id refs.Feed) *peer {
	p := c.peers[id]
	if p == nil {
		p = &peer{haves: map[refs.Blob]have{}, failed: map[refs.Blob]bool{}}
		c.peers[id] = p
	}
	return p
}

// Receive decodes one message of the createWants stream a peer serves us
// and steps it. A message that is not a JSON object is counted and
// ignored, as JS ignores it; the error says why, for the log. The stream
// goes on either way.
func (c *Core) Receive(from refs.Feed, data []byte) error {
	m, skipped, err := Decode(data, c.cfg.MaxMessageEntries)
	c.stats.MalformedEntries += skipped
	if err != nil {
		c.stats.MalformedMessages++
		return err
	}
	c.Step(from, m)
	return nil
}

// Step takes a decoded message from a connected peer: its wants are
// answered with haves (one message back) or taken up, its haves recorded
// and fetched when wanted. Messages from a peer that is not connected are
// ignored.
func (c *Core) Step(from refs.Feed, m Message) {
	p := c.peers[from]
	if p == nil || !p.connected {
		return
	}
	answer := Message{}
	for _, id := range sortedIDs(m) {
		switch n := m[id]; {
		case n < 0:
			if size, ok := c.here(id); ok {
				answer[id] = size
			} else {
				c.peerWants(from, p, id, n)
			}
		case n > 0:
			c.peerHas(from, p, id, n)
		}
	}
	if len(answer) > 0 {
		c.send(from, answer)
	}
}

// RemoteHas answers a peer's blobs.has call and takes each missing blob
// up as a want of that peer at -1 (ssb-blobs: "interpret remote calls to
// has as a WANT request"). The caller need not be connected; its wants end
// with Disconnect.
func (c *Core) RemoteHas(from refs.Feed, ids []refs.Blob) []bool {
	res := make([]bool, len(ids))
	for i, id := range ids {
		if _, ok := c.here(id); ok {
			res[i] = true
		} else {
			c.peerWants(from, c.peer(from), id, -1)
		}
	}
	return res
}

// here reports a blob that is here and can be announced (JS: `if(size)`,
// so the empty blob is never announced).
func (c *Core) here(id refs.Blob) (int64, bool) {
	size, ok := c.store.Size(id)
	return size, ok && size > 0
}

func (c *Core) peerWants(from refs.Feed, p *peer, id refs.Blob, n int64) {
	if id == EmptyBlob {
		return
	}
	if n < 1-int64(c.cfg.Sympathy) { // |n-1| > sympathy
		c.stats.WantsTooFar++
		return
	}
	hops := n - 1
	w := c.wants[id]
	if w != nil {
		if old, ok := w.from[from]; ok {
			if hops > old {
				c.raise(id, w, func() { w.from[from] = hops })
			}
			return
		}
	}
	if c.spent[from] >= c.cfg.PeerBudget || c.spentTotal >= c.cfg.Budget {
		c.stats.WantsOverBudget++
		return
	}
	if (w == nil || len(w.from) == 0) && c.taken >= c.cfg.MaxWants {
		c.stats.WantsDropped++
		return
	}
	if p.wants >= c.cfg.MaxWantsPerPeer {
		c.stats.WantsDropped++
		return
	}
	if w == nil {
		w = &want{from: map[refs.Feed]int64{}}
		c.wants[id] = w
	}
	if len(w.from) == 0 {
		c.taken++
	}
	p.wants++
	c.raise(id, w, func() { w.from[from] = hops })
}

// raise applies change to w and, when that brings the want closer (or
// creates it), sends it to every peer and fetches it if a peer has it
// (JS wants(): `if(!want[id] || want[id] < hops)`).
func (c *Core) raise(id refs.Blob, w *want, change func()) {
	before := w.hops()
	change()
	after := w.hops()
	if before != 0 && after <= before {
		return
	}
	c.broadcast(id, after)
	if c.fetches[id] == nil {
		c.fetchNext(id)
	}
}

func (c *Core) peerHas(from refs.Feed, p *peer, id refs.Blob, size int64) {
	if size >= c.cfg.Max {
		c.stats.HavesOverMax++
		return
	}
	w := c.wants[id]
	if p.failed[id] && w != nil {
		c.stats.HavesDropped++
		return
	}
	h, known := p.haves[id]
	switch {
	case known:
	case w != nil || c.pushes[id] != nil:
	case p.unwanted < c.cfg.MaxHavesPerPeer:
		h.counted = true
		p.unwanted++
	default:
		c.stats.HavesDropped++
		return
	}
	h.size = size
	p.haves[id] = h
	if holders := c.pushes[id]; holders != nil {
		holders[from] = size
		if len(holders) >= c.cfg.Pushy {
			delete(c.pushes, id)
			c.out.Pushed = append(c.out.Pushed, Pushed{Blob: id, Peers: holders})
			if w == nil {
				c.forget(id)
			}
		}
	}
	if w != nil && c.fetches[id] == nil {
		c.startFetch(from, id, size)
	}
}

// Want is a local blobs.want: the blob is resolved at once if here, else
// wanted at -1 from every peer and fetched from the first that has it. JS
// skips the broadcast when a peer is already known to have the blob; we
// always send it, so that a failed fetch still has peers looking.
func (c *Core) Want(id refs.Blob) {
	if id == EmptyBlob {
		c.out.Resolved = append(c.out.Resolved, id)
		return
	}
	if _, ok := c.store.Size(id); ok {
		c.out.Resolved = append(c.out.Resolved, id)
		return
	}
	w := c.wants[id]
	if w == nil {
		w = &want{from: map[refs.Feed]int64{}}
		c.wants[id] = w
	}
	c.raise(id, w, func() { w.local = true })
}

// Push is a local blobs.push: the blob is announced to every peer as -1,
// now and in every first message, until Pushy peers have answered with a
// have; then Ready reports it in Pushed. If the blob is not here it is also
// wanted (JS's queue(id, -1) records it as a want). Persisting the pushes
// across restarts is the driver's: Push each again at start. (ssb-blobs
// 1.2.2 writes them to blobs_push but never reads them back.)
func (c *Core) Push(id refs.Blob) {
	if c.pushes[id] == nil {
		c.pushes[id] = map[refs.Feed]int64{}
	}
	if _, ok := c.store.Size(id); !ok && id != EmptyBlob {
		c.Want(id)
	}
	c.broadcast(id, -1)
}

// Added reports a blob now in the store (added locally or fetched): it is
// announced to every peer as a have (JS: the blobs.ls live stream), and
// its want ends. Report every blob that appears, once.
func (c *Core) Added(id refs.Blob, size int64) {
	if size > 0 {
		c.broadcast(id, size)
	}
	w := c.wants[id]
	if w == nil {
		return
	}
	if w.local {
		c.out.Resolved = append(c.out.Resolved, id)
	} else {
		for from := range w.from {
			c.spent[from] += size
		}
		c.spentTotal += size
		c.stats.FetchedForPeers += size
	}
	c.dropWant(id, w)
}

// refill drains the budgets' buckets for the time since the last Tick.
func (c *Core) refill(now time.Time) {
	if c.refilled.IsZero() || now.Before(c.refilled) {
		c.refilled = now
		return
	}
	dt := now.Sub(c.refilled)
	c.refilled = now
	drain := func(spent *int64, perHour int64) {
		*spent -= int64(float64(perHour) * dt.Hours())
		*spent = max(*spent, 0)
	}
	for f, n := range c.spent {
		drain(&n, c.cfg.PeerBudget)
		if n == 0 {
			delete(c.spent, f)
		} else {
			c.spent[f] = n
		}
	}
	drain(&c.spentTotal, c.cfg.Budget)
}

// dropWant ends a want, and forgets what peers said of the blob: the haves
// kept for a want are bounded by the wants, not by MaxHavesPerPeer.
func (c *Core) dropWant(id refs.Blob, w *want) {
	for from := range w.from {
		if p := c.peers[from]; p != nil {
			p.wants--
		}
	}
	if len(w.from) > 0 {
		c.taken--
	}
	delete(c.wants, id)
	c.forget(id)
}

// forget drops what every peer said of a blob.
func (c *Core) forget(id refs.Blob) {
	for _, p := range c.peers {
		p.forget(id)
	}
}

// broadcast queues {id: n} for every connected peer.
func (c *Core) broadcast(id refs.Blob, n int64) {
	for _, p := range c.order {
		c.queue(p, id, n)
	}
}

func (c *Core) send(to refs.Feed, m Message) {
	for id, n := range m {
		c.queue(to, id, n)
	}
}

// queue merges {id: n} into the last message going to a peer in this
// Ready, or starts a new one when that message already holds the id: a
// want then a have of one blob must both arrive, in that order (the peer
// takes the want up, then fetches on the have).
func (c *Core) queue(to refs.Feed, id refs.Blob, n int64) {
	ms := c.sends[to]
	if len(ms) == 0 || hasID(ms[len(ms)-1], id) {
		ms = append(ms, Message{})
		c.sends[to] = ms
	}
	ms[len(ms)-1][id] = n
}

func hasID(m Message, id refs.Blob) bool {
	_, ok := m[id]
	return ok
}
