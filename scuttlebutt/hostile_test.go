package scuttlebutt_test

// Hostile peers: garbage, huge lines, a clock with a million sources,
// updates from too many sources, a history out of order, non-finite and
// far-future timestamps. Each must fail that stream with a clear error and
// close it, apply nothing of the bad line, keep memory bounded, and leave
// the replica and its other streams working.

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// hostileModel returns a model with one key and a synced second model, like
// utModelWithPeer, with options.
func hostileModel(t *testing.T, opts ...scuttlebutt.Option) (*model.Model, *model.Model, *utPair) {
	t.Helper()
	a := model.New("A", opts...)
	if err := a.Set("x", 1); err != nil {
		t.Fatal(err)
	}
	b := model.New("B")
	p := utConnect(a.Replica, b.Replica, nil, nil)
	utPump(t, p)
	return a, b, p
}

func TestHostileLines(t *testing.T) {
	future := func(d time.Duration) string { return fmt.Sprint(time.Now().Add(d).UnixMilli()) }
	cases := []struct {
		name   string
		lines  []string // written one at a time; the last must fail
		opts   []scuttlebutt.Option
		target error
	}{
		{"garbage", []string{"\x00\x01garbage"}, nil, scuttlebutt.ErrProtocol},
		{"notAnUpdate", []string{`[1,2]`}, nil, scuttlebutt.ErrProtocol},
		{"infiniteTimestamp", []string{`[["k",1],1e400,"P"]`}, nil, scuttlebutt.ErrProtocol},
		{"negativeInfiniteTimestamp", []string{`[["k",1],-1e400,"P"]`}, nil, scuttlebutt.ErrProtocol},
		{"stringTimestamp", []string{`[["k",1],"5","P"]`}, nil, scuttlebutt.ErrProtocol},
		{"farFuture", []string{`[["k",1],` + future(11*time.Minute) + `,"P"]`}, nil, scuttlebutt.ErrFutureTimestamp},
		{"largestFloat", []string{`[["k",1],1.7976931348623157e308,"P"]`}, nil, scuttlebutt.ErrProtocol},
		{"farFutureSmallSkew", []string{`[["k",1],` + future(2*time.Second) + `,"P"]`},
			[]scuttlebutt.Option{scuttlebutt.WithMaxClockSkew(time.Second)}, scuttlebutt.ErrFutureTimestamp},
		{"historyOutOfOrder", []string{`[["k",1],5,"P"]`, `[["j",1],6,"Q"]`, `[["k",2],4,"P"]`}, nil, scuttlebutt.ErrProtocol},
		{"tooManySources", []string{`[["k",1],5,"P1"]`, `[["k",2],6,"P2"]`, `"SYNC"`, `[["k",3],7,"P3"]`},
			[]scuttlebutt.Option{scuttlebutt.WithMaxSources(3)}, scuttlebutt.ErrTooManySources}, // A, P1, P2
		{"headerTooManySources", []string{`{"id":"P","clock":{"a":1,"b":2,"c":3,"d":4}}`},
			[]scuttlebutt.Option{scuttlebutt.WithMaxSources(3)}, scuttlebutt.ErrTooManySources},
		{"headersAddingUp", []string{`{"id":"P","clock":{"a":1,"b":2,"c":3}}`, `{"id":"P","clock":{"d":1,"e":2,"f":3}}`, `{"id":"P","clock":{"g":1}}`},
			[]scuttlebutt.Option{scuttlebutt.WithMaxSources(3)}, scuttlebutt.ErrTooManySources},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, b, p := hostileModel(t, c.opts...)
			var applied []string
			a.OnUpdate(func(u scuttlebutt.Update) { applied = append(applied, u.String()) })
			s := a.NewStream()
			if !strings.HasPrefix(c.lines[0], "{") {
				utWrite(t, s, utPeerHeader)
			}
			utWrite(t, s, c.lines[:len(c.lines)-1]...)
			before := len(applied)
			clock := a.Clock()
			utExpectFail(t, s, c.lines[len(c.lines)-1], c.target)
			if len(applied) != before {
				t.Fatalf("applied %q from the bad line", applied[before:])
			}
			if got := a.Clock(); fmt.Sprint(got) != fmt.Sprint(clock) {
				t.Fatalf("clock moved from %v to %v", clock, got)
			}
			utStillWorks(t, a, b, p)
			// Local timestamps were not pushed ahead by the bad line.
			if u := a.History(nil); u[len(u)-1].Timestamp > float64(time.Now().Add(time.Minute).UnixMilli()) {
				t.Fatalf("local update stamped %v, ahead of the wall clock", u[len(u)-1].Timestamp)
			}
		})
	}
}

