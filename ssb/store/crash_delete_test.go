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
	"syscall"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
)

// deleteChildEnv names the variable that makes the test binary a
// deletion crash child (see TestMain): its value is the store's directory.
const deleteChildEnv = "SCUTTLE_STORE_DELETE_CHILD"

const (
	deleteFeeds = 4
	deleteKills = 16
	// deleteGrow is how long a feed grows before the child deletes it,
	// all or from the latest back.
	deleteGrow = 160
)

func deleteKey(i int) (*keys.KeyPair, error) {
	seed := sha256.Sum256(fmt.Appendf(nil, "delete feed %d", i))
	return keys.FromSeed(seed[:])
}

// TestCrashDelete runs a child that appends to a few feeds and deletes
// them (whole, or their latest message), printing each operation before
// it starts ("try") and once it is acknowledged ("ack"). The parent kills
// it with SIGKILL, half of the time at a random moment and half of the
// time just as a deletion starts, then opens the store and checks that
// Check passes (log, indexes, heads and the meta counters agree), that
// each feed is as its last acknowledged operation left it or as the
// operation in flight would have, that the store holds exactly those
// messages, and that receive sequences are not given again.
func TestCrashDelete(t *testing.T) {
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	var st deleteState
	var inFlight int
	for kill := range deleteKills {
		atDelete := -1
		if kill%2 == 1 {
			atDelete = rng.IntN(3)
		}
		pending, err := runDeleteChild(t, dir, &st, time.Duration(10+rng.IntN(250))*time.Millisecond, atDelete)
		if err != nil {
			t.Fatalf("run %d: %v", kill, err)
		}
		if pending {
			inFlight++
		}
		verifyAfterDelete(t, dir, &st)
	}
	t.Logf("%d kills, %d with a deletion in flight; %d deletions acknowledged", deleteKills, inFlight, st.deletions)
	if st.deletions == 0 || inFlight == 0 {
		t.Errorf("%d deletions acknowledged, %d kills during one: the child hardly deleted", st.deletions, inFlight)
	}
}

// deleteState is what the parent knows of the child's feeds.
type deleteState struct {
	acked     [deleteFeeds]int64 // each feed's head after its last acknowledged operation
	tried     [deleteFeeds]int64 // its head after the operation in flight, or -1
	maxSeq    uint64             // the highest receive sequence acknowledged
	deletions int
}

// runDeleteChild runs a child on dir until it is killed: after d, or as
// its deletion number atDelete starts (when atDelete >= 0). It reports
// whether a deletion was in flight.
func runDeleteChild(t *testing.T, dir string, st *deleteState, d time.Duration, atDelete int) (bool, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), deleteChildEnv+"="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return false, err
	}
	if err := cmd.Start(); err != nil {
		return false, err
	}
	for i := range st.tried {
		st.tried[i] = -1
	}
	ready, atKill := make(chan struct{}), make(chan struct{})
	done := make(chan struct{})
	var readErr error
	var pendingDelete bool
	go func() {
		defer close(done)
		deletes := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var op string
			var f int
			var head int64
			var seq uint64
			line := sc.Text()
			switch {
			case line == "ready":
				close(ready)
				continue
			case strings.HasPrefix(line, "try "):
				if _, err := fmt.Sscanf(line, "try %s %d %d", &op, &f, &head); err != nil {
					readErr = fmt.Errorf("%q: %w", line, err)
					return
				}
				st.tried[f] = head
				pendingDelete = op != "append"
				if pendingDelete {
					if deletes == atDelete {
						close(atKill)
					}
					deletes++
				}
			case strings.HasPrefix(line, "ack "):
				if _, err := fmt.Sscanf(line, "ack %s %d %d %d", &op, &f, &head, &seq); err != nil {
					readErr = fmt.Errorf("%q: %w", line, err)
					return
				}
				st.acked[f], st.tried[f], pendingDelete = head, -1, false
				st.maxSeq = max(st.maxSeq, seq)
				if op != "append" {
					st.deletions++
				}
			default:
				readErr = fmt.Errorf("child says %q", line)
				return
			}
		}
	}()
	select {
	case <-ready:
	case <-done:
		cmd.Wait()
		return false, fmt.Errorf("child ended before it was ready: %v; stderr: %s", readErr, stderr.Bytes())
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		return false, errors.New("child not ready after 30 s")
	}
	select {
	case <-time.After(d):
	case <-atKill:
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return false, err
	}
	<-done
	err = cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		return false, fmt.Errorf("child ended with %v, not by SIGKILL; stderr: %s", err, stderr.Bytes())
	}
	return pendingDelete, readErr
}

