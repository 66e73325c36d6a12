package persist

// The fsync tests: random workloads run on a vfs.MemFS, which remembers
// what each fsync made durable. Before every file system operation the
// test takes a crash clone (only what was durable, plus a random part of
// each file's unsynced tail: a torn write), and afterwards it reopens a
// log from every clone and checks that each change acknowledged before the
// clone is there, that no line is torn in the middle of the file, and that
// the reopened log appends and closes cleanly. A missing Sync of a file or
// of a directory loses an acknowledged change in some clone; the SIGKILL
// test (crash_test.go) cannot see that, as the kernel keeps what the
// process wrote.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

const (
	fsyncDir   = "/data"
	fsyncPath  = fsyncDir + "/doc.log"
	fsyncSeeds = 6   // workloads
	fsyncSteps = 120 // steps per workload
	fsyncLocal = 6   // keys set by the replica itself: l0..l5
	fsyncPeer  = 3   // keys set by a peer "B": p0..p2
)

// ack is the last acknowledged change of a key: its timestamp and its
// value's counter, or a deletion.
type ack struct {
	ts      float64
	n       int
	deleted bool
}

// acks are the changes acknowledged so far. Safe for concurrent use.
type acks struct {
	mu sync.Mutex
	m  map[string]ack
}

func (a *acks) set(key string, v ack) {
	a.mu.Lock()
	a.m[key] = v
	a.mu.Unlock()
}

func (a *acks) snapshot() map[string]ack {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.m)
}

// crashPoint is the file system a crash would have left at one moment,
// and what had been acknowledged before it.
type crashPoint struct {
	fs    *vfs.MemFS
	acked map[string]ack
	op    string // the operation about to run
}

// fsyncRun is one workload.
type fsyncRun struct {
	t      *testing.T
	rng    *rand.Rand
	rngMu  sync.Mutex
	fsys   *vfs.MemFS
	acked  acks
	points []crashPoint
	mu     sync.Mutex // guards points
	n      int        // value counter
	peerTS float64    // the peer's last timestamp
	fail   vfs.Op     // the kind of operation whose failN-th call fails, if failN > 0
	failN  int
	// armed: a compaction called by the workload runs; before it first
	// fsyncs its temporary file, a change is made, which the compaction
	// must carry into the new file in its last step, holding the file.
	armed  atomic.Bool
	during sync.WaitGroup // the change made during a compaction

	m *model.Model
	l *Log

	// Coverage, counted over the run.
	compactions, torn, withTmp, noFile, restarts, failures int
}

func (r *fsyncRun) intN(n int) int {
	r.rngMu.Lock()
	defer r.rngMu.Unlock()
	return r.rng.IntN(n)
}

// injector takes a crash clone before every operation and fails the
// chosen one.
func (r *fsyncRun) injector() func(vfs.Op, string) error {
	fail := func(vfs.Op, string) error { return nil }
	if r.failN > 0 {
		fail = vfs.FailNth(r.fail, r.failN, errInjected)
	}
	fsys := r.fsys
	return func(op vfs.Op, name string) error {
		// What was acknowledged before the clone must be in it.
		acked := r.acked.snapshot()
		p := crashPoint{fs: fsys.CrashCloneTorn(r.intN), acked: acked, op: op.String() + " " + name}
		r.mu.Lock()
		r.points = append(r.points, p)
		r.mu.Unlock()
		if op == vfs.OpSync && name == fsyncPath+".tmp" && r.armed.CompareAndSwap(true, false) {
			// A change while the compaction syncs its temporary file.
			// It is made beside the compaction, not inside this hook: the
			// compaction may be the log's own (automatic) one, and a
			// change waits for the log's sync, which waits for it.
			r.during.Go(func() { r.set("l0", false) }) // a failure fails the Compact too
		}
		return fail(op, name)
	}
}

