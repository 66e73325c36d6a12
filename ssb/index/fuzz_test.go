package index_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// FuzzDecodeCheckpoint: a stored checkpoint decodes into a consistent one
// or an error, never a panic; what decodes encodes back to the same.
func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte(nil))
	f.Add(index.EncodeCheckpoint(index.Checkpoint{Seq: 7, Key: refs.NewMessage([32]byte{1}), Timestamp: 1.5e12}))
	f.Add([]byte(`{"seq":1}`))
	f.Add([]byte(`{"seq":0,"key":"%AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.sha256"}`))
	f.Add([]byte(`{"seq":-1,"key":5,"timestamp":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cp, err := index.DecodeCheckpoint(b)
		if err != nil {
			return
		}
		if cp.Seq > 0 && cp.Key.IsZero() {
			t.Fatalf("checkpoint %+v without a key", cp)
		}
		again, err := index.DecodeCheckpoint(index.EncodeCheckpoint(cp))
		if err != nil || again != cp {
			t.Fatalf("%+v does not survive encoding: %+v, %v", cp, again, err)
		}
	})
}

// FuzzCheckFile: any bytes as a view file are accepted or refused, never a
// panic; a valid file is accepted.
func FuzzCheckFile(f *testing.F) {
	if err := index.CheckFile(bytes.NewReader(validFile(f)), int64(len(validFile(f)))); err != nil {
		f.Fatalf("a valid file: %v", err)
	}
	f.Add(validFile(f))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xed, 0xda, 0x0c, 0xed}, 64))
	f.Fuzz(func(t *testing.T, b []byte) {
		index.CheckFile(bytes.NewReader(b), int64(len(b)))
	})
}

// FuzzOpenFile: whatever the view file holds, Open either uses it or
// starts over; it never crashes the process. (bbolt trusts its file: a
// damaged one makes it panic, which Open must turn into starting over.)
func FuzzOpenFile(f *testing.F) {
	valid := validFile(f)
	f.Add(valid, 0, byte(0))
	f.Add(valid, 4096+16, byte(0xff))
	f.Add(valid, 2*4096+8, byte(0x5a))
	f.Add(valid[:len(valid)/2], 0, byte(0))
	f.Add([]byte("garbage"), 0, byte(1))
	sdir := f.TempDir()
	st := openStore(f, sdir)
	f.Cleanup(func() { st.Close() })
	appendFeed(f, st, 5)
	f.Fuzz(func(t *testing.T, file []byte, at int, xor byte) {
		if len(file) > 1<<20 {
			return
		}
		file = bytes.Clone(file)
		if at >= 0 && at < len(file) {
			file[at] ^= xor
		}
		vdir := t.TempDir()
		if err := os.WriteFile(filepath.Join(vdir, "seqs.bolt"), file, 0o600); err != nil {
			t.Fatal(err)
		}
		sv := &seqView{}
		v, err := index.Open(st, vdir, sv.spec(1), quiet)
		if err != nil {
			t.Fatalf("Open on a bad file: %v (it should start over)", err)
		}
		defer v.Close()
		if cp := v.Checkpoint(); cp.Seq > st.Durable() {
			t.Fatalf("checkpoint %d beyond the store's %d", cp.Seq, st.Durable())
		}
	})
}

var quiet = slog.New(slog.DiscardHandler)

// validFile returns the bytes of a view file that saw 300 messages.
func validFile(tb testing.TB) []byte {
	tb.Helper()
	st := openStore(tb, tb.TempDir())
	defer st.Close()
	appendFeed(tb, st, 300)
	vdir := tb.TempDir()
	sv := &seqView{}
	v, err := index.Open(st, vdir, sv.spec(1), nil)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- v.Run(ctx) }()
	if err := v.Wait(ctx, st.Durable()); err != nil {
		tb.Fatal(err)
	}
	cancel()
	<-done
	v.Close()
	b, err := os.ReadFile(filepath.Join(vdir, "seqs.bolt"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
