package scuttlebutt_test

// Helpers shared by the unit tests of package scuttlebutt (upstream, edge,
// convergence and fuzz tests). Their names start with "ut" so that they do
// not collide with the helpers of other test files in the package.

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
)

// utT0 is 2023-11-14T22:13:20Z, the instant npm scuttlebutt's transcripts
// in the protocol notes were taken at.
var utT0 = time.UnixMilli(1700000000000)

// utTB is the part of testing.TB the helpers use; *rapid.T has it too.
type utTB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// utClock is a fake wall clock that advances by step on every reading.
// Timestamps are process-wide and never go below the last one handed out,
// so a fake clock only counts while it is ahead of them.
type utClock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

func (c *utClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(c.step)
	return c.t
}

// utDrain returns all output s has now, and whether its output has ended.
// Any error other than io.EOF fails the test.
func utDrain(t utTB, s *scuttlebutt.Stream) ([]byte, bool) {
	t.Helper()
	var buf bytes.Buffer
	_, err := s.Drain(&buf)
	switch {
	case err == nil:
		return buf.Bytes(), false
	case errors.Is(err, io.EOF):
		return buf.Bytes(), true
	}
	t.Fatalf("Drain: %v", err)
	return nil, false
}

// utSplitLines splits stream output into lines without their newline; the
// output must end with a newline.
func utSplitLines(t utTB, out []byte) []string {
	t.Helper()
	if len(out) == 0 {
		return nil
	}
	if out[len(out)-1] != '\n' {
		t.Fatalf("output does not end with a newline: %q", out)
	}
	return strings.Split(string(out[:len(out)-1]), "\n")
}

// utOut drains s and returns its output lines.
func utOut(t utTB, s *scuttlebutt.Stream) []string {
	t.Helper()
	out, _ := utDrain(t, s)
	return utSplitLines(t, out)
}

// utWrite writes each line, with a newline, to s as the peer's output and
// fails the test on error.
func utWrite(t utTB, s *scuttlebutt.Stream, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := s.Write([]byte(l + "\n")); err != nil {
			t.Fatalf("Write(%q): %v", l, err)
		}
	}
}

// utPair is an in-memory connection of two streams, a of one replica and b
// of another. Output is moved with Drain and Write; when one side's output
// ends, the other is told with CloseWrite, as Stream.Serve does.
type utPair struct {
	a, b *scuttlebutt.Stream

	aEnded, bEnded bool // the side's output ended and the other was told

	// Lines moved so far in each direction, if recording.
	record     bool
	aToB, bToA []string
}

// utConnect creates a stream on each replica and returns them as a pair.
func utConnect(ra, rb *scuttlebutt.Replica, aopts, bopts []scuttlebutt.StreamOption) *utPair {
	return &utPair{a: ra.NewStream(aopts...), b: rb.NewStream(bopts...)}
}

// pumpOnce moves what each side has now to the other and returns the number
// of bytes moved.
func (p *utPair) pumpOnce(t utTB) int {
	t.Helper()
	n := utMove(t, p.a, p.b, &p.aEnded, p.record, &p.aToB)
	return n + utMove(t, p.b, p.a, &p.bEnded, p.record, &p.bToA)
}

func utMove(t utTB, from, to *scuttlebutt.Stream, ended *bool, record bool, log *[]string) int {
	t.Helper()
	if *ended {
		return 0
	}
	out, eof := utDrain(t, from)
	if len(out) > 0 {
		if record {
			*log = append(*log, utSplitLines(t, out)...)
		}
		if _, err := to.Write(out); err != nil {
			t.Fatalf("Write: %v", err)
		}
	}
	if eof {
		*ended = true
		to.CloseWrite()
		return len(out) + 1 // ending counts as progress
	}
	return len(out)
}

// utPump moves output between the pairs until nothing moves.
func utPump(t utTB, pairs ...*utPair) {
	t.Helper()
	for round := 0; ; round++ {
		if round > 1000 {
			t.Fatal("pairs did not become quiescent after 1000 rounds")
		}
		moved := 0
		for _, p := range pairs {
			moved += p.pumpOnce(t)
		}
		if moved == 0 {
			return
		}
	}
}

// utClosed reports whether ch is closed, without waiting.
func utClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// utHistory returns the wire form of every update r retains.
func utHistory(r *scuttlebutt.Replica) []string {
	var out []string
	for _, u := range r.History(nil) {
		out = append(out, u.String())
	}
	return out
}

// utUpdateLines returns the lines that are updates (JSON arrays).
func utUpdateLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasPrefix(l, "[") {
			out = append(out, l)
		}
	}
	return out
}

// utCount returns how many lines equal s.
func utCount(lines []string, s string) int {
	n := 0
	for _, l := range lines {
		if l == s {
			n++
		}
	}
	return n
}

// utDecodeUpdate decodes a wire update line for inspection.
func utDecodeUpdate(t utTB, line string) (change json.RawMessage, ts float64, source string) {
	t.Helper()
	var u []json.RawMessage
	if err := json.Unmarshal([]byte(line), &u); err != nil || len(u) < 3 {
		t.Fatalf("not an update line: %q (%v)", line, err)
	}
	if err := json.Unmarshal(u[1], &ts); err != nil {
		t.Fatalf("update timestamp in %q: %v", line, err)
	}
	if err := json.Unmarshal(u[2], &source); err != nil {
		t.Fatalf("update source in %q: %v", line, err)
	}
	return u[0], ts, source
}

// utDone waits up to 10 seconds for ch to close.
func utDone(t utTB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
