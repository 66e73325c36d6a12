package index_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// seqView records every message it sees: seq -> key, and the items of
// each batch.
type seqView struct {
	mu      sync.Mutex
	batches [][]uint64
}

func (s *seqView) spec(version uint32) index.Spec {
	return index.Spec{Name: "seqs", Version: version, Update: func(tx *bolt.Tx, items []store.Item) error {
		b, err := tx.CreateBucketIfNotExists([]byte("seqs"))
		if err != nil {
			return err
		}
		var seqs []uint64
		for _, it := range items {
			if err := b.Put(binary.BigEndian.AppendUint64(nil, it.Seq), []byte(it.Key.String())); err != nil {
				return err
			}
			seqs = append(seqs, it.Seq)
		}
		s.mu.Lock()
		s.batches = append(s.batches, seqs)
		s.mu.Unlock()
		return nil
	}}
}

func (s *seqView) seen() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []uint64
	for _, b := range s.batches {
		all = append(all, b...)
	}
	return all
}

func openStore(t testing.TB, dir string) *store.Store {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// appendFeed appends n messages of a new author.
func appendFeed(t testing.TB, st *store.Store, n int) {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	raws, err := ssbtest.Feed(kp, n, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), raws...); err != nil {
		t.Fatal(err)
	}
}

// running opens the view and runs it until the test's cleanup.
func running(t *testing.T, st *store.Store, dir string, spec index.Spec) *index.View {
	t.Helper()
	v, err := index.Open(st, dir, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, v)
	t.Cleanup(func() {
		stop()
		v.Close()
	})
	return v
}

// run runs v and returns a function that stops it and waits.
func run(t *testing.T, v *index.View) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
}

func waitAll(t *testing.T, v *index.View, st *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := v.Wait(ctx, st.Durable()); err != nil {
		t.Fatal(err)
	}
}

