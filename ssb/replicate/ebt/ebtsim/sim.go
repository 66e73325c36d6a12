// Package ebtsim runs many EBT state machines (package ebt) in one
// goroutine, in virtual time, over simulated connections with latency: a
// network of Secure Scuttlebutt peers replicating with epidemic broadcast
// trees. It is deterministic: the same Config gives the same run.
//
// Every peer has its own feed, publishes to it now and then, and follows
// some others at random; it wants the feeds within two hops, as sbot does.
// A few pubs follow everyone. Each peer dials a pub and some of the peers
// it follows. During the run the network splits in two for a while
// (connections across the split close, and peers redial on their side),
// and some peers restart (connections close; the machine starts over from
// the store and the peers' clocks it saved). At the end every connection
// stays up until nothing moves, and every peer must hold every feed it
// wants up to its latest message.
//
// The messages sent are compared with the minimum: each message a peer
// wants and lacks, received once.
package ebtsim

import (
	"container/heap"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate/ebt"
)

// Config describes a simulation; zero fields take the defaults in
// parentheses.
type Config struct {
	Peers    int           // peers, pubs not counted (1000)
	Pubs     int           // pubs, which follow everyone (5)
	Follows  int           // feeds each peer follows (8)
	Dials    int           // peers each peer dials besides a pub (2)
	Messages int           // messages each feed holds at the start, on its author only (20)
	Publish  int           // messages published during the run, in all (Peers)
	Duration time.Duration // of the churn phase: publishing, a split, restarts (60 s)
	Restarts int           // peer restarts during the run (Peers/20)
	Latency  time.Duration // one way, the most; each connection draws its own (50 ms)
	Seed     uint64        // of the random choices (1)
	EBT      ebt.Config    // the machines' settings
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Peers, 1000)
	def(&c.Pubs, 5)
	def(&c.Follows, 8)
	def(&c.Dials, 2)
	def(&c.Messages, 20)
	def(&c.Publish, c.Peers)
	def(&c.Restarts, c.Peers/20)
	if c.Duration <= 0 {
		c.Duration = 60 * time.Second
	}
	if c.Latency <= 0 {
		c.Latency = 50 * time.Millisecond
	}
	if c.Seed == 0 {
		c.Seed = 1
	}
	return c
}

// Result is what a run measured.
type Result struct {
	Peers        int           // peers and pubs
	Sessions     int           // EBT sessions opened
	Wanted       int           // feeds wanted, summed over peers
	Needed       int64         // messages peers wanted and lacked: the minimum to send
	Messages     int64         // messages sent
	Duplicates   int64         // received by a peer that had them or was appending them
	Notes        int64         // notes sent
	NoteEntries  int64         // feeds in them
	Converged    time.Duration // virtual time from the end of the churn until every peer had every wanted message
	Missing      int64         // wanted messages not held at the end (0 when it converged)
	Stalls       int           // feeds moved away from a stalled peer
	Reasks       int           // feeds asked again after a message out of order
	VirtualTotal time.Duration // the virtual time simulated
}

// String prints the result on one line.
func (r Result) String() string {
	return fmt.Sprintf("peers %d, sessions %d, messages sent %d for %d needed (%.3fx), duplicates %d, notes %d (%.1f per session, %d entries), converged %v after the churn, missing %d",
		r.Peers, r.Sessions, r.Messages, r.Needed, float64(r.Messages)/float64(max(r.Needed, 1)), r.Duplicates,
		r.Notes, float64(r.Notes)/float64(max(r.Sessions, 1)), r.NoteEntries, r.Converged, r.Missing)
}

type node struct {
	i      int
	feed   refs.Feed
	pub    bool
	m      *ebt.Machine
	have   map[refs.Feed]int64
	clocks map[refs.Feed]map[refs.Feed]int64 // peers' clocks, stored
	wanted []refs.Feed
	follow []int
	side   int // of the split: 0 or 1
	conns  map[ebt.SessionID]*end
}

