package wants_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/blobs/wants"
	"github.com/scuttlego/scuttle/ssb/refs"
)

var (
	idA = blobOf([]byte("a")).String()
	idB = blobOf([]byte("b")).String()
	// idStray has stray bits in its last base64 character: ssb-ref's
	// canonical-base64 regexp refuses it, as refs.ParseBlob does.
	idStray = idA[:len(idA)-len("=.sha256")-1] + string(stray(idA[len(idA)-len("=.sha256")-1])) + "=.sha256"
)

func stray(c byte) byte {
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := strings.IndexByte(b64, c)
	return b64[i^1] // the last character of 32 bytes carries 2 unused bits
}

// decodeCases are junk and good messages; want is the decoded entries,
// skipped the count, malformed whether Decode refuses the message.
var decodeCases = []struct {
	in        string
	want      map[string]int64
	skipped   int
	malformed bool
}{
	{in: `{}`, want: map[string]int64{}},
	{in: fmt.Sprintf(`{"%s":-1,"%s":5242879}`, idA, idB), want: map[string]int64{idA: -1, idB: 5242879}},
	{in: fmt.Sprintf(` { "%s" : -2 } `, idA), want: map[string]int64{idA: -2}},
	{in: fmt.Sprintf(`{"%s":2.0,"%s":1e3}`, idA, idB), want: map[string]int64{idA: 2, idB: 1000}},
	{in: fmt.Sprintf(`{"%s":1.5,"%s":"1"}`, idA, idB), want: map[string]int64{}, skipped: 2},
	{in: fmt.Sprintf(`{"%s":true,"%s":null}`, idA, idB), want: map[string]int64{}, skipped: 2},
	{in: fmt.Sprintf(`{"%s":[1],"%s":{"x":1}}`, idA, idB), want: map[string]int64{}, skipped: 2},
	{in: fmt.Sprintf(`{"%s":0,"%s":-0}`, idA, idB), want: map[string]int64{idA: 0, idB: 0}},
	{in: fmt.Sprintf(`{"%s":1e400,"%s":1e-400}`, idA, idB), want: map[string]int64{idB: 0}, skipped: 1},
	{in: fmt.Sprintf(`{"%s":-99999999999999999999999,"%s":12345678901234567890}`, idA, idB), want: map[string]int64{idA: math.MinInt64, idB: math.MaxInt64}},
	{in: fmt.Sprintf(`{"%s":-1,"%s":7}`, idA, idA), want: map[string]int64{idA: 7}},
	{in: fmt.Sprintf(`{"%s":-1,"%s":"x"}`, idA, idA), want: map[string]int64{}, skipped: 1},
	{in: fmt.Sprintf(`{"%s":-1}`, strings.Replace(idA, "&", `\u0026`, 1)), want: map[string]int64{idA: -1}},
	{in: fmt.Sprintf(`{"%s":-1,"&abc.sha256":-1,"%%x.sha256":1,"":1,"%s":-1}`, idStray, strings.TrimSuffix(idA, ".sha256")), want: map[string]int64{}, skipped: 5},
	{in: `[]`, malformed: true},
	{in: `[{"a":1}]`, malformed: true},
	{in: `"abc"`, malformed: true},
	{in: `null`, malformed: true},
	{in: `42`, malformed: true},
	{in: ``, malformed: true},
	{in: `{`, malformed: true},
	{in: fmt.Sprintf(`{"%s":-1`, idA), malformed: true},
	{in: fmt.Sprintf(`{"%s":-1}}`, idA), malformed: true},
	{in: fmt.Sprintf(`{"%s":-1} {}`, idA), malformed: true},
	{in: fmt.Sprintf(`{"%s":01}`, idA), malformed: true},
}

func TestDecode(t *testing.T) {
	for _, tc := range decodeCases {
		m, skipped, err := wants.Decode([]byte(tc.in), 0)
		if tc.malformed {
			if !errors.Is(err, wants.ErrMalformed) {
				t.Errorf("Decode(%s): err %v, want ErrMalformed", tc.in, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Decode(%s): %v", tc.in, err)
			continue
		}
		if got := byString(m); !maps.Equal(got, tc.want) || skipped != tc.skipped {
			t.Errorf("Decode(%s) = %v, %d skipped; want %v, %d", tc.in, got, skipped, tc.want, tc.skipped)
		}
	}
}

func byString(m wants.Message) map[string]int64 {
	out := map[string]int64{}
	for id, n := range m {
		out[id.String()] = n
	}
	return out
}

func TestDecodeLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 100 {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `"%s":-1`, blobOf(fmt.Append(nil, i)))
	}
	b.WriteString("}")
	m, skipped, err := wants.Decode([]byte(b.String()), 30)
	if err != nil || len(m) != 30 || skipped != 70 {
		t.Fatalf("Decode = %d entries, %d skipped, %v; want 30, 70", len(m), skipped, err)
	}
}

