package schedule

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// FuzzScheduler drives a scheduler with random inputs, as a driver could
// give them (dials end once, connections close once), and checks its
// invariants after each: a tick never leaves more than Outbound known
// peers dialing or connected when it dialed, never dials a peer whose feed
// is connected or being dialed, every wait is within [MinBackoff,
// (1+Jitter) × MaxBackoff], the pubs stay within MaxPubPeers, and closes
// name open connections.
func FuzzScheduler(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0x10, 0x20, 5, 5, 5, 5, 5, 0x35, 0x44, 0x55, 0x66, 5, 7, 7, 7})
	f.Add([]byte{1, 1, 1, 0x21, 0x31, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 2, 2})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 4096 {
			return
		}
		newFuzzRun(t).run(ops)
	})
}

var fuzzNames = []string{"a", "b", "c", "m", "y", "z"}

type fuzzRun struct {
	t       *testing.T
	s       *Scheduler
	now     time.Time
	dialing map[string]bool // addresses the driver is dialing
	open    map[ConnID]Conn
	since   map[ConnID]time.Time
	lastID  ConnID
}

func newFuzzRun(t *testing.T) *fuzzRun {
	cfg := Config{Self: testFeed("m"), Outbound: 2, MinBackoff: time.Second, MaxBackoff: 20 * time.Second,
		MaxDialFailures: 3, MaxPubPeers: 3, DroppedFor: time.Minute, DroppedMax: 2, Seed: 3}
	return &fuzzRun{t: t, s: New(cfg), now: epoch, dialing: map[string]bool{},
		open: map[ConnID]Conn{}, since: map[ConnID]time.Time{}}
}

func (r *fuzzRun) run(ops []byte) {
	for i, op := range ops {
		name := fuzzNames[int(op>>4)%len(fuzzNames)]
		addr := testAddr(name)
		r.now = r.now.Add(time.Duration(op%7) * 700 * time.Millisecond)
		switch op % 9 {
		case 0:
			r.s.Add(Peer{Addr: addr, Feed: testFeed(name)}, SourcePub, r.now)
		case 1:
			r.s.Add(Peer{Addr: addr, Feed: testFeed(name)}, SourceManual, r.now)
		case 2:
			r.s.Remove(addr)
		case 3:
			if r.s.DialStarted(addr, r.now) {
				r.dialing[addr] = true
			}
		case 4:
			if r.dialing[addr] {
				delete(r.dialing, addr)
				r.s.DialFailed(addr, errors.New("refused"), r.now)
				r.checkWait(addr)
			}
		case 5:
			r.tick()
		case 6:
			r.connect(name, addr, r.dialing[addr])
		case 7:
			r.connect(name, addr, false)
		case 8:
			if ids := r.openIDs(); len(ids) > 0 {
				r.disconnect(ids[int(op)%len(ids)])
			}
		}
		r.check(i)
	}
}

func (r *fuzzRun) openIDs() []ConnID {
	ids := make([]ConnID, 0, len(r.open))
	for id := range r.open {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (r *fuzzRun) tick() {
	before := map[string]string{}
	for _, p := range r.s.Peers() {
		before[p.Addr] = p.State
	}
	r.s.Tick(r.now)
	rd := r.s.Ready()
	for _, d := range rd.Dials {
		if before[d.Addr] != "" || r.s.IsConnected(d.Feed) {
			r.t.Fatalf("dialed %s, which was %q", d.Addr, before[d.Addr])
		}
		r.dialing[d.Addr] = true
	}
	if busy := r.busy(); len(rd.Dials) > 0 && busy > r.s.Config().Outbound {
		r.t.Fatalf("after a tick that dialed, %d known peers are busy, Outbound %d", busy, r.s.Config().Outbound)
	}
	r.closes(rd)
}

// busy counts the known peers connected or being dialed.
func (r *fuzzRun) busy() int {
	n := 0
	for _, p := range r.s.Peers() {
		if p.State != "" {
			n++
		}
	}
	return n
}

func (r *fuzzRun) connect(name, addr string, outbound bool) {
	r.lastID++
	c := Conn{ID: r.lastID, Feed: testFeed(name), Outbound: outbound}
	if outbound {
		c.Addr = addr
		delete(r.dialing, addr)
	}
	r.open[c.ID], r.since[c.ID] = c, r.now
	r.s.Connected(c, r.now)
	r.closes(r.s.Ready())
}

func (r *fuzzRun) disconnect(id ConnID) {
	c := r.open[id]
	delete(r.open, id)
	r.s.Disconnected(id, r.now.Sub(r.since[id]), r.now)
	if !r.s.IsConnected(c.Feed) {
		for _, p := range r.s.Peers() {
			if p.Feed == c.Feed {
				r.checkWait(p.Addr)
			}
		}
	}
	r.closes(r.s.Ready())
}

// closes carries out the closes of rd: each must name an open connection.
func (r *fuzzRun) closes(rd Ready) {
	for _, c := range rd.Closes {
		if _, ok := r.open[c.Conn]; !ok {
			r.t.Fatalf("close of connection %d, which is not open", c.Conn)
		}
		r.disconnect(c.Conn)
	}
}

// checkWait checks the wait of the peer at addr, just set at r.now.
func (r *fuzzRun) checkWait(addr string) {
	p, ok := r.s.Peer(addr)
	if !ok {
		return
	}
	cfg := r.s.Config()
	wait := p.NextTry.Sub(r.now)
	if hi := time.Duration(float64(cfg.MaxBackoff) * (1 + cfg.Jitter)); wait < cfg.MinBackoff || wait > hi {
		r.t.Fatalf("%s waits %v, not in [%v, %v]", addr, wait, cfg.MinBackoff, hi)
	}
}

func (r *fuzzRun) check(step int) {
	pubs := 0
	for _, p := range r.s.Peers() {
		if p.Source == SourcePub {
			pubs++
		}
		if p.State == StateConnecting && !r.dialing[p.Addr] {
			r.t.Fatalf("step %d: %s is connecting, but no dial is in flight", step, p.Addr)
		}
	}
	if pubs > r.s.Config().MaxPubPeers {
		r.t.Fatalf("step %d: %d pubs", step, pubs)
	}
}

// Both sides of a cross-dial keep the same connection: the one dialed by
// the smaller key.
func TestKeepDialedBySymmetric(t *testing.T) {
	for _, x := range fuzzNames {
		for _, y := range fuzzNames {
			a, b := testFeed(x), testFeed(y)
			if got, want := KeepDialedBy(a, b), KeepDialedBy(b, a); got != want {
				t.Errorf("%s and %s disagree: %v, %v", x, y, got, want)
			}
		}
	}
}
