// Package model is a replicated key-value map, wire-compatible with npm
// scuttlebutt/model.
//
// Each change is [key, value]. For each key the update with the greatest
// timestamp wins (ties broken by source id, see package scuttlebutt), and
// only that update is kept: history is compacted to one update per key.
// Deleting a key sets it to null, as npm scuttlebutt does; the null is kept
// and replicated so that the deletion reaches every replica.
//
// Keys are JavaScript strings: sequences of UTF-16 code units, which need
// not be valid Unicode. A Model holds them in WTF-8 (see
// internal/jsstring): UTF-8 in which a lone surrogate, such as the key
// 'a\ud800' a JavaScript peer may set, is the three bytes ED A0 80. So
// 'a\ud800' and 'a\ufffd' stay two keys, as in JavaScript. Keys given to
// the methods are read as WTF-8, invalid bytes as U+FFFD; keys returned are
// WTF-8.
//
// The key "__proto__" is illegal, as in npm scuttlebutt: Set refuses it
// (ErrIllegalKey), and an update for it from a peer advances its source's
// clock but is neither kept nor forwarded (npm's model emits 'invalid').
package model

import (
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/jsstring"
	"github.com/scuttlego/scuttle/scuttlebutt"
)

// illegalKey is the key npm scuttlebutt's model refuses, because it would
// break its store, a plain object.
const illegalKey = "__proto__"

// ErrIllegalKey reports a Set of the key "__proto__", which npm scuttlebutt
// refuses. It wraps scuttlebutt.ErrRejected.
var ErrIllegalKey = fmt.Errorf("model: %q is an illegal key: %w", illegalKey, scuttlebutt.ErrRejected)

// A Model is a replicated key-value map. It is safe for concurrent use.
type Model struct {
	*scuttlebutt.Replica
	st *store
}

// New returns an empty model with the given id (a random one when empty).
func New(id string, opts ...scuttlebutt.Option) *Model {
	st := &store{index: make(map[string]int)}
	r := scuttlebutt.New(id, st, opts...)
	st.r = r
	return &Model{Replica: r, st: st}
}

// Set sets key to value, encoded as JSON. The key "__proto__" is refused
// with ErrIllegalKey, without making an update, as npm scuttlebutt does.
func (m *Model) Set(key string, value any) error {
	raw, err := jsjson.Marshal(value)
	if err != nil {
		return fmt.Errorf("model: set %q: %w", key, err)
	}
	return m.SetRaw(key, raw)
}

// SetRaw sets key to a JSON value.
func (m *Model) SetRaw(key string, value json.RawMessage) error {
	key = jsstring.ToWTF8(key)
	if key == illegalKey {
		return ErrIllegalKey
	}
	change := make([]byte, 0, len(key)+len(value)+8)
	change = append(appendKey(append(change, '['), key), ',')
	change = append(append(change, value...), ']')
	if _, err := m.LocalUpdate(change); err != nil {
		return fmt.Errorf("model: set %q: %w", key, err)
	}
	return nil
}

// Delete removes key by setting it to null.
func (m *Model) Delete(key string) error { return m.SetRaw(key, json.RawMessage("null")) }

// Get returns the JSON value of key; ok is false when the key is absent or
// deleted (null).
func (m *Model) Get(key string) (value json.RawMessage, ok bool) {
	key = jsstring.ToWTF8(key)
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	i, found := m.st.index[key]
	if !found {
		return nil, false
	}
	v := m.st.slots.at(i).value
	return v, v != nil
}

// GetInto decodes the value of key into v; ok is false when the key is
// absent or deleted.
func (m *Model) GetInto(key string, v any) (ok bool, err error) {
	raw, ok := m.Get(key)
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("model: get %q: %w", key, err)
	}
	return true, nil
}

// Keys returns the keys that have a value (not deleted), in the order they
// were first set.
func (m *Model) Keys() []string {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	keys := make([]string, 0, m.st.slots.n-m.st.deleted)
	for i := range m.st.slots.n {
		if sl := m.st.slots.at(i); sl.value != nil {
			keys = append(keys, sl.key)
		}
	}
	return keys
}

// Len returns the number of keys that have a value.
func (m *Model) Len() int {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	return m.st.slots.n - m.st.deleted
}

// Snapshot returns a copy of the key-value pairs, deleted keys left out.
func (m *Model) Snapshot() map[string]json.RawMessage {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	out := make(map[string]json.RawMessage, m.st.slots.n-m.st.deleted)
	for i := range m.st.slots.n {
		if sl := m.st.slots.at(i); sl.value != nil {
			out[sl.key] = sl.value
		}
	}
	return out
}