// open opens the log on the run's file system, retrying once if an
// injected fault fails it.
func (r *fsyncRun) open() {
	r.t.Helper()
	var err error
	for range 2 {
		r.m, r.l, err = openOn(r.fsys, 512, func(stage string) {
			if stage == "swap" { // the compaction holds the file: a change would wait for it
				r.armed.Store(false)
			}
		})
		if err == nil {
			return
		}
		r.failures++
	}
	r.t.Fatalf("open: %v", err)
}

// openOn opens the log at fsyncPath on fsys, with the id of its header,
// compacting it once it has grown past minSize bytes; hook, if not nil, is
// called at each stage of a compaction.
func openOn(fsys vfs.FS, minSize int64, hook func(string)) (*model.Model, *Log, error) {
	id, err := readID(fsys, fsyncPath)
	if errors.Is(err, fs.ErrNotExist) {
		id, err = "A", nil
	}
	if err != nil {
		return nil, nil, err
	}
	m := model.New(id)
	l, err := Open(fsyncPath, m.Replica, Options{fs: fsys, CompactMinSize: minSize, Logger: slog.New(slog.DiscardHandler), hook: hook})
	return m, l, err
}

// close closes the log; once Close has returned without error, the file
// must be a complete persisted stream, durably.
func (r *fsyncRun) close() {
	r.during.Wait()
	st := r.l.Stats()
	r.compactions += st.Compactions
	if err := r.l.Close(); err != nil {
		return
	}
	data, err := vfs.ReadFile(r.fsys.CrashClone(), fsyncPath)
	if err != nil || !bytes.HasSuffix(data, []byte("\n"+syncLine)) {
		r.t.Fatalf("a crash after Close leaves a file that does not end with SYNC: %q, %v", data[max(0, len(data)-40):], err)
	}
}

// restart abandons the process: the log is closed on a file system no one
// will read again, and the run goes on from a crash clone.
func (r *fsyncRun) restart() {
	r.restarts++
	clone := r.fsys.CrashCloneTorn(r.intN)
	r.fsys.SetInjector(nil)
	r.close()
	r.fsys = clone
	r.fsys.SetInjector(r.injector())
	r.open()
}

// value returns the next value to set, with its counter.
func (r *fsyncRun) value() (int, json.RawMessage) {
	r.rngMu.Lock()
	defer r.rngMu.Unlock()
	r.n++
	return r.n, json.RawMessage(fmt.Sprintf(`{"n":%d,"s":"ü😀"}`, r.n))
}

// set sets (or deletes) a local key and records the acknowledgment.
func (r *fsyncRun) set(key string, del bool) error {
	n, v := r.value()
	if del {
		v = json.RawMessage("null")
	}
	change, _ := json.Marshal([]json.RawMessage{json.RawMessage(fmt.Sprintf("%q", key)), v})
	u, err := r.m.LocalUpdate(change)
	if err == nil {
		r.acked.set(key, ack{ts: u.Timestamp, n: n, deleted: del})
	}
	return err
}

// step runs one random operation. A failed operation (an injected fault)
// restarts from a crash clone.
func (r *fsyncRun) step() {
	switch k := r.intN(100); {
	case k < 55: // one to three concurrent local changes (group commit)
		var wg sync.WaitGroup
		var failed bool
		var fmu sync.Mutex
		r.rngMu.Lock()
		keys := r.rng.Perm(fsyncLocal)[:1+r.rng.IntN(3)]
		r.rngMu.Unlock()
		for _, i := range keys {
			key := fmt.Sprintf("l%d", i)
			del := r.intN(6) == 0
			wg.Go(func() {
				if err := r.set(key, del); err != nil {
					fmu.Lock()
					failed = true
					fmu.Unlock()
				}
			})
		}
		wg.Wait()
		if failed {
			r.failures++
			r.restart()
		}
	case k < 75: // a peer's updates, acknowledged after Replica.Sync
		batch := map[string]ack{}
		for range 1 + r.intN(3) {
			key := fmt.Sprintf("p%d", r.intN(fsyncPeer))
			n, v := r.value()
			r.peerTS++
			change, _ := json.Marshal([]json.RawMessage{json.RawMessage(fmt.Sprintf("%q", key)), v})
			r.m.Apply(scuttlebutt.Update{Change: change, Timestamp: r.peerTS, Source: "B"})
			batch[key] = ack{ts: r.peerTS, n: n}
		}
		if err := r.m.Sync(); err != nil {
			r.failures++
			r.restart()
			return
		}
		for k, a := range batch {
			r.acked.set(k, a)
		}
	case k < 82:
		r.armed.Store(true)
		err := r.l.Compact()
		r.armed.Store(false)
		r.during.Wait()
		if err != nil {
			r.failures++
			r.l.mu.Lock()
			failed := r.l.err != nil // a fault after the rename fails the log
			r.l.mu.Unlock()
			if failed {
				r.restart()
			}
		}
	case k < 90: // a clean restart on the same file system
		r.close()
		r.open()
	default:
		r.restart()
	}
}