func countBucket(t *testing.T, v *index.View) int {
	t.Helper()
	n := 0
	err := v.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket([]byte("seqs")); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestFollowAndWait(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	appendFeed(t, st, 50)
	sv := &seqView{}
	v := running(t, st, t.TempDir(), sv.spec(1))
	waitAll(t, v, st)
	appendFeed(t, st, 30) // live
	waitAll(t, v, st)
	if n := countBucket(t, v); n != 80 {
		t.Fatalf("view holds %d messages, want 80", n)
	}
	seen := sv.seen()
	for i, s := range seen {
		if s != uint64(i+1) {
			t.Fatalf("item %d has seq %d: not in log order once each", i, s)
		}
	}
	cp := v.Checkpoint()
	last, err := st.GetSeq(80)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Seq != 80 || cp.Key != last.Key || cp.Timestamp != last.Timestamp {
		t.Fatalf("checkpoint %+v, want the 80th message", cp)
	}
	if s := v.Status(); s.Seq != 80 || s.Behind != 0 {
		t.Fatalf("status %+v", s)
	}
	for _, b := range sv.batches {
		if len(b) > index.MaxBatch {
			t.Fatalf("a batch of %d items", len(b))
		}
	}
}

func TestWaitWithoutRun(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	appendFeed(t, st, 3)
	sv := &seqView{}
	v, err := index.Open(st, t.TempDir(), sv.spec(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := v.Wait(ctx, 3); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait before Run: %v, want the context's error", err)
	}
	stop := run(t, v)
	waitAll(t, v, st)
	stop()
	if err := v.Wait(context.Background(), 3); err != nil {
		t.Fatalf("Wait for a seen message after Run: %v", err)
	}
	if err := v.Wait(context.Background(), 4); !errors.Is(err, index.ErrStopped) {
		t.Fatalf("Wait after Run returned: %v, want ErrStopped", err)
	}
	v.Close()
	if err := v.Wait(context.Background(), 3); !errors.Is(err, index.ErrClosed) {
		t.Fatalf("Wait after Close: %v, want ErrClosed", err)
	}
}

// TestResume: a view stopped and opened again goes on from its checkpoint.
func TestResume(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	vdir := t.TempDir()
	appendFeed(t, st, 20)
	sv := &seqView{}
	v, err := index.Open(st, vdir, sv.spec(1), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, v)
	waitAll(t, v, st)
	stop()
	v.Close()

	appendFeed(t, st, 10)
	sv2 := &seqView{}
	v2 := running(t, st, vdir, sv2.spec(1))
	waitAll(t, v2, st)
	seen := sv2.seen()
	if len(seen) != 10 || seen[0] != 21 {
		t.Fatalf("after reopening the view saw %v, want 21..30", seen)
	}
	if n := countBucket(t, v2); n != 30 {
		t.Fatalf("view holds %d, want 30", n)
	}
}

// TestStartsOver: a store swapped under the view, another version, a
// damaged or foreign file: the view starts from the first message.
func TestStartsOver(t *testing.T) {
	cases := map[string]func(t *testing.T, sdir, vdir string) (*store.Store, uint32){
		"store swapped": func(t *testing.T, sdir, _ string) (*store.Store, uint32) {
			if err := os.Remove(filepath.Join(sdir, store.FileName)); err != nil {
				t.Fatal(err)
			}
			st := openStore(t, sdir)
			appendFeed(t, st, 7)
			return st, 1
		},
		"new version": func(t *testing.T, sdir, _ string) (*store.Store, uint32) {
			return openStore(t, sdir), 2
		},
		"truncated file": func(t *testing.T, sdir, vdir string) (*store.Store, uint32) {
			// Cut within the pages in use (bbolt grows a file ahead of them).
			f := filepath.Join(vdir, "seqs.bolt")
			db, err := bolt.Open(f, 0o600, &bolt.Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			var used int64
			db.View(func(tx *bolt.Tx) error { used = tx.Size(); return nil })
			db.Close()
			if err := os.Truncate(f, used/2); err != nil {
				t.Fatal(err)
			}
			return openStore(t, sdir), 1
		},
		"garbage file": func(t *testing.T, sdir, vdir string) (*store.Store, uint32) {
			if err := os.WriteFile(filepath.Join(vdir, "seqs.bolt"), []byte("not a database at all, not even close"), 0o600); err != nil {
				t.Fatal(err)
			}
			return openStore(t, sdir), 1
		},
		"damaged pages": func(t *testing.T, sdir, vdir string) (*store.Store, uint32) {
			f := filepath.Join(vdir, "seqs.bolt")
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for i := 2 * 4096; i < len(b); i += 97 {
				b[i] ^= 0x5a
			}
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			return openStore(t, sdir), 1
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			sdir, vdir := t.TempDir(), t.TempDir()
			st := openStore(t, sdir)
			appendFeed(t, st, 300)
			sv := &seqView{}
			v, err := index.Open(st, vdir, sv.spec(1), nil)
			if err != nil {
				t.Fatal(err)
			}
			stop := run(t, v)
			waitAll(t, v, st)
			stop()
			v.Close()
			st.Close()

			st, version := change(t, sdir, vdir)
			defer st.Close()
			sv2 := &seqView{}
			v2 := running(t, st, vdir, sv2.spec(version))
			waitAll(t, v2, st)
			seen := sv2.seen()
			if len(seen) == 0 || seen[0] != 1 || uint64(len(seen)) != st.Durable() {
				t.Fatalf("the view saw %d messages from %v, want all %d from 1", len(seen), seen[:min(len(seen), 1)], st.Durable())
			}
			if n := countBucket(t, v2); uint64(n) != st.Durable() {
				t.Fatalf("view holds %d, want %d", n, st.Durable())
			}
		})
	}
}

func TestRebuild(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	appendFeed(t, st, 40)
	sv := &seqView{}
	v := running(t, st, t.TempDir(), sv.spec(1))
	waitAll(t, v, st)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := v.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(sv.seen()); n != 80 {
		t.Fatalf("after a rebuild the view saw %d items, want 40 twice", n)
	}
	if n := countBucket(t, v); n != 40 {
		t.Fatalf("view holds %d, want 40", n)
	}
	if s := v.Status(); s.Rebuilds != 1 || s.Seq != 40 {
		t.Fatalf("status %+v", s)
	}
}

// TestUpdateError: a failing update stops Run with its error, and the
// checkpoint does not move past the failed batch.
func TestUpdateError(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	appendFeed(t, st, 5)
	boom := errors.New("boom")
	spec := index.Spec{Name: "fails", Version: 1, Update: func(*bolt.Tx, []store.Item) error { return boom }}
	v, err := index.Open(st, t.TempDir(), spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want boom", err)
	}
	if cp := v.Checkpoint(); cp.Seq != 0 {
		t.Fatalf("checkpoint moved to %d", cp.Seq)
	}
}

func TestInvalidSpec(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	for _, name := range []string{"", "../x", "a/b", "a b"} {
		if _, err := index.Open(st, t.TempDir(), index.Spec{Name: name, Update: func(*bolt.Tx, []store.Item) error { return nil }}, nil); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
}

// TestDamageWhileOpen: a file damaged under the open view makes reads
// fail with ErrDamaged (no crash), and the view rebuilds itself.
func TestDamageWhileOpen(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	appendFeed(t, st, 300)
	vdir := t.TempDir()
	sv := &seqView{}
	v := running(t, st, vdir, sv.spec(1))
	waitAll(t, v, st)
	f, err := os.OpenFile(filepath.Join(vdir, "seqs.bolt"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	garbage := make([]byte, fi.Size()-2*4096)
	for i := range garbage {
		garbage[i] = byte(i*7 + 3)
	}
	if _, err := f.WriteAt(garbage, 2*4096); err != nil {
		t.Fatal(err)
	}
	f.Close()
	err = v.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(_ []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error { return nil })
		})
	})
	if !errors.Is(err, index.ErrDamaged) {
		t.Fatalf("reading a damaged file: %v, want ErrDamaged", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for v.Status().Rebuilds == 0 {
		select {
		case <-v.Changed():
		case <-ctx.Done():
			t.Fatal("the view did not rebuild itself")
		}
	}
	waitAll(t, v, st)
	if n := countBucket(t, v); n != 300 {
		t.Fatalf("after rebuilding the view holds %d, want 300", n)
	}
}

// prepView is seqView split into Prepare and Write: Prepare records each
// part's seqs (and says each is big: Sizer), Write puts them.
type prepView struct {
	mu       sync.Mutex
	prepared [][]uint64
	written  [][]uint64 // per batch, the parts' seqs in order
	size     int        // each part's Size
	fail     error      // Write's error
}

type prepPart struct {
	seqs []uint64
	keys []string
	size int
}

func (p prepPart) Size() int { return p.size }

func (p *prepView) spec() index.Spec {
	return index.Spec{Name: "prep", Version: 1,
		Prepare: func(items []store.Item) (any, error) {
			var part prepPart
			for _, it := range items {
				part.seqs = append(part.seqs, it.Seq)
				part.keys = append(part.keys, it.Key.String())
			}
			part.size = p.size
			p.mu.Lock()
			p.prepared = append(p.prepared, part.seqs)
			p.mu.Unlock()
			return part, nil
		},
		Write: func(tx *bolt.Tx, parts []any) error {
			if p.fail != nil {
				return p.fail
			}
			b, err := tx.CreateBucketIfNotExists([]byte("seqs"))
			if err != nil {
				return err
			}
			var batch []uint64
			for _, a := range parts {
				part := a.(prepPart)
				for i, seq := range part.seqs {
					if err := b.Put(binary.BigEndian.AppendUint64(nil, seq), []byte(part.keys[i])); err != nil {
						return err
					}
				}
				batch = append(batch, part.seqs...)
			}
			p.mu.Lock()
			p.written = append(p.written, batch)
			p.mu.Unlock()
			return nil
		}}
}

// TestPrepareWrite: a view with Prepare and Write sees every message once,
// in log order, in batches no larger than MaxBatch (nor MaxBatchBytes of
// prepared parts), the parts of a batch given to Write in order.
func TestPrepareWrite(t *testing.T) {
	for _, size := range []int{0, index.MaxBatchBytes / 3} {
		st := openStore(t, t.TempDir())
		appendFeed(t, st, 700)
		pv := &prepView{size: size}
		v := running(t, st, t.TempDir(), pv.spec())
		waitAll(t, v, st)
		for range 3 {
			appendFeed(t, st, 400) // live
		}
		waitAll(t, v, st)
		if n := countBucket(t, v); n != 1900 {
			t.Fatalf("view holds %d messages, want 1900", n)
		}
		pv.mu.Lock()
		var all []uint64
		for _, b := range pv.written {
			if len(b) > index.MaxBatch {
				t.Fatalf("a batch of %d items", len(b))
			}
			all = append(all, b...)
		}
		var prepared []uint64
		for _, p := range pv.prepared {
			prepared = append(prepared, p...)
		}
		if size > 0 && len(pv.written) < len(pv.prepared)/3 {
			t.Errorf("%d batches of %d parts of %d bytes each: more than %d bytes in a batch", len(pv.written), len(pv.prepared), size, index.MaxBatchBytes)
		}
		pv.mu.Unlock()
		for i, s := range all {
			if s != uint64(i+1) {
				t.Fatalf("item %d has seq %d: not in log order once each", i, s)
			}
		}
		if len(prepared) != len(all) {
			t.Fatalf("%d prepared, %d written", len(prepared), len(all))
		}
		st.Close()
	}
}

// TestWriteError: a failing Write stops Run with its error, and the
// checkpoint does not move.
func TestWriteError(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	appendFeed(t, st, 5)
	boom := errors.New("boom")
	pv := &prepView{fail: boom}
	v, err := index.Open(st, t.TempDir(), pv.spec(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	if err := v.Run(context.Background()); !errors.Is(err, boom) {
		t.Fatalf("Run: %v, want boom", err)
	}
	if cp := v.Checkpoint(); cp.Seq != 0 {
		t.Fatalf("checkpoint moved to %d", cp.Seq)
	}
}

// TestSpecUpdateOrPrepare: a spec has Update, or Prepare and Write.
func TestSpecUpdateOrPrepare(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	update := func(*bolt.Tx, []store.Item) error { return nil }
	prepare := func([]store.Item) (any, error) { return nil, nil }
	write := func(*bolt.Tx, []any) error { return nil }
	for i, spec := range []index.Spec{
		{Name: "x"},
		{Name: "x", Update: update, Prepare: prepare, Write: write},
		{Name: "x", Prepare: prepare},
		{Name: "x", Write: write},
		{Name: "x", Update: update, Write: write},
	} {
		if _, err := index.Open(st, t.TempDir(), spec, nil); err == nil {
			t.Errorf("spec %d accepted", i)
		}
	}
}
