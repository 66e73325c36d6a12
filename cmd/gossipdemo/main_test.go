package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/ssb/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The line demo: every peer, and the late one, prints the message once.
func TestLine(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-peers", "4"}, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"p2", "p3", "p4", "late"} {
		if n := strings.Count(out.String(), name+` message {"data":"hello warld"} from `); n != 1 {
			t.Errorf("%s printed the message %d times:\n%s", name, n, out.String())
		}
	}
	if strings.Contains(out.String(), "p1 message") {
		t.Errorf("p1 got its own message:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer for one writer and a polling reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(s.String()); m != nil {
			return m
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %v in:\n%s", re, s.String())
	return nil
}

// Two interactive peers: what one types, the other prints; the keys file
// is created in the ssb-keys format and used.
func TestInteractive(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "secret")
	inA, feedA := io.Pipe()
	inB, feedB := io.Pipe()
	var outA, outB syncBuffer
	errs := make(chan error, 2)
	go func() {
		errs <- run(context.Background(), []string{"-listen", "127.0.0.1:0", "-keys", keyFile}, inA, &outA)
	}()
	addr := outA.waitFor(t, regexp.MustCompile(`listening on (\S+)`))[1]
	go func() { errs <- run(context.Background(), []string{"-connect", addr}, inB, &outB) }()
	outB.waitFor(t, regexp.MustCompile(`connected to`))
	fmt.Fprintln(feedB, "hello from B")
	kp, err := keys.Load(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	outA.waitFor(t, regexp.MustCompile(`\(seq \d+, signed seq true\): \{"text":"hello from B"\}`))
	fmt.Fprintln(feedA, "hello from A")
	outB.waitFor(t, regexp.MustCompile(regexp.QuoteMeta(strings.TrimPrefix(kp.ID.String(), "@"))+` \(seq \d+, signed seq true\): \{"text":"hello from A"\}`))
	feedA.Close()
	feedB.Close()
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