// check reopens a log from a crash point's file system and checks it.
func (r *fsyncRun) check(i int, p crashPoint) {
	t := r.t
	t.Helper()
	var data []byte
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("crash point %d (before %s): %s\nfiles: %s\n%s", i, p.op, fmt.Sprintf(format, args...), listFiles(p.fs), data)
	}
	data, err := vfs.ReadFile(p.fs, fsyncPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		r.noFile++
		if len(p.acked) > 0 {
			fail("the log file is gone, %d keys were acknowledged", len(p.acked))
		}
	case err != nil:
		fail("%v", err)
	}
	whole := data[:bytes.LastIndexByte(data, '\n')+1]
	if len(whole) < len(data) {
		r.torn++
	}
	if len(whole) > 0 {
		checkMonotonic(t, whole)
	}
	if _, err := p.fs.Stat(fsyncPath + ".tmp"); err == nil {
		r.withTmp++
	}
	m, l, err := openOn(p.fs, 1<<20, nil)
	if err != nil {
		fail("reopen: %v", err)
	}
	if got, want := l.Stats().Truncated, int64(len(data)-len(whole)); got != want {
		fail("Open cut %d bytes, the torn tail is %d", got, want)
	}
	checkAcked(m, p.acked, fail)
	if err := m.Set("after-crash", 1); err != nil {
		fail("set after reopening: %v", err)
	}
	if err := l.Close(); err != nil {
		fail("close after reopening: %v", err)
	}
	again := model.New("CHECK")
	if err := loadFile(p.fs, fsyncPath, again.Replica); err != nil {
		fail("load after reopening: %v", err)
	}
	sameState(t, m, again)
}

// checkAcked fails unless the model holds every acknowledged change or a
// later one: the latest update of each key in its history is the
// acknowledged one or newer.
func checkAcked(m *model.Model, acked map[string]ack, fail func(string, ...any)) {
	latest := map[string]scuttlebutt.Update{}
	for _, u := range m.History(nil) {
		var kv []json.RawMessage
		var key string
		if json.Unmarshal(u.Change, &kv) != nil || len(kv) != 2 || json.Unmarshal(kv[0], &key) != nil {
			fail("history holds %s", u)
		}
		if old, ok := latest[key]; !ok || u.Timestamp > old.Timestamp {
			latest[key] = u
		}
	}
	for key, a := range acked {
		u, ok := latest[key]
		switch {
		case !ok || u.Timestamp < a.ts:
			fail("%s: acknowledged %+v is missing (latest update: %s)", key, a, u)
		case u.Timestamp > a.ts:
			continue
		}
		var kv [2]struct{ N int }
		json.Unmarshal(u.Change, &kv)
		if got := string(u.Change); a.deleted != strings.HasSuffix(got, ",null]") || !a.deleted && kv[1].N != a.n {
			fail("%s: acknowledged %+v, the update with its timestamp is %s", key, a, got)
		}
	}
}

