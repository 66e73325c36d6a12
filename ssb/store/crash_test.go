package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// crashChildEnv names the variable that makes the test binary a crash
// child (see TestMain): its value is the store's directory.
const crashChildEnv = "SCUTTLE_STORE_CRASH_CHILD"

// crashFeeds is how many feeds the crash child appends to, and
// crashKills how many times the parent kills it.
const (
	crashFeeds = 6
	crashKills = 24
)

// crashKey returns the keypair of crash feed i, the same in parent and
// child.
func crashKey(i int) (*keys.KeyPair, error) {
	seed := sha256.Sum256(fmt.Appendf(nil, "crash feed %d", i))
	return keys.FromSeed(seed[:])
}

// TestCrash runs a child process (this test binary, see TestMain) that
// appends to a store continuously from several goroutines, with single
// appends, batches and Publish, and prints each message once Append has
// acknowledged it. The parent kills it with SIGKILL at a random moment,
// then opens the store and checks that every acknowledged message is
// there, that Check finds every chain and index intact, and that every
// feed takes its next message; then it starts the next child on the same
// directory.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	acked := map[refs.Message]bool{}
	var runs []int
	start := time.Now()
	for kill := range crashKills {
		lines, err := runCrashChild(t, dir, time.Duration(10+rng.IntN(250))*time.Millisecond)
		if err != nil {
			t.Fatalf("run %d: %v", kill, err)
		}
		for _, k := range lines {
			acked[k] = true
		}
		runs = append(runs, len(lines))
		verifyAfterCrash(t, dir, acked)
	}
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	stored := s.Durable()
	s.Close()
	t.Logf("%d kills in %v; acknowledged per run %v; %d acknowledged messages checked, %d stored",
		crashKills, time.Since(start).Round(time.Millisecond), runs, len(acked), stored)
	if len(acked) < crashKills*crashFeeds {
		t.Errorf("only %d messages acknowledged in %d runs: the child hardly ran", len(acked), crashKills)
	}
}

// runCrashChild starts a child on dir, kills it with SIGKILL after it
// has run for about d, and returns the keys it acknowledged.
func runCrashChild(t *testing.T, dir string, d time.Duration) ([]refs.Message, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan struct{})
	var acked []refs.Message
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "ready":
				close(ready)
			case strings.HasPrefix(line, "ack "):
				k, err := refs.ParseMessage(line[4:])
				if err != nil {
					readErr = err
					return
				}
				acked = append(acked, k)
			default:
				readErr = fmt.Errorf("child says %q", line)
			}
		}
	}()
	select {
	case <-ready:
	case <-done:
		cmd.Wait()
		return nil, fmt.Errorf("child ended before it was ready: %v; stderr: %s", readErr, stderr.Bytes())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("child not ready after 30 s")
	}
	time.Sleep(d)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return nil, err
	}
	<-done
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		return nil, fmt.Errorf("child ended with %v, not by SIGKILL; stderr: %s", err, stderr.Bytes())
	}
	return acked, readErr
}

// verifyAfterCrash opens the store a killed child left and checks it.
func verifyAfterCrash(t *testing.T, dir string, acked map[refs.Message]bool) {
	t.Helper()
	s, err := Open(dir, WithLogger(quiet()), WithLockTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	for k := range acked {
		if _, err := s.Get(k); err != nil {
			t.Fatalf("acknowledged message %s: %v", k, err)
		}
	}
	// Appends continue where each feed ends.
	ctx := context.Background()
	for i := range crashFeeds {
		kp, err := crashKey(i)
		if err != nil {
			t.Fatal(err)
		}
		before, err := s.Latest(kp.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
		m, err := message.Create(kp, nil, &before.State, float64(time.Now().UnixMilli()), map[string]any{"type": "check"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, m.Raw); err != nil {
			t.Fatalf("feed %d after the crash: %v", i, err)
		}
		acked[m.Key] = true
		if h, err := s.Latest(kp.ID); err != nil || h.State.Sequence != before.State.Sequence+1 {
			t.Fatalf("feed %d: head %+v after appending to %+v: %v", i, h.State, before.State, err)
		}
	}
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// crashChild is the child's main: it appends until it is killed, and
// returns an exit code if something fails.
func crashChild(dir string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 2
	}
	s, err := Open(dir, WithLockTimeout(10*time.Second), WithLogger(quiet()))
	if err != nil {
		return fail(err)
	}
	var mu sync.Mutex
	ack := func(ms ...*message.Message) {
		var b []byte
		for _, m := range ms {
			b = fmt.Appendf(b, "ack %s\n", m.Key)
		}
		mu.Lock()
		defer mu.Unlock()
		os.Stdout.Write(b)
	}
	errs := make(chan error, crashFeeds)
	ctx := context.Background()
	for i := range crashFeeds {
		kp, err := crashKey(i)
		if err != nil {
			return fail(err)
		}
		h, err := s.Latest(kp.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fail(err)
		}
		state := h.State
		next := func() (*message.Message, error) {
			m, err := message.Create(kp, nil, &state, float64(time.Now().UnixMilli()), map[string]any{
				"type": "crash", "feed": i, "text": strings.Repeat("x", 100+int(state.Sequence)%300),
			})
			if err == nil {
				state = m.State()
			}
			return m, err
		}
		go func() {
			for n := 0; ; n++ {
				var ms []*message.Message
				var err error
				switch i % 3 {
				case 0: // one message at a time, validated by Append
					var m *message.Message
					if m, err = next(); err == nil {
						ms, err = s.Append(ctx, m.Raw)
					}
				case 1: // batches of 1 to 16
					for range 1 + n%16 {
						m, err := next()
						if err != nil {
							errs <- err
							return
						}
						ms = append(ms, m)
					}
					err = s.AppendMessages(ctx, ms...)
				case 2: // Publish
					var m *message.Message
					m, err = s.Publish(ctx, kp.ID, func(prev message.FeedState) (*message.Message, error) {
						return message.Create(kp, nil, &prev, float64(time.Now().UnixMilli()), map[string]any{"type": "crash", "feed": i})
					})
					ms = []*message.Message{m}
				}
				if err != nil {
					errs <- err
					return
				}
				ack(ms...)
			}
		}()
	}
	mu.Lock()
	os.Stdout.WriteString("ready\n")
	mu.Unlock()
	select {
	case err := <-errs:
		return fail(err)
	case <-time.After(time.Minute): // the parent is gone
		return fail(errors.New("not killed within a minute"))
	}
}
