// Package value is one replicated value (a register), in the shape of npm
// r-value: each change is the raw JSON value, and the value with the
// greatest timestamp (ties broken by source id) is the value everywhere.
// Only that update is kept.
package value

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/scuttlebutt"
)

// A Value is a replicated value. It is safe for concurrent use.
type Value struct {
	*scuttlebutt.Replica
	reg *register
}

// New returns a value with the given id (a random one when empty). Until
// set, it has no value.
func New(id string, opts ...scuttlebutt.Option) *Value {
	reg := &register{}
	r := scuttlebutt.New(id, reg, opts...)
	reg.r = r
	return &Value{Replica: r, reg: reg}
}

// Set sets the value, encoded as JSON.
func (v *Value) Set(x any) error {
	raw, err := jsjson.Marshal(x)
	if err != nil {
		return fmt.Errorf("value: set: %w", err)
	}
	return v.SetRaw(raw)
}

// SetRaw sets the value to a JSON value.
func (v *Value) SetRaw(raw json.RawMessage) error {
	if _, err := v.LocalUpdate(raw); err != nil {
		return fmt.Errorf("value: set: %w", err)
	}
	return nil
}

// Get returns the current JSON value; ok is false when it was never set.
func (v *Value) Get() (raw json.RawMessage, ok bool) {
	v.reg.mu.Lock()
	defer v.reg.mu.Unlock()
	if !v.reg.set {
		return nil, false
	}
	return v.reg.latest.Change, true
}

// GetInto decodes the current value into x; ok is false when it was never
// set.
func (v *Value) GetInto(x any) (ok bool, err error) {
	raw, ok := v.Get()
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, x); err != nil {
		return true, fmt.Errorf("value: get: %w", err)
	}
	return true, nil
}

// OnChange registers fn to be called with every new value, local or remote.
// It returns a function that removes fn. See scuttlebutt.Replica.OnUpdate
// for when listeners run.
func (v *Value) OnChange(fn func(raw json.RawMessage)) (remove func()) {
	return v.OnUpdate(func(u scuttlebutt.Update) { fn(u.Change) })
}

// register is the Doc of a Value: the latest update.
type register struct {
	r      *scuttlebutt.Replica
	mu     sync.Mutex
	set    bool
	latest scuttlebutt.Update
}

// History implements scuttlebutt.Doc.
func (g *register) History(clock scuttlebutt.Clock) []scuttlebutt.Update {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.set || clock != nil && !clock.Lacks(g.latest) {
		return nil
	}
	return []scuttlebutt.Update{g.latest}
}

// ScanHistory implements scuttlebutt.HistoryScanner.
func (g *register) ScanHistory(clock scuttlebutt.Clock, after *scuttlebutt.Update, fn func(scuttlebutt.Update) bool) {
	g.mu.Lock()
	u, ok := g.latest, g.set
	g.mu.Unlock()
	if ok && clock.Lacks(u) && (after == nil || u.Newer(*after)) {
		fn(u)
	}
}

// ApplyUpdate implements scuttlebutt.Doc: an update older than the current
// value is not kept.
func (g *register) ApplyUpdate(u scuttlebutt.Update) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.set && !u.Newer(g.latest) {
		return false
	}
	g.set, g.latest = true, u
	return true
}
