package scuttlebutt_test

// Streams over connections that cannot half-close (net.Pipe, a TCP
// connection behind a plain io.ReadWriteCloser), and a peer whose output
// ends in the middle of a line.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// plainConn is a connection that cannot half-close: it has no CloseWrite.
type plainConn struct {
	io.Reader
	io.Writer
	io.Closer
}

func hideCloseWrite(c net.Conn) io.ReadWriteCloser { return plainConn{c, c, c} }

// pipeServe serves a and b over the two ends of a net.Pipe with the given
// stream options and returns the channel their ServeConn results arrive on.
func pipeServe(t *testing.T, a, b *model.Model, aOpts, bOpts []scuttlebutt.StreamOption) <-chan error {
	t.Helper()
	ca, cb := net.Pipe()
	ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
	errs := make(chan error, 2)
	go func() { errs <- a.ServeConn(ctx, ca, aOpts...) }()
	go func() { errs <- b.ServeConn(ctx, cb, bOpts...) }()
	t.Cleanup(cancel)
	return errs
}

// wantBothEnd waits for both ServeConn calls of pipeServe and fails unless
// both returned nil; a stream that never ends runs into the context's
// deadline instead.
func wantBothEnd(t *testing.T, errs <-chan error, replicas ...*model.Model) {
	t.Helper()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("ServeConn = %v, want nil (both sides ended)", err)
		}
	}
	for _, r := range replicas {
		if n := r.Streams(); n != 0 {
			t.Fatalf("%s still counts %d streams", r.ID(), n)
		}
	}
}

func wantValue(t *testing.T, m *model.Model, key, want string) {
	t.Helper()
	if v, _ := m.Get(key); string(v) != want {
		t.Fatalf("%s: Get(%q) = %s, want %s", m.ID(), key, v, want)
	}
}

// Over net.Pipe, which cannot half-close, a stream with Tail(false) ends
// once both histories are through, as over TCP: npm scuttlebutt ends a
// tail:false stream on 'sync'. Against a tailing peer too, which then sees
// the end of its input and ends as well.
func TestServePipeTailFalse(t *testing.T) {
	for _, tc := range []struct {
		name         string
		aOpts, bOpts []scuttlebutt.StreamOption
	}{
		{"BothTailFalse", []scuttlebutt.StreamOption{scuttlebutt.Tail(false)}, []scuttlebutt.StreamOption{scuttlebutt.Tail(false)}},
		{"AgainstTail", []scuttlebutt.StreamOption{scuttlebutt.Tail(false)}, nil},
		// A snapshot to a write-only peer, as package persist writes one.
		{"ReadOnlySnapshot", []scuttlebutt.StreamOption{scuttlebutt.Tail(false), scuttlebutt.Writable(false)}, []scuttlebutt.StreamOption{scuttlebutt.Readable(false), scuttlebutt.SendClock(true)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := model.New("A"), model.New("B")
			must(t, a.Set("x", 1))
			must(t, b.Set("y", 2))
			errs := pipeServe(t, a, b, tc.aOpts, tc.bOpts)
			wantBothEnd(t, errs, a, b)
			wantValue(t, b, "x", "1")
			if tc.name != "ReadOnlySnapshot" {
				wantValue(t, a, "y", "2")
			}
		})
	}
}

// Replica.Dispose ends the streams of both sides over net.Pipe: the local
// side closes the connection once its queued output is out, and the peer
// reads the end of its input, ends, and stops counting the stream.
func TestServePipeDispose(t *testing.T) {
	for _, who := range []string{"OneSide", "Both"} {
		t.Run(who, func(t *testing.T) {
			a, b := model.New("A"), model.New("B")
			must(t, a.Set("x", 1))
			synced := make(chan struct{}, 2)
			onSync := scuttlebutt.OnSync(func() { synced <- struct{}{} })
			got := make(chan struct{})
			b.OnChangeKey("live", func(json.RawMessage) { close(got) })
			errs := pipeServe(t, a, b, []scuttlebutt.StreamOption{onSync}, []scuttlebutt.StreamOption{onSync})
			waitChan(t, synced, "the first side to sync")
			waitChan(t, synced, "the second side to sync")
			must(t, a.Set("live", 2))
			waitChan(t, got, "the live update")
			a.Dispose()
			if who == "Both" {
				b.Dispose()
			}
			wantBothEnd(t, errs, a, b)
			wantValue(t, b, "x", "1")
		})
	}
}