// verifyAfterDelete opens the store a killed child left and checks it.
func verifyAfterDelete(t *testing.T, dir string, st *deleteState) {
	t.Helper()
	ctx := context.Background()
	s, err := Open(dir, WithLogger(quiet()), WithLockTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
	var stored uint64
	for i := range deleteFeeds {
		kp, err := deleteKey(i)
		if err != nil {
			t.Fatal(err)
		}
		var head int64
		h, err := s.Latest(kp.ID)
		switch {
		case err == nil:
			head = h.State.Sequence
		case !errors.Is(err, ErrNotFound):
			t.Fatal(err)
		}
		if head != st.acked[i] && head != st.tried[i] {
			t.Fatalf("feed %d has head %d; its last acknowledged operation left %d, the one in flight %d", i, head, st.acked[i], st.tried[i])
		}
		st.acked[i] = head
		stored += uint64(head)
	}
	probe, err := deleteKey(deleteFeeds) // a feed the child does not touch
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Latest(probe.ID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		t.Fatal(err)
	}
	stored += uint64(h.State.Sequence)
	if got := s.Stats().Messages; got != stored {
		t.Fatalf("the store holds %d messages, its feeds' heads add up to %d", got, stored)
	}
	m, err := message.Create(probe, nil, &h.State, float64(time.Now().UnixMilli()), map[string]any{"type": "probe"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, m.Raw); err != nil {
		t.Fatal(err)
	}
	it, err := s.Get(m.Key)
	if err != nil || it.Seq <= st.maxSeq {
		t.Fatalf("a new message at receive sequence %d (%v); %d was acknowledged before", it.Seq, err, st.maxSeq)
	}
	st.maxSeq = it.Seq
	if err := s.Check(ctx); err != nil {
		t.Fatal(err)
	}
}

// deleteChild is the child's main: it appends and deletes until it is
// killed, and returns an exit code if something fails.
func deleteChild(dir string) int {
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "delete child:", err)
		return 2
	}
	s, err := Open(dir, WithLockTimeout(10*time.Second), WithLogger(quiet()))
	if err != nil {
		return fail(err)
	}
	ctx := context.Background()
	say := func(format string, args ...any) { fmt.Fprintf(os.Stdout, format+"\n", args...) }
	say("ready")
	deadline := time.Now().Add(time.Minute) // the parent is gone
	for n := 0; time.Now().Before(deadline); n++ {
		f := n % deleteFeeds
		kp, err := deleteKey(f)
		if err != nil {
			return fail(err)
		}
		h, err := s.Latest(kp.ID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return fail(err)
		}
		switch seq := h.State.Sequence; {
		case seq < deleteGrow:
			state := h.State
			ms := make([]*message.Message, 40)
			for i := range ms {
				if ms[i], err = message.Create(kp, nil, &state, float64(time.Now().UnixMilli()), map[string]any{
					"type": []string{"post", "vote"}[i%2], "feed": f, "text": strings.Repeat("y", 50+i),
				}); err != nil {
					return fail(err)
				}
				state = ms[i].State()
			}
			say("try append %d %d", f, state.Sequence)
			if err := s.AppendMessages(ctx, ms...); err != nil {
				return fail(err)
			}
			it, err := s.Latest(kp.ID)
			if err != nil {
				return fail(err)
			}
			say("ack append %d %d %d", f, state.Sequence, it.Seq)
		case (n/deleteFeeds)%2 == 0:
			say("try feed %d 0", f)
			if _, err := s.DeleteFeed(ctx, kp.ID); err != nil {
				return fail(err)
			}
			say("ack feed %d 0 0", f)
		default:
			say("try message %d %d", f, seq-1)
			if _, err := s.DeleteMessage(ctx, h.State.ID); err != nil {
				return fail(err)
			}
			say("ack message %d %d 0", f, seq-1)
		}
	}
	return fail(errors.New("not killed within a minute"))
}
