package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/ssb/refs"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		crashChild(dir)
		return
	}
	goleak.VerifyTestMain(m)
}

func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func openStore(t testing.TB, opts ...Option) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), append([]Option{WithLogger(quiet())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randBytes(seed uint64, n int) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(n), byte(n >> 8), byte(n >> 16)})
	rng.Read(b)
	return b
}

func idOf(b []byte) refs.Blob { return refs.NewBlob(sha256.Sum256(b)) }

func readAll(t testing.TB, rc io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tmpFiles lists the temporary files of the store in dir.
func tmpFiles(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(filepath.Join(dir, tmpDir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func listAll(t testing.TB, s *Store) map[refs.Blob]int64 {
	t.Helper()
	got := map[refs.Blob]int64{}
	for info, err := range s.List(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		got[info.ID] = info.Size
	}
	return got
}

func TestRoundTrip(t *testing.T) {
	s := openStore(t)
	want := map[refs.Blob]int64{}
	for i, n := range []int{1, 100, ChunkSize - 1, ChunkSize, ChunkSize + 1, 3*ChunkSize + 7, DefaultMax} {
		data := randBytes(uint64(i), n)
		id, size, err := s.Add(t.Context(), bytes.NewReader(data), nil)
		if err != nil {
			t.Fatalf("add %d bytes: %v", n, err)
		}
		if id != idOf(data) || size != int64(n) {
			t.Fatalf("add %d bytes: got %s size %d, want %s size %d", n, id, size, idOf(data), n)
		}
		want[id] = size
		rc, gotSize, err := s.Get(id)
		if got := readAll(t, rc, err); !bytes.Equal(got, data) || gotSize != int64(n) {
			t.Fatalf("get %d bytes: got %d bytes (size %d), not the ones added", n, len(got), gotSize)
		}
		if has, err := s.Has(id); !has || err != nil {
			t.Fatalf("has: %v %v", has, err)
		}
		if sz, err := s.Size(id); sz != int64(n) || err != nil {
			t.Fatalf("size: %d %v", sz, err)
		}
		for _, r := range [][2]int64{{0, 1}, {1, int64(n)}, {int64(n) / 3, int64(n) / 2}, {0, int64(n) + 100}, {int64(n), int64(n) + 1}, {5, 2}} {
			rc, sz, err := s.GetSlice(id, r[0], r[1])
			got := readAll(t, rc, err)
			lo, hi := min(r[0], int64(n)), min(r[1], int64(n))
			wantSlice := data[lo:max(lo, hi)]
			if !bytes.Equal(got, wantSlice) || sz != int64(len(wantSlice)) {
				t.Fatalf("slice [%d,%d) of %d bytes: got %d bytes (size %d), want %d", r[0], r[1], n, len(got), sz, len(wantSlice))
			}
		}
	}
	if got := listAll(t, s); len(got) != len(want) {
		t.Fatalf("list: got %d blobs, want %d", len(got), len(want))
	} else {
		for id, sz := range want {
			if got[id] != sz {
				t.Errorf("list: %s has size %d, want %d", id, got[id], sz)
			}
		}
	}
	for id := range want {
		if err := s.Remove(id); err != nil {
			t.Fatal(err)
		}
		if has, _ := s.Has(id); has {
			t.Fatalf("%s still there after Remove", id)
		}
		if _, _, err := s.Get(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("get after remove: %v, want ErrNotFound", err)
		}
		if err := s.Remove(id); !errors.Is(err, ErrNotFound) {
			t.Fatalf("second remove: %v, want ErrNotFound", err)
		}
	}
	if got := listAll(t, s); len(got) != 0 {
		t.Fatalf("list after removing all: %v", got)
	}
}

// TestEmptyBlob: multiblob has the empty blob always, with size 0.
func TestEmptyBlob(t *testing.T) {
	s := openStore(t)
	if has, err := s.Has(emptyID); !has || err != nil {
		t.Fatalf("has empty: %v %v", has, err)
	}
	rc, size, err := s.Get(emptyID)
	if got := readAll(t, rc, err); len(got) != 0 || size != 0 {
		t.Fatalf("get empty: %d bytes, size %d", len(got), size)
	}
	id, size, err := s.Add(t.Context(), bytes.NewReader(nil), nil)
	if err != nil || id != emptyID || size != 0 {
		t.Fatalf("add empty: %s %d %v", id, size, err)
	}
	rc, _, err = s.GetSlice(emptyID, 0, 10)
	if got := readAll(t, rc, err); len(got) != 0 {
		t.Fatalf("slice of empty: %d bytes", len(got))
	}
}

// TestLayout: a blob we add lies where multiblob puts it
// (path.join(dir, alg, h.substring(0,2), h.substring(2)), h the hex of the
// hash), and a file laid out that way is read back by its id.
func TestLayout(t *testing.T) {
	s := openStore(t)
	data := []byte("hello")
	id, _, err := s.Add(t.Context(), bytes.NewReader(data), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The id of "hello", and its path, from the ssb-blobs test data.
	if id.String() != "&LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=.sha256" {
		t.Fatalf("id of hello: %s", id)
	}
	want := filepath.Join(s.Dir(), "sha256", "2c", "f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
	if got, err := os.ReadFile(want); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob not at %s: %v", want, err)
	}

	other := randBytes(7, 1000)
	h := sha256.Sum256(other)
	x := hex.EncodeToString(h[:])
	p := filepath.Join(s.Dir(), "sha256", x[:2], x[2:])
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, other, 0o600); err != nil {
		t.Fatal(err)
	}
	rc, _, err := s.Get(idOf(other))
	if got := readAll(t, rc, err); !bytes.Equal(got, other) {
		t.Fatal("file laid out as multiblob does is not read back by its id")
	}
	// Files that are not blobs are not listed.
	for _, junk := range []string{filepath.Join("sha256", "2c", "XYZ"), filepath.Join("sha256", "2c", x[2:]+"~"), filepath.Join("sha256", "zz", x[2:])} {
		if err := os.MkdirAll(filepath.Join(s.Dir(), filepath.Dir(junk)), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir(), junk), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := listAll(t, s); len(got) != 2 || got[id] != 5 || got[idOf(other)] != 1000 {
		t.Fatalf("list: %v", got)
	}
}

func TestOpenRemovesTemporaryFiles(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, tmpDir), 0o700); err != nil {
		t.Fatal(err)
	}
	// multiblob names its temporary files Date.now()-n.
	for _, name := range []string{"1700000000000-0", "add-123"} {
		if err := os.WriteFile(filepath.Join(dir, tmpDir, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if left := tmpFiles(t, dir); len(left) != 0 {
		t.Fatalf("temporary files left after Open: %v", left)
	}
}

// Two concurrent adds of the same bytes give one blob, with the unnamed
// temporary files of Linux and with named ones (other systems).
func TestConcurrentAddsOfSameBytes(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		t.Run(map[bool]string{true: "unnamed", false: "named"}[unnamed], func(t *testing.T) {
			s := openStore(t)
			if unnamed && !s.unnamed {
				t.Skip("no unnamed temporary files on this system")
			}
			s.unnamed = unnamed
			concurrentAdds(t, s)
		})
	}
}

func concurrentAdds(t *testing.T, s *Store) {
	sub := s.Subscribe()
	defer sub.Close()
	data := randBytes(1, 3*ChunkSize)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	ids := make([]refs.Blob, n)
	for i := range n {
		wg.Go(func() { ids[i], _, errs[i] = s.Add(context.Background(), bytes.NewReader(data), nil) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || ids[i] != idOf(data) {
			t.Fatalf("add %d: %s %v", i, ids[i], errs[i])
		}
	}
	if got := listAll(t, s); len(got) != 1 {
		t.Fatalf("%d blobs stored, want 1", len(got))
	}
	if left := tmpFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	if got := len(sub.C()); got != 1 {
		t.Fatalf("subscriber told %d times, want once", got)
	}
}

func TestAddOverLimit(t *testing.T) {
	const limit = 3*ChunkSize + 10
	s := openStore(t, WithMax(limit))
	if _, _, err := s.Add(t.Context(), bytes.NewReader(randBytes(2, limit)), nil); err != nil {
		t.Fatalf("add of exactly the limit: %v", err)
	}
	big := randBytes(3, limit+1)
	_, _, err := s.Add(t.Context(), bytes.NewReader(big), nil)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("add over the limit: %v, want ErrTooLarge", err)
	}
	t.Log(err)
	if has, _ := s.Has(idOf(big)); has {
		t.Fatal("blob over the limit stored")
	}
	if left := tmpFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// The default limit is 5 MiB, as ssb-blobs.
	d := openStore(t)
	if d.Max() != 5*1024*1024 {
		t.Fatalf("default max %d", d.Max())
	}
	if _, _, err := d.Add(t.Context(), bytes.NewReader(make([]byte, 5*1024*1024+1)), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("add of 5 MiB + 1: %v, want ErrTooLarge", err)
	}
}

func TestAddExpectedID(t *testing.T) {
	s := openStore(t)
	data := randBytes(4, 1000)
	want := idOf(data)
	if id, _, err := s.Add(t.Context(), bytes.NewReader(data), &want); err != nil || id != want {
		t.Fatalf("add with the right expected id: %s %v", id, err)
	}
	other := randBytes(5, 1000)
	_, _, err := s.Add(t.Context(), bytes.NewReader(other), &want)
	if !errors.Is(err, ErrMismatch) {
		t.Fatalf("add with a wrong expected id: %v, want ErrMismatch", err)
	}
	t.Log(err)
	if has, _ := s.Has(idOf(other)); has {
		t.Fatal("mismatched bytes stored under their own id")
	}
	if got := listAll(t, s); len(got) != 1 {
		t.Fatalf("%d blobs stored, want 1", len(got))
	}
	if left := tmpFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

// failingReader yields n bytes of data then fails with err, calling
// before (if set) just before failing.
type failingReader struct {
	r      io.Reader
	err    error
	before func()
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		if f.before != nil {
			f.before()
		}
		return n, f.err
	}
	return n, err
}

func TestAbortedAdd(t *testing.T) {
	s := openStore(t)
	data := randBytes(6, 5*ChunkSize)
	readErr := errors.New("connection reset")
	_, _, err := s.Add(t.Context(), &failingReader{r: bytes.NewReader(data[:2*ChunkSize]), err: readErr}, nil)
	if !errors.Is(err, readErr) {
		t.Fatalf("add from a failing reader: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	_, _, err = s.Add(ctx, io.MultiReader(&failingReader{r: bytes.NewReader(data[:2*ChunkSize]), before: cancel}, bytes.NewReader(data[2*ChunkSize:])), nil)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("add with ctx cancelled halfway: %v", err)
	}
	if got := listAll(t, s); len(got) != 0 {
		t.Fatalf("aborted adds stored %v", got)
	}
	if left := tmpFiles(t, s.Dir()); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestParseID(t *testing.T) {
	good := "&LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=.sha256"
	if id, err := ParseID(good); err != nil || id.String() != good {
		t.Fatalf("%s: %v", good, err)
	}
	for _, bad := range []string{
		"", "&", good[1:], "%" + good[1:], good[:len(good)-1], good + " ",
		"&LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCR=.sha256", // stray bits
		"&LPJNul-wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=.sha256", // URL alphabet
		"&LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=.blake2s",
	} {
		_, err := ParseID(bad)
		if !errors.Is(err, ErrMalformed) || !errors.Is(err, refs.ErrInvalid) {
			t.Errorf("ParseID(%q): %v, want ErrMalformed", bad, err)
		}
	}
}

func TestSubscribe(t *testing.T) {
	s := openStore(t, WithSubscriberBuffer(2))
	fast := s.Subscribe()
	slow := s.Subscribe()
	var added []refs.Blob
	for i := range 3 {
		id, _, err := s.Add(t.Context(), bytes.NewReader(randBytes(uint64(10+i), 10)), nil)
		if err != nil {
			t.Fatal(err)
		}
		added = append(added, id)
		if info := <-fast.C(); info.ID != id || info.Size != 10 {
			t.Fatalf("change %d: %+v, want %s", i, info, id)
		}
	}
	// slow read nothing: it got two, then was dropped at the third.
	var got []refs.Blob
	for info := range slow.C() {
		got = append(got, info.ID)
	}
	if len(got) != 2 || got[0] != added[0] || got[1] != added[1] || !errors.Is(slow.Err(), ErrSlow) {
		t.Fatalf("slow subscriber got %v, err %v", got, slow.Err())
	}
	fast.Close()
	fast.Close()
	if _, ok := <-fast.C(); ok || fast.Err() != nil {
		t.Fatalf("closed subscription: open %v err %v", ok, fast.Err())
	}
	live := s.Subscribe()
	s.Close()
	if _, ok := <-live.C(); ok || !errors.Is(live.Err(), ErrClosed) {
		t.Fatalf("subscription after Close: err %v", live.Err())
	}
	if _, _, err := s.Add(t.Context(), bytes.NewReader(nil), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("add after close: %v", err)
	}
}

// FuzzIDFromNames: a file name is accepted as a blob exactly when it is
// the name Path gives that blob.
func FuzzIDFromNames(f *testing.F) {
	f.Add("2c", "f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
	f.Add("2C", "f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
	f.Add("2c", "f24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b98")
	f.Add("tmp", "1700000000000-0")
	f.Fuzz(func(t *testing.T, prefix, rest string) {
		id, err := idFromNames(prefix, rest)
		if err != nil {
			return
		}
		if want := filepath.Join(algDir, prefix, rest); relPath(id) != want {
			t.Fatalf("%s/%s parsed as %s, whose path is %s", prefix, rest, id, relPath(id))
		}
	})
}
