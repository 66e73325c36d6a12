package muxrpc

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCodecRoundTrip(t *testing.T) {
	packets := []Packet{
		{Req: 1, Type: JSON, Body: []byte(`{"name":["whoami"],"type":"async","args":[]}`)},
		{Req: -1, Type: String, Body: []byte("hello")},
		{Req: 2, Stream: true, Type: Binary, Body: []byte{0, 1, 2}},
		{Req: -2, Stream: true, End: true, Type: JSON, Body: []byte("true")},
		{Req: -2147483648, Type: Binary, Body: bytes.Repeat([]byte{7}, 70000)},
	}
	var wire []byte
	for _, p := range packets {
		var err error
		if wire, err = AppendPacket(wire, p); err != nil {
			t.Fatal(err)
		}
	}
	wire = append(wire, Goodbye[:]...)
	// The header of the first packet, from the protocol guide's layout.
	if want := []byte{0x02, 0, 0, 0, 44, 0, 0, 0, 1}; !bytes.Equal(wire[:9], want) {
		t.Fatalf("header % x, want % x", wire[:9], want)
	}
	d := NewDecoder(bytes.NewReader(wire), 0)
	for i, want := range packets {
		got, err := d.Next()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if got.Req != want.Req || got.Stream != want.Stream || got.End != want.End || got.Type != want.Type || !bytes.Equal(got.Body, want.Body) {
			t.Fatalf("packet %d: got %v, want %v", i, got, want)
		}
	}
	if _, err := d.Next(); err != io.EOF {
		t.Fatalf("after the packets: %v, want io.EOF for goodbye", err)
	}
}

func TestCodecRefusals(t *testing.T) {
	if _, err := AppendPacket(nil, Packet{Req: 1, Type: String}); !errors.Is(err, ErrEmptyBody) {
		t.Errorf("empty body: %v, want ErrEmptyBody", err)
	}
	big := []byte{0x02, 0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 1}
	if _, err := NewDecoder(bytes.NewReader(big), 1024).Next(); !errors.Is(err, ErrBodyTooLarge) {
		t.Errorf("2 GiB body: %v, want ErrBodyTooLarge", err)
	}
	if _, err := NewDecoder(bytes.NewReader([]byte{2, 0, 0}), 0).Next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("cut header: %v, want io.ErrUnexpectedEOF", err)
	}
	// Any empty body is a goodbye, whatever the flags, as packet-stream-codec reads it.
	if _, err := NewDecoder(bytes.NewReader([]byte{0x0e, 0, 0, 0, 0, 0, 0, 0, 5}), 0).Next(); err != io.EOF {
		t.Errorf("empty body with flags: %v, want io.EOF", err)
	}
}

// goManifest is the type of each method of goAPI.
var goManifest = map[string]CallType{
	"goHello": Async, "goFail": Async, "goCount": Source, "goEcho": Duplex, "goSum": Sink,
}

// goAPI is the Go side's methods in the tests. Like any handler, it checks
// the call type against its manifest before it trusts the request.
func goAPI(ctx context.Context, req *Request) {
	if typ, ok := goManifest[req.Method.String()]; ok && typ != req.Type {
		req.Fail(fmt.Errorf("%s is a %s method, called as %s", req.Method, typ, req.Type))
		return
	}
	switch req.Method.String() {
	case "goHello":
		var args []string
		if json.Unmarshal(req.Args, &args) != nil || len(args) != 1 {
			req.Fail(errors.New("goHello takes one string"))
			return
		}
		req.Return("hello, " + args[0] + "!")
	case "goCount":
		var args []int
		if json.Unmarshal(req.Args, &args) != nil || len(args) != 1 {
			req.Fail(errors.New("goCount takes one number"))
			return
		}
		for i := range args[0] {
			if err := req.Stream().Send(i); err != nil {
				return
			}
		}
	case "goFail":
		req.Fail(errors.New("go says no"))
	case "goEcho":
		s := req.Stream()
		for {
			p, err := s.Recv(ctx)
			if err != nil {
				return
			}
			s.SendRaw(p.Type, p.Body)
		}
	case "goSum": // sink: adds numbers until the end, then logs the sum
		var sum int
		for {
			var n int
			if err := req.Stream().RecvJSON(ctx, &n); err != nil {
				sums <- sum
				return
			}
			sum += n
		}
	default:
		req.Fail(fmt.Errorf("method:%s is not in list of allowed methods", req.Method))
	}
}

