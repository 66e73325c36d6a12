// Package gossipsim runs many gossip.Nodes in one goroutine, in virtual
// time, over simulated links with latency and loss, on random graphs with
// churn. It is deterministic: the same Config gives the same run, event
// for event.
//
// Every node runs a round every Interval, at its own random phase. A line
// written at a round reaches the other end of its link after the link's
// latency (links deliver in order), unless it is lost. Nodes can leave
// (their links close and they stop), come back with their state
// (reconnecting peers) or join fresh (late joiners); a node whose degree
// falls below MinDegree when a neighbour leaves dials a random node, as a
// connection scheduler would.
package gossipsim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/ssb/keys"
)

// Config describes a simulation. Zero fields take the defaults in
// parentheses.
type Config struct {
	Nodes     int // nodes at the start (100)
	MinDegree int // (3)
	MaxDegree int // (8)
	Seed      uint64

	Interval   time.Duration // between a node's rounds (gossip.DefaultInterval)
	MinLatency time.Duration // one-way latency of a link, uniform in [Min, Max] (2 ms)
	MaxLatency time.Duration // (40 ms)
	Loss       float64       // probability that a line is lost

	// Node is the template of every node's Config; Keys and Now are set by
	// the simulation.
	Node gossip.Config
}

func (c Config) withDefaults() Config {
	if c.Nodes <= 0 {
		c.Nodes = 100
	}
	if c.MinDegree <= 0 {
		c.MinDegree = 3
	}
	if c.MaxDegree < c.MinDegree {
		c.MaxDegree = max(8, c.MinDegree)
	}
	if c.Interval <= 0 {
		c.Interval = gossip.DefaultInterval
	}
	if c.MaxLatency <= 0 {
		c.MinLatency, c.MaxLatency = 2*time.Millisecond, 40*time.Millisecond
	}
	c.MinLatency = min(c.MinLatency, c.MaxLatency)
	return c
}

// epoch is the virtual wall clock at time 0.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// A Sim is a running simulation. It is not safe for concurrent use.
type Sim struct {
	cfg    Config
	rng    *rand.Rand
	now    time.Duration
	events events
	nseq   uint64
	nodes  []*Node

	reached map[gossip.ID]int // nodes that delivered each message

	// Lines counts the lines written to links, and Lost those lost;
	// Bytes and DigestBytes their bytes (newlines included), all lines and
	// digest lines only.
	Lines, Lost        int
	Bytes, DigestBytes int
}

// A Node is one simulated peer.
type Node struct {
	*gossip.Node
	Index  int
	Online bool

	links  []*link
	byID   map[gossip.LinkID]*link
	attack gossip.LinkID // the link Inject uses, 0 until then
	phase  time.Duration
	epoch  int // ticks scheduled before the node last went offline are void

	// Got counts the deliveries of each message; At is the virtual time of
	// the first.
	Got map[gossip.ID]int
	At  map[gossip.ID]time.Duration
	// Errors counts Receive errors other than replays on the simulated
	// links (not Inject's): honest neighbours cause none.
	Errors int
}

type link struct {
	a, b    *Node
	la, lb  gossip.LinkID
	latency time.Duration
	up      bool
	last    [2]time.Duration // arrival time of the last line each way, for FIFO
}

// New builds the starting graph: a random tree, so it is connected, then
// random edges until every node has a degree between MinDegree and
// MaxDegree (or no more edges fit).
func New(cfg Config) (*Sim, error) {
	cfg = cfg.withDefaults()
	s := &Sim{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		reached: make(map[gossip.ID]int),
	}
	for range cfg.Nodes {
		if _, err := s.newNode(); err != nil {
			return nil, err
		}
	}
	order := s.rng.Perm(len(s.nodes))
	for k := 1; k < len(order); k++ {
		u := s.nodes[order[k]]
		for {
			v := s.nodes[order[s.rng.IntN(k)]]
			if len(v.links) < cfg.MaxDegree {
				s.connect(u, v)
				break
			}
		}
	}
	targets := make([]int, len(s.nodes))
	for i := range targets {
		targets[i] = cfg.MinDegree + s.rng.IntN(cfg.MaxDegree-cfg.MinDegree+1)
	}
	for _, i := range s.rng.Perm(len(s.nodes)) {
		u := s.nodes[i]
		for tries := 0; len(u.links) < targets[i] && tries < 50; tries++ {
			v := s.nodes[s.rng.IntN(len(s.nodes))]
			if v != u && len(v.links) < cfg.MaxDegree && !linked(u, v) {
				s.connect(u, v)
			}
		}
	}
	return s, nil
}