// end is one side of a connection: a session of its node.
type end struct {
	n     *node
	id    ebt.SessionID
	other *end
	c     *conn
}

type conn struct {
	a, b    *end
	latency time.Duration
	open    bool
	last    [2]time.Time // the last delivery each way: delivery is in order
}

type event struct {
	at  time.Time
	seq uint64
	fn  func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if c := q[i].at.Compare(q[j].at); c != 0 {
		return c < 0
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	cfg    Config
	rng    *rand.Rand
	now    time.Time
	q      queue
	seq    uint64
	nodes  []*node
	byFeed map[refs.Feed]*node
	latest map[refs.Feed]int64 // the messages of each feed published
	nextID ebt.SessionID
	split  bool
	res    Result
	ebtSum ebt.Stats
}

const tick = 100 * time.Millisecond

// Run runs a simulation.
func Run(cfg Config) Result { return run(cfg).res }

func run(cfg Config) *sim {
	cfg = cfg.withDefaults()
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)), now: time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC),
		byFeed: make(map[refs.Feed]*node), latest: make(map[refs.Feed]int64)}
	s.build()
	start := s.now
	for _, n := range s.nodes {
		s.dialAll(n)
		s.scheduleTick(n, time.Duration(s.rng.Int64N(int64(tick))))
	}
	// The churn: messages published at random times, a split in the
	// middle third, restarts spread over the run.
	for range cfg.Publish {
		n := s.nodes[s.rng.IntN(len(s.nodes))]
		s.at(time.Duration(s.rng.Int64N(int64(cfg.Duration))), func() { s.publish(n) })
	}
	s.at(cfg.Duration/3, func() { s.setSplit(true) })
	s.at(2*cfg.Duration/3, func() { s.setSplit(false) })
	for range cfg.Restarts {
		n := s.nodes[cfg.Pubs+s.rng.IntN(cfg.Peers)]
		s.at(time.Duration(s.rng.Int64N(int64(cfg.Duration))), func() { s.restart(n) })
	}
	end := start.Add(cfg.Duration)
	s.runUntil(end)
	// Quiet: run until every peer has what it wants, or a long time.
	for s.missing() > 0 && s.now.Sub(end) < 10*time.Minute {
		s.runUntil(s.now.Add(tick))
	}
	s.res.Converged = s.now.Sub(end)
	s.res.Missing = s.missing()
	s.res.VirtualTotal = s.now.Sub(start)
	s.res.Peers = len(s.nodes)
	for _, n := range s.nodes {
		s.addStats(n.m.Stats())
		s.res.Wanted += len(n.wanted)
	}
	s.res.Stalls = s.ebtSum.Stalls
	s.res.Reasks = s.ebtSum.Reasks
	s.res.Duplicates = int64(s.ebtSum.Duplicates)
	return s
}

func (s *sim) addStats(st ebt.Stats) {
	s.ebtSum.Stalls += st.Stalls
	s.ebtSum.Reasks += st.Reasks
	s.ebtSum.Duplicates += st.Duplicates
}

func feedOf(i int) refs.Feed {
	var key [32]byte
	binary.BigEndian.PutUint64(key[24:], uint64(i)+1)
	key[0] = byte(i * 131) // spread the keys
	f, err := refs.NewFeed(ed25519.PublicKey(key[:]))
	if err != nil {
		panic(err)
	}
	return f
}