var sums = make(chan int, 10)

// pair connects two endpoints over an in-memory pipe; b serves goAPI.
func pair(t *testing.T, aHandler Handler) (a, b *Endpoint) {
	t.Helper()
	ca, cb := net.Pipe()
	a = NewEndpoint(ca, aHandler)
	b = NewEndpoint(cb, HandlerFunc(goAPI))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Serve(ctx) })
	wg.Go(func() { b.Serve(ctx) })
	t.Cleanup(func() { cancel(); wg.Wait() })
	return a, b
}

func TestCallTypes(t *testing.T) {
	a, _ := pair(t, nil)
	ctx := context.Background()

	var hello string
	if err := a.AsyncJSON(ctx, &hello, Method{"goHello"}, "go"); err != nil || hello != "hello, go!" {
		t.Fatalf("async: %q, %v", hello, err)
	}
	var remote *Error
	if _, err := a.Async(ctx, Method{"goFail"}); !errors.As(err, &remote) || remote.Message != "go says no" {
		t.Fatalf("async error: %v", err)
	}
	if _, err := a.Async(ctx, Method{"no", "such"}); err == nil || !bytesContains(err.Error(), "not in list of allowed methods") {
		t.Fatalf("unknown method: %v", err)
	}

	src, err := a.Open(Method{"goCount"}, Source, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for want := range 1000 {
		var got int
		if err := src.RecvJSON(ctx, &got); err != nil || got != want {
			t.Fatalf("source item %d: %d, %v", want, got, err)
		}
	}
	if _, err := src.Recv(ctx); err != io.EOF {
		t.Fatalf("source end: %v, want io.EOF", err)
	}

	sink, err := a.Open(Method{"goSum"}, Sink)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 100; i++ {
		sink.Send(i)
	}
	sink.Close()
	if got := <-sums; got != 5050 {
		t.Fatalf("sink sum %d, want 5050", got)
	}

	dup, err := a.Open(Method{"goEcho"}, Duplex)
	if err != nil {
		t.Fatal(err)
	}
	dup.Send("ping")
	dup.SendRaw(Binary, []byte{1, 2, 3})
	if p, err := dup.Recv(ctx); err != nil || string(p.Body) != `"ping"` || p.Type != JSON {
		t.Fatalf("duplex echo: %v, %v", p, err)
	}
	if p, err := dup.Recv(ctx); err != nil || !bytes.Equal(p.Body, []byte{1, 2, 3}) || p.Type != Binary {
		t.Fatalf("duplex binary echo: %v, %v", p, err)
	}
	dup.Close()
}

func bytesContains(s, sub string) bool { return bytes.Contains([]byte(s), []byte(sub)) }

// Both sides call each other on one connection, concurrently.
func TestBothDirectionsConcurrently(t *testing.T) {
	a, b := pair(t, HandlerFunc(goAPI))
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 {
		for _, e := range []*Endpoint{a, b} {
			wg.Go(func() {
				var s string
				if err := e.AsyncJSON(ctx, &s, Method{"goHello"}, strconv.Itoa(i)); err != nil || s != "hello, "+strconv.Itoa(i)+"!" {
					t.Errorf("call %d: %q, %v", i, s, err)
				}
			})
		}
	}
	wg.Wait()
}

// A consumer that does not read holds back the producer instead of
// buffering: the producer's sends block once the pipe and the stream's
// buffer are full.
func TestBackPressure(t *testing.T) {
	a, _ := pair(t, nil)
	src, err := a.Open(Method{"goCount"}, Source, 1000000)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the producer run into the limit
	src.mu.Lock()
	queued := len(src.queue)
	src.mu.Unlock()
	if queued > StreamBuffer {
		t.Fatalf("%d packets buffered, want at most %d", queued, StreamBuffer)
	}
	ctx := context.Background()
	for want := range 500 {
		var got int
		if err := src.RecvJSON(ctx, &got); err != nil || got != want {
			t.Fatalf("item %d: %d, %v", want, got, err)
		}
	}
	src.Close() // the producer's next send fails and it stops
}

func TestGoodbyeEndsBoth(t *testing.T) {
	ca, cb := net.Pipe()
	a, b := NewEndpoint(ca, nil), NewEndpoint(cb, HandlerFunc(goAPI))
	errs := make(chan error, 2)
	go func() { errs <- a.Serve(context.Background()) }()
	go func() { errs <- b.Serve(context.Background()) }()
	src, err := a.Open(Method{"goEcho"}, Duplex)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Serve after goodbye: %v, want nil", err)
		}
	}
	if _, err := src.Recv(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("stream after goodbye: %v, want ErrClosed", err)
	}
	if _, err := a.Async(context.Background(), Method{"goHello"}, "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("call after goodbye: %v, want ErrClosed", err)
	}
}

