package persist

// The crash test: a child process (this test binary, re-executed) keeps a
// durable Model, replicates it with a peer in the parent over a pair of
// pipes, and sets keys continuously from several goroutines, printing each
// change once Set has returned (acknowledged). The parent kills it with
// SIGKILL at random moments, then checks the file and restarts it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

const (
	crashChildEnv = "PERSIST_CRASH_CHILD" // set: the binary runs crashChild
	crashPathEnv  = "PERSIST_CRASH_PATH"  // the log file
	crashRunEnv   = "PERSIST_CRASH_RUN"   // the run number, put in values
	crashStageEnv = "PERSIST_CRASH_STAGE" // a compaction stage at which the child stops, to be killed there

	crashKills   = 24 // kills; the brief asks for at least 20
	crashSetters = 4  // goroutines setting keys in the child
	crashKeys    = 20 // keys per setter
	crashTimeout = 20 * time.Second
)

// compactStages are the points of a compaction at which the child can be
// told to stop and wait to be killed (see Options.hook).
var compactStages = []string{"snapshot", "swap", "renamed"}

// crashValue is what the child sets: the run and the setter's counter,
// which increase, so the parent can tell whether a value is the
// acknowledged one or a later one.
type crashValue struct {
	Run int    `json:"run"`
	N   int    `json:"n"`
	S   string `json:"s"`
}

func (v crashValue) after(w crashValue) bool {
	return v.Run > w.Run || v.Run == w.Run && v.N > w.N
}

// childMsg is one line the child prints.
type childMsg struct {
	Ev    string                     `json:"ev"`
	Key   string                     `json:"k,omitempty"`
	Val   *crashValue                `json:"v,omitempty"`
	State map[string]json.RawMessage `json:"state,omitempty"`
	Stats *Stats                     `json:"stats,omitempty"`
	Stage string                     `json:"stage,omitempty"`
}

// crashChild is the child's main: open the log (cutting a torn tail),
// report the state, sync with the parent's peer over fds 3 and 4, report
// again, wait for "go" on stdin, then set keys until stdin ends, and then
// close the log cleanly.
func crashChild() int {
	path := os.Getenv(crashPathEnv)
	run, _ := strconv.Atoi(os.Getenv(crashRunEnv))
	var outMu sync.Mutex
	print := func(m childMsg) {
		b, _ := json.Marshal(m)
		outMu.Lock()
		os.Stdout.Write(append(b, '\n')) // one write: a line is whole or absent
		outMu.Unlock()
	}
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		return 3
	}
	id, err := ReadID(path)
	if errors.Is(err, fs.ErrNotExist) {
		id, err = "CHILD", nil
	}
	if err != nil {
		return fail(err)
	}
	m := model.New(id)
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	killStage := os.Getenv(crashStageEnv)
	hook := func(stage string) {
		if stage == killStage {
			print(childMsg{Ev: "compacting", Stage: stage})
			select {} // wait here to be killed
		}
	}
	l, err := Open(path, m.Replica, Options{CompactMinSize: 8 << 10, Logger: logger, wrap: slowWrites, hook: hook})
	if err != nil {
		return fail(err)
	}
	st := l.Stats()
	print(childMsg{Ev: "opened", State: m.Snapshot(), Stats: &st})

	conn := &pipeConn{r: os.NewFile(3, "from-peer"), w: os.NewFile(4, "to-peer")}
	synced := make(chan struct{})
	s := m.NewStream(scuttlebutt.OnSync(func() { close(synced) }))
	go s.Serve(context.Background(), conn)
	<-synced
	print(childMsg{Ev: "synced", State: m.Snapshot()})

	stdin := bufio.NewReader(os.Stdin)
	if line, err := stdin.ReadString('\n'); err != nil || line != "go\n" {
		return fail(fmt.Errorf("want go, got %q, %v", line, err))
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for g := range crashSetters {
		wg.Go(func() {
			for n := 0; !stop.Load(); n++ {
				key := fmt.Sprintf("g%d-k%d", g, n%crashKeys)
				v := crashValue{Run: run, N: n, S: "ü😀"}
				if err := m.Set(key, v); err != nil {
					fmt.Fprintln(os.Stderr, "crash child: set:", err)
					return
				}
				print(childMsg{Ev: "ack", Key: key, Val: &v})
			}
		})
	}
	if killStage != "" {
		// Compact once the setters have written a little, rather than
		// wait for the size threshold: on a loaded machine that can take
		// long. The hook stops the compaction at the stage to be killed.
		go func() {
			time.Sleep(30 * time.Millisecond)
			if err := l.Compact(); err != nil {
				fmt.Fprintln(os.Stderr, "crash child: compact:", err)
			}
		}()
	}
	wg.Go(func() {
		for !stop.Load() {
			time.Sleep(10 * time.Millisecond)
			st := l.Stats()
			print(childMsg{Ev: "stats", Stats: &st})
		}
	})
	stdin.ReadString('\n') // until stdin ends
	stop.Store(true)
	wg.Wait()
	if err := l.Close(); err != nil {
		return fail(err)
	}
	print(childMsg{Ev: "closed", State: m.Snapshot()})
	return 0
}

