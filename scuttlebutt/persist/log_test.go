package persist

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

func openLog(t testing.TB, path string, r *scuttlebutt.Replica, opts Options) *Log {
	t.Helper()
	l, err := Open(path, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func set(t testing.TB, m *model.Model, key string, v any) {
	t.Helper()
	if err := m.Set(key, v); err != nil {
		t.Fatal(err)
	}
}

// A new log starts with a header line; a Set is in the file when it
// returns; Close adds "SYNC"; the file then loads as a persisted stream,
// and reopening it removes the "SYNC" and appends after the updates.
func TestLogLifecycle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	m := model.New("A")
	l := openLog(t, path, m.Replica, Options{})
	if got := fileLines(t, path); !slices.Equal(got, []string{`{"id":"A","clock":{}}`, ""}) {
		t.Fatalf("new file %q, want a header line", got)
	}
	set(t, m, "k", "v1")
	lines := fileLines(t, path)
	if len(lines) != 3 || lines[1] != historyLines(m.Replica)[0] {
		t.Fatalf("after Set the file is %q, want header and the update", lines)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if lines := fileLines(t, path); len(lines) != 4 || lines[2] != `"SYNC"` {
		t.Fatalf("closed file %q, want header, update, SYNC", lines)
	}
	set(t, m, "after-close", 1) // the replica goes on without the log
	if lines := fileLines(t, path); len(lines) != 4 {
		t.Fatalf("a Set after Close changed the file: %q", lines)
	}

	id, err := ReadID(path)
	if err != nil || id != "A" {
		t.Fatalf("ReadID = %q, %v", id, err)
	}
	m2 := model.New(id)
	l2 := openLog(t, path, m2.Replica, Options{})
	if st := l2.Stats(); st.Loaded != 1 || st.Truncated != 0 {
		t.Fatalf("reopened: %+v, want 1 update loaded, nothing truncated", st)
	}
	if v, _ := m2.Get("k"); string(v) != `"v1"` {
		t.Fatalf("reopened k = %s", v)
	}
	set(t, m2, "k2", "v2")
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}
	lines = fileLines(t, path)
	if len(lines) != 5 || lines[3] != `"SYNC"` || !strings.HasPrefix(lines[2], `[["k2","v2"],`) {
		t.Fatalf("file after the second session %q, want header, k, k2, one SYNC", lines)
	}
	m3 := model.New("X")
	if err := LoadFile(path, m3.Replica); err != nil {
		t.Fatal(err)
	}
	if got, _ := m3.MarshalJSON(); string(got) != `{"k":"v1","k2":"v2"}` {
		t.Fatalf("loaded %s", got)
	}
}

// connect joins two replicas with an in-memory connection until the test
// ends.
func connect(t testing.TB, a, b *scuttlebutt.Replica) (synced <-chan struct{}) {
	t.Helper()
	ca, cb := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	sa := a.NewStream()
	var wg sync.WaitGroup
	wg.Go(func() { sa.Serve(ctx, ca) })
	wg.Go(func() { b.ServeConn(ctx, cb) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return sa.Synced()
}

// Updates from peers are written by the log's flusher without a local
// change, and Replica.Sync waits for them.
func TestLogRecordsRemoteUpdates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	a := model.New("A")
	l := openLog(t, path, a.Replica, Options{})
	b := model.New("B")
	set(t, b, "before", 1)
	<-connect(t, a.Replica, b.Replica)
	for i := range 50 {
		set(t, b, fmt.Sprintf("k%d", i), i)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(fileLines(t, path)) < 1+51+1 {
		if time.Now().After(deadline) {
			t.Fatalf("the flusher wrote %d lines of 51 remote updates", len(fileLines(t, path))-2)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := a.Sync(); err != nil {
		t.Fatal(err)
	}
	if st := l.Stats(); st.Records != 51 {
		t.Fatalf("recorded %d updates, want 51", st.Records)
	}
	checkMonotonic(t, []byte(strings.Join(fileLines(t, path), "\n")))
	c := model.New("C")
	if err := LoadFile(path, c.Replica); err != nil {
		t.Fatal(err)
	}
	sameState(t, b, c)
}

// A crash can cut the last write anywhere: Open cuts the torn line, never
// applies it, and keeps every complete line; the file then goes on.
func TestLogTornTail(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src.log")
	m := model.New("A")
	l := openLog(t, src, m.Replica, Options{})
	for i := range 5 {
		set(t, m, fmt.Sprintf("k%d", i), map[string]any{"i": i, "s": "é😀"})
	}
	full, err := os.ReadFile(src) // what a crash now leaves: every Set is durable
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	lastTwo := bytes.LastIndexByte(full[:len(full)-1], '\n') + 1
	prevEnd := bytes.LastIndexByte(full[:lastTwo-1], '\n') + 1
	for cut := prevEnd; cut <= len(full); cut++ {
		data := full[:cut]
		whole := data[:bytes.LastIndexByte(data, '\n')+1]
		path := filepath.Join(dir, fmt.Sprintf("cut%d.log", cut))
		if err := os.WriteFile(path, data, 0o666); err != nil {
			t.Fatal(err)
		}
		want := model.New("W")
		if err := Load(bytes.NewReader(whole), want.Replica); err != nil {
			t.Fatal(err)
		}
		got := model.New("A")
		l, err := Open(path, got.Replica, Options{})
		if err != nil {
			t.Fatalf("cut at %d: %v", cut, err)
		}
		if st := l.Stats(); st.Truncated != int64(len(data)-len(whole)) {
			t.Fatalf("cut at %d: truncated %d bytes, the torn tail is %d", cut, st.Truncated, len(data)-len(whole))
		}
		sameState(t, want, got)
		if onDisk, _ := os.ReadFile(path); !bytes.Equal(onDisk, whole) {
			t.Fatalf("cut at %d: file after Open is %q, want %q", cut, onDisk, whole)
		}
		set(t, got, "next", cut)
		l.Close()
		again := model.New("A")
		if err := LoadFile(path, again.Replica); err != nil {
			t.Fatalf("cut at %d: reload: %v", cut, err)
		}
		sameState(t, got, again)
	}
}

// Invalid lines at the end (a torn write) are cut; an invalid line
// followed by valid ones is damage, and Open leaves the file alone; so it
// does with a file that has no valid line.
func TestLogDamage(t *testing.T) {
	dir := t.TempDir()
	const head = `{"id":"A","clock":{}}` + "\n" + `[["k",1],5,"A"]` + "\n"
	for _, tc := range []struct {
		name, file string
		err        error
		truncated  int64
	}{
		{"garbage tail", head + "\x00\x00\x00\n\x00\x00", nil, 6},
		{"SYNC then torn", head + `"SYNC"` + "\n" + `[["j",`, nil, 6},
		{"blank last line", head + "\n", nil, 1},
		{"damage in the middle", head + "garbage\n" + `[["j",2],6,"A"]` + "\n", ErrCorrupt, 0},
		{"not a log", "hello\n", ErrCorrupt, 0},
		{"not a log, no newline", "hello", ErrCorrupt, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			os.WriteFile(path, []byte(tc.file), 0o666)
			m := model.New("A")
			l, err := Open(path, m.Replica, Options{})
			if tc.err != nil {
				if !errors.Is(err, tc.err) {
					t.Fatalf("Open = %v, want %v", err, tc.err)
				}
				if data, _ := os.ReadFile(path); string(data) != tc.file {
					t.Fatalf("Open changed a damaged file to %q", data)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			if st := l.Stats(); st.Truncated != tc.truncated {
				t.Fatalf("truncated %d, want %d", st.Truncated, tc.truncated)
			}
			if data, _ := os.ReadFile(path); string(data) != head {
				t.Fatalf("file after Open %q, want %q", data, head)
			}
		})
	}
}

// An empty file gets a header; a leftover temporary file of a compaction
// is removed; updates the replica held before Open are written.
func TestLogOpenCases(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.log")
	os.WriteFile(path, nil, 0o666)
	os.WriteFile(path+".tmp", []byte("half a snapshot"), 0o666)
	m := richModel(t, "A")
	l := openLog(t, path, m.Replica, Options{})
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the temporary file is still there: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	checkMonotonic(t, data)
	got := model.New("A")
	openLog(t, path, got.Replica, Options{})
	sameState(t, m, got)
}

// Concurrent Sets share writes and fsyncs (group commit), and every one of
// them is in the file.
func TestLogGroupCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	m := model.New("A")
	l := openLog(t, path, m.Replica, Options{})
	const setters, each = 32, 20
	var wg sync.WaitGroup
	for g := range setters {
		wg.Go(func() {
			for i := range each {
				if err := m.Set(fmt.Sprintf("g%d-%d", g, i), i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := l.Stats()
	t.Logf("%d sets by %d goroutines: %d fsyncs", st.Records, setters, st.Syncs)
	if st.Records != setters*each || st.Syncs >= st.Records {
		t.Fatalf("%+v: want %d records in fewer fsyncs", st, setters*each)
	}
	l.Close()
	got := model.New("A")
	if err := LoadFile(path, got.Replica); err != nil {
		t.Fatal(err)
	}
	if got.Len() != setters*each {
		t.Fatalf("the file holds %d keys, want %d", got.Len(), setters*each)
	}
}

// A Model's log is compacted when it grows: the file shrinks to about the
// history, stays a valid persisted stream, and loads to the same state.
func TestLogCompactionShrinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	m := model.New("A")
	l := openLog(t, path, m.Replica, Options{CompactMinSize: 16 << 10})
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	for round := range 60 {
		for k := range 20 {
			set(t, m, fmt.Sprintf("key-%d", k), round)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for l.Stats().Compactions == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	st := l.Stats()
	var saved bytes.Buffer
	Save(&saved, m.Replica)
	t.Logf("1200 sets over 20 keys: %d compactions, file %d bytes, history %d bytes", st.Compactions, st.Size, saved.Len())
	if st.Compactions == 0 || st.Size > 2*(16<<10) {
		t.Fatalf("%+v: want compactions and a file under %d bytes", st, 2*(16<<10))
	}
	data, _ := os.ReadFile(path)
	if int64(len(data)) != st.Size {
		t.Fatalf("Stats.Size %d, file %d bytes", st.Size, len(data))
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("compaction changed the file's mode from 0600 to %v", fi.Mode())
	}
	checkMonotonic(t, data)
	l.Close()
	got := model.New("A")
	openLog(t, path, got.Replica, Options{})
	sameState(t, m, got)
}

// Compactions running while many goroutines set keys and a peer sends
// updates lose nothing: every acknowledged value is in the file, with no
// duplicate or out-of-order line.
func TestLogCompactionConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	m := model.New("A")
	for i := range 20000 { // so that a snapshot takes a while
		m.Apply(scuttlebutt.Update{Change: json.RawMessage(fmt.Sprintf(`["old-%d",%d]`, i, i)), Timestamp: float64(i + 1), Source: "OLD"})
	}
	l := openLog(t, path, m.Replica, Options{CompactRatio: -1})
	peer := model.New("P")
	<-connect(t, m.Replica, peer.Replica)
	var stop atomic.Bool
	var sets atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				if err := m.Set(fmt.Sprintf("g%d-%d", g, i%30), i); err != nil {
					t.Error(err)
					return
				}
				sets.Add(1)
			}
		})
	}
	wg.Go(func() {
		for i := 0; !stop.Load(); i++ {
			peer.Set(fmt.Sprintf("peer-%d", i%50), i)
			time.Sleep(100 * time.Microsecond)
		}
	})
	for range 15 {
		time.Sleep(3 * time.Millisecond)
		if err := l.Compact(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d sets during 15 compactions", sets.Load())
	if sets.Load() < 100 {
		t.Fatalf("only %d sets ran during the compactions", sets.Load())
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	checkMonotonic(t, data)
	got := model.New("A")
	if err := Load(bytes.NewReader(data), got.Replica); err != nil {
		t.Fatal(err)
	}
	sameState(t, m, got)
	if st := l.Stats(); st.Compactions != 16 { // one by Open, for the updates held before
		t.Fatalf("%d compactions, want 16", st.Compactions)
	}
}

// Events keeps every event, so compaction does not shrink its log, but
// keeps all of it; with Retain, compaction does shrink it.
func TestLogEventsCompaction(t *testing.T) {
	for _, retain := range []int{0, 10} {
		t.Run(fmt.Sprint("retain=", retain), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			e := events.New("E")
			e.Retain(retain)
			l := openLog(t, path, e.Replica, Options{CompactRatio: -1})
			for i := range 200 {
				if err := e.Emit("tick", i); err != nil {
					t.Fatal(err)
				}
			}
			before := l.Stats().Size
			if err := l.Compact(); err != nil {
				t.Fatal(err)
			}
			after := l.Stats().Size
			t.Logf("200 events, retain %d: %d bytes before compaction, %d after", retain, before, after)
			switch {
			case retain == 0 && after < before*9/10:
				t.Fatalf("compaction shrank an event log from %d to %d bytes", before, after)
			case retain > 0 && after > before/5:
				t.Fatalf("compaction of a retained log: %d to %d bytes", before, after)
			}
			l.Close()
			got := events.New("E")
			if err := LoadFile(path, got.Replica); err != nil {
				t.Fatal(err)
			}
			if w, g := historyLines(e.Replica), historyLines(got.Replica); !slices.Equal(w, g) {
				t.Fatalf("reloaded %d events, want %d", len(g), len(w))
			}
		})
	}
}

// faultyFile fails writes or fsyncs once armed.
type faultyFile struct {
	file
	failWrite, failSync *atomic.Bool
}

var errInjected = errors.New("injected fault")

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.failWrite.Load() {
		n, _ := f.file.Write(p[:len(p)/2]) // a torn write
		return n, errInjected
	}
	return f.file.Write(p)
}

func (f *faultyFile) Sync() error {
	if f.failSync.Load() {
		return errInjected
	}
	return f.file.Sync()
}

// A failed write or fsync fails the Set, and every later one: the log is
// not trusted again. Reopening keeps every acknowledged change and cuts
// the torn line.
func TestLogFaults(t *testing.T) {
	for _, fault := range []string{"write", "fsync"} {
		t.Run(fault, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "doc.log")
			var failWrite, failSync atomic.Bool
			m := model.New("A")
			l := openLog(t, path, m.Replica, Options{wrap: func(f file) file {
				return &faultyFile{file: f, failWrite: &failWrite, failSync: &failSync}
			}})
			set(t, m, "ok", 1)
			if fault == "write" {
				failWrite.Store(true)
			} else {
				failSync.Store(true)
			}
			if err := m.Set("lost", 2); !errors.Is(err, errInjected) {
				t.Fatalf("Set with a failing %s = %v, want the fault", fault, err)
			}
			failWrite.Store(false)
			failSync.Store(false)
			if err := m.Set("after", 3); !errors.Is(err, errInjected) {
				t.Fatalf("Set after a failure = %v, want the fault again", err)
			}
			if err := l.Close(); !errors.Is(err, errInjected) {
				t.Fatalf("Close = %v, want the fault", err)
			}
			got := model.New("A")
			openLog(t, path, got.Replica, Options{})
			if v, ok := got.Get("ok"); !ok || string(v) != "1" {
				t.Fatalf("acknowledged key lost: %s", v)
			}
		})
	}
}

// Close abandons a compaction in progress and removes its temporary file.
func TestLogCloseDuringCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "doc.log")
	m := model.New("A")
	for i := range 20000 {
		m.Apply(scuttlebutt.Update{Change: json.RawMessage(fmt.Sprintf(`["k%d",%d]`, i, i)), Timestamp: float64(i + 1), Source: "P"})
	}
	l := openLog(t, path, m.Replica, Options{CompactRatio: -1})
	done := make(chan error, 1)
	go func() { done <- l.Compact() }()
	time.Sleep(time.Millisecond)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, context.Canceled) {
		t.Fatalf("Compact = %v", err)
	}
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("temporary file left: %v", err)
	}
	got := model.New("A")
	if err := LoadFile(path, got.Replica); err != nil {
		t.Fatal(err)
	}
	sameState(t, m, got)
}