func TestGarbageEndsConnection(t *testing.T) {
	for name, junk := range map[string][]byte{
		"http":           []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"not a call":     append([]byte{0x02, 0, 0, 0, 3, 0, 0, 0, 1}, "123"...),
		"request number": append([]byte{0x02, 0, 0, 0, 4, 0, 0, 0, 0}, "true"...),
	} {
		t.Run(name, func(t *testing.T) {
			ca, cb := net.Pipe()
			e := NewEndpoint(cb, HandlerFunc(goAPI))
			errc := make(chan error, 1)
			go func() { errc <- e.Serve(context.Background()) }()
			go func() { ca.Write(junk); io.Copy(io.Discard, ca) }()
			select {
			case err := <-errc:
				if err == nil {
					t.Fatal("garbage ended the connection without an error")
				}
			case <-time.After(5 * time.Second):
				t.Fatal("garbage did not end the connection")
			}
			ca.Close()
		})
	}
}

// Against JavaScript muxrpc@6.7.3 (what ssb-server@16 runs), over TCP, with
// each side calling the other, and with Go listening or dialing.
func TestInteropJS(t *testing.T) {
	for _, goListens := range []bool{false, true} {
		t.Run(map[bool]string{false: "js listens", true: "go listens"}[goListens], func(t *testing.T) {
			oracle.Require(t)
			var conn net.Conn
			var js *oracle.Peer
			if goListens {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				defer ln.Close()
				js = oracle.Start(t, "muxrpc-peer.js", "connect", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
				if conn, err = ln.Accept(); err != nil {
					t.Fatal(err)
				}
			} else {
				js = oracle.Start(t, "muxrpc-peer.js", "listen")
				port := js.WaitFor(func(m oracle.Msg) bool { return m.Int("port") > 0 }).Int("port")
				var err error
				if conn, err = net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port)); err != nil {
					t.Fatal(err)
				}
			}
			e := NewEndpoint(conn, HandlerFunc(goAPI))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			served := make(chan error, 1)
			go func() { served <- e.Serve(ctx) }()

			// Go calls JavaScript.
			var hello string
			if err := e.AsyncJSON(ctx, &hello, Method{"hello"}, "go"); err != nil || hello != "hello, go!" {
				t.Fatalf("hello: %q, %v", hello, err)
			}
			var remote *Error
			if _, err := e.Async(ctx, Method{"fail"}); !errors.As(err, &remote) || remote.Message != "nope" {
				t.Fatalf("fail: %v", err)
			}
			src, err := e.Open(Method{"count"}, Source, 5)
			if err != nil {
				t.Fatal(err)
			}
			for want := range 5 {
				var got int
				if err := src.RecvJSON(ctx, &got); err != nil || got != want {
					t.Fatalf("count item %d: %d, %v", want, got, err)
				}
			}
			if _, err := src.Recv(ctx); err != io.EOF {
				t.Fatalf("count end: %v", err)
			}
			dup, err := e.Open(Method{"echo"}, Duplex)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range []any{"a", 2, map[string]int{"c": 3}} {
				dup.Send(v)
			}
			for _, want := range []string{`"a"`, `2`, `{"c":3}`} {
				var v any
				if err := dup.RecvJSON(ctx, &v); err != nil {
					t.Fatalf("echo: %v", err)
				}
				if got, _ := json.Marshal(v); string(got) != want {
					t.Fatalf("echo: %s, want %s", got, want)
				}
			}
			dup.Close()
			if _, err := dup.Recv(ctx); err != nil && err != io.EOF {
				t.Fatalf("echo end: %v", err)
			}

			// JavaScript calls Go (it starts as soon as it connects).
			for call, want := range map[string]string{
				"goHello": `"hello, js!"`,
				"goCount": `[0,1,2]`,
				"goEcho":  `[1,"two",{"three":3}]`,
			} {
				m := js.WaitFor(func(m oracle.Msg) bool { return m.Str("call") == call })
				if got := string(m.Fields["result"]); got != want || m.Str("err") != "" {
					t.Errorf("JS %s: %s (err %q), want %s", call, got, m.Str("err"), want)
				}
			}
			if m := js.WaitFor(func(m oracle.Msg) bool { return m.Str("call") == "goFail" }); m.Str("err") != "go says no" {
				t.Errorf("JS goFail: error %q, want %q", m.Str("err"), "go says no")
			}
			js.WaitFor(func(m oracle.Msg) bool { return string(m.Fields["done"]) == "true" })

			e.Close() // goodbye: JavaScript closes too
			js.WaitFor(func(m oracle.Msg) bool { return string(m.Fields["closed"]) == "true" })
			if err := <-served; err != nil {
				t.Fatalf("Serve: %v", err)
			}
		})
	}
}