// slowWrites makes the child write its lines in small pieces with pauses
// between, so that a kill often lands in the middle of a line and leaves a
// torn tail, as a crash during a large write would.
func slowWrites(f file) file { return &chunkedFile{file: f} }

type chunkedFile struct{ file }

func (c *chunkedFile) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), 48)
		m, err := c.file.Write(p[:k])
		n += m
		if err != nil {
			return n, err
		}
		p = p[k:]
		time.Sleep(50 * time.Microsecond)
	}
	return n, nil
}

// pipeConn is a connection made of two pipes.
type pipeConn struct{ r, w *os.File }

func (c *pipeConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *pipeConn) Write(p []byte) (int, error) { return c.w.Write(p) }
func (c *pipeConn) CloseWrite() error           { return c.w.Close() }
func (c *pipeConn) Close() error {
	c.r.Close()
	c.w.Close()
	return nil
}

// crashRun is one run of the child, seen from the parent.
type crashRun struct {
	cmd    *exec.Cmd
	stdin  *os.File
	msgs   chan childMsg
	stderr bytes.Buffer
	serve  chan error // the peer stream's Serve result
	stream *scuttlebutt.Stream
}

func startChild(t *testing.T, path string, run int, stage string, peer *model.Model) *crashRun {
	t.Helper()
	toChildR, toChildW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	fromChildR, fromChildW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdoutR, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	c := &crashRun{stdin: stdinW, msgs: make(chan childMsg, 1<<16), serve: make(chan error, 1)}
	c.cmd = exec.Command(os.Args[0], "-test.run=^$")
	c.cmd.Env = append(os.Environ(), crashChildEnv+"=1", crashPathEnv+"="+path, crashRunEnv+"="+strconv.Itoa(run), crashStageEnv+"="+stage)
	c.cmd.Stdin, c.cmd.Stdout, c.cmd.Stderr = stdinR, stdoutW, &c.stderr
	c.cmd.ExtraFiles = []*os.File{toChildR, fromChildW}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []*os.File{toChildR, fromChildW, stdinR, stdoutW} {
		f.Close()
	}
	go func() {
		defer close(c.msgs)
		defer stdoutR.Close()
		sc := bufio.NewScanner(stdoutR)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var m childMsg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("child printed %q: %v", sc.Bytes(), err)
				continue
			}
			c.msgs <- m
		}
	}()
	c.stream = peer.NewStream()
	go func() {
		c.serve <- c.stream.Serve(context.Background(), &pipeConn{r: fromChildR, w: toChildW})
	}()
	return c
}

