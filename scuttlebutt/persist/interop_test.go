package persist

// Interop tests against the real npm scuttlebutt@5.6.15, driven through
// interop/sb-persist.js (see its header comment): files written by
// JavaScript load in Go, and files written by Go (Save and the durable
// Log) load in JavaScript, with identical state.

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

func startJS(t *testing.T, typ, id string) *oracle.Peer {
	t.Helper()
	return oracle.Start(t, "sb-persist.js", "--type", typ, "--id", id)
}

// jsState is a JavaScript replica's dump, decoded.
type jsState struct {
	JSON    any
	Clock   map[string]float64
	History []any
}

func dumpJS(t *testing.T, p *oracle.Peer) jsState {
	t.Helper()
	m := p.Do(oracle.Cmd{"op": "dump"})
	var s jsState
	if err := m.Decode("json", &s.JSON); err != nil {
		t.Fatal(err)
	}
	if err := m.Decode("clock", &s.Clock); err != nil {
		t.Fatal(err)
	}
	if err := m.Decode("history", &s.History); err != nil {
		t.Fatal(err)
	}
	return s
}

// goState returns a Go replica's state in the shape of dumpJS: values
// (for a Model), clock, and history as decoded JSON.
func goState(t *testing.T, r *scuttlebutt.Replica, values json.Marshaler) jsState {
	t.Helper()
	var s jsState
	if values != nil {
		raw, err := values.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		json.Unmarshal(raw, &s.JSON)
	}
	s.Clock = r.Clock()
	s.History = []any{}
	for _, u := range r.History(nil) {
		var v any
		if err := json.Unmarshal([]byte(u.String()), &v); err != nil {
			t.Fatal(err)
		}
		s.History = append(s.History, v)
	}
	return s
}

func sameJSState(t *testing.T, what string, want, got jsState) {
	t.Helper()
	if !reflect.DeepEqual(want.JSON, got.JSON) {
		t.Errorf("%s: values differ:\nwant %v\n got %v", what, want.JSON, got.JSON)
	}
	if !maps.Equal(want.Clock, got.Clock) {
		t.Errorf("%s: clock differs: want %v, got %v", what, want.Clock, got.Clock)
	}
	if !reflect.DeepEqual(want.History, got.History) {
		t.Errorf("%s: history differs:\nwant %v\n got %v", what, want.History, got.History)
	}
}

// jsRichModel gives the JavaScript model p the values of richModel: local
// sets, updates from other sources (one superseded, one superseding, a
// null, one with a fourth element), a deleted key.
func jsRichModel(t *testing.T, p *oracle.Peer) {
	t.Helper()
	for _, k := range slices.Sorted(maps.Keys(richValues)) {
		p.Do(oracle.Cmd{"op": "set", "key": k, "value": richValues[k]})
	}
	p.Do(oracle.Cmd{"op": "set", "key": "ascii", "value": nil})
	for _, u := range []any{
		[]any{[]any{"from-b", "B's value ü"}, 5, "B"},
		[]any{[]any{"int", 7}, 6, "B"},
		[]any{[]any{"float", 2.5}, 4102444800000, "C"},
		[]any{[]any{"c-null", nil}, 4102444800000.5, "C"},
		[]any{[]any{"signed", 1}, 9, "D", "c2lnbmF0dXJl"},
	} {
		p.Do(oracle.Cmd{"op": "update", "update": u})
	}
}

// A Model file written by npm scuttlebutt (raw UTF-8, several sources,
// nulls, a signature element) loads in Go with the state JavaScript itself
// loads from it.
func TestInteropJSFileLoadsInGo(t *testing.T) {
	oracle.Require(t)
	path := filepath.Join(t.TempDir(), "js.txt")
	w := startJS(t, "model", "J")
	jsRichModel(t, w)
	w.Do(oracle.Cmd{"op": "save", "path": path})
	written := dumpJS(t, w)

	r := startJS(t, "model", "R")
	loaded := r.Do(oracle.Cmd{"op": "load", "path": path})
	if loaded.Str("ev") != "loaded" || string(loaded.Fields["sync"]) != "true" || string(loaded.Fields["closed"]) != "true" {
		t.Fatalf("JavaScript load: %s", loaded.Line)
	}
	jsLoaded := dumpJS(t, r)

	m := model.New("G")
	if err := LoadFile(path, m.Replica); err != nil {
		t.Fatal(err)
	}
	got := goState(t, m.Replica, m)
	sameJSState(t, "Go vs JavaScript loading the file", jsLoaded, got)
	if !reflect.DeepEqual(written.History, got.History) || !reflect.DeepEqual(written.JSON, got.JSON) {
		t.Errorf("Go's loaded state differs from the JavaScript writer's")
	}
	if len(got.History) != len(richValues)+3 { // from-b, c-null, signed; C's float replaced the local one
		t.Errorf("history has %d updates, want %d", len(got.History), len(richValues)+3)
	}
	if v := got.JSON.(map[string]any)["float"]; v != 2.5 {
		t.Errorf("float = %v, want C's 2.5", v)
	}
}

