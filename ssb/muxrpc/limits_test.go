package muxrpc

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// limited starts an endpoint with lim serving h on one end of a pipe and
// returns it, the other end, and where Serve's result arrives.
func limited(t *testing.T, lim Limits, h Handler) (*Endpoint, net.Conn, <-chan error) {
	t.Helper()
	ca, cb := net.Pipe()
	e := NewEndpoint(cb, h, WithLimits(lim))
	errc := make(chan error, 1)
	go func() { errc <- e.Serve(context.Background()) }()
	t.Cleanup(func() { ca.Close(); e.Close() })
	return e, ca, errc
}

// peerOf serves a plain endpoint (goAPI) on conn.
func peerOf(t *testing.T, conn net.Conn) *Endpoint {
	t.Helper()
	p := NewEndpoint(conn, HandlerFunc(goAPI))
	done := make(chan struct{})
	go func() { p.Serve(context.Background()); close(done) }()
	t.Cleanup(func() { p.Close(); <-done })
	return p
}

func rawPacket(t *testing.T, p Packet) []byte {
	t.Helper()
	b, err := AppendPacket(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantRemoteError(t *testing.T, err error, sub string) {
	t.Helper()
	var re *Error
	if !errors.As(err, &re) || !strings.Contains(re.Message, sub) {
		t.Fatalf("got %v, want a remote error with %q", err, sub)
	}
}

func TestIdlePeerIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pings atomic.Int32
		lim := Limits{IdleTimeout: 10 * time.Minute, Ping: func(context.Context, *Endpoint) { pings.Add(1) }}
		_, raw, errc := limited(t, lim, HandlerFunc(goAPI))
		go io.Copy(io.Discard, raw) // reads, never says anything
		start := time.Now()
		err := <-errc
		if !errors.Is(err, ErrIdle) {
			t.Fatalf("Serve: %v, want ErrIdle", err)
		}
		if d := time.Since(start); d != 10*time.Minute {
			t.Errorf("closed after %v, want 10m", d)
		}
		if pings.Load() != 1 {
			t.Errorf("%d pings in the silence, want 1", pings.Load())
		}
	})
}

func TestPeerAnsweringPingsStays(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var pings atomic.Int32
		lim := Limits{IdleTimeout: 10 * time.Minute, Ping: func(ctx context.Context, e *Endpoint) {
			pings.Add(1)
			e.Async(ctx, Method{"goHello"}, "ping")
		}}
		_, raw, errc := limited(t, lim, nil)
		peerOf(t, raw)
		time.Sleep(time.Hour) // virtual time: an hour of silence but for pings
		select {
		case err := <-errc:
			t.Fatalf("a peer that answers pings was closed: %v", err)
		default:
		}
		if n := pings.Load(); n < 6 {
			t.Errorf("%d pings in an hour, want one per 5 min of silence", n)
		}
	})
}

func TestStreamLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, raw, _ := limited(t, Limits{MaxStreams: 3}, HandlerFunc(goAPI))
		p := peerOf(t, raw)
		ctx := context.Background()
		var open []*Stream
		for range 3 {
			s, err := p.Open(Method{"goEcho"}, Duplex)
			if err != nil {
				t.Fatal(err)
			}
			open = append(open, s)
		}
		over, err := p.Open(Method{"goEcho"}, Duplex)
		if err != nil {
			t.Fatal(err)
		}
		_, err = over.Recv(ctx)
		wantRemoteError(t, err, "too many open streams")
		over.Close()
		// The connection stays, and the open streams work.
		var hello string
		if err := p.AsyncJSON(ctx, &hello, Method{"goHello"}, "x"); err != nil || hello != "hello, x!" {
			t.Fatalf("call past the stream limit: %q, %v", hello, err)
		}
		open[0].Send("still here")
		var echo string
		if err := open[0].RecvJSON(ctx, &echo); err != nil || echo != "still here" {
			t.Fatalf("echo: %q, %v", echo, err)
		}
		// Once a stream ends, another may open.
		open[0].Close()
		synctest.Wait()
		e.mu.Lock()
		n := len(e.theirs)
		e.mu.Unlock()
		if n != 2 {
			t.Fatalf("%d streams registered after one ended, want 2 (the refused one gone too)", n)
		}
		again, _ := p.Open(Method{"goEcho"}, Duplex)
		again.Send(1)
		var one int
		if err := again.RecvJSON(ctx, &one); err != nil || one != 1 {
			t.Fatalf("stream after one ended: %d, %v", one, err)
		}
	})
}

func TestCallLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		h := HandlerFunc(func(ctx context.Context, req *Request) {
			if req.Method.String() == "wait" {
				<-release
			}
			req.Return("done")
		})
		_, raw, _ := limited(t, Limits{MaxCalls: 2}, h)
		p := peerOf(t, raw)
		ctx := context.Background()
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() {
				if _, err := p.Async(ctx, Method{"wait"}); err != nil {
					t.Errorf("waiting call: %v", err)
				}
			})
		}
		synctest.Wait() // both handlers are running
		_, err := p.Async(ctx, Method{"quick"})
		wantRemoteError(t, err, "too many calls in progress")
		close(release)
		wg.Wait()
		if _, err := p.Async(ctx, Method{"quick"}); err != nil {
			t.Fatalf("call once the others ended: %v", err)
		}
	})
}

func TestPeerThatDoesNotReadIsClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, raw, errc := limited(t, Limits{WriteTimeout: 30 * time.Second}, HandlerFunc(goAPI))
		// Many calls whose answers are never read: the handlers block in
		// send, then fail when the connection is closed.
		for i := range 100 {
			raw.Write(rawPacket(t, Packet{Req: int32(i + 1), Stream: true, Type: JSON,
				Body: []byte(`{"name":["goCount"],"type":"source","args":[1000000]}`)}))
		}
		start := time.Now()
		err := <-errc // Serve returns once every handler has ended
		if !errors.Is(err, ErrWriteTimeout) {
			t.Fatalf("Serve: %v, want ErrWriteTimeout", err)
		}
		if d := time.Since(start); d > time.Minute {
			t.Errorf("closed after %v, want about 30s", d)
		}
	})
}

func TestBodyTooLargeEndsConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, raw, errc := limited(t, Limits{MaxBody: 8 << 10}, HandlerFunc(goAPI))
		go raw.Write(rawPacket(t, Packet{Req: 1, Type: Binary, Body: make([]byte, 9<<10)}))
		if err := <-errc; !errors.Is(err, ErrBodyTooLarge) {
			t.Fatalf("Serve: %v, want ErrBodyTooLarge", err)
		}
	})
}

func TestAnnouncedBodyCostsWhatArrived(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget := NewBudget(64<<20, 0)
		_, raw, errc := limited(t, Limits{Budget: budget}, HandlerFunc(goAPI))
		// A 4 MiB body announced, 100 KiB sent.
		head := rawPacket(t, Packet{Req: 1, Type: Binary, Body: make([]byte, DefaultMaxBody)})[:HeaderSize]
		raw.Write(head)
		raw.Write(make([]byte, 100<<10))
		synctest.Wait()
		if got := budget.InUse(); got > 2*(100<<10)+firstChunk {
			t.Errorf("%d bytes held for 100 KiB received", got)
		}
		raw.Close()
		<-errc
		if got := budget.InUse(); got != 0 {
			t.Errorf("%d bytes still held after the connection ended", got)
		}
	})
}

// stallAPI has a duplex method that never reads what the peer sends.
func stallAPI(ctx context.Context, req *Request) {
	if req.Method.String() == "stall" {
		<-ctx.Done()
		return
	}
	goAPI(ctx, req)
}