func (s *Sim) newNode() (*Node, error) {
	var seed [32]byte
	for i := range seed {
		seed[i] = byte(s.rng.Uint32())
	}
	kp, err := keys.FromSeed(seed[:])
	if err != nil {
		return nil, err
	}
	nc := s.cfg.Node
	nc.Keys = kp
	nc.Now = func() time.Time { return epoch.Add(s.now) }
	g, err := gossip.NewNode(nc)
	if err != nil {
		return nil, err
	}
	n := &Node{
		Node:   g,
		Index:  len(s.nodes),
		Online: true,
		phase:  time.Duration(s.rng.Int64N(int64(s.cfg.Interval))),
		byID:   make(map[gossip.LinkID]*link),
		Got:    make(map[gossip.ID]int),
		At:     make(map[gossip.ID]time.Duration),
	}
	s.nodes = append(s.nodes, n)
	s.scheduleTick(n)
	return n, nil
}

func linked(u, v *Node) bool {
	return slices.ContainsFunc(u.links, func(l *link) bool { return l.a == v || l.b == v })
}

// connect opens a link; both ends send their first digest at once.
func (s *Sim) connect(u, v *Node) {
	span := int64(s.cfg.MaxLatency - s.cfg.MinLatency)
	l := &link{a: u, b: v, la: u.AddLink(), lb: v.AddLink(), up: true, latency: s.cfg.MinLatency}
	if span > 0 {
		l.latency += time.Duration(s.rng.Int64N(span + 1))
	}
	u.links = append(u.links, l)
	v.links = append(v.links, l)
	u.byID[l.la], v.byID[l.lb] = l, l
	s.flush(l)
}

func (s *Sim) disconnect(l *link) {
	l.up = false
	l.a.RemoveLink(l.la)
	l.b.RemoveLink(l.lb)
	drop := func(n *Node) { n.links = slices.DeleteFunc(n.links, func(x *link) bool { return x == l }) }
	delete(l.a.byID, l.la)
	delete(l.b.byID, l.lb)
	drop(l.a)
	drop(l.b)
}

// flush sends what both ends of l have written.
func (s *Sim) flush(l *link) {
	s.send(l, 0, l.a.Output(l.la))
	s.send(l, 1, l.b.Output(l.lb))
}

func (s *Sim) send(l *link, dir int, lines []string) {
	for _, line := range lines {
		s.Lines++
		s.Bytes += len(line) + 1
		if strings.HasPrefix(line, `{"gossip":`) {
			s.DigestBytes += len(line) + 1
		}
		if s.cfg.Loss > 0 && s.rng.Float64() < s.cfg.Loss {
			s.Lost++
			continue
		}
		at := max(s.now+l.latency, l.last[dir])
		l.last[dir] = at
		s.push(event{at: at, link: l, dir: dir, line: line})
	}
}

// Nodes returns every node ever created, by index.
func (s *Sim) Nodes() []*Node { return s.nodes }

// Online returns the nodes online now.
func (s *Sim) Online() []*Node {
	var on []*Node
	for _, n := range s.nodes {
		if n.Online {
			on = append(on, n)
		}
	}
	return on
}

// Reached returns how many nodes have delivered message id.
func (s *Sim) Reached(id gossip.ID) int { return s.reached[id] }

// Now returns the virtual time since the start.
func (s *Sim) Now() time.Duration { return s.now }

// Rand returns the simulation's random source, for scenarios that must be
// deterministic too.
func (s *Sim) Rand() *rand.Rand { return s.rng }

// Interval returns the round interval.
func (s *Sim) Interval() time.Duration { return s.cfg.Interval }

// At schedules fn at virtual time t (or now, if t has passed).
func (s *Sim) At(t time.Duration, fn func()) { s.push(event{at: max(t, s.now), fn: fn}) }

// RunUntil runs every event up to virtual time t.
func (s *Sim) RunUntil(t time.Duration) {
	for len(s.events) > 0 && s.events[0].at <= t {
		e := s.pop()
		s.now = e.at
		switch {
		case e.fn != nil:
			e.fn()
		case e.node != nil:
			s.tick(e.node, e.epoch)
		default:
			s.deliver(e.link, e.dir, e.line)
		}
	}
	s.now = max(s.now, t)
}

// RunUntilDone runs until stop returns true, checking after every event,
// or until virtual time limit. It reports whether stop became true.
func (s *Sim) RunUntilDone(limit time.Duration, stop func() bool) bool {
	for len(s.events) > 0 && s.events[0].at <= limit {
		s.RunUntil(s.events[0].at)
		if stop() {
			return true
		}
	}
	return stop()
}

func (s *Sim) scheduleTick(n *Node) {
	next := s.now - (s.now-n.phase)%s.cfg.Interval + s.cfg.Interval
	if s.now < n.phase {
		next = n.phase
	}
	s.push(event{at: next, node: n, epoch: n.epoch})
}

func (s *Sim) tick(n *Node, epoch int) {
	if !n.Online || epoch != n.epoch {
		return
	}
	n.Round()
	n.Drain(func(id gossip.LinkID, lines []string) {
		if l := n.byID[id]; l != nil {
			dir := 0
			if l.b == n {
				dir = 1
			}
			s.send(l, dir, lines)
		}
	})
	s.scheduleTick(n)
}

