package replicate

import (
	"encoding/json"
	"testing"
)

// FuzzEBTPacket feeds arbitrary bodies to what reads a peer's EBT packets:
// asMessage tells a message from a note, and a note decodes to a map or is
// refused; neither panics, and a message has an author and a signature.
func FuzzEBTPacket(f *testing.F) {
	f.Add([]byte(`{"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519":6}`))
	f.Add([]byte(`{"previous":null,"author":"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519","sequence":1,"signature":"x"}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"author":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if m, ok := asMessage(body); ok && m.author.String() == "" {
			t.Fatalf("a message without an author: %q", body)
		}
		var n map[string]int64
		_ = json.Unmarshal(body, &n)
	})
}

// FuzzClockFile: a stored clock is read back or refused, never half: every
// entry kept is a valid feed with a sequence of -1 or more, and what is
// written back reads the same.
func FuzzClockFile(f *testing.F) {
	f.Add([]byte(`{"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519":3,"@x":2}`))
	f.Add([]byte(`{"@AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=.ed25519":-5}`))
	f.Add([]byte(`nope`))
	f.Fuzz(func(t *testing.T, b []byte) {
		clock, err := parseClock(b)
		if err != nil {
			return
		}
		m := make(map[string]int64)
		for feed, seq := range clock {
			if seq < -1 {
				t.Fatalf("kept %s at %d", feed, seq)
			}
			m[feed.String()] = seq
		}
		out, _ := json.Marshal(m)
		again, err := parseClock(out)
		if err != nil || len(again) != len(clock) {
			t.Fatalf("round trip: %v, %d of %d entries", err, len(again), len(clock))
		}
	})
}
