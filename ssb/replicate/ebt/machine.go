// Package ebt holds the rules of epidemic broadcast trees (ssb-ebt's
// ebt.replicate, version 3) as a state machine, in the style of etcd's
// raft: it owns no goroutine, lock, clock, file or connection. A driver
// (package replicate) feeds it events — a session opened or closed, a note
// or a message received, a message appended to the store, the wanted feeds
// or the blocks changed, a tick of its clock — and carries out what
// Ready returns: notes to send, ranges of a feed to send, peers' clocks to
// store.
//
// # The protocol
//
// One duplex stream per connection, opened by the dialing side. Each side
// sends notes, {feed: value} maps where value is -1 (not replicated) or
// sequence<<1 | 1 if the sender does not want to receive the feed from
// this peer (so an even value asks for messages after sequence). The side
// that was called sends its note first. Messages then flow on the same
// stream as bare signed values, each side sending the feeds the other asked
// for, from the sequence its note gave, live.
//
// # The rules
//
//   - Request skipping. The peer's clock (its sequence of each feed, from
//     its notes and the messages it sent) is stored as it changes (at most
//     every Config.ClockSaveEvery) and when the session ends. The first
//     note of the next session leaves out every feed whose sequence here
//     equals the peer's stored one: neither side has anything for the
//     other there. If either side advances such a feed later, a note says
//     so and the feed is asked for then. A feed last noted -1 is left out
//     of the stored clock: the peer keeps our -1 and tells nothing of it,
//     so the next session must note it if it is wanted then.
//   - One peer at a time per feed (clock partitioning). Each feed is asked
//     to be received (the receive bit) from one session only; to the others
//     the note says "I have n, do not send". When a peer notes more than
//     the current one has, the feed moves to it. When the current one has
//     promised more and sent nothing for Config.Stall while another has
//     more, or its session ends, or it notes -1, the feed moves to another
//     session that has more, with a note to each.
//   - Lazy push. When a wanted feed advances here beyond what a peer has,
//     and we are not sending it that feed, the peer gets a note saying so
//     (at the next tick, so that a burst makes one note), so it can ask.
//   - Duplicates. A message of a feed at or below what is stored or being
//     appended is dropped, not verified again; if it came from a peer that
//     is asked to send the feed while another is chosen for it, that peer
//     is told to stop.
//   - Out of order. After an append fails with a message out of order, the
//     feed's messages from that peer are dropped and the feed is asked
//     again after Config.ReaskBackoff (doubled each time, at most
//     Config.MaxReasks times a session); what the peer sends before it
//     starts over at the next message is dropped. Another invalid message
//     (a bad signature, a fork) ends the feed with that peer for the
//     session.
//   - Blocks. A feed kept from a peer (the peer is blocked by the feed's
//     author, or by Exclude) is neither sent to it nor received from it,
//     and noted -1 once; unblocked, it is noted again and sent if asked.
//   - Wanted feeds. A feed that becomes wanted is noted at the next tick;
//     one no longer wanted is noted -1 to every session that was noted it
//     (what a peer asked of it is still sent).
package ebt