// MarshalJSON encodes the model as JSON.stringify encodes npm scuttlebutt's
// toJSON(): an object of the keys that have a value, in the order they were
// first set, lone surrogates in keys written as \udxxx escapes. Like all
// output of this module it is ASCII-only: other code units from 0x80 up are
// \uxxxx escapes too, which JSON.parse reads as the same string.
func (m *Model) MarshalJSON() ([]byte, error) {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	out := []byte{'{'}
	for i := range m.st.slots.n {
		sl := m.st.slots.at(i)
		if sl.value == nil {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(appendKey(out, sl.key), ':')
		out = append(out, sl.value...)
	}
	return append(out, '}'), nil
}

// OnChange registers fn to be called for every applied change of any key,
// local or remote, with the new value (nil when the key was deleted). It
// returns a function that removes fn. See scuttlebutt.Replica.OnUpdate for
// when listeners run.
func (m *Model) OnChange(fn func(key string, value json.RawMessage)) (remove func()) {
	return m.st.listen("", true, fn)
}

// OnChangeKey registers fn to be called for every applied change of key.
func (m *Model) OnChangeKey(key string, fn func(value json.RawMessage)) (remove func()) {
	return m.st.listen(jsstring.ToWTF8(key), false, func(_ string, v json.RawMessage) { fn(v) })
}

// store is the Doc of a Model: the latest update per key.
//
// Keys live in slots, numbered in the order keys were first set and kept in
// fixed-size chunks, so the store grows without copying. The log lists the
// slots in history order, so that History is a filtered scan: updates
// almost always arrive in that order, and the log is sorted again only when
// one did not. A superseded entry stays in the log, marked dead, until the
// next sort or compaction.
type store struct {
	r *scuttlebutt.Replica

	mu       sync.RWMutex
	index    map[string]int // key -> slot
	slots    chunked[slot]
	log      []int32 // slots in history order; -1 is a dead entry
	dead     int     // dead entries in log
	unsorted bool    // an update arrived out of history order since the last sort
	last     scuttlebutt.Update
	deleted  int // keys whose value is null

	lmu       sync.Mutex
	nextID    int
	listeners map[int]listener
}

// A slot is one key: its latest update and value, and where it is in the log.
type slot struct {
	key   string
	u     scuttlebutt.Update
	value json.RawMessage // a part of u.Change; nil when null
	pos   int             // index in log
}

type listener struct {
	key string
	all bool
	fn  func(string, json.RawMessage)
}

func (st *store) listen(key string, all bool, fn func(string, json.RawMessage)) func() {
	st.lmu.Lock()
	defer st.lmu.Unlock()
	if st.listeners == nil {
		st.listeners = make(map[int]listener)
	}
	id := st.nextID
	st.nextID++
	st.listeners[id] = listener{key: key, all: all, fn: fn}
	return func() {
		st.lmu.Lock()
		defer st.lmu.Unlock()
		delete(st.listeners, id)
	}
}

// parseChange splits a Model change [key, value] into its parts. A missing
// value is null, as in JavaScript. The change is valid canonical JSON (see
// scuttlebutt.Doc).
func parseChange(change json.RawMessage) (key string, value json.RawMessage, err error) {
	var buf [3][]byte
	elems := jsjson.SplitCanonical(buf[:0], change)
	if len(elems) == 0 || len(elems[0]) == 0 || elems[0][0] != '"' {
		return "", nil, fmt.Errorf("model: change is not [key, value] with a string key")
	}
	if key, err = unquoteKey(elems[0]); err != nil {
		return "", nil, err
	}
	if len(elems) > 1 && string(elems[1]) != "null" {
		value = elems[1]
	}
	return key, value, nil
}

// unquoteKey decodes the canonical JSON string literal of a key into WTF-8,
// keeping lone surrogates, as JSON.parse does. (jsjson.Unquote, which uses
// encoding/json, turns them into U+FFFD.)
func unquoteKey(lit []byte) (string, error) {
	if len(lit) < 2 || lit[0] != '"' || lit[len(lit)-1] != '"' {
		return "", fmt.Errorf("model: key is not a string: %s", lit)
	}
	inner := lit[1 : len(lit)-1]
	if !slices.Contains(inner, '\\') && jsstring.IsASCII(inner) {
		return string(inner), nil
	}
	key := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); {
		switch c := inner[i]; {
		case c == '\\':
			u, n := jsstring.DecodeEscape(inner[i:])
			if n == 0 {
				return "", fmt.Errorf("model: invalid escape in key %s", lit)
			}
			key = jsstring.AppendUnit(key, u)
			i += n
		case c < utf8.RuneSelf:
			key = append(key, c)
			i++
		default:
			r, n := jsstring.DecodeRune(inner[i:])
			key = utf8.AppendRune(key, r)
			i += n
		}
	}
	return string(key), nil
}

// appendKey appends the WTF-8 key as a canonical JSON string literal:
// ASCII-only, a lone surrogate as its \udxxx escape.
func appendKey(dst []byte, key string) []byte {
	if strings.IndexByte(key, 0xED) < 0 { // no surrogate: valid UTF-8
		return jsjson.AppendString(dst, key)
	}
	lit, err := jsjson.Canonical(jsstring.AppendQuote(nil, key))
	if err != nil { // AppendQuote writes valid JSON
		panic("model: key literal: " + err.Error())
	}
	return append(dst, lit...)
}