// A Model file written by Save loads in npm scuttlebutt: the write stream
// sees "SYNC", closes, and holds the Go replica's state.
func TestInteropGoFileLoadsInJS(t *testing.T) {
	oracle.Require(t)
	path := filepath.Join(t.TempDir(), "go.txt")
	m := richModel(t, "G")
	if err := SaveFile(path, m.Replica); err != nil {
		t.Fatal(err)
	}
	p := startJS(t, "model", "R")
	loaded := p.Do(oracle.Cmd{"op": "load", "path": path})
	if string(loaded.Fields["sync"]) != "true" || string(loaded.Fields["closed"]) != "true" || string(loaded.Fields["errors"]) != "[]" {
		t.Fatalf("JavaScript load: %s", loaded.Line)
	}
	want := goState(t, m.Replica, m)
	want.Clock = historyClock(m.Replica) // a loaded clock comes from the updates
	sameJSState(t, "JavaScript loading Go's file", want, dumpJS(t, p))
}

// Event files go both ways too.
func TestInteropEventsFiles(t *testing.T) {
	oracle.Require(t)
	dir := t.TempDir()
	js := startJS(t, "events", "J")
	for i := range 3 {
		js.Do(oracle.Cmd{"op": "emit", "event": "msg", "args": []any{i, "é😀", map[string]any{"n": nil}}})
	}
	js.Do(oracle.Cmd{"op": "save", "path": filepath.Join(dir, "js.txt")})
	e := events.New("G")
	if err := LoadFile(filepath.Join(dir, "js.txt"), e.Replica); err != nil {
		t.Fatal(err)
	}
	fromJS := dumpJS(t, js)
	sameJSState(t, "Go loading JavaScript's events", jsState{Clock: fromJS.Clock, History: fromJS.History}, goState(t, e.Replica, nil))

	for i := range 3 {
		if err := e.Emit("other", "go", i); err != nil {
			t.Fatal(err)
		}
	}
	if err := SaveFile(filepath.Join(dir, "go.txt"), e.Replica); err != nil {
		t.Fatal(err)
	}
	r := startJS(t, "events", "R")
	if loaded := r.Do(oracle.Cmd{"op": "load", "path": filepath.Join(dir, "go.txt")}); string(loaded.Fields["sync"]) != "true" {
		t.Fatalf("JavaScript load: %s", loaded.Line)
	}
	sameJSState(t, "JavaScript loading Go's events", goState(t, e.Replica, nil), dumpJS(t, r))
}

// The durable log loads in JavaScript as it is after a crash (no "SYNC":
// the write stream applies everything but never syncs) and after Close
// (a complete persisted stream).
func TestInteropLogLoadsInJS(t *testing.T) {
	oracle.Require(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.log")
	m := model.New("G")
	l := openLog(t, path, m.Replica, Options{CompactMinSize: 2048})
	peer := model.New("P")
	<-connect(t, m.Replica, peer.Replica)
	for i := range 100 {
		set(t, m, fmt.Sprintf("k%d", i%30), map[string]any{"i": i, "s": "ü😀"})
		if i%10 == 0 {
			set(t, peer, fmt.Sprintf("p%d", i), i)
		}
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed.log")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(crashed, data, 0o666)
	want := goState(t, m.Replica, m)
	want.Clock = historyClock(m.Replica)
	if l.Stats().Compactions == 0 {
		t.Fatal("the log was not compacted: the test should cover a compacted file")
	}

	p := startJS(t, "model", "R")
	loaded := p.Do(oracle.Cmd{"op": "load", "path": crashed})
	if string(loaded.Fields["sync"]) != "false" || string(loaded.Fields["closed"]) != "true" || string(loaded.Fields["errors"]) != "[]" {
		t.Fatalf("JavaScript load of an unclosed log: %s", loaded.Line)
	}
	sameJSState(t, "JavaScript loading an unclosed log", want, dumpJS(t, p))

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	p2 := startJS(t, "model", "R2")
	loaded = p2.Do(oracle.Cmd{"op": "load", "path": path})
	if string(loaded.Fields["sync"]) != "true" || string(loaded.Fields["errors"]) != "[]" {
		t.Fatalf("JavaScript load of a closed log: %s", loaded.Line)
	}
	sameJSState(t, "JavaScript loading a closed log", want, dumpJS(t, p2))
}

// The README's way to persist (a tailing read stream piped to a file: the
// history, "SYNC", then live updates) gives a file a Log opens and goes on
// with; JavaScript then loads what Go appended.
func TestInteropJSLiveFileOpensInGo(t *testing.T) {
	oracle.Require(t)
	path := filepath.Join(t.TempDir(), "live.txt")
	js := startJS(t, "model", "J")
	js.Do(oracle.Cmd{"op": "set", "key": "before", "value": "ü"})
	js.Do(oracle.Cmd{"op": "saveLive", "path": path})
	for i := range 5 {
		js.Do(oracle.Cmd{"op": "set", "key": fmt.Sprint("live-", i), "value": i})
	}
	js.Do(oracle.Cmd{"op": "dispose"})
	fromJS := dumpJS(t, js)

	id, err := ReadID(path)
	if err != nil || id != "J" {
		t.Fatalf("ReadID = %q, %v", id, err)
	}
	m := model.New(id)
	l := openLog(t, path, m.Replica, Options{})
	sameJSState(t, "Go opening JavaScript's live file", fromJS, goState(t, m.Replica, m))
	set(t, m, "from-go", []any{1, "два"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	r := startJS(t, "model", "R")
	if loaded := r.Do(oracle.Cmd{"op": "load", "path": path}); string(loaded.Fields["errors"]) != "[]" {
		t.Fatalf("JavaScript load: %s", loaded.Line)
	}
	sameJSState(t, "JavaScript loading the file Go went on with", goState(t, m.Replica, m), dumpJS(t, r))
}
