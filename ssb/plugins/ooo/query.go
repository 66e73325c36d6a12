package ooo

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// Limits of the query state. gossip-query keeps every query forever (ssb-ooo
// never calls its checkTimeout); these bound it.
const (
	// MaxQueries is how many queries (our own and those peers forward) are
	// held at once; beyond it our own get fails with ErrBusy.
	MaxQueries = 1024
	// MaxPeerQueries is how many of them peers' requests may create, so
	// that peers cannot crowd out our own gets; a request beyond it is
	// ignored.
	MaxPeerQueries = MaxQueries * 3 / 4
	// QueryTTL is how long a query nobody waits for is kept after its last
	// change (gossip-query's default timeout, 30 s).
	QueryTTL = 30 * time.Second
	// MaxStored is how many fetched messages are kept (in memory, oldest
	// dropped first). ssb-ooo appends them to its own log, ooo/log.offset,
	// without bound.
	MaxStored = 1024
	// maxWeight is gossip-query's maximum: requests of weight -1 and -2 are
	// accepted, so a query travels at most two hops.
	maxWeight = -3
)

// Errors of the plugin.
var (
	// ErrTimeout is returned by a get that took more than its timeout.
	ErrTimeout = errors.New("ooo: timed out")
	// ErrBusy is returned by a get when MaxQueries queries are pending.
	ErrBusy = errors.New("ooo: too many pending queries")
	// ErrInvalid reports a peer's answer that is not a valid message whose
	// id is the one asked for.
	ErrInvalid = errors.New("ooo: invalid answer")
)

// A session is one ooo.stream with a peer.
type session struct {
	peer refs.Feed
	wake chan struct{} // capacity 1: something may be ready to send
}

func (s *session) notify() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// A query is gossip-query's state of one message id.
type query struct {
	weight  int             // negative hops; -1 for our own
	checked bool            // the local check found nothing
	value   json.RawMessage // the message, compact; nil while pending
	from    map[*session]bool
	by      map[*session]bool
	sent    map[*session]bool
	waiters []chan json.RawMessage
	bad     error // the last invalid answer
	ts      time.Time
}

// stored is a fetched message kept outside the main log.
type stored struct {
	value json.RawMessage
}

// core is the state shared by the sessions and the gets.
type core struct {
	lookup func(refs.Message) (json.RawMessage, bool) // the main log
	hmac   []byte
	now    func() time.Time

	mu       sync.Mutex
	queries  map[refs.Message]*query
	sessions map[*session]bool
	stored   map[refs.Message]stored
	order    []refs.Message // of stored, oldest first
}

func newCore(lookup func(refs.Message) (json.RawMessage, bool), hmac []byte) *core {
	return &core{lookup: lookup, hmac: hmac, now: time.Now,
		queries: map[refs.Message]*query{}, sessions: map[*session]bool{}, stored: map[refs.Message]stored{}}
}

func newQuery(weight int, now time.Time) *query {
	return &query{weight: weight, from: map[*session]bool{}, by: map[*session]bool{}, sent: map[*session]bool{}, ts: now}
}

// check looks id up locally, as ssb-ooo's check: its own store, then the log.
func (c *core) check(id refs.Message) (json.RawMessage, bool) {
	if s, ok := c.stored[id]; ok {
		return s.value, true
	}
	return c.lookup(id)
}

// keep stores a fetched message, dropping the oldest beyond MaxStored.
func (c *core) keep(id refs.Message, v json.RawMessage) {
	if _, ok := c.stored[id]; ok {
		return
	}
	c.stored[id] = stored{value: v}
	c.order = append(c.order, id)
	for len(c.order) > MaxStored {
		delete(c.stored, c.order[0])
		c.order = c.order[1:]
	}
}

// prune drops the queries nobody waits for that are older than QueryTTL.
func (c *core) prune(now time.Time) {
	for id, q := range c.queries {
		if len(q.waiters) == 0 && now.Sub(q.ts) > QueryTTL {
			delete(c.queries, id)
		}
	}
}

func (c *core) wakeAll() {
	for s := range c.sessions {
		s.notify()
	}
}

// want registers a wait for id (weight -1) and returns the channel its
// message comes on, or the message at once.
func (c *core) want(id refs.Message) (json.RawMessage, chan json.RawMessage, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.prune(now)
	q := c.queries[id]
	if q == nil {
		if v, ok := c.check(id); ok {
			return v, nil, nil
		}
		if len(c.queries) >= MaxQueries {
			return nil, nil, ErrBusy
		}
		q = newQuery(-1, now)
		q.checked = true
		c.queries[id] = q
	}
	if q.value != nil {
		return q.value, nil, nil
	}
	ch := make(chan json.RawMessage, 1)
	q.waiters = append(q.waiters, ch)
	c.wakeAll()
	return nil, ch, nil
}

