package db

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// BenchmarkPublish measures what the head file costs a publish: the store
// alone, then publish with the head file, one at a time and concurrently
// (concurrent publishes share head file writes).
func BenchmarkPublish(b *testing.B) {
	open := func(b *testing.B) *Plugin {
		p := New()
		s, err := server.Open(server.Config{Path: b.TempDir(), Host: "127.0.0.1", Caps: server.MainNetCaps}, nil, p)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return p
	}
	content := json.RawMessage(`{"type":"post","text":"benchmark"}`)
	b.Run("store only", func(b *testing.B) {
		s := open(b)
		for b.Loop() {
			_, err := s.store.Publish(context.Background(), s.keys.ID, func(prev message.FeedState) (*message.Message, error) {
				return message.Create(s.keys, nil, &prev, 1.7e12, content)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("with head file", func(b *testing.B) {
		s := open(b)
		for b.Loop() {
			if _, err := s.publishContent(context.Background(), content); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, par := range []int{1, 8} {
		b.Run(fmt.Sprintf("concurrent %dx, store only", par), func(b *testing.B) {
			s := open(b)
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, err := s.store.Publish(context.Background(), s.keys.ID, func(prev message.FeedState) (*message.Message, error) {
						return message.Create(s.keys, nil, &prev, 1.7e12, content)
					})
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
		b.Run(fmt.Sprintf("concurrent %dx, with head file", par), func(b *testing.B) {
			s := open(b)
			b.SetParallelism(par)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := s.publishContent(context.Background(), content); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// FuzzOwnHead: any head file either fails to parse or parses to a head
// that is written back as the same head.
func FuzzOwnHead(f *testing.F) {
	id, err := keys.FromSeed(make([]byte, 32))
	if err != nil {
		f.Fatal(err)
	}
	kp := id.ID
	f.Add([]byte(`{"feed":"` + kp.String() + `","sequence":0}`))
	f.Add([]byte(`{"feed":"` + kp.String() + `","sequence":3,"key":"%R8heq/tQoxEIPkWf0Kxn1nCm/CsxG2CDpUYnAvdbXY8=.sha256"}`))
	f.Add([]byte(`{"feed":"` + kp.String() + `","sequence":-1}`))
	f.Add([]byte(`{"feed":`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseOwnHead(data, kp)
		if err != nil {
			return
		}
		again, err := parseOwnHead(appendOwnHead(nil, kp, h), kp)
		if err != nil || again != h {
			t.Fatalf("%q parses to %+v, written back to %+v, %v", data, h, again, err)
		}
	})
}

// A publish whose head cannot be recorded is not acknowledged, and no
// further publish is stored until the head file can be written again.
func TestOwnFeedHeadFileWriteFails(t *testing.T) {
	s := startServer(t)
	e := s.local(t)
	publish(t, e, map[string]any{"type": "post"})
	head := filepath.Join(s.cfg.Path, ownFeedFile)
	// A non-empty directory in its place: the rename onto it fails.
	if err := os.Remove(head); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(head, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	_, err := e.Async(context.Background(), muxrpc.Method{"publish"}, map[string]any{"type": "post"})
	if err == nil || !strings.Contains(err.Error(), "is stored, but our feed's head could not be recorded") {
		t.Fatalf("publish with an unwritable head file: %v", err)
	}
	before := s.Store().Stats().Messages
	_, err = e.Async(context.Background(), muxrpc.Method{"publish"}, map[string]any{"type": "post"})
	if err == nil || !strings.Contains(err.Error(), "nothing was stored") {
		t.Fatalf("publish after a failed head write: %v", err)
	}
	if after := s.Store().Stats().Messages; after != before {
		t.Fatalf("a refused publish stored %d messages", after-before)
	}
	if err := os.RemoveAll(head); err != nil {
		t.Fatal(err)
	}
	var m kvt
	if err := e.AsyncJSON(context.Background(), &m, muxrpc.Method{"publish"}, map[string]any{"type": "post"}); err != nil || m.Value.Sequence != 3 {
		t.Fatalf("publish once the head file can be written: %+v, %v", m.Value, err)
	}
	data, err := os.ReadFile(head)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := parseOwnHead(data, s.ID()); err != nil || h.Sequence != 3 || h.ID.String() != m.Key {
		t.Errorf("head file %s: %+v, %v", data, h, err)
	}
}

// BenchmarkOwnHeadWrite measures one head file write alone (temporary
// file, fsync, rename, fsync of the directory).
func BenchmarkOwnHeadWrite(b *testing.B) {
	kp, err := keys.FromSeed(make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	o := &ownFeed{path: filepath.Join(b.TempDir(), ownFeedFile), self: kp.ID}
	key, err := refs.ParseMessage("%R8heq/tQoxEIPkWf0Kxn1nCm/CsxG2CDpUYnAvdbXY8=.sha256")
	if err != nil {
		b.Fatal(err)
	}
	h := message.FeedState{ID: key}
	for b.Loop() {
		h.Sequence++
		if err := o.writeFile(h); err != nil {
			b.Fatal(err)
		}
	}
}