// build makes the peers, their follows, their stores (each its own feed),
// and what each wants: the feeds within two hops.
func (s *sim) build() {
	cfg := s.cfg
	total := cfg.Pubs + cfg.Peers
	for i := range total {
		n := &node{i: i, feed: feedOf(i), pub: i < cfg.Pubs, have: make(map[refs.Feed]int64),
			clocks: make(map[refs.Feed]map[refs.Feed]int64), conns: make(map[ebt.SessionID]*end), side: i % 2}
		n.have[n.feed] = int64(cfg.Messages)
		s.latest[n.feed] = int64(cfg.Messages)
		s.nodes = append(s.nodes, n)
		s.byFeed[n.feed] = n
	}
	for _, n := range s.nodes {
		if n.pub {
			for j := range total {
				if j != n.i {
					n.follow = append(n.follow, j)
				}
			}
			continue
		}
		for len(n.follow) < cfg.Follows {
			j := cfg.Pubs + s.rng.IntN(cfg.Peers)
			if j != n.i && !slices.Contains(n.follow, j) {
				n.follow = append(n.follow, j)
			}
		}
	}
	for _, n := range s.nodes {
		want := map[int]bool{n.i: true}
		for _, j := range n.follow {
			want[j] = true
			if !n.pub {
				for _, k := range s.nodes[j].follow {
					want[k] = true
				}
			}
		}
		for _, j := range slices.Sorted(maps.Keys(want)) {
			n.wanted = append(n.wanted, s.nodes[j].feed)
			if j != n.i {
				s.res.Needed += int64(cfg.Messages)
			}
		}
		n.m = ebt.New(cfg.EBT, n.feed, n.have, s.now)
		n.m.SetWanted(n.wanted)
	}
}

func (s *sim) at(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.q, &event{at: s.now.Add(d), seq: s.seq, fn: fn})
}

func (s *sim) runUntil(t time.Time) {
	for len(s.q) > 0 && !s.q[0].at.After(t) {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		e.fn()
	}
	s.now = t
}

func (s *sim) scheduleTick(n *node, d time.Duration) {
	s.at(d, func() {
		n.m.Tick(s.now)
		s.flush(n)
		s.scheduleTick(n, tick)
	})
}

// dialAll connects n to a pub and to Dials of the peers it follows, on its
// side of the split while there is one.
func (s *sim) dialAll(n *node) {
	if n.pub { // pubs dial the pubs after them
		for p := n.i + 1; p < s.cfg.Pubs; p++ {
			if o := s.nodes[p]; !s.split || o.side == n.side {
				s.dial(n, o)
			}
		}
		return
	}
	var pubs []int
	for p := range s.cfg.Pubs {
		if !s.split || s.nodes[p].side == n.side {
			pubs = append(pubs, p)
		}
	}
	if len(pubs) > 0 {
		s.dial(n, s.nodes[pubs[s.rng.IntN(len(pubs))]])
	}
	cands := slices.Clone(n.follow)
	s.rng.Shuffle(len(cands), func(i, j int) { cands[i], cands[j] = cands[j], cands[i] })
	dialed := 0
	for _, j := range cands {
		if dialed == s.cfg.Dials {
			break
		}
		o := s.nodes[j]
		if s.split && o.side != n.side || s.connected(n, o) {
			continue
		}
		s.dial(n, o)
		dialed++
	}
}

func (s *sim) connected(a, b *node) bool {
	for _, e := range a.conns {
		if e.other.n == b {
			return true
		}
	}
	return false
}

// dial opens a connection from a to b: b answers the EBT call (it is the
// responder) once the call arrives.
func (s *sim) dial(a, b *node) {
	if a == b || s.connected(a, b) {
		return
	}
	s.nextID++
	ea := &end{n: a, id: s.nextID}
	s.nextID++
	eb := &end{n: b, id: s.nextID}
	ea.other, eb.other = eb, ea
	c := &conn{a: ea, b: eb, open: true, latency: time.Duration(1 + s.rng.Int64N(int64(s.cfg.Latency)))}
	ea.c, eb.c = c, c
	a.conns[ea.id] = ea
	b.conns[eb.id] = eb
	s.res.Sessions += 2
	a.m.Open(ea.id, b.feed, a.clocks[b.feed], false)
	s.flush(a)
	s.deliver(ea, func() {
		b.m.Open(eb.id, a.feed, b.clocks[a.feed], true)
		s.flush(b)
	})
}