// History implements scuttlebutt.Doc.
func (st *store) History(clock scuttlebutt.Clock) []scuttlebutt.Update {
	st.mu.Lock() // History may sort the log
	defer st.mu.Unlock()
	if st.unsorted {
		st.sortLog()
	}
	var out []scuttlebutt.Update
	if len(clock) == 0 {
		out = make([]scuttlebutt.Update, 0, len(st.log)-st.dead)
	}
	for _, i := range st.log {
		if i < 0 {
			continue
		}
		if u := &st.slots.at(int(i)).u; clock.Lacks(*u) {
			out = append(out, *u)
		}
	}
	return out
}

// ScanHistory implements scuttlebutt.HistoryScanner: a filtered scan of the
// log from the first entry after `after`, found by binary search.
func (st *store) ScanHistory(clock scuttlebutt.Clock, after *scuttlebutt.Update, fn func(scuttlebutt.Update) bool) {
	st.mu.Lock() // ScanHistory may sort the log
	defer st.mu.Unlock()
	if st.unsorted {
		st.sortLog()
	}
	start := 0
	if after != nil {
		start = sort.Search(len(st.log), func(p int) bool {
			for ; p < len(st.log); p++ { // skip dead entries
				if i := st.log[p]; i >= 0 {
					return st.slots.at(int(i)).u.Newer(*after)
				}
			}
			return true
		})
	}
	for _, i := range st.log[start:] {
		if i < 0 {
			continue
		}
		if u := &st.slots.at(int(i)).u; clock.Lacks(*u) && !fn(*u) {
			return
		}
	}
}

// ApplyUpdate implements scuttlebutt.Doc. A change that is not
// [string, value] is refused, and so are the key "__proto__" (as npm
// scuttlebutt's model.applyUpdate does) and an update that is not newer
// than the key's current one.
func (st *store) ApplyUpdate(u scuttlebutt.Update) bool {
	key, value, err := parseChange(u.Change)
	if err != nil || key == illegalKey {
		return false
	}
	st.mu.Lock()
	i, found := st.index[key]
	var sl *slot
	if found {
		sl = st.slots.at(i)
		if !u.Newer(sl.u) {
			st.mu.Unlock()
			return false
		}
		st.log[sl.pos] = -1
		st.dead++
		if sl.value == nil {
			st.deleted--
		}
	} else {
		i = st.slots.add()
		st.index[key] = i
		sl = st.slots.at(i)
		sl.key = key
	}
	sl.u, sl.value = u, value
	if value == nil {
		st.deleted++
	}
	if len(st.log) > 0 && !u.Newer(st.last) {
		st.unsorted = true
	}
	st.last = u
	sl.pos = len(st.log)
	st.log = append(st.log, int32(i))
	if st.dead > 1024 && st.dead > len(st.log)/2 {
		st.compact()
	}
	st.mu.Unlock()
	st.notify(key, value)
	return true
}

// compact drops the dead entries from the log.
func (st *store) compact() {
	live := make([]int32, 0, len(st.log)-st.dead)
	for _, i := range st.log {
		if i >= 0 {
			st.slots.at(int(i)).pos = len(live)
			live = append(live, i)
		}
	}
	st.log, st.dead = live, 0
}

// sortLog puts the log back into history order.
func (st *store) sortLog() {
	st.compact()
	slices.SortFunc(st.log, func(a, b int32) int {
		ua, ub := &st.slots.at(int(a)).u, &st.slots.at(int(b)).u
		switch {
		case ua.Newer(*ub):
			return 1
		case ub.Newer(*ua):
			return -1
		}
		return 0
	})
	for p, i := range st.log {
		st.slots.at(int(i)).pos = p
	}
	st.unsorted = false
	if n := len(st.log); n > 0 {
		st.last = st.slots.at(int(st.log[n-1])).u
	}
}

// chunked is a growable array in fixed-size chunks: it grows without
// copying, and pointers to its elements stay valid.
type chunked[T any] struct {
	chunks [][]T
	n      int
}

const chunkBits = 10

func (c *chunked[T]) add() int {
	if c.n>>chunkBits == len(c.chunks) {
		c.chunks = append(c.chunks, make([]T, 1<<chunkBits))
	}
	c.n++
	return c.n - 1
}

func (c *chunked[T]) at(i int) *T { return &c.chunks[i>>chunkBits][i&(1<<chunkBits-1)] }

func (st *store) notify(key string, value json.RawMessage) {
	st.lmu.Lock()
	var fns []func(string, json.RawMessage)
	for _, l := range st.listeners {
		if l.all || l.key == key {
			fns = append(fns, l.fn)
		}
	}
	st.lmu.Unlock()
	if len(fns) == 0 {
		return
	}
	st.r.Notify(func() {
		for _, fn := range fns {
			fn(key, value)
		}
	})
}