func FuzzDecoder(f *testing.F) {
	p, _ := AppendPacket(nil, Packet{Req: 1, Stream: true, Type: JSON, Body: []byte(`{"name":["x"],"type":"source","args":[]}`)})
	f.Add(p)
	f.Add(Goodbye[:])
	f.Add([]byte{0x0f, 0xff, 0xff, 0xff, 0xff, 0x80, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := NewDecoder(bytes.NewReader(data), 1<<16)
		for range 1000 {
			p, err := d.Next()
			if err != nil {
				return
			}
			if len(p.Body) == 0 || len(p.Body) > 1<<16 {
				t.Fatalf("decoded a body of %d bytes", len(p.Body))
			}
		}
	})
}

// FuzzEndpoint feeds arbitrary bytes to an endpoint as a peer would: it
// must end the connection or go on, never panic or hang.
func FuzzEndpoint(f *testing.F) {
	p, _ := AppendPacket(nil, Packet{Req: 1, Type: JSON, Body: []byte(`{"name":["goHello"],"type":"async","args":["x"]}`)})
	f.Add(p)
	q, _ := AppendPacket(nil, Packet{Req: 2, Stream: true, Type: JSON, Body: []byte(`{"name":["goEcho"],"type":"duplex","args":[]}`)})
	f.Add(append(q, p...))
	f.Fuzz(func(t *testing.T, data []byte) {
		ca, cb := net.Pipe()
		e := NewEndpoint(cb, HandlerFunc(goAPI))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { e.Serve(ctx); close(done) }()
		go io.Copy(io.Discard, ca)
		ca.Write(data)
		ca.Close()
		<-done
	})
}
