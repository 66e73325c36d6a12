package store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpenDamaged opens a small store whose file the fuzzer damaged (a
// patch of bytes written at an offset, or the file cut there when the
// patch is empty), uses it, and repairs it. Nothing may panic or crash:
// every damage must come back as an error. Open either fails with an
// error or gives a store whose reads fail with errors; Repair either
// fails with an error or leaves a store that opens and passes Check.
func FuzzOpenDamaged(f *testing.F) {
	fx := buildDamaged(f, 3, 12)
	base, err := os.ReadFile(fx.path)
	if err != nil {
		f.Fatal(err)
	}
	ps := uint32(os.Getpagesize())
	f.Add(uint32(0), []byte{0xff})
	f.Add(ps+16, []byte{1, 2, 3, 4})   // meta page 1
	f.Add(2*ps, []byte{})              // cut after the meta pages
	f.Add(3*ps+8, []byte{0x7f, 0x7f})  // a page's flags
	f.Add(4*ps+12, []byte{0xff, 0xff}) // a page's overflow
	f.Add(5*ps+16, bytes.Repeat([]byte{0xee}, 64))
	f.Add(uint32(len(base)/2), []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		data := bytes.Clone(base)
		at := int(off) % len(data)
		if len(patch) == 0 {
			data = data[:at]
		} else {
			copy(data[at:], patch)
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), data, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := Open(dir, WithLogger(quiet())); err == nil {
			useStore(t, s, fx)
			s.Close()
		}
		ctx := context.Background()
		if _, err := Repair(ctx, dir, WithLogger(quiet())); err != nil {
			return
		}
		s, err := Open(dir, WithLogger(quiet()))
		if err != nil {
			t.Fatalf("Open after Repair: %v", err)
		}
		defer s.Close()
		if err := s.Check(ctx); err != nil {
			t.Fatalf("Check after Repair: %v", err)
		}
	})
}

// useStore reads everything of s and appends to it; errors are fine, a
// panic is not.
func useStore(t *testing.T, s *Store, fx *damageFixture) {
	ctx := context.Background()
	drain := func(it *Iterator, err error) {
		for err == nil {
			_, err = it.Next(ctx)
		}
		if errors.Is(err, io.EOF) {
			return
		}
	}
	_ = s.Check(ctx)
	drain(s.Log(ctx, LogQuery{}))
	drain(s.Feed(ctx, FeedQuery{}))
	drain(s.Type(ctx, TypeQuery{Type: "post"}))
	_, _ = s.Feeds(ctx)
	for feed := range fx.feeds {
		drain(s.History(ctx, HistoryQuery{ID: feed}))
		_, _ = s.Latest(feed)
	}
	for _, m := range fx.order[:3] {
		_, _ = s.Get(m.Key)
	}
	a := newAuthor(t, "fuzz")
	_, _ = s.Append(ctx, a.post(t, 1).Raw)
}
