// Package events is a replicated, reliable event emitter, wire-compatible
// with npm scuttlebutt/events.
//
// Emit sends an event to every replica: each change is [event, args...],
// and every replica calls its listeners for the event once, whether it was
// emitted locally or arrived from a peer. Events are kept so that a peer
// that connects later receives them too.
//
// Unlike npm scuttlebutt, remote events only reach listeners registered
// with On: a peer cannot trigger the emitter's internal events (such as
// "dispose" or "_update") by naming them.
package events

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/scuttlebutt"
)

// An Emitter is a replicated event emitter. It is safe for concurrent use.
type Emitter struct {
	*scuttlebutt.Replica
	log *eventLog
}

// New returns an emitter with the given id (a random one when empty). It
// keeps every event, as npm scuttlebutt does; see Retain to bound that.
func New(id string, opts ...scuttlebutt.Option) *Emitter {
	l := &eventLog{byName: make(map[string][]scuttlebutt.Update)}
	r := scuttlebutt.New(id, l, opts...)
	l.r = r
	return &Emitter{Replica: r, log: l}
}

// Retain bounds the history kept to the n most recent events of each name
// (0, the default, keeps everything). Older events are forgotten: a peer
// that connects later does not receive them, though every peer connected
// when they were emitted did. Memory is then bounded by n times the number
// of event names.
func (e *Emitter) Retain(n int) {
	e.log.mu.Lock()
	defer e.log.mu.Unlock()
	e.log.retain = n
	for name := range e.log.byName {
		e.log.trim(name)
	}
}

// Emit emits an event with arguments encoded as JSON to every replica.
func (e *Emitter) Emit(event string, args ...any) error {
	change := jsjson.AppendString([]byte{'['}, event)
	for _, a := range args {
		raw, err := jsjson.Marshal(a)
		if err != nil {
			return fmt.Errorf("events: emit %q: %w", event, err)
		}
		change = append(append(change, ','), raw...)
	}
	change = append(change, ']')
	if _, err := e.LocalUpdate(change); err != nil {
		return fmt.Errorf("events: emit %q: %w", event, err)
	}
	return nil
}

// On registers fn to be called with the JSON arguments of every event of
// that name, local or remote, once per event. It returns a function that
// removes fn. See scuttlebutt.Replica.OnUpdate for when listeners run.
func (e *Emitter) On(event string, fn func(args []json.RawMessage)) (remove func()) {
	l := e.log
	l.lmu.Lock()
	defer l.lmu.Unlock()
	if l.listeners == nil {
		l.listeners = make(map[string]map[int]func([]json.RawMessage))
	}
	if l.listeners[event] == nil {
		l.listeners[event] = make(map[int]func([]json.RawMessage))
	}
	id := l.nextID
	l.nextID++
	l.listeners[event][id] = fn
	return func() {
		l.lmu.Lock()
		defer l.lmu.Unlock()
		delete(l.listeners[event], id)
	}
}

// Events returns the retained events of that name in history order.
func (e *Emitter) Events(event string) []scuttlebutt.Update {
	e.log.mu.Lock()
	out := append([]scuttlebutt.Update(nil), e.log.byName[event]...)
	e.log.mu.Unlock()
	scuttlebutt.SortHistory(out)
	return out
}

// eventLog is the Doc of an Emitter: every event, by name.
type eventLog struct {
	r *scuttlebutt.Replica

	mu     sync.Mutex
	byName map[string][]scuttlebutt.Update
	retain int

	lmu       sync.Mutex
	nextID    int
	listeners map[string]map[int]func([]json.RawMessage)
}

// trim drops the oldest events of that name beyond the retention bound.
// Slicing off the front lets append reallocate the live part later, so the
// backing array stays within twice the bound.
func (l *eventLog) trim(name string) {
	evs := l.byName[name]
	if l.retain <= 0 || len(evs) <= l.retain {
		return
	}
	if !slices.IsSortedFunc(evs, compareUpdates) {
		slices.SortFunc(evs, compareUpdates)
	}
	clear(evs[:len(evs)-l.retain])
	l.byName[name] = evs[len(evs)-l.retain:]
}

func compareUpdates(a, b scuttlebutt.Update) int {
	switch {
	case a.Newer(b):
		return 1
	case b.Newer(a):
		return -1
	}
	return 0
}

// History implements scuttlebutt.Doc.
func (l *eventLog) History(clock scuttlebutt.Clock) []scuttlebutt.Update {
	l.mu.Lock()
	var out []scuttlebutt.Update
	for _, evs := range l.byName {
		for _, u := range evs {
			if clock == nil || clock.Lacks(u) {
				out = append(out, u)
			}
		}
	}
	l.mu.Unlock()
	scuttlebutt.SortHistory(out)
	return out
}

// ScanHistory implements scuttlebutt.HistoryScanner: a merge of the events
// of each name, each sorted and searched for `after`.
func (l *eventLog) ScanHistory(clock scuttlebutt.Clock, after *scuttlebutt.Update, fn func(scuttlebutt.Update) bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var h cursors
	for _, evs := range l.byName {
		if !slices.IsSortedFunc(evs, compareUpdates) {
			slices.SortFunc(evs, compareUpdates)
		}
		start := 0
		if after != nil {
			start = sort.Search(len(evs), func(i int) bool { return evs[i].Newer(*after) })
		}
		if start < len(evs) {
			h = append(h, evs[start:])
		}
	}
	heap.Init(&h)
	for len(h) > 0 {
		u := h[0][0]
		if h[0] = h[0][1:]; len(h[0]) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
		if clock.Lacks(u) && !fn(u) {
			return
		}
	}
}

// cursors is a heap of sorted runs of events, by their first event.
type cursors [][]scuttlebutt.Update

func (h cursors) Len() int           { return len(h) }
func (h cursors) Less(i, j int) bool { return h[j][0].Newer(h[i][0]) }
func (h cursors) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *cursors) Push(x any)        { *h = append(*h, x.([]scuttlebutt.Update)) }
func (h *cursors) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// ApplyUpdate implements scuttlebutt.Doc. A change that is not
// [string, args...] is refused.
func (l *eventLog) ApplyUpdate(u scuttlebutt.Update) bool {
	elems := jsjson.SplitCanonical(nil, u.Change)
	if len(elems) == 0 || len(elems[0]) == 0 || elems[0][0] != '"' {
		return false
	}
	name, err := jsjson.Unquote(elems[0])
	if err != nil {
		return false
	}
	args := make([]json.RawMessage, len(elems)-1)
	for i, a := range elems[1:] {
		args[i] = a
	}
	l.mu.Lock()
	l.byName[name] = append(l.byName[name], u)
	l.trim(name)
	l.mu.Unlock()

	l.lmu.Lock()
	var fns []func([]json.RawMessage)
	for _, fn := range l.listeners[name] {
		fns = append(fns, fn)
	}
	l.lmu.Unlock()
	if len(fns) > 0 {
		l.r.Notify(func() {
			for _, fn := range fns {
				fn(args)
			}
		})
	}
	return true
}