// cancel removes a waiter that gave up, and reports the last invalid
// answer for id.
func (c *core) cancel(id refs.Message, ch chan json.RawMessage) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	q := c.queries[id]
	if q == nil {
		return nil
	}
	for i, w := range q.waiters {
		if w == ch {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			break
		}
	}
	q.ts = c.now()
	return q.bad
}

func (c *core) add(s *session) {
	c.mu.Lock()
	c.sessions[s] = true
	c.mu.Unlock()
	s.notify()
}

func (c *core) remove(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.sessions, s)
	for _, q := range c.queries {
		delete(q.from, s)
		delete(q.by, s)
		delete(q.sent, s)
	}
}

// outgoing returns what s should send now, as gossip-query's source does:
// the messages found for the queries s asked, and the pending queries not
// yet asked of s. It returns nil when there is nothing.
func (c *core) outgoing(s *session) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b []byte
	for id, q := range c.queries {
		var v []byte
		switch {
		case q.value != nil && q.by[s] && !q.sent[s]:
			q.sent[s] = true
			v = q.value
		case q.value == nil && q.checked && !q.from[s]:
			q.from[s] = true
			v = strconv.AppendInt(nil, int64(q.weight), 10)
		default:
			continue
		}
		if b == nil {
			b = append(b, '{')
		} else {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, id.String()...)
		b = append(b, `":`...)
		b = append(b, v...)
	}
	if b != nil {
		b = append(b, '}')
	}
	return b
}

// incoming handles one object from s: {id: weight} requests and
// {id: message} answers. It returns the invalid answers it refused.
func (c *core) incoming(s *session, data map[string]json.RawMessage) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	c.prune(now)
	var errs []error
	update := false
	for k, raw := range data {
		id, err := refs.ParseMessage(k)
		if err != nil || len(raw) == 0 {
			continue
		}
		switch raw[0] {
		case '{', '[':
			if err := c.answer(s, id, raw, now); err != nil {
				errs = append(errs, err)
			} else {
				update = true
			}
		default:
			if w, ok := weightOf(raw); ok && c.request(s, id, w, now) {
				update = true
			}
		}
	}
	if update {
		c.wakeAll()
	}
	return errs
}

// weightOf reads a request: a negative integer.
func weightOf(raw json.RawMessage) (int, bool) {
	var f float64
	if json.Unmarshal(raw, &f) != nil || f >= 0 || f != float64(int(f)) {
		return 0, false
	}
	return int(f), true
}

func (c *core) request(s *session, id refs.Message, w int, now time.Time) bool {
	if w <= maxWeight {
		return false
	}
	q := c.queries[id]
	if q == nil {
		if len(c.queries) >= MaxPeerQueries {
			return false
		}
		q = newQuery(w-1, now)
		q.by[s] = true
		if v, ok := c.check(id); ok {
			q.value = v
		} else {
			q.checked = true
		}
		c.queries[id] = q
		return true
	}
	if w > q.weight {
		q.by[s] = true
		q.weight = w - 1
		q.ts = now
		return true
	}
	return false
}

// answer takes a message for a pending query if it is valid and hashes to
// id (ssb-ooo's process: getId(msg) === id and checkInvalidOOO).
func (c *core) answer(s *session, id refs.Message, raw json.RawMessage, now time.Time) error {
	q := c.queries[id]
	if q == nil || q.value != nil {
		return nil
	}
	m, err := message.ValidateOOO(raw, c.hmac)
	if err == nil && m.Key != id {
		err = fmt.Errorf("it hashes to %s", m.Key)
	}
	if err != nil {
		q.bad = fmt.Errorf("%w: %s answered %s with a message that is refused: %w", ErrInvalid, s.peer, id, err)
		return q.bad
	}
	q.value = json.RawMessage(m.Raw)
	q.ts = now
	c.keep(id, q.value)
	for _, w := range q.waiters {
		w <- q.value
	}
	q.waiters = nil
	return nil
}

// pending returns the unanswered queries for the status, as ssb-ooo's
// status hook: {id: {state, weight}}, state 3 being gossip-query's checked.
func (c *core) pending() map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]any{}
	for id, q := range c.queries {
		if q.value == nil {
			state := 3
			if !q.checked {
				state = 2
			}
			out[id.String()] = map[string]any{"state": state, "weight": q.weight}
		}
	}
	return out
}