// Five minutes ahead is within the default skew: accepted, and a local
// change climbs above it (see TestEdge15LocalChangeBeatsFastPeerClock).
// A relay checks each update it forwards against its own clock too.
func TestHostileSkewWithinBound(t *testing.T) {
	a := model.New("A")
	s := a.NewStream()
	ts := float64(time.Now().Add(5 * time.Minute).UnixMilli())
	utWrite(t, s, utPeerHeader, fmt.Sprintf(`[["k",1],%v,"P"]`, ts))
	if v, _ := a.Get("k"); string(v) != "1" {
		t.Fatalf("k = %s, want the update five minutes ahead applied", v)
	}
	strict := model.New("S", scuttlebutt.WithMaxClockSkew(time.Minute))
	as := a.NewStream()
	utWrite(t, as, `{"id":"S","clock":{}}`)
	out, _ := utDrain(t, as)
	ss := strict.NewStream()
	if _, err := ss.Write(out); !errors.Is(err, scuttlebutt.ErrFutureTimestamp) {
		t.Fatalf("a replica allowing one minute of skew: Write = %v, want ErrFutureTimestamp", err)
	}
	if _, ok := strict.Get("k"); ok {
		t.Fatal("the strict replica applied the update five minutes ahead")
	}
}

// A line far over the limit, fed in chunks: the stream fails as soon as
// the limit is passed, having buffered no more than the limit.
func TestHostileHugeLine(t *testing.T) {
	const limit = 64 << 10
	a, b, p := hostileModel(t, scuttlebutt.WithMaxLine(limit))
	s := a.NewStream()
	utWrite(t, s, utPeerHeader)
	chunk := bytes.Repeat([]byte("a"), 4096)
	accepted := 0
	var err error
	for range 1 << 14 { // 64 MiB, if it were all accepted
		var n int
		n, err = s.Write(chunk)
		accepted += n
		if err != nil {
			break
		}
	}
	if !errors.Is(err, scuttlebutt.ErrLineTooLong) {
		t.Fatalf("Write = %v after %d bytes, want ErrLineTooLong", err, accepted)
	}
	if accepted > limit+len(chunk) {
		t.Fatalf("accepted %d bytes of one line, limit %d", accepted, limit)
	}
	utStillWorks(t, a, b, p)
}

// A header whose clock has a million sources: over the default line limit
// it is a line too long; with the limit raised to let it through, it fails
// with ErrTooManySources before a clock of a million entries is built.
func TestHostileMillionSourceClock(t *testing.T) {
	var line bytes.Buffer
	line.WriteString(`{"id":"P","clock":{`)
	for i := range 1_000_000 {
		if i > 0 {
			line.WriteByte(',')
		}
		fmt.Fprintf(&line, `"s%d":%d`, i, i+1)
	}
	line.WriteString("}}")
	hdr := line.String()

	a, b, p := hostileModel(t)
	utExpectFail(t, a.NewStream(), hdr, scuttlebutt.ErrLineTooLong)
	utStillWorks(t, a, b, p)

	a, b, p = hostileModel(t, scuttlebutt.WithMaxLine(2*len(hdr)))
	s := a.NewStream()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := s.Write([]byte(hdr + "\n"))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, scuttlebutt.ErrTooManySources) {
		t.Fatalf("Write = %v, want ErrTooManySources", err)
	}
	// A map of a million entries alone would take about 60 MB; the line is
	// about 15 MB and is copied once into canonical form.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(6*len(hdr)) {
		t.Fatalf("decoding the header allocated %d MB for a %d MB line", alloc>>20, len(hdr)>>20)
	}
	utStillWorks(t, a, b, p)
}

// Equal timestamps from one source in a history are tolerated (npm
// scuttlebutt accepts ts 0 again and again, so a JavaScript history can
// hold two at 0); only going back is an error. After the peer's "SYNC",
// going back is old data, as in JavaScript (TestEdge10OldData).
func TestHostileHistoryOutOfOrder(t *testing.T) {
	a := model.New("A")
	s := a.NewStream()
	utWrite(t, s, utPeerHeader, `[["k",1],0,"P"]`, `[["j",1],0,"P"]`, `[["i",1],3,"P"]`, `"SYNC"`, `[["h",1],2,"P"]`)
	if s.Err() != nil {
		t.Fatal(s.Err())
	}
	a2 := model.New("A")
	utExpectFail(t, a2.NewStream(), utPeerHeader+"\n"+`[["k",1],3,"P"]`+"\n"+`[["j",1],2,"P"]`, scuttlebutt.ErrProtocol)
	if v, _ := a2.Get("k"); string(v) != "1" {
		t.Fatalf("k = %s: the updates before the bad one are applied", v)
	}
	if _, ok := a2.Get("j"); ok {
		t.Fatal("the update out of order was applied")
	}
}