func (s *Sim) deliver(l *link, dir int, line string) {
	if !l.up {
		return
	}
	to, id := l.b, l.lb
	if dir == 1 {
		to, id = l.a, l.la
	}
	m, err := to.Receive(id, []byte(line))
	s.record(to, m, err)
}

func (s *Sim) record(n *Node, m *gossip.Message, err error) {
	if err != nil && !errors.Is(err, gossip.ErrReplay) {
		n.Errors++
	}
	if m != nil {
		if n.Got[m.ID] == 0 {
			n.At[m.ID] = s.now
			s.reached[m.ID]++
		}
		n.Got[m.ID]++
	}
}

// Publish has n publish payload now; it goes out at n's next round.
func (s *Sim) Publish(n *Node, payload any) (gossip.Message, error) {
	return n.Publish(payload)
}

// Inject hands line to n as if a neighbour had sent it, on a link of its
// own that nobody reads, and records what n delivers.
func (s *Sim) Inject(n *Node, line []byte) (*gossip.Message, error) {
	if n.attack == 0 || !n.HasLink(n.attack) {
		n.attack = n.AddLink()
		n.Output(n.attack)
	}
	m, err := n.Receive(n.attack, line)
	s.record(n, m, nil) // errors are the injector's to count
	return m, err
}

// Leave takes n offline: its links close, lines in flight are lost, and it
// runs no rounds. Neighbours left with fewer than MinDegree links dial a
// random online node.
func (s *Sim) Leave(n *Node) {
	if !n.Online {
		return
	}
	n.Online = false
	n.epoch++
	neighbours := make([]*Node, 0, len(n.links))
	for _, l := range slices.Clone(n.links) {
		other := l.a
		if other == n {
			other = l.b
		}
		neighbours = append(neighbours, other)
		s.disconnect(l)
	}
	for _, v := range neighbours {
		if len(v.links) < s.cfg.MinDegree {
			s.dial(v, 1)
		}
	}
}

// Rejoin brings n back online, with the state it had, connected to degree
// random online nodes.
func (s *Sim) Rejoin(n *Node, degree int) {
	if n.Online {
		return
	}
	n.Online = true
	s.scheduleTick(n)
	s.dial(n, degree)
}

// Join adds a fresh node connected to degree random online nodes.
func (s *Sim) Join(degree int) (*Node, error) {
	n, err := s.newNode()
	if err != nil {
		return nil, err
	}
	s.dial(n, degree)
	return n, nil
}

// dial connects n to k more random online nodes.
func (s *Sim) dial(n *Node, k int) {
	on := s.Online()
	for tries := 0; k > 0 && tries < 20*k; tries++ {
		v := on[s.rng.IntN(len(on))]
		if v != n && !linked(n, v) && len(v.links) < s.cfg.MaxDegree {
			s.connect(n, v)
			k--
		}
	}
}

// Degree returns how many links n has.
func (n *Node) Degree() int { return len(n.links) }

// Eccentricity returns the largest hop count from n to an online node it
// reaches, and how many it reaches (itself included).
func (s *Sim) Eccentricity(n *Node) (hops, reached int) {
	dist := map[*Node]int{n: 0}
	queue := []*Node{n}
	for len(queue) > 0 {
		u := queue[0]
		queue = queue[1:]
		for _, l := range u.links {
			v := l.a
			if v == u {
				v = l.b
			}
			if _, ok := dist[v]; !ok {
				dist[v] = dist[u] + 1
				hops = max(hops, dist[v])
				queue = append(queue, v)
			}
		}
	}
	return hops, len(dist)
}

// String describes the graph.
func (s *Sim) String() string {
	deg, links := map[int]int{}, 0
	for _, n := range s.Online() {
		deg[len(n.links)]++
		links += len(n.links)
	}
	return fmt.Sprintf("%d online nodes, %d links, degrees %v", len(s.Online()), links/2, deg)
}

// An event is a node's round (node), a line arriving (link), or an action
// (fn). Events at the same time run in the order they were scheduled.
type event struct {
	at    time.Duration
	seq   uint64
	node  *Node
	epoch int
	link  *link
	dir   int
	line  string
	fn    func()
}

// events is a binary min-heap of events, by time, then by scheduling
// order. (container/heap would box every event in an interface.)
type events []event

func (h events) less(i, j int) bool {
	return h[i].at < h[j].at || h[i].at == h[j].at && h[i].seq < h[j].seq
}

func (s *Sim) push(e event) {
	s.nseq++
	e.seq = s.nseq
	h := append(s.events, e)
	for i := len(h) - 1; i > 0; {
		parent := (i - 1) / 2
		if !h.less(i, parent) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
	s.events = h
}

func (s *Sim) pop() event {
	h := s.events
	e := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h[last] = event{}
	h = h[:last]
	for i := 0; ; {
		small, l, r := i, 2*i+1, 2*i+2
		if l < len(h) && h.less(l, small) {
			small = l
		}
		if r < len(h) && h.less(r, small) {
			small = r
		}
		if small == i {
			break
		}
		h[i], h[small] = h[small], h[i]
		i = small
	}
	s.events = h
	return e
}