import (
	"maps"
	"slices"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Config holds the machine's settings; the zero value of a field means its
// default.
type Config struct {
	// Stall is how long a peer asked for a feed may promise messages
	// (note a higher sequence) without sending any before the feed is
	// asked from another peer that has more. Default 3 s.
	Stall time.Duration
	// ReaskBackoff is the wait before a feed is asked again after a
	// message out of order, doubled at each re-ask. Default 250 ms.
	ReaskBackoff time.Duration
	// MaxReasks bounds the re-asks of a feed per session. Default 3.
	MaxReasks int
	// ClockSaveEvery is how often a session's changed peer clock is
	// handed out to be stored while the session runs. Default 10 s.
	ClockSaveEvery time.Duration
}

// Defaults.
const (
	DefaultStall          = 3 * time.Second
	DefaultReaskBackoff   = 250 * time.Millisecond
	DefaultMaxReasks      = 3
	DefaultClockSaveEvery = 10 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Stall <= 0 {
		c.Stall = DefaultStall
	}
	if c.ReaskBackoff <= 0 {
		c.ReaskBackoff = DefaultReaskBackoff
	}
	if c.MaxReasks <= 0 {
		c.MaxReasks = DefaultMaxReasks
	}
	if c.ClockSaveEvery <= 0 {
		c.ClockSaveEvery = DefaultClockSaveEvery
	}
	return c
}

// A SessionID names an EBT stream; the driver chooses them.
type SessionID uint64

// Value encodes a note's value: seq<<1, with the low bit set when the
// sender does not want to receive the feed.
func Value(seq int64, receive bool) int64 {
	v := seq << 1
	if !receive {
		v |= 1
	}
	return v
}

// Note is a note to send to a session. An empty Feeds is sent too (a
// first note).
type Note struct {
	Session SessionID
	Feeds   map[refs.Feed]int64
}

// Send asks the driver to send a session the messages of Feed from From to
// To (inclusive), or, with Stop, to drop what it has not sent yet of Feed.
type Send struct {
	Session  SessionID
	Feed     refs.Feed
	From, To int64
	Stop     bool
}

// Clock is a peer's clock to store, for the next session's request
// skipping.
type Clock struct {
	Peer  refs.Feed
	Feeds map[refs.Feed]int64
}

// Ready is what the machine asks the driver to do, in order: the notes,
// then the sends, of each session in that order.
type Ready struct {
	Notes  []Note
	Sends  []Send
	Clocks []Clock
}

// Empty reports whether there is nothing to do.
func (r Ready) Empty() bool { return len(r.Notes) == 0 && len(r.Sends) == 0 && len(r.Clocks) == 0 }

// Stats counts what the machine did since New.
type Stats struct {
	Sessions   int // sessions whose peer sent a note
	Notes      int // notes handed out
	NoteFeeds  int // feeds in them
	Skipped    int // feeds left out of notes by request skipping
	Received   int // messages received
	Duplicates int // of which were stored or being appended already
	Stalls     int // feeds moved away from a stalled peer
	Reasks     int // feeds asked again after a message out of order
	Broken     int // feeds given up with a peer for the session
}

type recv struct {
	broken  bool
	reasks  int
	reaskAt time.Time // set while waiting to ask again
	resync  bool      // asked again: waiting for the next message
}

type session struct {
	id        SessionID
	peer      refs.Feed
	responder bool
	started   bool // our first note is out
	heard     bool // the peer has sent a note

	theirs  map[refs.Feed]int64 // the peer's sequence of each feed, -1 if it does not replicate it
	rx      map[refs.Feed]bool  // feeds noted this session: whether we asked to receive them
	skipped map[refs.Feed]bool  // wanted feeds left out of the first note
	told    map[refs.Feed]int64 // the value of each feed in the last note sent
	asked   map[refs.Feed]bool  // feeds whose last note from the peer asks to receive
	sending map[refs.Feed]bool  // feeds being sent
	recv    map[refs.Feed]*recv
	pending map[refs.Feed]bool // feeds advanced here, to announce at the next tick

	lastMsg    time.Time // when the peer last sent a message
	stalledAt  time.Time // when a feed was last moved away from it for stalling
	clockDirty bool
	lastSave   time.Time
}

// Machine is the EBT state of a server: its sessions, the feeds it wants,
// its clock. It is not safe for concurrent use.
type Machine struct {
	cfg  Config
	self refs.Feed
	now  time.Time

	ours     map[refs.Feed]int64 // the sequence stored of each feed
	inflight map[refs.Feed]int64 // the highest sequence stored or handed out to append
	wanted   map[refs.Feed]bool
	excluded map[refs.Feed]map[refs.Feed]bool // feed -> peers it is kept from
	sessions map[SessionID]*session
	rxFrom   map[refs.Feed]SessionID // the session each feed is received from

	wantDirty  bool // wanted feeds or blocks changed: note at the next tick
	lastStall  time.Time
	notes      map[SessionID]map[refs.Feed]int64
	emptyNotes map[SessionID]bool
	noteOrder  []SessionID
	sends      []Send
	clocks     []Clock
	stats      Stats
}

// New returns a machine for the server whose feed is self, holding the
// feeds of clock (the sequence stored of each), at time now.
func New(cfg Config, self refs.Feed, clock map[refs.Feed]int64, now time.Time) *Machine {
	m := &Machine{
		cfg: cfg.withDefaults(), self: self, now: now,
		ours:       maps.Clone(clock),
		inflight:   make(map[refs.Feed]int64),
		wanted:     map[refs.Feed]bool{self: true},
		excluded:   make(map[refs.Feed]map[refs.Feed]bool),
		sessions:   make(map[SessionID]*session),
		rxFrom:     make(map[refs.Feed]SessionID),
		notes:      make(map[SessionID]map[refs.Feed]int64),
		emptyNotes: make(map[SessionID]bool),
		lastStall:  now,
	}
	if m.ours == nil {
		m.ours = make(map[refs.Feed]int64)
	}
	return m
}

// Stats returns the counters.
func (m *Machine) Stats() Stats { return m.stats }

// Clock returns the session's peer's clock as the machine knows it: its
// sequence of each feed, from its notes, the messages it sent, and the
// messages sent to it; nil for an unknown session.
func (m *Machine) Clock(id SessionID) map[refs.Feed]int64 {
	if s := m.sessions[id]; s != nil {
		return maps.Clone(s.theirs)
	}
	return nil
}

// FeedState is what a session knows and does of a feed (ebt.peerStatus).
type FeedState struct {
	Theirs    int64 // the peer's sequence,
	Known     bool  // if known
	Value     int64 // the value of the last note sent,
	Told      bool  // if one was
	Noted     bool  // the feed was noted this session
	Receiving bool  // we receive it from this peer
	Sending   bool  // we send it to this peer
}

// Feed returns what session id knows and does of f.
func (m *Machine) Feed(id SessionID, f refs.Feed) FeedState {
	s := m.sessions[id]
	if s == nil {
		return FeedState{}
	}
	var st FeedState
	st.Theirs, st.Known = s.theirs[f]
	st.Value, st.Told = s.told[f]
	rx, noted := s.rx[f]
	cur, ok := m.rxFrom[f]
	st.Noted, st.Receiving = noted, rx && ok && cur == id
	st.Sending = s.sending[f]
	return st
}

// Ready returns what is to be done since the last call, and forgets it.
func (m *Machine) Ready() Ready {
	var r Ready
	for _, id := range m.noteOrder {
		n := m.notes[id]
		if len(n) == 0 && !m.emptyNotes[id] {
			continue
		}
		m.stats.Notes++
		m.stats.NoteFeeds += len(n)
		r.Notes = append(r.Notes, Note{Session: id, Feeds: n})
	}
	clear(m.notes)
	clear(m.emptyNotes)
	m.noteOrder = m.noteOrder[:0]
	r.Sends, m.sends = m.sends, nil
	r.Clocks, m.clocks = m.clocks, nil
	return r
}

// note queues f: v in the next note to s.
func (m *Machine) note(s *session, f refs.Feed, v int64) {
	n := m.notes[s.id]
	if n == nil {
		n = make(map[refs.Feed]int64)
		m.notes[s.id] = n
		if !m.emptyNotes[s.id] {
			m.noteOrder = append(m.noteOrder, s.id)
		}
	}
	n[f] = v
	s.told[f] = v // what the session has been told, as soon as decided
}

func (m *Machine) noteEmpty(s *session) {
	if m.notes[s.id] == nil && !m.emptyNotes[s.id] {
		m.noteOrder = append(m.noteOrder, s.id)
	}
	m.emptyNotes[s.id] = true
}

func (m *Machine) seq(f refs.Feed) int64 { return m.ours[f] }

// withheld reports whether f is not exchanged with peer: our feed keeps
// everything from it, or f's author blocks it.
func (m *Machine) withheld(f, peer refs.Feed) bool {
	return m.excluded[m.self][peer] || m.excluded[f][peer]
}

// claim reports whether s should receive f: whether no other session is
// asked for it (then s is, from now on).
func (m *Machine) claim(f refs.Feed, s *session) bool {
	if cur, ok := m.rxFrom[f]; ok && cur != s.id {
		return false
	}
	m.rxFrom[f] = s.id
	return true
}

// Open starts a session with peer; clock is the peer's clock as stored at
// the end of the last session (nil if none). The responder (the side that
// was called) sends its first note at once; the other side sends its own
// when the peer's first note comes.
func (m *Machine) Open(id SessionID, peer refs.Feed, clock map[refs.Feed]int64, responder bool) {
	s := &session{
		id: id, peer: peer, responder: responder,
		theirs:  maps.Clone(clock),
		rx:      make(map[refs.Feed]bool),
		skipped: make(map[refs.Feed]bool),
		told:    make(map[refs.Feed]int64),
		asked:   make(map[refs.Feed]bool),
		sending: make(map[refs.Feed]bool),
		recv:    make(map[refs.Feed]*recv),
		pending: make(map[refs.Feed]bool),
		lastMsg: m.now, lastSave: m.now,
	}
	if s.theirs == nil {
		s.theirs = make(map[refs.Feed]int64)
	}
	m.sessions[id] = s
	if responder {
		m.firstNote(s)
	}
}

// firstNote notes every wanted feed but those the peer's stored clock
// shows at the same sequence as here. It is sent even when empty: the
// peer waits for it.
func (m *Machine) firstNote(s *session) {
	s.started = true
	m.noteEmpty(s)
	for _, f := range m.sortedWanted() {
		if m.withheld(f, s.peer) {
			continue // not shared with this peer: ssb-ebt leaves it out
		}
		ours := m.seq(f)
		if theirs, ok := s.theirs[f]; ok && theirs == ours {
			m.stats.Skipped++
			s.skipped[f] = true
			continue
		}
		if _, noted := s.rx[f]; !noted {
			rx := m.claim(f, s)
			s.rx[f] = rx
			m.note(s, f, Value(ours, rx))
		}
	}
}

func (m *Machine) sortedWanted() []refs.Feed {
	return slices.SortedFunc(maps.Keys(m.wanted), refs.Feed.Compare)
}

// noteWanted notes feeds that became wanted (or shared) during the
// session.
func (m *Machine) noteWanted(s *session) {
	for _, f := range m.sortedWanted() {
		if _, noted := s.rx[f]; noted || s.skipped[f] || m.withheld(f, s.peer) {
			continue
		}
		ours := m.seq(f)
		if theirs, ok := s.theirs[f]; ok && theirs == ours && !s.toldNot(f) {
			// Request skipping applies to feeds that become wanted
			// later too (after a restart the follow graph loads while
			// the first note goes out), but not to a feed the peer was
			// told -1 this session: the peer then takes us for not
			// replicating it, and tells nothing of it until a note
			// says otherwise.
			s.skipped[f] = true
			m.stats.Skipped++
			continue
		}
		rx := m.claim(f, s)
		s.rx[f] = rx
		m.note(s, f, Value(ours, rx))
	}
}

// toldNot reports whether the last note of f sent this session was -1.
func (s *session) toldNot(f refs.Feed) bool {
	v, ok := s.told[f]
	return ok && v == -1
}

// Note handles a note from the session's peer: it starts or stops sending
// the feeds the peer asks for, and answers: with our sequence of feeds
// this session has not noted yet, and by moving a feed here when the peer
// has more than the peer it is asked from. Values below -1 are ignored.
func (m *Machine) Note(id SessionID, n map[refs.Feed]int64) {
	s := m.sessions[id]
	if s == nil {
		return
	}
	if !s.heard {
		s.heard = true
		m.stats.Sessions++
	}
	if !s.started {
		m.firstNote(s)
	}
	s.clockDirty = true
	for _, f := range slices.SortedFunc(maps.Keys(n), refs.Feed.Compare) {
		m.noteFeed(s, f, n[f])
	}
}

func (m *Machine) noteFeed(s *session, f refs.Feed, v int64) {
	if v < -1 {
		return
	}
	if v == -1 {
		s.theirs[f] = -1
		delete(s.asked, f)
		m.stopSending(s, f)
		m.release(s, f)
		return
	}
	seq, peerRx := v>>1, v&1 == 0
	ours := m.seq(f)
	s.theirs[f] = seq // a note is what the peer has now
	s.asked[f] = peerRx
	if m.withheld(f, s.peer) {
		// Not shared with this peer (ssb-ebt's isShared): neither sent
		// nor received; said once.
		if _, noted := s.rx[f]; !noted {
			s.rx[f] = false
			m.note(s, f, -1)
		}
		return
	}
	if peerRx && !s.sending[f] {
		m.startSending(s, f)
	} else if !peerRx && s.sending[f] {
		m.stopSending(s, f)
	}
	if !m.wanted[f] {
		if _, noted := s.rx[f]; !noted {
			// Not replicated here: say what we hold of it (we serve it
			// all the same), or -1 if nothing. It is not marked noted,
			// so that a note asks for it if it becomes wanted.
			if ours > 0 {
				m.note(s, f, Value(ours, false))
			} else {
				m.note(s, f, -1)
			}
		}
		return
	}
	rx, noted := s.rx[f]
	switch {
	case !noted:
		rx = seq > ours && m.claim(f, s)
		s.rx[f] = rx
		m.note(s, f, Value(ours, rx))
	case !rx && seq > ours:
		cur, ok := m.rxFrom[f]
		if !ok || cur == s.id || m.sessions[cur] == nil || m.sessions[cur].theirs[f] < seq {
			s.rx[f] = true
			m.rxFrom[f] = s.id
			m.note(s, f, Value(ours, true))
			if o := m.sessions[cur]; ok && cur != s.id && o != nil {
				o.rx[f] = false
				m.note(o, f, Value(ours, false))
			}
		}
	case !peerRx && ours > seq:
		// Lazy push: tell the peer we have more, so it can ask.
		m.note(s, f, Value(ours, rx))
	}
}

// startSending sends f to s from what the peer has, and on as f grows.
func (m *Machine) startSending(s *session, f refs.Feed) {
	s.sending[f] = true
	m.sendUpTo(s, f, m.seq(f))
}

// sendUpTo sends s what it lacks of f up to seq, if f is being sent to it.
func (m *Machine) sendUpTo(s *session, f refs.Feed, seq int64) {
	from := max(s.theirs[f], 0) + 1
	if !s.sending[f] || seq < from {
		return
	}
	s.theirs[f] = seq
	s.clockDirty = true
	m.sends = append(m.sends, Send{Session: s.id, Feed: f, From: from, To: seq})
}

func (m *Machine) stopSending(s *session, f refs.Feed) {
	if !s.sending[f] {
		return
	}
	delete(s.sending, f)
	m.sends = append(m.sends, Send{Session: s.id, Feed: f, Stop: true})
}

// release stops asking s for f and asks another session that has more.
func (m *Machine) release(s *session, f refs.Feed) {
	if cur, ok := m.rxFrom[f]; !ok || cur != s.id {
		return
	}
	delete(m.rxFrom, f)
	m.reassign(f, s.id)
}

// reassign asks f from a session, other than except, whose peer has more
// than is stored here: of the ones that are not stalled if there are any,
// the one with the most, the lowest id on a tie. Sessions that sent an
// invalid message of f are not asked again.
func (m *Machine) reassign(f refs.Feed, except SessionID) {
	if _, ok := m.rxFrom[f]; ok || !m.wanted[f] {
		return
	}
	best := m.best(f, except, false)
	if best == nil {
		best = m.best(f, except, true)
	}
	if best == nil {
		return
	}
	ours := m.seq(f)
	m.rxFrom[f] = best.id
	best.rx[f] = true
	m.note(best, f, Value(ours, true))
}

// best returns the session, other than except, that can bring the most of
// f beyond what is stored here; stalled ones only if stalled is set.
func (m *Machine) best(f refs.Feed, except SessionID, stalled bool) *session {
	ours := m.seq(f)
	var best *session
	for _, id := range m.sortedSessions() {
		o := m.sessions[id]
		if id == except || !m.canBring(o, f) || !stalled && m.stalled(o) {
			continue
		}
		if seq := o.theirs[f]; seq > ours && (best == nil || seq > best.theirs[f]) {
			best = o
		}
	}
	return best
}

// canBring reports whether s may be asked for f: it is under way, f is
// shared with its peer, and its peer sent nothing invalid of f.
func (m *Machine) canBring(s *session, f refs.Feed) bool {
	st := s.recv[f]
	return s.started && !m.withheld(f, s.peer) && (st == nil || !st.broken)
}

// stalled reports whether s's peer has sent no message for the stall time
// while it was asked for a feed of which it promised more than is here, or
// has sent none since a feed was moved away from it for that.
func (m *Machine) stalled(s *session) bool {
	if !s.stalledAt.IsZero() && !s.lastMsg.After(s.stalledAt) {
		return true
	}
	if m.now.Sub(s.lastMsg) <= m.cfg.Stall {
		return false
	}
	for f, o := range m.rxFrom {
		if o == s.id && s.theirs[f] > m.seq(f) {
			return true
		}
	}
	return false
}

func (m *Machine) sortedSessions() []SessionID {
	return slices.Sorted(maps.Keys(m.sessions))
}

// Message handles a message of feed f with sequence seq that the session's
// peer sent, and reports whether to append it. Messages are dropped when f
// is kept from the peer, after an invalid message of f from it (until the
// feed is asked again and the peer starts over), and when f is stored or
// being appended that far already.
func (m *Machine) Message(id SessionID, f refs.Feed, seq int64) bool {
	s := m.sessions[id]
	if s == nil {
		return false
	}
	m.stats.Received++
	if seq > s.theirs[f] {
		s.theirs[f] = seq
		s.clockDirty = true
	}
	s.lastMsg = m.now
	if m.withheld(f, s.peer) {
		return false // ssb-ebt drops a feed it does not share with the peer
	}
	st := s.recv[f]
	if st != nil && (st.broken || !st.reaskAt.IsZero()) {
		return false
	}
	top := max(m.ours[f], m.inflight[f])
	if st != nil && st.resync {
		// Messages sent before the peer had the re-ask are dropped:
		// what it sends since starts at the next one.
		if seq != top+1 {
			return false
		}
		st.resync = false
	}
	if seq <= top {
		m.stats.Duplicates++
		if cur, ok := m.rxFrom[f]; s.rx[f] && ok && cur != s.id {
			// Asked of this peer while another is chosen: stop it.
			s.rx[f] = false
			m.note(s, f, Value(m.seq(f), false))
		}
		return false
	}
	m.inflight[f] = seq
	return true
}

// Take reports whether a message of f with sequence seq that came outside
// any session (legacy replication) is new: above what is stored or being
// appended. If it is, it counts as being appended from now on, so that the
// same message from another peer is dropped before verification; Untake
// undoes that when its append fails.
func (m *Machine) Take(f refs.Feed, seq int64) bool {
	if seq <= max(m.ours[f], m.inflight[f]) {
		m.stats.Duplicates++
		return false
	}
	m.inflight[f] = seq
	return true
}

// Untake forgets what Take took of f beyond what is stored: an append
// failed.
func (m *Machine) Untake(f refs.Feed) { m.inflight[f] = m.ours[f] }

// Appended records that f is stored up to seq (from any source): sessions
// sending f get the new messages, the others hear of it at the next tick.
func (m *Machine) Appended(f refs.Feed, seq int64) {
	if seq <= m.ours[f] {
		return
	}
	m.ours[f] = seq
	for _, id := range m.sortedSessions() {
		s := m.sessions[id]
		if s.sending[f] {
			m.sendUpTo(s, f, seq)
		} else if s.started {
			s.pending[f] = true
		}
	}
}

// Deleted records that f is now stored only up to seq (the rest was
// deleted): the sessions that were noted f are told, the one f is received
// from asked again from there.
func (m *Machine) Deleted(f refs.Feed, seq int64) {
	if seq >= m.ours[f] {
		return
	}
	if seq <= 0 {
		delete(m.ours, f)
	} else {
		m.ours[f] = seq
	}
	m.inflight[f] = seq
	for _, id := range m.sortedSessions() {
		s := m.sessions[id]
		if rx, noted := s.rx[f]; noted && s.started && !m.withheld(f, s.peer) {
			m.note(s, f, Value(seq, rx))
		}
	}
}

// AppendFailed records that an append of f from the session failed: with a
// message out of order (outOfOrder), after which f is asked again later,
// or with an invalid message, after which f is not taken from the peer for
// the rest of the session.
func (m *Machine) AppendFailed(id SessionID, f refs.Feed, outOfOrder bool) {
	m.inflight[f] = m.ours[f]
	s := m.sessions[id]
	if s == nil {
		return
	}
	st := s.recv[f]
	if st == nil {
		st = &recv{}
		s.recv[f] = st
	}
	if st.broken || !st.reaskAt.IsZero() {
		return
	}
	if outOfOrder && st.reasks < m.cfg.MaxReasks {
		st.reaskAt = m.now.Add(m.cfg.ReaskBackoff << st.reasks)
		st.reasks++
		return
	}
	st.broken = true
	m.stats.Broken++
	if s.rx[f] {
		// Asked of another peer that has more, if there is one.
		s.rx[f] = false
		m.note(s, f, Value(m.seq(f), false))
		m.release(s, f)
	}
}

// Close ends a session: its feeds are asked from other sessions, and the
// peer's clock is handed out to be stored.
func (m *Machine) Close(id SessionID) {
	s := m.sessions[id]
	if s == nil {
		return
	}
	m.clocks = append(m.clocks, Clock{Peer: s.peer, Feeds: s.clock()})
	delete(m.sessions, id)
	delete(m.notes, id)
	delete(m.emptyNotes, id)
	if i := slices.Index(m.noteOrder, id); i >= 0 {
		m.noteOrder = slices.Delete(m.noteOrder, i, i+1)
	}
	sends := m.sends[:0]
	for _, sd := range m.sends {
		if sd.Session != id {
			sends = append(sends, sd)
		}
	}
	m.sends = sends
	var mine []refs.Feed
	for f, o := range m.rxFrom {
		if o == id {
			mine = append(mine, f)
			delete(m.rxFrom, f)
		}
	}
	slices.SortFunc(mine, refs.Feed.Compare)
	for _, f := range mine {
		m.reassign(f, id)
	}
}

// clock is the peer's clock to store: a feed last noted -1 is left out.
func (s *session) clock() map[refs.Feed]int64 {
	c := maps.Clone(s.theirs)
	for f := range c {
		if s.toldNot(f) {
			delete(c, f)
		}
	}
	return c
}

// SetWanted replaces the feeds to replicate (our own is always one). New
// ones are noted at the next tick; the ones given up are noted -1 now to
// the sessions that were noted them.
func (m *Machine) SetWanted(feeds []refs.Feed) {
	next := make(map[refs.Feed]bool, len(feeds)+1)
	for _, f := range feeds {
		next[f] = true
	}
	next[m.self] = true
	var removed []refs.Feed
	for f := range m.wanted {
		if !next[f] {
			removed = append(removed, f)
		}
	}
	changed := len(removed) > 0 || len(next) != len(m.wanted)
	m.wanted = next
	if changed {
		m.wantDirty = true
	}
	slices.SortFunc(removed, refs.Feed.Compare)
	for _, f := range removed {
		delete(m.rxFrom, f)
		for _, id := range m.sortedSessions() {
			s := m.sessions[id]
			_, noted := s.rx[f]
			delete(s.rx, f)
			delete(s.skipped, f)
			if noted && s.started {
				m.note(s, f, -1)
			}
		}
	}
}

// Exclude records whether feed is kept from peer (feed's author blocks
// peer, or the owner blocked it with ebt.block). A feed kept from a peer
// is no longer sent to or received from it, and is noted -1; a feed
// shared again is noted at the next tick and sent if the peer's last note
// asked for it. Our own feed kept from a peer keeps every feed from it.
func (m *Machine) Exclude(feed, peer refs.Feed, on bool) {
	if m.excluded[feed][peer] == on {
		return
	}
	before := make(map[SessionID]bool)
	for id, s := range m.sessions {
		if s.peer == peer {
			before[id] = m.withheld(feed, peer)
		}
	}
	if on {
		if m.excluded[feed] == nil {
			m.excluded[feed] = make(map[refs.Feed]bool)
		}
		m.excluded[feed][peer] = true
	} else {
		delete(m.excluded[feed], peer)
		if len(m.excluded[feed]) == 0 {
			delete(m.excluded, feed)
		}
	}
	m.wantDirty = true
	for _, id := range slices.Sorted(maps.Keys(before)) {
		s := m.sessions[id]
		if feed == m.self {
			// Everything is kept from the peer (the driver closes its
			// connection), or shared again.
			for _, f := range slices.SortedFunc(maps.Keys(s.sending), refs.Feed.Compare) {
				if on {
					m.stopSending(s, f)
				}
			}
			for f, o := range m.rxFrom {
				if on && o == id {
					s.rx[f] = false
					m.release(s, f)
				}
			}
			if !on {
				for _, f := range slices.SortedFunc(maps.Keys(s.asked), refs.Feed.Compare) {
					if !m.withheld(f, peer) {
						m.share(s, f)
					}
				}
			}
			continue
		}
		now := m.withheld(feed, peer)
		switch {
		case now && !before[id]:
			m.withhold(s, feed)
		case !now && before[id]:
			m.share(s, feed)
		}
	}
}

// withhold stops exchanging f with the session's peer: sending ends, and if
// f was noted it is noted -1 and asked from another peer.
func (m *Machine) withhold(s *session, f refs.Feed) {
	wasSending := s.sending[f]
	m.stopSending(s, f)
	s.rx[f] = false
	delete(s.skipped, f)
	told, known := s.told[f]
	_, theirs := s.theirs[f]
	if s.started && !(known && told == -1) && (known || theirs || wasSending) {
		m.note(s, f, -1)
	}
	m.release(s, f)
}

// share undoes withhold: f is noted again at the next tick if wanted, and
// sent if the peer's last note asked for it.
func (m *Machine) share(s *session, f refs.Feed) {
	delete(s.rx, f)
	if s.asked[f] && !s.sending[f] {
		m.startSending(s, f)
	}
}

// Tick moves the machine's clock to now: feeds that became wanted or shared
// are noted, feeds due to be asked again are, stalled peers lose their
// feeds, what advanced here is announced, and changed clocks are handed out
// to be stored.
func (m *Machine) Tick(now time.Time) {
	if now.After(m.now) {
		m.now = now
	}
	ids := m.sortedSessions()
	if m.wantDirty {
		m.wantDirty = false
		for _, id := range ids {
			if s := m.sessions[id]; s.started {
				m.noteWanted(s)
			}
		}
	}
	for _, id := range ids {
		m.reask(m.sessions[id])
	}
	if m.now.Sub(m.lastStall) >= m.cfg.Stall/3 {
		m.lastStall = m.now
		for _, id := range ids {
			m.unstall(m.sessions[id])
		}
	}
	for _, id := range ids {
		m.announce(m.sessions[id])
	}
	for _, id := range ids {
		s := m.sessions[id]
		if s.clockDirty && m.now.Sub(s.lastSave) >= m.cfg.ClockSaveEvery {
			s.clockDirty, s.lastSave = false, m.now
			m.clocks = append(m.clocks, Clock{Peer: s.peer, Feeds: s.clock()})
		}
	}
}

// reask asks again, from what is stored, the feeds of s whose wait after a
// message out of order is over, if s is the session they are received from.
func (m *Machine) reask(s *session) {
	for _, f := range slices.SortedFunc(maps.Keys(s.recv), refs.Feed.Compare) {
		st := s.recv[f]
		if st == nil || st.reaskAt.IsZero() || m.now.Before(st.reaskAt) {
			continue
		}
		st.reaskAt = time.Time{}
		if cur, ok := m.rxFrom[f]; s.rx[f] && ok && cur == s.id {
			m.stats.Reasks++
			st.resync = true
			m.note(s, f, Value(m.seq(f), true))
		}
	}
}

// unstall moves the feeds s is asked for, whose peer promised more and has
// sent nothing for the stall time, to sessions that have more and are not
// stalled themselves.
func (m *Machine) unstall(s *session) {
	if !m.stalled(s) {
		return
	}
	var mine []refs.Feed
	for f, o := range m.rxFrom {
		if o == s.id {
			mine = append(mine, f)
		}
	}
	slices.SortFunc(mine, refs.Feed.Compare)
	for _, f := range mine {
		ours := m.seq(f)
		if s.theirs[f] <= ours {
			continue // nothing promised
		}
		if m.best(f, s.id, false) == nil {
			continue // no peer that sends has more
		}
		m.stats.Stalls++
		s.stalledAt = m.now
		s.rx[f] = false
		m.note(s, f, Value(ours, false))
		m.release(s, f)
	}
}

// announce tells the peer, in a note, of the wanted feeds that advanced
// here beyond what it has (lazy push); feeds it is being sent are left
// out: it gets their messages. A peer that said -1 is told too: it may
// follow the feed later, and then asks if it knows there is more here.
func (m *Machine) announce(s *session) {
	if len(s.pending) == 0 {
		return
	}
	for _, f := range slices.SortedFunc(maps.Keys(s.pending), refs.Feed.Compare) {
		seq := m.seq(f) // what is stored now (a deletion may have lowered it)
		if !m.wanted[f] || m.withheld(f, s.peer) || s.sending[f] {
			continue
		}
		theirs, known := s.theirs[f]
		if known && seq <= theirs {
			continue
		}
		rx, noted := s.rx[f]
		if !noted {
			s.rx[f] = false
		}
		m.note(s, f, Value(seq, rx))
	}
	clear(s.pending)
}
