package scuttlebutt_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// fzMaxLine is the line limit of the fuzzed replica: small, so that the
// fuzzer reaches it.
const fzMaxLine = 200

// FuzzStreamWrite feeds arbitrary bytes to a stream, in chunks whose sizes
// are derived from the input. Whatever the bytes, the stream must not panic,
// must not buffer more than its line limit, must only ever send valid
// protocol lines, and must either go on or fail with one of the errors of
// a hostile peer (ErrProtocol, ErrLineTooLong, ErrFutureTimestamp,
// ErrTooManySources) and close; the replica and its other streams go on.
func FuzzStreamWrite(f *testing.F) {
	for _, seed := range []string{
		`{"id":"P","clock":{}}` + "\n" + `[["k",1],1700000000000,"P"]` + "\n" + `"SYNC"` + "\n",
		`{"id":"P","clock":{"A":1700000000000.001},"meta":"hi"}` + "\n",
		`[["k",{"b":1}],1795315650990,"lk5RPxZJ4InN3AxwVYiqIOHHpQs=","BynwNV1U"]` + "\n",
		`[["x",3],1700000000005,"A"]` + "\r\n" + `"SYNC"` + "\r\n",
		`{"id":"P","clock":{}}` + "\n" + `{"id":"P","clock":{"Q":5}}` + "\n",
		"null\n5\ntrue\n\"other\"\n",
		`[["z",null],1700000000000.002,"B"]` + "\n" + `[null,5,"X"]` + "\n" + `["abc",6,"X"]` + "\n",
		`[["k","h\u00e9llo\u20ac"],5,"P"]` + "\n",
		"[[\"k\",\"h\xc3\xa9llo\xe2\x82\xac\"],5,\"P\"]\n",
		`{"clock":[]}` + "\n",
		"\n",
		"garbage\n",
		strings.Repeat("a", fzMaxLine+1),
		`[["k",1],-0,"P"]` + "\n" + `[["k",1],0,"P"]` + "\n",
		`{"id":"P","clock":{}}` + "\n" + `[["k",1],5,"P"]` + "\n" + `[["cut",2],6,`, // the peer dies mid-line
		`[["a\ud800",1],5,"P"]` + "\n" + `[["a\ufffd",2],6,"P"]` + "\n" + `[["\udc00\ud800",3],7,"P"]` + "\n",
		`[["__proto__",1],5,"P"]` + "\n" + `[["k",1],6,"P"]` + "\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		a := model.New("A", scuttlebutt.WithMaxLine(fzMaxLine), scuttlebutt.WithQueueLimit(4), scuttlebutt.WithMaxSources(8), scuttlebutt.WithPageSize(2))
		if err := a.Set("seed", 1); err != nil {
			t.Fatal(err)
		}
		b := model.New("B")
		other := utConnect(a.Replica, b.Replica, nil, nil)
		utPump(t, other)

		s := a.NewStream()
		h := fnv.New64a()
		h.Write(data)
		rng := rand.New(rand.NewPCG(h.Sum64(), uint64(len(data))))
		sinceNewline := 0
		var failed error
		for rest := data; len(rest) > 0 && failed == nil; {
			n := min(1+rng.IntN(64), len(rest))
			chunk := rest[:n]
			rest = rest[n:]
			if _, err := s.Write(chunk); err != nil {
				failed = err
				break
			}
			if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
				sinceNewline = n - i - 1
			} else {
				sinceNewline += n
			}
			if sinceNewline > fzMaxLine {
				t.Fatalf("stream buffers %d bytes without a newline, limit %d", sinceNewline, fzMaxLine)
			}
			fzCheckOutput(t, s)
		}

		if failed != nil {
			if !errors.Is(failed, scuttlebutt.ErrProtocol) && !errors.Is(failed, scuttlebutt.ErrLineTooLong) &&
				!errors.Is(failed, scuttlebutt.ErrFutureTimestamp) && !errors.Is(failed, scuttlebutt.ErrTooManySources) {
				t.Fatalf("Write failed with %v, want ErrProtocol, ErrLineTooLong, ErrFutureTimestamp or ErrTooManySources", failed)
			}
			if !utClosed(s.Done()) {
				t.Fatal("stream not closed after failing")
			}
			if _, err := s.Write([]byte(`"SYNC"` + "\n")); err == nil {
				t.Fatal("Write after failure succeeded")
			}
		} else {
			// The input ends here: in the middle of a line, that is a peer
			// that died.
			err := s.CloseWrite()
			if partial := sinceNewline > 0; partial != errors.Is(err, io.ErrUnexpectedEOF) || !partial && err != nil {
				t.Fatalf("CloseWrite with %d bytes after the last newline = %v", sinceNewline, err)
			}
			fzCheckOutput(t, s)
			if !utClosed(s.Done()) {
				t.Fatal("stream not closed after CloseWrite and draining")
			}
		}
		if a.Streams() != 1 {
			t.Fatalf("Streams() = %d, want 1 (the other stream)", a.Streams())
		}

		// The replica and its other stream go on.
		if _, err := a.LocalUpdate(json.RawMessage(`["after",2]`)); err != nil {
			t.Fatalf("LocalUpdate after the fuzzed stream: %v", err)
		}
		utPump(t, other)
		if v, _ := b.Get("after"); string(v) != "2" {
			t.Fatalf("other stream stopped: b.Get(after) = %s", v)
		}
	})
}

// fzCheckOutput drains s and checks that its output is valid protocol:
// single-line ASCII JSON, a header object first, then arrays and "SYNC".
func fzCheckOutput(t *testing.T, s *scuttlebutt.Stream) {
	t.Helper()
	var buf bytes.Buffer
	s.Drain(&buf) // an error here is the stream's failure, checked by the caller
	if buf.Len() == 0 {
		return
	}
	for _, l := range utSplitLines(t, buf.Bytes()) {
		for _, c := range []byte(l) {
			if c >= 0x80 || c < 0x20 {
				t.Fatalf("output line has byte %#x: %q", c, l)
			}
		}
		if !json.Valid([]byte(l)) {
			t.Fatalf("output line is not JSON: %q", l)
		}
		switch {
		case l == `"SYNC"`, strings.HasPrefix(l, `{"id":"A","clock":{`):
		case strings.HasPrefix(l, "["):
			var u []json.RawMessage
			var ts float64
			var src string
			if json.Unmarshal([]byte(l), &u) != nil || len(u) < 3 || json.Unmarshal(u[1], &ts) != nil || json.Unmarshal(u[2], &src) != nil {
				t.Fatalf("output update is not [change, number, string]: %q", l)
			}
		default:
			t.Fatalf("unexpected output line %q", l)
		}
	}
}
