package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
)

// writeFeed writes messages to a server through its local socket.
func writeFeed(t *testing.T, dir string, raws [][]byte) {
	t.Helper()
	e := ssbtest.DialLocal(t, server.SocketPath(dir))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := e.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
	if err != nil {
		t.Fatal(err)
	}
	for _, raw := range raws {
		if err := st.SendRaw(muxrpc.JSON, raw); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	// The sink's end is answered at once: wait until the last is stored.
	last, err := message.Decode(raws[len(raws)-1])
	if err != nil {
		t.Fatal(err)
	}
	for {
		var state struct{ Sequence int64 }
		if err := e.AsyncJSON(ctx, &state, muxrpc.Method{"getFeedState"}, last.Author.String()); err != nil {
			t.Fatal(err)
		}
		seq := state.Sequence
		if seq >= last.Sequence {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the server holds %d of %d", seq, last.Sequence)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func vectorClock(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out, err := sbot(t, "--path", dir, "getVectorClock")
	var clock map[string]int64
	if err != nil || json.Unmarshal([]byte(out), &clock) != nil {
		t.Fatalf("getVectorClock: %q, %v", out, err)
	}
	return clock
}

func signedFeed(t *testing.T, kp *keys.KeyPair, n int, text string) [][]byte {
	t.Helper()
	var raws [][]byte
	var prev message.FeedState
	for i := range n {
		m, err := message.Create(kp, nil, &prev, float64(1_700_000_000_000+i), map[string]any{"type": "post", "text": text + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		raws, prev = append(raws, m.Raw), m.State()
	}
	return raws
}

// Sneakernet as a user does it: the peer that lacks messages writes its
// vector clock, the other exports what is after it, the first imports the
// bundle and then holds what the other holds; a second import adds nothing.
func TestSneakernet(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	defer startServer(t, a)()
	defer startServer(t, b)()

	for i := range 3 {
		if _, err := sbot(t, "--path", a, "publish", "--type", "post", "--text", "own "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	authors := make([]*keys.KeyPair, 3)
	feeds := make([][][]byte, 3)
	for i := range authors {
		authors[i], _ = keys.Generate(nil)
		feeds[i] = signedFeed(t, authors[i], 50, "hello ")
		writeFeed(t, a, feeds[i])
	}
	writeFeed(t, b, feeds[0][:20]) // b has the start of one feed

	clockFile := filepath.Join(t.TempDir(), "clock.json")
	out, err := sbot(t, "--path", b, "getVectorClock")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(clockFile, []byte(out), 0o600)
	bundle, err := sbot(t, "--path", a, "export", "--since", clockFile)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(bundle, "\n"), "\n")
	if want := 2 + 3 + 30 + 50 + 50; len(lines) != want {
		t.Fatalf("the bundle has %d lines, want %d (header, 133 messages, end)", len(lines), want)
	}
	file := filepath.Join(t.TempDir(), "bundle")
	os.WriteFile(file, []byte(bundle), 0o600)

	out, err = sbot(t, "--path", b, "import", file)
	if err != nil || !strings.Contains(out, "imported 133 new messages of 4 feeds; 0 of the bundle's 133 were already here") {
		t.Fatalf("import: %q, %v", out, err)
	}
	if ca, cb := vectorClock(t, a), vectorClock(t, b); !sameClock(ca, cb) {
		t.Errorf("after import b holds %v, a %v", cb, ca)
	}
	out, err = sbot(t, "--path", b, "import", file)
	if err != nil || !strings.Contains(out, "imported 0 new messages of 0 feeds; 133 of the bundle's 133 were already here") {
		t.Errorf("second import: %q, %v", out, err)
	}
	// --feeds: one feed, all of it.
	one, err := sbot(t, "--path", a, "export", "--feeds", authors[1].ID.String())
	if n := strings.Count(one, "\n"); err != nil || n != 52 {
		t.Errorf("export --feeds: %d lines, %v", n, err)
	}
}

func sameClock(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A bundle that was edited, truncated or is forked against what is here:
// the import stops at the bad line and names it; what it stored is exactly
// the valid messages before that line.
func TestSneakernetBadBundles(t *testing.T) {
	a := t.TempDir()
	defer startServer(t, a)()
	kp1, _ := keys.Generate(nil)
	kp2, _ := keys.Generate(nil)
	feed1, feed2 := signedFeed(t, kp1, 40, "one "), signedFeed(t, kp2, 40, "two ")
	writeFeed(t, a, feed1)
	writeFeed(t, a, feed2)
	bundle, err := sbot(t, "--path", a, "export")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(bundle, "\n"), "\n")
	// Lines 2..41 are one feed and 42..81 the other, in the order of their ids.
	firstFeed := kp1
	if kp2.ID.String() < kp1.ID.String() {
		firstFeed = kp2
	}

	for _, tc := range []struct {
		name    string
		bundle  string
		prepare func(dir string)
		errLine string
		want    map[string]int64 // what the server holds after
	}{
		{
			name: "edited message",
			bundle: func() string {
				l := slicesClone(lines)
				l[51] = strings.Replace(l[51], `"text":"`, `"text":"X`, 1) // the second feed's 11th message
				return strings.Join(l, "\n") + "\n"
			}(),
			errLine: "line 52:",
			want:    map[string]int64{firstFeed.ID.String(): 40, other(kp1, kp2, firstFeed).ID.String(): 10},
		},
		{
			name:    "truncated in a line",
			bundle:  strings.Join(lines[:30], "\n") + "\n" + lines[30][:40],
			errLine: "line 31: the bundle is truncated",
			want:    map[string]int64{firstFeed.ID.String(): 29},
		},
		{
			name:    "no end line",
			bundle:  strings.Join(lines[:len(lines)-1], "\n") + "\n",
			errLine: "line 81: the bundle is truncated: no end line",
			want:    map[string]int64{kp1.ID.String(): 40, kp2.ID.String(): 40},
		},
		{
			name:    "not a bundle",
			bundle:  "hello\n",
			errLine: "line 1: not a bundle",
			want:    map[string]int64{},
		},
		{
			name: "forked here",
			prepare: func(dir string) {
				fork := signedFeed(t, firstFeed, 10, "fork ")
				writeFeed(t, dir, fork)
			},
			bundle:  bundle,
			errLine: "line 11: " + firstFeed.ID.String() + " is forked",
			want:    map[string]int64{firstFeed.ID.String(): 10},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			defer startServer(t, dir)()
			if tc.prepare != nil {
				tc.prepare(dir)
			}
			file := filepath.Join(t.TempDir(), "bundle")
			os.WriteFile(file, []byte(tc.bundle), 0o600)
			_, err := sbot(t, "--path", dir, "import", file)
			if err == nil || !strings.Contains(err.Error(), tc.errLine) {
				t.Errorf("import: %v, want an error with %q", err, tc.errLine)
			}
			if got := vectorClock(t, dir); !sameClock(got, tc.want) {
				t.Errorf("the server holds %v, want %v", got, tc.want)
			}
		})
	}
}

func other(a, b, this *keys.KeyPair) *keys.KeyPair {
	if this == a {
		return b
	}
	return a
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// The end line's hash shows an edit that the messages do not: a changed
// header.
func TestSneakernetHeaderEdited(t *testing.T) {
	a := t.TempDir()
	defer startServer(t, a)()
	kp, _ := keys.Generate(nil)
	writeFeed(t, a, signedFeed(t, kp, 5, "x "))
	bundle, err := sbot(t, "--path", a, "export")
	if err != nil {
		t.Fatal(err)
	}
	edited := bytes.Replace([]byte(bundle), []byte(`"sneakernet":1,`), []byte(`"sneakernet":1,"x":1,`), 1)
	file := filepath.Join(t.TempDir(), "bundle")
	os.WriteFile(file, edited, 0o600)
	b := t.TempDir()
	defer startServer(t, b)()
	if _, err := sbot(t, "--path", b, "import", file); err == nil || !strings.Contains(err.Error(), "line 7: the bundle was changed") {
		t.Errorf("import of an edited bundle: %v", err)
	}
}

// FuzzBundleReader: any bytes read as a bundle end in an error or a
// checked end line, never a panic; a bundle that reads to its end has as
// many messages as its end line says, each feed in order.
func FuzzBundleReader(f *testing.F) {
	kp, _ := keys.FromSeed(make([]byte, 32))
	var prev message.FeedState
	var body bytes.Buffer
	body.WriteString(`{"sneakernet":1,"from":"` + kp.ID.String() + `","created":1,"feeds":{"` + kp.ID.String() + `":[1,3]}}` + "\n")
	for i := range 3 {
		m, _ := message.Create(kp, nil, &prev, float64(1+i), map[string]any{"type": "post", "text": strconv.Itoa(i)})
		prev = m.State()
		body.Write(m.Raw)
		body.WriteByte('\n')
	}
	sum := sha256.Sum256(body.Bytes())
	valid := body.String() + `{"end":3,"sha256":"` + base64.StdEncoding.EncodeToString(sum[:]) + `"}` + "\n"
	f.Add([]byte(valid))
	f.Add([]byte(valid[:len(valid)-10]))
	f.Add([]byte(`{"sneakernet":1}` + "\n" + `{"end":0,"sha256":""}` + "\n"))
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		br, err := newBundleReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		last := map[string]int64{}
		var n int64
		for {
			m, _, err := br.next()
			if errors.Is(err, io.EOF) {
				if n != br.n {
					t.Fatalf("read %d messages, the reader counted %d", n, br.n)
				}
				return
			}
			if err != nil {
				return
			}
			n++
			a := m.Author.String()
			if l, ok := last[a]; ok && m.Sequence != l+1 {
				t.Fatalf("%s: sequence %d after %d", a, m.Sequence, l)
			}
			last[a] = m.Sequence
		}
	})
}