// A peer whose output ends in the middle of a line died or was cut off:
// ServeConn fails with io.ErrUnexpectedEOF, having applied the complete
// lines and not the partial one. It did not end cleanly, so nil is wrong.
func TestServeUnexpectedEOF(t *testing.T) {
	for _, transport := range []string{"Pipe", "TCP"} {
		t.Run(transport, func(t *testing.T) {
			a := model.New("A")
			var local, remote net.Conn
			if transport == "Pipe" {
				local, remote = net.Pipe()
			} else {
				ln := listen(t)
				remote = dial(t, port(ln))
				local = accept(t, ln)
			}
			defer remote.Close()
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- a.ServeConn(ctx, local) }()
			drained := make(chan struct{})
			go func() { io.Copy(io.Discard, remote); close(drained) }()
			_, err := io.WriteString(remote, utPeerHeader+"\n"+`[["k",1],5,"P"]`+"\n"+`[["cut",2],6,"P"]`)
			must(t, err)
			if transport == "Pipe" {
				remote.Close()
			} else {
				remote.(*net.TCPConn).CloseWrite() // the peer's output ends
			}
			err = <-served
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("ServeConn after a peer died mid-line = %v, want an error wrapping io.ErrUnexpectedEOF", err)
			}
			<-drained
			wantValue(t, a, "k", "1")
			if _, ok := a.Get("cut"); ok {
				t.Fatal("the partial line was applied")
			}
			if a.Clock()["P"] != 5 {
				t.Fatalf("clock %v, want P at 5", a.Clock())
			}
		})
	}
	t.Run("CloseWrite", func(t *testing.T) {
		s := model.New("A").NewStream()
		if _, err := s.Write([]byte(utPeerHeader + "\n[[\"k\"")); err != nil {
			t.Fatal(err)
		}
		if err := s.CloseWrite(); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("CloseWrite with a partial line = %v, want io.ErrUnexpectedEOF", err)
		}
		if !errors.Is(s.Err(), io.ErrUnexpectedEOF) {
			t.Fatalf("Err() = %v, want io.ErrUnexpectedEOF", s.Err())
		}
		waitChan(t, s.Done(), "the stream to close")
	})
}

// The same against npm scuttlebutt, over TCP wrapped so that the Go side
// cannot half-close, with a peer (sb-pipe.js) whose sockets end their
// output when their input ends, as the scuttlebutt README wires them.
func TestInteropPipeLikeEnd(t *testing.T) {
	for _, tc := range []struct {
		name   string
		jsOpts map[string]any
		goOpts []scuttlebutt.StreamOption
	}{
		{"Dispose", nil, nil},
		{"BothTailFalse", map[string]any{"tail": false}, []scuttlebutt.StreamOption{scuttlebutt.Tail(false)}},
		{"GoTailFalse", nil, []scuttlebutt.StreamOption{scuttlebutt.Tail(false)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := oracle.Start(t, "sb-pipe.js", "--id", "J")
			p.Do(oracle.Cmd{"op": "set", "key": "fromJS", "value": 1})
			g := model.New("G")
			must(t, g.Set("fromGo", 2))
			jsPort := p.Do(oracle.Cmd{"op": "listen", "stream": tc.jsOpts}).Int("port")
			ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
			defer cancel()
			s := g.NewStream(tc.goOpts...)
			conn := hideCloseWrite(dial(t, jsPort))
			served := make(chan error, 1)
			go func() { served <- s.Serve(ctx, conn) }()
			waitChan(t, s.Synced(), "the Go stream to sync")
			p.WaitFor(oracle.Ev("sync", "conn", 1))
			if tc.name == "Dispose" {
				g.Dispose()
			}
			if err := <-served; err != nil {
				t.Fatalf("Serve = %v, want nil", err)
			}
			if n := g.Streams(); n != 0 {
				t.Fatalf("Go still counts %d streams", n)
			}
			p.WaitFor(oracle.Ev("unstream", "streams", 0))
			st := p.Do(oracle.Cmd{"op": "dump"})
			if n := st.Int("streams"); n != 0 {
				t.Fatalf("JavaScript counts %d streams, want 0", n)
			}
			var js map[string]int
			must(t, st.Decode("json", &js))
			if js["fromGo"] != 2 || js["fromJS"] != 1 {
				t.Fatalf("JavaScript has %v, want fromGo and fromJS", js)
			}
			wantValue(t, g, "fromJS", "1")
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