// next returns the child's next message of kind ev (and compaction stage,
// if given), passing the others to each.
func (c *crashRun) next(t *testing.T, ev string, each func(childMsg), stage ...string) childMsg {
	t.Helper()
	timeout := time.After(crashTimeout)
	for {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				t.Fatalf("child exited before %q: %v\nstderr: %s", ev, c.cmd.Wait(), c.stderr.String())
			}
			if m.Ev == ev && (len(stage) == 0 || m.Stage == stage[0]) {
				return m
			}
			each(m)
		case <-timeout:
			t.Fatalf("no %q from the child within %v", ev, crashTimeout)
		}
	}
}

// finish waits for the child's output to end and its exit, passing every
// remaining message to each, and for the peer stream to end.
func (c *crashRun) finish(t *testing.T, each func(childMsg)) error {
	t.Helper()
	timeout := time.After(crashTimeout)
	for done := false; !done; {
		select {
		case m, ok := <-c.msgs:
			if !ok {
				done = true
				break
			}
			each(m)
		case <-timeout:
			t.Fatalf("child output did not end within %v", crashTimeout)
		}
	}
	err := c.cmd.Wait()
	c.stdin.Close()
	select {
	case <-c.serve:
	case <-time.After(crashTimeout):
		t.Fatal("the peer stream did not end after the child exited")
	}
	return err
}

func TestCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the child process 25 times")
	}
	path := t.TempDir() + "/crash.log"
	peer := model.New("PEER")
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 6))
	acked := map[string]crashValue{} // the last acknowledged value per key
	killedIn := map[string]int{}     // kills inside a compaction, by stage
	var (
		torn, midCompaction, compactions, sets int
		runCompactions                         int
	)
	onMsg := func(m childMsg) {
		switch m.Ev {
		case "ack":
			acked[m.Key] = *m.Val
			sets++
		case "stats":
			runCompactions = max(runCompactions, m.Stats.Compactions)
		}
	}
	start := time.Now()
	for run := 0; run <= crashKills; run++ {
		// The peer changes while the child is down.
		for i := range 3 {
			if err := peer.Set(fmt.Sprintf("peer-%d-%d", run, i), map[string]any{"run": run, "é": "😀"}); err != nil {
				t.Fatal(err)
			}
		}
		if err := peer.Set("peer-shared", run); err != nil {
			t.Fatal(err)
		}
		expect, tornBytes := checkCrashFile(t, path, acked)
		if tornBytes > 0 {
			torn++
		}
		if _, err := os.Stat(path + ".tmp"); err == nil {
			midCompaction++
		}

		early := run < crashKills && run%6 == 5 // killed while it opens and syncs
		// Some runs are killed inside a compaction: after the snapshot is
		// written, while it holds the file, after the rename.
		stage := ""
		if run < crashKills && run%6 == 2 {
			stage = compactStages[(run/6)%len(compactStages)]
		}
		c := startChild(t, path, run, stage, peer)
		if early {
			time.Sleep(time.Duration(rng.IntN(40)) * time.Millisecond)
		} else {
			opened := c.next(t, "opened", onMsg)
			if !maps.EqualFunc(opened.State, expect, jsonRawEqual) {
				t.Fatalf("run %d: the child opened with %d keys, the file's complete lines hold %d:\n%v\n%v", run, len(opened.State), len(expect), opened.State, expect)
			}
			if opened.Stats.Truncated != int64(tornBytes) {
				t.Fatalf("run %d: Open cut %d bytes, the torn tail is %d", run, opened.Stats.Truncated, tornBytes)
			}
			synced := c.next(t, "synced", onMsg)
			select {
			case <-c.stream.Synced():
			case <-time.After(crashTimeout):
				t.Fatalf("run %d: the peer did not sync", run)
			}
			if got := peer.Snapshot(); !maps.EqualFunc(synced.State, got, jsonRawEqual) {
				t.Fatalf("run %d: after sync the child holds %d keys and the peer %d", run, len(synced.State), len(got))
			}
			for k, v := range acked {
				var got crashValue
				if err := json.Unmarshal(synced.State[k], &got); err != nil || got != v && !got.after(v) {
					t.Fatalf("run %d: after sync the child has %s = %s, acknowledged %+v", run, k, synced.State[k], v)
				}
			}
			if _, err := c.stdin.WriteString("go\n"); err != nil {
				t.Fatal(err)
			}
			if stage != "" {
				c.next(t, "compacting", func(m childMsg) {
					onMsg(m)
				}, stage)
			} else {
				time.Sleep(time.Duration(20+rng.IntN(200)) * time.Millisecond)
			}
		}
		runCompactions = 0
		if run == crashKills {
			c.stdin.Close()
			var closed childMsg
			if err := c.finish(t, func(m childMsg) {
				onMsg(m)
				if m.Ev == "closed" {
					closed = m
				}
			}); err != nil {
				t.Fatalf("last run: child failed: %v\nstderr: %s", err, c.stderr.String())
			}
			compactions += runCompactions
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasSuffix(data, []byte("\n\"SYNC\"\n")) {
				t.Fatalf("the cleanly closed file ends with %q, want \"SYNC\"", data[max(0, len(data)-40):])
			}
			expect, _ := checkCrashFile(t, path, acked)
			if !maps.EqualFunc(closed.State, expect, jsonRawEqual) {
				t.Fatal("the closed file does not hold the child's last state")
			}
			break
		}
		c.cmd.Process.Kill()
		c.finish(t, onMsg)
		for _, line := range strings.Split(strings.TrimSpace(c.stderr.String()), "\n") {
			if line != "" && !strings.Contains(line, "cut a torn tail") {
				t.Errorf("run %d: child's stderr: %s", run, line)
			}
		}
		compactions += runCompactions
		_, tmpErr := os.Stat(path + ".tmp")
		switch {
		case stage == "snapshot" || stage == "swap":
			killedIn[stage]++
			if tmpErr != nil {
				t.Fatalf("run %d: killed in compaction stage %s, but there is no temporary file: %v", run, stage, tmpErr)
			}
		case stage == "renamed":
			killedIn[stage]++
			if tmpErr == nil {
				t.Fatalf("run %d: killed after the rename, but the temporary file is there", run)
			}
		}
	}
	t.Logf("%d kills in %v: %d sets acknowledged, %d torn tails cut, %d compactions, %d kills with a compaction's temporary file present, by stage %v",
		crashKills, time.Since(start).Round(time.Millisecond), sets, torn, compactions, midCompaction, killedIn)
	if sets == 0 || compactions == 0 {
		t.Fatalf("the test did not exercise the log: %d sets, %d compactions", sets, compactions)
	}
}

// checkCrashFile checks the log after a kill: every complete line is
// valid, each source's timestamps increase, and loading the complete lines
// gives a state with every acknowledged value (or a later one). It returns
// that state and the length of the torn tail.
func checkCrashFile(t *testing.T, path string, acked map[string]crashValue) (map[string]json.RawMessage, int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && len(acked) == 0 {
		return map[string]json.RawMessage{}, 0
	}
	if err != nil {
		t.Fatal(err)
	}
	whole := data[:bytes.LastIndexByte(data, '\n')+1]
	checkMonotonic(t, whole)
	m := model.New("CHECK")
	if err := Load(bytes.NewReader(whole), m.Replica); err != nil {
		t.Fatalf("loading the file's complete lines: %v", err)
	}
	state := m.Snapshot()
	for k, v := range acked {
		var got crashValue
		if err := json.Unmarshal(state[k], &got); err != nil || got != v && !got.after(v) {
			t.Fatalf("acknowledged %s = %+v, the file has %s", k, v, state[k])
		}
	}
	return state, len(data) - len(whole)
}

func jsonRawEqual(a, b json.RawMessage) bool { return bytes.Equal(a, b) }
