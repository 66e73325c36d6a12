// Package model is a replicated key-value map, wire-compatible with npm
// scuttlebutt/model.
//
// Each change is [key, value]. For each key the update with the greatest
// timestamp wins (ties broken by source id, see package scuttlebutt), and
// only that update is kept: history is compacted to one update per key.
// Deleting a key sets it to null, as npm scuttlebutt does; the null is kept
// and replicated so that the deletion reaches every replica.
package model

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/scuttlebutt"
)

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

// Set sets key to value, encoded as JSON.
func (m *Model) Set(key string, value any) error {
	raw, err := jsjson.Marshal(value)
	if err != nil {
		return fmt.Errorf("model: set %q: %w", key, err)
	}
	return m.SetRaw(key, raw)
}

// SetRaw sets key to a JSON value.
func (m *Model) SetRaw(key string, value json.RawMessage) error {
	change := make([]byte, 0, len(key)+len(value)+8)
	change = append(jsjson.AppendString(append(change, '['), key), ',')
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
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	i, found := m.st.index[key]
	if !found {
		return nil, false
	}
	v := m.st.values[i]
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
	keys := make([]string, 0, len(m.st.keys))
	for i, k := range m.st.keys {
		if m.st.values[i] != nil {
			keys = append(keys, k)
		}
	}
	return keys
}

// Len returns the number of keys that have a value.
func (m *Model) Len() int {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	return len(m.st.keys) - m.st.deleted
}

// Snapshot returns a copy of the key-value pairs, deleted keys left out.
func (m *Model) Snapshot() map[string]json.RawMessage {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	out := make(map[string]json.RawMessage, len(m.st.keys))
	for i, k := range m.st.keys {
		if v := m.st.values[i]; v != nil {
			out[k] = v
		}
	}
	return out
}

// MarshalJSON encodes the model as npm scuttlebutt's toJSON does: an object
// of the keys that have a value, in the order they were first set.
func (m *Model) MarshalJSON() ([]byte, error) {
	m.st.mu.RLock()
	defer m.st.mu.RUnlock()
	out := []byte{'{'}
	for i, k := range m.st.keys {
		v := m.st.values[i]
		if v == nil {
			continue
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		out = append(jsjson.AppendString(out, k), ':')
		out = append(out, v...)
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
	return m.st.listen(key, false, func(_ string, v json.RawMessage) { fn(v) })
}

// store is the Doc of a Model: the latest update per key.
type store struct {
	r *scuttlebutt.Replica

	mu      sync.RWMutex
	index   map[string]int // key -> position in keys, updates and values
	keys    []string
	updates []scuttlebutt.Update
	values  []json.RawMessage // nil when deleted
	deleted int

	lmu       sync.Mutex
	nextID    int
	listeners map[int]listener
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
// value is null, as in JavaScript.
func parseChange(change json.RawMessage) (key string, value json.RawMessage, err error) {
	elems, err := jsjson.SplitArray(change)
	if err != nil {
		return "", nil, err
	}
	if len(elems) == 0 || len(elems[0]) == 0 || elems[0][0] != '"' {
		return "", nil, fmt.Errorf("model: change is not [key, value] with a string key")
	}
	if key, err = jsjson.Unquote(elems[0]); err != nil {
		return "", nil, err
	}
	if len(elems) > 1 && string(elems[1]) != "null" {
		value = elems[1]
	}
	return key, value, nil
}

// History implements scuttlebutt.Doc.
func (st *store) History(clock scuttlebutt.Clock) []scuttlebutt.Update {
	st.mu.RLock()
	var out []scuttlebutt.Update
	for _, u := range st.updates {
		if clock == nil || clock.Lacks(u) {
			out = append(out, u)
		}
	}
	st.mu.RUnlock()
	scuttlebutt.SortHistory(out)
	return out
}

// ApplyUpdate implements scuttlebutt.Doc. A change that is not
// [string, value] is refused.
func (st *store) ApplyUpdate(u scuttlebutt.Update) bool {
	key, value, err := parseChange(u.Change)
	if err != nil {
		return false
	}
	st.mu.Lock()
	i, found := st.index[key]
	switch {
	case !found:
		i = len(st.keys)
		st.index[key] = i
		st.keys = append(st.keys, key)
		st.updates = append(st.updates, u)
		st.values = append(st.values, value)
		if value == nil {
			st.deleted++
		}
	case !u.Newer(st.updates[i]):
		st.mu.Unlock()
		return false
	default:
		if st.values[i] == nil {
			st.deleted--
		}
		if value == nil {
			st.deleted++
		}
		st.updates[i] = u
		st.values[i] = value
	}
	st.mu.Unlock()
	st.notify(key, value)
	return true
}

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
