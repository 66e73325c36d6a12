package vfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"testing"
)

var errInjected = errors.New("injected")

func mustWrite(t *testing.T, f File, s string) {
	t.Helper()
	if _, err := io.WriteString(f, s); err != nil {
		t.Fatal(err)
	}
}

func mustRead(t *testing.T, fsys FS, name string) string {
	t.Helper()
	data, err := ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// FailNth fails exactly the nth operation of its kind, which changes
// nothing; the others go through.
func TestFailNth(t *testing.T) {
	m := NewMem()
	f, err := Create(m, "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m.SetInjector(FailNth(OpWrite, 2, errInjected))
	for i, want := range []error{nil, errInjected, nil} {
		if _, err := fmt.Fprint(f, i); !errors.Is(err, want) {
			t.Fatalf("write %d: %v, want %v", i+1, err, want)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatalf("a sync is not a write: %v", err)
	}
	if got := mustRead(t, m, "/f"); got != "02" {
		t.Fatalf("file holds %q, want the first and third writes", got)
	}
	m.SetInjector(nil)
	if _, err := fmt.Fprint(f, 3); err != nil {
		t.Fatal(err)
	}
}

// The injector runs before the operation and without the lock: it can
// take a crash clone, which shows the state just before.
func TestInjectorCrashClone(t *testing.T) {
	m := NewMem()
	var clones []*MemFS
	var ops []string
	m.SetInjector(func(op Op, name string) error {
		clones = append(clones, m.CrashClone())
		ops = append(ops, op.String()+" "+name)
		return nil
	})
	f, err := Create(m, "/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "x")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want := []string{"create /f", "write /f", "sync /f", "syncdir /"}
	if fmt.Sprint(ops) != fmt.Sprint(want) {
		t.Fatalf("ops %v, want %v", ops, want)
	}
	for i, c := range clones {
		if _, err := c.Stat("/f"); err == nil {
			t.Fatalf("clone before %s holds /f", ops[i])
		}
	}
	if got := mustRead(t, m.CrashClone(), "/f"); got != "x" {
		t.Fatalf("after the directory sync, /f holds %q", got)
	}
}

// CrashCloneTorn keeps a prefix of each file's unsynced tail, and each
// directory's entries as of its last sync or now.
func TestCrashCloneTorn(t *testing.T) {
	m := NewMem()
	f, err := Create(m, "/f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mustWrite(t, f, "abc")
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "defgh")
	g, err := Create(m, "/g")
	if err != nil {
		t.Fatal(err)
	}
	g.Close()
	for k := range 6 {
		for dir := range 2 {
			keep := func(n int) int {
				switch n {
				case 1: // /g: nothing unsynced
					return 0
				case 2:
					return dir
				}
				if n != 6 {
					t.Fatalf("keep(%d), want keep(6): 5 unsynced bytes", n)
				}
				return k
			}
			c := m.CrashCloneTorn(keep)
			if got, want := mustRead(t, c, "/f"), "abcdefgh"[:3+k]; got != want {
				t.Fatalf("keep %d: /f holds %q, want %q", k, got, want)
			}
			if _, err := c.Stat("/g"); (err == nil) != (dir == 1) {
				t.Fatalf("directory kept now = %v: stat /g: %v", dir == 1, err)
			}
		}
	}
	// A rewrite inside the synced part: the new bytes up to the cut, the
	// synced ones after it.
	if _, err := f.WriteAt([]byte("XY"), 0); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(2); err != nil {
		t.Fatal(err)
	}
	c := m.CrashCloneTorn(func(n int) int { return n - 1 })
	if got := mustRead(t, c, "/f"); got != "XYc" {
		t.Fatalf("/f holds %q, want the new prefix and the synced rest", got)
	}
}

// A clone shares nothing with its original.
func TestCrashCloneIndependent(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Create(m, "/d/f")
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, f, "one")
	f.Sync()
	m.SyncDir("/d")
	m.SyncDir("/")
	c := m.CrashClone()
	g, err := c.OpenFile("/d/f", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, g, "-clone")
	g.Close()
	mustWrite(t, f, "-orig")
	f.Close()
	if err := c.Rename("/d/f", "/d/h"); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, m, "/d/f"); got != "one-orig" {
		t.Fatalf("original holds %q", got)
	}
	if got := mustRead(t, c, "/d/h"); got != "one-clone" {
		t.Fatalf("clone holds %q", got)
	}
	// Everything in a clone is durable; what is done to it after, not.
	if got := mustRead(t, c.CrashClone(), "/d/f"); got != "one" {
		t.Fatalf("the clone's clone has /d/f = %q, want %q (the append and the rename were not synced)", got, "one")
	}
}

// Writers, syncs and crash clones run concurrently (for the race
// detector); each clone holds, for each file, a prefix of what was synced.
func TestMemConcurrent(t *testing.T) {
	m := NewMem()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			name := fmt.Sprintf("/f%d", w)
			f, err := Create(m, name)
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			for i := range 200 {
				fmt.Fprintf(f, "%d,", i)
				if i%7 == 0 {
					f.Sync()
					m.SyncDir("/")
				}
			}
		})
	}
	for range 50 {
		c := m.CrashClone()
		ents, err := c.ReadDir("/")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			data := mustRead(t, c, "/"+e.Name())
			var want []byte
			for i := 0; len(want) < len(data); i++ {
				want = fmt.Appendf(want, "%d,", i)
			}
			if string(want) != data {
				t.Fatalf("%s holds %q, not a prefix of what was written", e.Name(), data)
			}
		}
	}
	wg.Wait()
}

// WriteFile leaves the old contents or the new after a crash at any step,
// and the new once it returned.
func TestWriteFileAtomic(t *testing.T) {
	m := NewMem()
	if err := m.MkdirAll("/d", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := m.SyncDir("/"); err != nil { // the directory itself is durable
		t.Fatal(err)
	}
	if err := WriteFile(m, "/d/f", []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	var clones []*MemFS
	m.SetInjector(func(op Op, name string) error {
		clones = append(clones, m.CrashClone())
		return nil
	})
	if err := WriteFile(m, "/d/f", []byte("new contents"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.SetInjector(nil)
	clones = append(clones, m.CrashClone())
	for i, c := range clones {
		b, err := ReadFile(c, "/d/f")
		if err != nil || string(b) != "old" && string(b) != "new contents" {
			t.Errorf("crash at step %d: %q, %v", i, b, err)
		}
	}
	if b, _ := ReadFile(clones[len(clones)-1], "/d/f"); string(b) != "new contents" {
		t.Errorf("after WriteFile returned, a crash leaves %q", b)
	}
}