func listFiles(fsys vfs.FS) string {
	ents, err := fsys.ReadDir(fsyncDir)
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range ents {
		fi, _ := e.Info()
		out = append(out, fmt.Sprintf("%s (%d bytes)", e.Name(), fi.Size()))
	}
	return fmt.Sprint(out)
}

// newFsyncRun prepares a MemFS whose data directory is durable.
func newFsyncRun(t *testing.T, seed uint64) *fsyncRun {
	r := &fsyncRun{t: t, rng: rand.New(rand.NewPCG(seed, 17)), fsys: vfs.NewMem(), acked: acks{m: map[string]ack{}}}
	if err := r.fsys.MkdirAll(fsyncDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.fsys.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	return r
}

// faultKinds are the operations a workload may fail.
var faultKinds = []vfs.Op{vfs.OpWrite, vfs.OpSync, vfs.OpSyncDir, vfs.OpRename, vfs.OpCreate, vfs.OpTruncate}

// run opens the log, runs the steps, closes the log, and checks every
// crash point and the end.
func (r *fsyncRun) run(steps int) {
	r.fsys.SetInjector(r.injector())
	r.open()
	for range steps {
		r.step()
	}
	r.fsys.SetInjector(nil)
	r.close()
	r.points = append(r.points, crashPoint{fs: r.fsys.CrashClone(), acked: r.acked.snapshot(), op: "the end"})
	for i, p := range r.points {
		r.check(i, p)
	}
}

// FuzzFsyncCrashPoints runs a short workload of the given seed, failing
// the failN-th operation of a kind, and checks its crash points.
func FuzzFsyncCrashPoints(f *testing.F) {
	f.Add(uint64(1), uint8(0), uint8(0))
	f.Add(uint64(2), uint8(1), uint8(3))
	f.Add(uint64(3), uint8(2), uint8(2))
	f.Add(uint64(4), uint8(3), uint8(1))
	f.Fuzz(func(t *testing.T, seed uint64, kind, failN uint8) {
		r := newFsyncRun(t, seed)
		r.fail, r.failN = faultKinds[int(kind)%len(faultKinds)], int(failN%32)
		r.run(30)
	})
}

// TestFsyncCrashPoints runs random workloads (local changes, concurrent
// ones, a peer's updates, compactions, clean restarts and crashes) and
// checks a log reopened from a crash clone taken before every file system
// operation. Half the workloads also fail one operation of a random kind
// (write, fsync, directory fsync, rename...), after which the process
// restarts from a crash clone.
func TestFsyncCrashPoints(t *testing.T) {
	var total fsyncRun
	points := 0
	for seed := range uint64(fsyncSeeds) {
		t.Run(fmt.Sprint("seed-", seed), func(t *testing.T) {
			r := newFsyncRun(t, seed)
			if seed%2 == 1 {
				r.fail = faultKinds[r.intN(len(faultKinds))]
				r.failN = 1 + r.intN(20)
			}
			r.run(fsyncSteps)
			points += len(r.points)
			total.compactions += r.compactions
			total.torn += r.torn
			total.withTmp += r.withTmp
			total.noFile += r.noFile
			total.restarts += r.restarts
			total.failures += r.failures
		})
	}
	t.Logf("%d crash points: %d with a torn tail, %d with a compaction's temporary file, %d before the log existed; %d compactions, %d restarts from a crash, %d injected failures seen",
		points, total.torn, total.withTmp, total.noFile, total.compactions, total.restarts, total.failures)
	if !t.Failed() && (total.torn == 0 || total.withTmp == 0 || total.compactions == 0 || total.restarts == 0 || total.failures == 0) {
		t.Fatal("the workloads did not reach every case")
	}
}

// SaveFile replaces a file atomically and durably: a crash clone taken
// before any of its operations holds the previous save or the new one,
// whole, and one taken after it returns holds the new one.
func TestFsyncSaveFile(t *testing.T) {
	fsys := vfs.NewMem()
	if err := fsys.MkdirAll(fsyncDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := fsys.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var clones []*vfs.MemFS
	fsys.SetInjector(func(vfs.Op, string) error {
		clones = append(clones, fsys.CrashCloneTorn(rng.IntN))
		return nil
	})
	m := model.New("A")
	var saved []map[string]json.RawMessage // the state of each save
	check := func(c *vfs.MemFS, allowed ...map[string]json.RawMessage) {
		t.Helper()
		got := model.New("CHECK")
		err := loadFile(c, fsyncPath, got.Replica)
		if errors.Is(err, fs.ErrNotExist) && allowed[0] == nil {
			return
		}
		if err != nil {
			t.Fatalf("after %d saves: %v (files %s)", len(saved), err, listFiles(c))
		}
		data, _ := vfs.ReadFile(c, fsyncPath)
		if !bytes.HasSuffix(data, []byte(syncLine)) {
			t.Fatalf("after %d saves: the file does not end with SYNC: %q", len(saved), data)
		}
		if !slices.ContainsFunc(allowed, func(w map[string]json.RawMessage) bool { return maps.EqualFunc(w, got.Snapshot(), jsonRawEqual) }) {
			t.Fatalf("after %d saves: the file holds %v, neither the previous save nor the new one", len(saved), got.Snapshot())
		}
	}
	var prev map[string]json.RawMessage
	for i := range 12 {
		for j := range 1 + rng.IntN(20) {
			if err := m.Set(fmt.Sprintf("k%d", j), map[string]any{"save": i, "😀": j}); err != nil {
				t.Fatal(err)
			}
		}
		clones = clones[:0]
		if err := saveFile(fsys, fsyncPath, m.Replica); err != nil {
			t.Fatal(err)
		}
		now := m.Snapshot()
		for _, c := range clones {
			if prev == nil {
				check(c, nil, now)
			} else {
				check(c, prev, now)
			}
		}
		check(fsys.CrashClone(), now)
		saved = append(saved, now)
		prev = now
	}
	ents, _ := fsys.ReadDir(fsyncDir)
	if len(ents) != 1 {
		t.Fatalf("files left: %s", listFiles(fsys))
	}
}

// The file a Log creates, and each compaction's replacement, survive a
// crash just after Open or Compact returns.
func TestFsyncCreateAndCompact(t *testing.T) {
	r := newFsyncRun(t, 99)
	r.open()
	if _, err := r.fsys.CrashClone().Stat(fsyncPath); err != nil {
		t.Fatalf("the log created by Open is not durable: %v", err)
	}
	for i := range 40 {
		n, v := r.value()
		key := fmt.Sprintf("l%d", i%fsyncLocal)
		if err := r.m.SetRaw(key, v); err != nil {
			t.Fatal(err)
		}
		r.acked.set(key, ack{n: n})
		if i%10 == 9 {
			if err := r.l.Compact(); err != nil {
				t.Fatal(err)
			}
			c := r.fsys.CrashClone()
			m, l, err := openOn(c, 1<<20, nil)
			if err != nil {
				t.Fatal(err)
			}
			checkAcked(m, r.acked.snapshot(), t.Fatalf)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	r.close()
}

// A log that failed outside a write (here the directory fsync after a
// compaction's rename) refuses every later change: Sync must not
// acknowledge a change that Record dropped.
func TestFsyncFailedLogRefusesChanges(t *testing.T) {
	r := newFsyncRun(t, 5)
	r.open()
	defer r.close()
	if err := r.set("l0", false); err != nil {
		t.Fatal(err)
	}
	r.fsys.SetInjector(vfs.FailNth(vfs.OpSyncDir, 1, errInjected))
	if err := r.l.Compact(); !errors.Is(err, errInjected) {
		t.Fatalf("Compact with a failing directory fsync = %v, want the fault", err)
	}
	if err := r.set("l1", false); !errors.Is(err, errInjected) {
		t.Fatalf("Set after the log failed = %v, want the fault", err)
	}
	if err := r.m.Sync(); !errors.Is(err, errInjected) {
		t.Fatalf("Replica.Sync after the log failed = %v, want the fault", err)
	}
}
