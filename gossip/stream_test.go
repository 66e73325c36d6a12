package gossip_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/gossip"
)

// serve runs a new stream of p over one end of a pipe and returns the
// other end, whose output is collected line by line, and Serve's result.
func serve(t *testing.T, ctx context.Context, p *peer) (net.Conn, <-chan string, <-chan error) {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- p.ServeConn(ctx, a) }()
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(b)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { b.Close() })
	return b, lines, done
}

func waitErr(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return")
		return nil
	}
}

// A peer that sends only garbage is cut off; Serve says why.
func TestServeGarbage(t *testing.T) {
	p := newPeer(t, "p", gossip.Options{})
	conn, lines, done := serve(t, context.Background(), p)
	if first := <-lines; !strings.HasPrefix(first, `{"gossip":"digest"`) {
		t.Fatalf("first line %q", first)
	}
	go conn.Write([]byte(strings.Repeat("garbage\n", gossip.DefaultGarbageLimit+5)))
	if err := waitErr(t, done); !errors.Is(err, gossip.ErrGarbage) || !errors.Is(err, gossip.ErrSyntax) {
		t.Errorf("Serve = %v, want ErrGarbage", err)
	}
	if s := p.Stats(); s.GarbageClosed != 1 || s.BadJSON != gossip.DefaultGarbageLimit || s.Links != 0 {
		t.Errorf("stats %+v", s)
	}
}

// Serve returns nil when the peer hangs up, and ctx.Err() when cancelled.
func TestServeEnds(t *testing.T) {
	p := newPeer(t, "p", gossip.Options{})
	conn, _, done := serve(t, context.Background(), p)
	conn.Close()
	if err := waitErr(t, done); err != nil {
		t.Errorf("Serve after the peer closed = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, _, done = serve(t, ctx, p)
	cancel()
	if err := waitErr(t, done); !errors.Is(err, context.Canceled) {
		t.Errorf("Serve after cancel = %v", err)
	}
	if s := p.Stats(); s.Links != 0 {
		t.Errorf("%d links left", s.Links)
	}
}

// Lines over the limits are dropped and counted; the stream goes on, and
// lines split across writes in any way arrive whole.
func TestStreamLongLines(t *testing.T) {
	p := newPeer(t, "p", gossip.Options{Interval: -1, Config: gossip.Config{MaxLine: 1000, MaxMessage: 500}})
	s := p.PeerStream()
	go io.Copy(io.Discard, s)
	pub := mustKeys(t, "publisher")
	long := `{"data":{"x":"` + strings.Repeat("y", 600) + `"}}`
	data := strings.Repeat("z", 3000) + "\n" + long + "\r\n" + string(jsEnvelope(t, pub, `{"ok":1}`, 0)) + "\r\n"
	for len(data) > 0 {
		k := min(7, len(data))
		if _, err := s.Write([]byte(data[:k])); err != nil {
			t.Fatal(err)
		}
		data = data[k:]
	}
	ms := p.messages()
	if len(ms) != 1 || string(ms[0].Data) != `{"ok":1}` {
		t.Fatalf("messages %v", ms)
	}
	if st := p.Stats(); st.TooLarge != 2 {
		t.Errorf("%d lines counted too large, want 2", st.TooLarge)
	}
	s.Close()
	if _, err := s.Write([]byte("x\n")); !errors.Is(err, gossip.ErrClosed) {
		t.Errorf("Write after Close = %v", err)
	}
	if _, err := p.PeerStream().Write(nil); err != nil {
		t.Errorf("empty write: %v", err)
	}
	p.Close()
	if _, err := p.Publish(map[string]int{"a": 1}); !errors.Is(err, gossip.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
}
