package replicate

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/ssb/replicate/ebt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The v3 note examples of the protocol guide: 0 is sequence 0 and receive,
// 450 is 225 and receive, 12 is 6 and receive, 3 is 1 without receive.
func TestNoteEncoding(t *testing.T) {
	for _, tc := range []struct {
		seq  int64
		rx   bool
		want int64
	}{{0, true, 0}, {225, true, 450}, {6, true, 12}, {1, false, 3}} {
		if got := ebt.Value(tc.seq, tc.rx); got != tc.want {
			t.Errorf("ebt.Value(%d, %v) = %d, want %d", tc.seq, tc.rx, got, tc.want)
		}
		if v := tc.want; v>>1 != tc.seq || (v&1 == 0) != tc.rx {
			t.Errorf("%d decodes to %d, %v", v, v>>1, v&1 == 0)
		}
	}
}

// Messages and notes share the stream and are told apart by shape.
func TestMessageOrNote(t *testing.T) {
	msg := `{"previous":null,"sequence":1,"author":"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519","timestamp":1,"hash":"sha256","content":{"type":"post"},"signature":"x.sig.ed25519"}`
	if m, ok := asMessage([]byte(msg)); !ok || m.seq != 1 {
		t.Errorf("a message was not recognised: %v %v", m, ok)
	}
	for _, n := range []string{`{"@FCX/tsDLpubCPKKfIrw4gc+SQkHcaD17s7GI6i/ziWY=.ed25519":450}`, `{}`, `{"author":"@x","sequence":1}`} {
		if _, ok := asMessage([]byte(n)); ok {
			t.Errorf("%s taken for a message", n)
		}
	}
}
