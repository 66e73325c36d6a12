package model_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// link pumps two streams into each other in memory until neither has
// output, and returns the bytes each side sent.
func link(t *testing.T, a, b *scuttlebutt.Stream) (aToB, bToA []byte) {
	t.Helper()
	var ab, ba bytes.Buffer
	for {
		var x, y bytes.Buffer
		a.Drain(&x)
		b.Drain(&y)
		if x.Len() == 0 && y.Len() == 0 {
			return ab.Bytes(), ba.Bytes()
		}
		ab.Write(x.Bytes())
		ba.Write(y.Bytes())
		if _, err := b.Write(x.Bytes()); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Write(y.Bytes()); err != nil {
			t.Fatal(err)
		}
	}
}

// After a full sync of a 100,000-key model, one new update and a reconnect
// send that update, a header and "SYNC" each way: not the history.
func TestReconnectSendsOnlyWhatIsNew(t *testing.T) {
	const n = 100000
	a, b := model.New("A"), model.New("B")
	for i := range n {
		if err := a.Set("k"+strconv.Itoa(i), i); err != nil {
			t.Fatal(err)
		}
	}
	sa, sb := a.NewStream(), b.NewStream()
	full, _ := link(t, sa, sb)
	sa.Close()
	sb.Close()
	if b.Len() != n {
		t.Fatalf("after the first sync b has %d keys, want %d", b.Len(), n)
	}
	t.Logf("first sync: %d bytes from a to b", len(full))

	if err := a.Set("new", "value"); err != nil {
		t.Fatal(err)
	}
	sa, sb = a.NewStream(), b.NewStream()
	aToB, bToA := link(t, sa, sb)

	lines := strings.Split(strings.TrimSuffix(string(aToB), "\n"), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], `{"id":"A","clock":`) ||
		!strings.HasPrefix(lines[1], `[["new","value"],`) || lines[2] != `"SYNC"` {
		t.Fatalf("a sent %d lines after reconnect, want header, the new update, SYNC:\n%s", len(lines), aToB)
	}
	if len(aToB) > 200 {
		t.Errorf("a sent %d bytes after reconnect, want under 200 (the first sync took %d)", len(aToB), len(full))
	}
	back := strings.Split(strings.TrimSuffix(string(bToA), "\n"), "\n")
	if len(back) != 2 || back[1] != `"SYNC"` {
		t.Fatalf("b sent %q after reconnect, want its header and SYNC only", bToA)
	}
	if v, ok := b.Get("new"); !ok || string(v) != `"value"` {
		t.Fatalf(`b.Get("new") = %s, %v`, v, ok)
	}
	t.Logf("reconnect: %d bytes a to b, %d bytes b to a", len(aToB), len(bToA))
}