// deliver runs fn at the other end of from's connection after its
// latency, in order, unless the connection closed.
func (s *sim) deliver(from *end, fn func()) {
	c := from.c
	dir := 0
	if from == c.b {
		dir = 1
	}
	at := s.now.Add(c.latency)
	if at.Before(c.last[dir]) {
		at = c.last[dir]
	}
	c.last[dir] = at
	s.seq++
	heap.Push(&s.q, &event{at: at, seq: s.seq, fn: func() {
		if c.open {
			fn()
		}
	}})
}

func (s *sim) close(c *conn) {
	if !c.open {
		return
	}
	c.open = false
	for _, e := range []*end{c.a, c.b} {
		delete(e.n.conns, e.id)
		e.n.m.Close(e.id)
		s.flush(e.n)
	}
}

// flush carries out what n's machine asks for.
func (s *sim) flush(n *node) {
	rd := n.m.Ready()
	for _, c := range rd.Clocks {
		n.clocks[c.Peer] = c.Feeds
	}
	for _, note := range rd.Notes {
		e := n.conns[note.Session]
		if e == nil {
			continue
		}
		s.res.Notes++
		s.res.NoteEntries += int64(len(note.Feeds))
		other, feeds := e.other, note.Feeds
		s.deliver(e, func() {
			other.n.m.Note(other.id, feeds)
			s.flush(other.n)
		})
	}
	for _, sd := range rd.Sends {
		e := n.conns[sd.Session]
		if e == nil || sd.Stop {
			continue
		}
		other, f := e.other, sd.Feed
		for seq := sd.From; seq <= sd.To && seq <= n.have[f]; seq++ {
			s.res.Messages++
			s.deliver(e, func() { s.receive(other, f, seq) })
		}
	}
}

// receive is a message arriving at e's node: appended if the machine
// takes it and it is the next of its feed.
func (s *sim) receive(e *end, f refs.Feed, seq int64) {
	n := e.n
	if !n.m.Message(e.id, f, seq) {
		s.flush(n)
		return
	}
	switch have := n.have[f]; {
	case seq == have+1:
		n.have[f] = seq
		n.m.Appended(f, seq)
	case seq <= have:
		s.res.Duplicates++
	default:
		n.m.AppendFailed(e.id, f, true)
	}
	s.flush(n)
}

func (s *sim) publish(n *node) {
	n.have[n.feed]++
	s.latest[n.feed]++
	seq := n.have[n.feed]
	for _, o := range s.nodes {
		if o != n && slices.Contains(o.wanted, n.feed) {
			s.res.Needed++
		}
	}
	n.m.Appended(n.feed, seq)
	s.flush(n)
}

// setSplit splits the network in two or heals it: connections across
// close, and each peer redials on its side; healed, peers dial again.
func (s *sim) setSplit(on bool) {
	s.split = on
	if on {
		for _, n := range s.nodes {
			for _, id := range slices.Sorted(maps.Keys(n.conns)) {
				if e := n.conns[id]; e != nil && e.other.n.side != n.side {
					s.close(e.c)
				}
			}
		}
	}
	for _, n := range s.nodes {
		s.dialAll(n)
	}
}

// restart closes n's connections, starts its machine over from its store
// and stored clocks, and dials again a second later.
func (s *sim) restart(n *node) {
	for _, id := range slices.Sorted(maps.Keys(n.conns)) {
		if e := n.conns[id]; e != nil {
			s.close(e.c)
		}
	}
	s.addStats(n.m.Stats())
	n.m = ebt.New(s.cfg.EBT, n.feed, n.have, s.now)
	n.m.SetWanted(n.wanted)
	s.at(time.Second, func() { s.dialAll(n) })
}

// missing counts the wanted messages peers do not hold.
func (s *sim) missing() int64 {
	var miss int64
	for _, n := range s.nodes {
		for _, f := range n.wanted {
			miss += max(s.latest[f]-n.have[f], 0)
		}
	}
	return miss
}
