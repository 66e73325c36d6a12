package store

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
)

// ErrDamaged is wrapped by the errors of a Store whose database file is
// damaged: by Open when its check of the file finds a damaged page (or a
// truncated file), and by every call after a read or a commit found one
// (see Damaged). The error is a *DamageError that says what is wrong.
// Repair rebuilds the store from the messages that can still be read.
var ErrDamaged = errors.New("store: database file is damaged")

// A DamageError reports a damaged database file. It wraps ErrDamaged.
type DamageError struct {
	Path     string   // the database file
	Problems []string // what was found, at most 20
	More     int      // how many more problems were found
}

func (e *DamageError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: database file %s is damaged: %s", e.Path, strings.Join(e.Problems, "; "))
	if e.More > 0 {
		fmt.Fprintf(&b, "; and %d more problems", e.More)
	}
	b.WriteString(" (rebuild it from the messages that can still be read with `sbot repair`)")
	return b.String()
}

func (e *DamageError) Unwrap() error { return ErrDamaged }

// Damaged returns nil, or the *DamageError that made the store refuse
// every call: a read or a commit that met a damaged page or a fault on
// the database file (it was truncated under the store, or the disk
// failed). The store stays in that state until it is closed; Repair
// rebuilds it.
func (s *Store) Damaged() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.damaged == nil {
		return nil
	}
	return s.damaged
}

// damage marks the store damaged by err, keeping the first damage.
func (s *Store) damage(err *DamageError) *DamageError {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.damaged == nil {
		s.damaged = err
	}
	return s.damaged
}

// checkDamaged returns the store's damage or nil.
func (s *Store) checkDamaged() error { return s.Damaged() }

// guard runs fn, a call into bbolt, turning a panic or a memory fault
// (with runtime/debug.SetPanicOnFault, a fault on the memory map — the
// file truncated under it, an I/O error — is a panic in this goroutine)
// into an error wrapping ErrDamaged, and marks the store damaged. bbolt
// panics on a page that is not what its parent says; as it cannot tell
// that from a bug of its own or of the store, every panic is logged at
// Error with its stack.
func (s *Store) guard(op string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		what := "a page that is not what the database expects"
		var fault interface{ Addr() uintptr }
		if e, ok := r.(error); ok && errors.As(e, &fault) {
			what = "a memory fault reading the file (truncated under the store, or a disk error)"
		}
		d := s.damage(&DamageError{Path: s.path, Problems: []string{fmt.Sprintf("%s met %s: %v", op, what, r)}})
		s.log.Error("store: damaged database: refusing further reads and writes (if the file is intact, this is a bug)",
			"op", op, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
		err = d
	}()
	return fn()
}