func TestBudgetExhaustionStopsOnlyTheOffender(t *testing.T) {
	for _, tc := range []struct {
		name           string
		offender, good Limits
		budget         *Budget
	}{
		{"own buffer", Limits{Buffer: 512 << 10}, Limits{Buffer: 512 << 10}, NewBudget(1<<20, 0)},
		{"reserve", Limits{}, Limits{Reserved: true}, NewBudget(1<<20, 256<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tc.offender.Budget, tc.good.Budget = tc.budget, tc.budget
				tc.offender.BufferTimeout = time.Minute
				_, raw, errc := limited(t, tc.offender, HandlerFunc(stallAPI))
				raw.Write(rawPacket(t, Packet{Req: 1, Stream: true, Type: JSON, Body: []byte(`{"name":["stall"],"type":"duplex","args":[]}`)}))
				go func() {
					chunk := rawPacket(t, Packet{Req: 1, Stream: true, Type: Binary, Body: make([]byte, 32<<10)})
					for range StreamBuffer {
						if _, err := raw.Write(chunk); err != nil {
							return
						}
					}
				}()
				synctest.Wait() // the offender's reader waits for room
				_, goodRaw, _ := limited(t, tc.good, HandlerFunc(goAPI))
				p := peerOf(t, goodRaw)
				var hello string
				if err := p.AsyncJSON(context.Background(), &hello, Method{"goHello"}, "x"); err != nil {
					t.Fatalf("another peer while the budget is held: %v", err)
				}
				start := time.Now()
				if err := <-errc; !errors.Is(err, ErrBufferFull) {
					t.Fatalf("offender: %v, want ErrBufferFull", err)
				}
				if d := time.Since(start); d > time.Minute {
					t.Errorf("offender closed after %v, want within a minute", d)
				}
				if got := tc.budget.InUse(); got != 0 {
					t.Errorf("%d bytes held after the offender ended", got)
				}
			})
		})
	}
}

func TestSharedHandlerSlots(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// 8 slots, 2 reserved; streams leave 1 for calls: a stranger's
		// streams get 5.
		slots := NewBudget(8, 2)
		_, rawA, _ := limited(t, Limits{Handlers: slots}, HandlerFunc(goAPI))
		_, rawB, _ := limited(t, Limits{Handlers: slots, Reserved: true}, HandlerFunc(goAPI))
		a, b := peerOf(t, rawA), peerOf(t, rawB)
		ctx := context.Background()
		for range 5 {
			if _, err := a.Open(Method{"goEcho"}, Duplex); err != nil {
				t.Fatal(err)
			}
		}
		synctest.Wait()
		over, _ := a.Open(Method{"goEcho"}, Duplex)
		_, err := over.Recv(ctx)
		wantRemoteError(t, err, "too many open streams")
		// Calls still have room.
		if _, err := a.Async(ctx, Method{"goHello"}, "x"); err != nil {
			t.Fatalf("call while streams hold their share: %v", err)
		}
		// The reserved slots are for b.
		s, _ := b.Open(Method{"goEcho"}, Duplex)
		s.Send(7)
		var seven int
		if err := s.RecvJSON(ctx, &seven); err != nil || seven != 7 {
			t.Fatalf("reserved slot: %d, %v", seven, err)
		}
	})
}

// FuzzLimitedEndpoint feeds an endpoint with tight limits arbitrary bytes:
// whatever the peer sends, once the connection has ended every byte and
// handler slot it took is given back.
func FuzzLimitedEndpoint(f *testing.F) {
	call := func(req int32, stream bool, body string) []byte {
		b, _ := AppendPacket(nil, Packet{Req: req, Stream: stream, Type: JSON, Body: []byte(body)})
		return b
	}
	f.Add(call(1, false, `{"name":["goHello"],"type":"async","args":["x"]}`))
	var streams []byte
	for i := int32(1); i <= 4; i++ {
		streams = append(streams, call(i, true, `{"name":["goEcho"],"type":"duplex","args":[]}`)...)
		streams = append(streams, call(i, true, `"data"`)...)
	}
	f.Add(streams)
	f.Fuzz(func(t *testing.T, data []byte) {
		budget, slots := NewBudget(1<<16, 1<<12), NewBudget(4, 1)
		ca, cb := net.Pipe()
		e := NewEndpoint(cb, HandlerFunc(goAPI), WithLimits(Limits{MaxBody: 1 << 12, MaxStreams: 2, MaxCalls: 1,
			Buffer: 1 << 13, Budget: budget, Handlers: slots, BufferTimeout: time.Second, WriteTimeout: time.Second}))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { e.Serve(ctx); close(done) }()
		go io.Copy(io.Discard, ca)
		ca.Write(data)
		ca.Close()
		<-done
		if budget.InUse() != 0 || slots.InUse() != 0 {
			t.Fatalf("after the connection: %d bytes and %d handler slots still taken", budget.InUse(), slots.InUse())
		}
	})
}