func TestEncodeJSShape(t *testing.T) {
	a, b := blobOf([]byte("a")), blobOf([]byte("b"))
	got, err := wants.Message{a: -1, b: 5}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var want string
	if cmpByHash(a, b) > 0 { // sorted by hash
		want = fmt.Sprintf(`{"%s":%d,"%s":%d}`, b, 5, a, -1)
	} else {
		want = fmt.Sprintf(`{"%s":%d,"%s":%d}`, a, -1, b, 5)
	}
	if string(got) != want {
		t.Fatalf("encoded %s, want %s", got, want)
	}
	if got, _ := (wants.Message{}).MarshalJSON(); string(got) != `{}` {
		t.Fatalf("empty map encoded %s", got)
	}
}

func cmpByHash(a, b refs.Blob) int {
	ha, hb := a.Hash(), b.Hash()
	return strings.Compare(string(ha[:]), string(hb[:]))
}

// TestDecodeAgainstInjectJS runs ssb-blobs' inject.js on every decode case:
// the entries process() accepts must be the ones Decode keeps (by sign),
// messages JS cannot read as an object are the ones Decode refuses, and
// the wants inject.js takes up and sends on (sympathy 3) are the ones a
// Core with Sympathy 3 sends on.
func TestDecodeAgainstInjectJS(t *testing.T) {
	oracle.Require(t)
	var inputs []string
	for _, tc := range decodeCases {
		inputs = append(inputs, tc.in)
	}
	inputs = append(inputs, fmt.Sprintf(`{"%s":-3,"%s":-2}`, idA, idB))
	in, _ := json.Marshal(inputs)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	script, _ := filepath.Abs("testdata/process.js")
	cmd := exec.CommandContext(ctx, "node", script)
	cmd.Env = append(os.Environ(), "INTEROP="+oracle.Dir())
	cmd.Stdin = strings.NewReader(string(in))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	var results []struct {
		OK        bool
		Entries   map[string]int64
		Forwarded map[string]int64
	}
	if err := json.Unmarshal(out, &results); err != nil {
		t.Fatalf("node output %s: %v", out, err)
	}
	for i, s := range inputs {
		js := results[i]
		m, _, err := wants.Decode([]byte(s), 0)
		if (err == nil) != js.OK {
			t.Errorf("%s: Decode err %v, JS reads an object: %v", s, err, js.OK)
			continue
		}
		signs := map[string]int64{}
		for id, n := range m {
			signs[id.String()] = int64(sign(n))
		}
		if !maps.Equal(signs, js.Entries) {
			t.Errorf("%s: Decode keeps %v, JS %v", s, signs, js.Entries)
		}
		if got := forwarded(t, s); !maps.Equal(got, js.Forwarded) {
			t.Errorf("%s: Core sends on %v, JS %v", s, got, js.Forwarded)
		}
	}
}

func sign(n int64) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

// forwarded returns what a Core with JS's sympathy sends a listener after
// another peer sent msg.
func forwarded(t *testing.T, msg string) map[string]int64 {
	c := wants.New(wants.Config{Sympathy: 3}, memStore{})
	listener, sender := feedOf("listener"), feedOf("sender")
	c.Connect(listener)
	c.Connect(sender)
	_ = c.Receive(sender, []byte(msg)) // malformed: ignored, as JS does
	got := map[string]int64{}
	for _, o := range c.Ready().Messages {
		if o.Peer == listener {
			maps.Copy(got, byString(o.Msg))
		}
	}
	return got
}

// FuzzWantMap: Decode never panics, keeps only valid ids within the
// limit, and what it keeps survives MarshalJSON and Decode again.
func FuzzWantMap(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, skipped, err := wants.Decode(data, 50)
		if err != nil {
			if !errors.Is(err, wants.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(m) > 50 || skipped < 0 {
			t.Fatalf("%d entries, %d skipped", len(m), skipped)
		}
		enc, err := m.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		back, skipped, err := wants.Decode(enc, 0)
		if err != nil || skipped != 0 || !maps.Equal(back, m) {
			t.Fatalf("round trip of %s: %v, %d skipped, %v", enc, back, skipped, err)
		}
		c := wants.New(wants.Config{MaxWantsPerPeer: 5}, memStore{})
		peer := feedOf("peer")
		c.Connect(peer)
		if err := c.Receive(peer, data); err != nil {
			t.Fatalf("Receive: %v", err)
		}
		if s := c.Stats(); s.Wants > 5 {
			t.Fatalf("%d wants taken up from one peer, limit 5", s.Wants)
		}
	})
}
