// Package oracle drives JavaScript peers (the scripts in the repository's
// interop/ directory, run with node) from Go tests, so that the Go code can
// be tested against the real npm packages it must interoperate with.
//
// A script is a child process bound to one test. It talks newline-delimited
// JSON: the test writes one JSON object per line to its stdin (a command),
// and the script writes one JSON object per line to its stdout. The
// convention, which interop/sb-peer.js follows and new scripts must follow
// too:
//
//   - Every command gets exactly one reply: a line that carries the
//     command's "tag" field unchanged. The client puts a unique tag on every
//     command it sends, so replies are matched to commands even when other
//     lines come in between.
//   - A reply whose "ev" is "cmdError" reports a command that failed.
//   - Every other line is an event. The client records all events in order,
//     so a test can wait for one, or later check what was or was not seen.
//   - Nothing else is written to stdout; diagnostics go to stderr, which the
//     client captures and logs when the test fails.
//   - The script exits when its stdin ends.
//
// A test starts a script with Start, sends commands with Do or Call, and
// waits for events with WaitFor or Wait. Every wait is bounded by
// Peer.Timeout (DefaultTimeout unless changed). When the test ends the
// client closes the script's stdin, kills the process if it has not exited
// within a few seconds, and waits for it; no goroutine of this package
// outlives the process.
//
//	func TestX(t *testing.T) {
//		oracle.Require(t)
//		p := oracle.Start(t, "sb-peer.js", "--type", "model", "--id", "B")
//		port := p.Do(oracle.Cmd{"op": "listen"}).Int("port")
//		// ... connect to port, then:
//		p.WaitFor(oracle.Ev("sync"))
//		st := p.Do(oracle.Cmd{"op": "dump"})
//	}
package oracle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// DefaultTimeout bounds every wait of a Peer unless Peer.Timeout is changed.
const DefaultTimeout = 10 * time.Second

// exitTimeout is how long Close waits for the script to exit after its stdin
// ends, and then again after killing it.
var exitTimeout = 5 * time.Second

// Dir returns the absolute path of the repository's interop directory. It
// is found next to this package's source file, or, when the binary was built
// with -trimpath, by walking up from the working directory. It returns "" if
// neither finds it.
func Dir() string {
	dirOnce.Do(func() { dir = findDir() })
	return dir
}

var (
	dirOnce sync.Once
	dir     string
)

func findDir() string {
	isInterop := func(d string) bool {
		fi, err := os.Stat(filepath.Join(d, "package.json"))
		return err == nil && !fi.IsDir()
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		if d := filepath.Join(filepath.Dir(file), "..", "..", "interop"); isInterop(d) {
			return d
		}
	}
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	for d := wd; ; d = filepath.Dir(d) {
		if c := filepath.Join(d, "interop"); isInterop(c) {
			return c
		}
		if filepath.Dir(d) == d {
			return ""
		}
	}
}

// Require stops the test unless node is on PATH and interop/node_modules
// exists: it fails the test when the environment variable CI is "true", so
// that CI cannot silently skip the interop tests, and skips it otherwise.
func Require(t testing.TB) {
	t.Helper()
	var missing string
	if _, err := exec.LookPath("node"); err != nil {
		missing = "node is not on PATH"
	} else if d := Dir(); d == "" {
		missing = "the interop directory was not found"
	} else if fi, err := os.Stat(filepath.Join(d, "node_modules")); err != nil || !fi.IsDir() {
		missing = filepath.Join(d, "node_modules") + " does not exist"
	}
	if missing == "" {
		return
	}
	msg := "node or interop/node_modules missing: run `make test` or `cd interop && npm ci` (" + missing + ")"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// A Script says what Start runs: node Path Args..., in the interop
// directory, with Env added to the test's environment.
type Script struct {
	Path string   // relative to the interop directory, or absolute
	Args []string // arguments after the script
	Env  []string // extra "KEY=value" entries
}

// A Peer is a running script and the client for its stdin and stdout. Its
// methods may be called from any goroutine, except that Do and WaitFor,
// which fail the test, must be called from the test's goroutine.
type Peer struct {
	// Timeout bounds each wait of Call, Do, Wait and WaitFor
	// (DefaultTimeout). Set it before using the peer from more than one
	// goroutine.
	Timeout time.Duration

	t      testing.TB
	name   string
	cmd    *exec.Cmd
	stdin  *os.File
	stderr tailBuffer

	writeMu sync.Mutex // serialises writes to stdin

	mu      sync.Mutex
	partial []byte         // stdout bytes after the last newline
	events  []Msg          // every line that is not a reply, in order
	replies map[string]Msg // replies not yet collected, by tag
	pending map[string]bool
	nextTag int
	changed chan struct{} // closed and replaced when events or replies change
	lines   []string      // the last lines of stdout, for failure logs

	exited  chan struct{} // closed once the process has exited and its output is read
	waitErr error         // cmd.Wait's result; read after exited is closed

	closeOnce sync.Once
	closeErr  error
}

// Start runs node with the script (a path relative to the interop
// directory) and args, bound to t: the process is stopped when the test
// ends, and its stderr and last output lines are logged if the test failed.
// Start calls Require.
func Start(t testing.TB, script string, args ...string) *Peer {
	t.Helper()
	return StartScript(t, Script{Path: script, Args: args})
}

// Runner returns a function that starts script with one argument, bound to
// t like Start; the process stops when the test ends. It fits
// ssbtest.Starter.
func Runner(t testing.TB, script string) func(arg string) (stop func(), err error) {
	return func(arg string) (func(), error) {
		Start(t, script, arg)
		return func() {}, nil
	}
}

// StartScript is Start with a Script.
func StartScript(t testing.TB, s Script) *Peer {
	t.Helper()
	Require(t)
	path := s.Path
	if !filepath.IsAbs(path) {
		path = filepath.Join(Dir(), path)
	}
	p := &Peer{
		Timeout: DefaultTimeout,
		t:       t,
		name:    filepath.Base(path) + " " + strings.Join(s.Args, " "),
		replies: make(map[string]Msg),
		pending: make(map[string]bool),
		changed: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	stdinR, stdinW, err := os.Pipe()
	if err != nil {
		t.Fatalf("oracle: %v", err)
	}
	cmd := exec.Command("node", append([]string{path}, s.Args...)...)
	cmd.Dir = Dir()
	cmd.Env = append(os.Environ(), s.Env...)
	cmd.Stdin = stdinR
	cmd.Stdout = (*stdoutWriter)(p)
	cmd.Stderr = &p.stderr
	// Bounds how long Wait reads output after the process exits, should a
	// grandchild hold the pipes open.
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		stdinR.Close()
		stdinW.Close()
		t.Fatalf("oracle: start %s: %v", p.name, err)
	}
	stdinR.Close()
	p.cmd, p.stdin = cmd, stdinW
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	t.Cleanup(func() {
		// A test that called Close itself has seen its error.
		if err := p.close(); err != nil {
			t.Errorf("oracle: %s: %v", p.name, err)
		}
		if t.Failed() {
			p.mu.Lock()
			lines := strings.Join(p.lines, "\n")
			p.mu.Unlock()
			t.Logf("oracle: %s: last stdout lines:\n%s\nstderr:\n%s", p.name, lines, p.stderr.String())
		}
	})
	return p
}

// Cmd is a command: a JSON object. Call adds its "tag".
type Cmd map[string]any

// Call sends cmd, a value that encodes as a JSON object, with a fresh "tag"
// (replacing any it had), and waits for the reply with that tag. A reply
// reporting a failed command ("ev":"cmdError") is returned like any other;
// the error reports a command that could not be sent, or no reply within
// Timeout, or a script that exited first.
func (p *Peer) Call(cmd any) (Msg, error) {
	raw, err := json.Marshal(cmd)
	if err != nil {
		return Msg{}, fmt.Errorf("oracle: encode command: %w", err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return Msg{}, fmt.Errorf("oracle: command is not a JSON object: %s", raw)
	}
	p.mu.Lock()
	p.nextTag++
	tag := "oracle-" + strconv.Itoa(p.nextTag)
	p.pending[tag] = true
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.pending, tag)
		delete(p.replies, tag)
		p.mu.Unlock()
	}()
	obj["tag"], _ = json.Marshal(tag)
	line, _ := json.Marshal(obj)
	if err := p.send(append(line, '\n')); err != nil {
		return Msg{}, fmt.Errorf("oracle: send %s: %w", raw, err)
	}
	m, err := p.await(func() (Msg, bool) {
		m, ok := p.replies[tag]
		return m, ok
	})
	if err != nil {
		return Msg{}, fmt.Errorf("oracle: reply to %s: %w", raw, err)
	}
	return m, nil
}

// Do is Call that fails the test on an error or a "cmdError" reply.
func (p *Peer) Do(cmd any) Msg {
	p.t.Helper()
	m, err := p.Call(cmd)
	if err != nil {
		p.t.Fatal(err)
	}
	if m.Ev() == "cmdError" {
		p.t.Fatalf("oracle: command %v failed: %s", cmd, m.Line)
	}
	return m
}

func (p *Peer) send(line []byte) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	// A script that stops reading must not hang the test.
	if err := p.stdin.SetWriteDeadline(time.Now().Add(p.Timeout)); err != nil {
		return err
	}
	_, err := p.stdin.Write(line)
	return err
}

// Wait returns the first event, at index from or later in Events, that
// matches pred, waiting up to Timeout for it. pred must not call the Peer.
func (p *Peer) Wait(from int, pred func(Msg) bool) (Msg, error) {
	next := max(from, 0)
	m, err := p.await(func() (Msg, bool) {
		for ; next < len(p.events); next++ {
			if pred(p.events[next]) {
				return p.events[next], true
			}
		}
		return Msg{}, false
	})
	if err != nil {
		return Msg{}, fmt.Errorf("oracle: wait for an event: %w", err)
	}
	return m, nil
}

// WaitFor returns the first event since the start that matches pred,
// waiting up to Timeout for it; it fails the test if none comes.
func (p *Peer) WaitFor(pred func(Msg) bool) Msg {
	p.t.Helper()
	m, err := p.Wait(0, pred)
	if err != nil {
		p.t.Fatal(err)
	}
	return m
}

// Events returns a copy of the events recorded so far, in order.
func (p *Peer) Events() []Msg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Msg(nil), p.events...)
}

// Mark returns the number of events recorded so far: pass it to Wait to wait
// only for later events.
func (p *Peer) Mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.events)
}

// await calls check with p.mu held until it reports true, the process has
// exited, or Timeout has passed.
func (p *Peer) await(check func() (Msg, bool)) (Msg, error) {
	timer := time.NewTimer(p.Timeout)
	defer timer.Stop()
	for {
		p.mu.Lock()
		m, ok := check()
		changed := p.changed
		p.mu.Unlock()
		if ok {
			return m, nil
		}
		select {
		case <-changed:
		case <-p.exited:
			// Output is complete once exited is closed: look once more.
			p.mu.Lock()
			m, ok := check()
			err := p.waitErr
			p.mu.Unlock()
			if ok {
				return m, nil
			}
			return Msg{}, fmt.Errorf("%s exited (%v); stderr: %s", p.name, err, p.stderr.String())
		case <-timer.C:
			return Msg{}, fmt.Errorf("timed out after %v", p.Timeout)
		}
	}
}

// Close ends the script's stdin and waits for it to exit, killing it if it
// has not exited within a few seconds. It returns an error if the script had
// to be killed or exited with a failure status. Close is called when the
// test ends, which then fails on that error; a test may call it earlier, for
// example to check that a script exits cleanly, and may call it again.
func (p *Peer) Close() error {
	p.close()
	return p.closeErr
}

// close closes the peer and returns the error only on the first call.
func (p *Peer) close() (err error) {
	p.closeOnce.Do(func() {
		defer func() { err = p.closeErr }()
		p.stdin.Close()
		select {
		case <-p.exited:
		case <-time.After(exitTimeout):
			p.cmd.Process.Kill()
			select {
			case <-p.exited:
				p.closeErr = fmt.Errorf("did not exit within %v of its stdin ending; killed", exitTimeout)
			case <-time.After(exitTimeout):
				p.closeErr = errors.New("did not exit even after being killed")
			}
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.waitErr != nil {
			p.closeErr = fmt.Errorf("exit: %w", p.waitErr)
		}
	})
	return err
}

// Exited is closed once the script has exited and all its output is read.
func (p *Peer) Exited() <-chan struct{} { return p.exited }

// stdoutWriter receives the script's stdout (from os/exec's copying
// goroutine) and splits it into lines.
type stdoutWriter Peer

func (w *stdoutWriter) Write(b []byte) (int, error) {
	p := (*Peer)(w)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	got := false
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSuffix(string(p.partial[:i]), "\r")
		p.partial = p.partial[i+1:]
		if strings.TrimSpace(line) == "" {
			continue
		}
		got = true
		p.addLine(line)
	}
	if len(p.partial) == 0 {
		p.partial = nil // let a large drained buffer go
	}
	if got {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	return len(b), nil
}

const keepLines = 50

// addLine files one line as a reply or an event. p.mu is held.
func (p *Peer) addLine(line string) {
	if len(p.lines) == keepLines {
		p.lines = append(p.lines[:0], p.lines[1:]...)
	}
	p.lines = append(p.lines, line)
	m := Msg{Line: line}
	if err := json.Unmarshal([]byte(line), &m.Fields); err != nil {
		m.Fields = nil // not a JSON object: an event only a predicate on Line can match
	}
	if tag, ok := m.Fields["tag"]; ok {
		var s string
		if json.Unmarshal(tag, &s) == nil && strings.HasPrefix(s, "oracle-") {
			if p.pending[s] {
				p.replies[s] = m
			}
			return // a reply, possibly to a call that gave up waiting
		}
	}
	p.events = append(p.events, m)
}

// A Msg is one line a script wrote: a JSON object, kept both as text and
// as its fields.
type Msg struct {
	Line   string                     // the line, without its newline
	Fields map[string]json.RawMessage // nil if the line is not a JSON object
}

// Ev returns the "ev" field, the kind of the line by the convention of the
// interop scripts, or "" if it has none.
func (m Msg) Ev() string { return m.Str("ev") }

// Str returns the field key if it is a JSON string, and "" otherwise.
func (m Msg) Str(key string) string {
	var s string
	if json.Unmarshal(m.Fields[key], &s) != nil {
		return ""
	}
	return s
}

// Int returns the field key if it is a JSON number that fits an int, and
// -1 otherwise.
func (m Msg) Int(key string) int {
	var n int
	if json.Unmarshal(m.Fields[key], &n) != nil {
		return -1
	}
	return n
}

// Decode decodes the field key into v with encoding/json.
func (m Msg) Decode(key string, v any) error {
	raw, ok := m.Fields[key]
	if !ok {
		return fmt.Errorf("oracle: no field %q in %s", key, m.Line)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("oracle: field %q of %s: %w", key, m.Line, err)
	}
	return nil
}

// Ev returns a predicate for events of the given kind ("ev" field) whose
// other fields equal the given ones, compared as JSON: for example
// Ev("sync", "conn", 1). It panics if fields are not key, value pairs.
func Ev(kind string, fields ...any) func(Msg) bool {
	if len(fields)%2 != 0 {
		panic("oracle.Ev: fields must be key, value pairs")
	}
	type kv struct {
		key  string
		want any
	}
	var want []kv
	for i := 0; i < len(fields); i += 2 {
		k, ok := fields[i].(string)
		if !ok {
			panic("oracle.Ev: field names must be strings")
		}
		want = append(want, kv{k, normalize(fields[i+1])})
	}
	return func(m Msg) bool {
		if m.Ev() != kind {
			return false
		}
		for _, w := range want {
			raw, ok := m.Fields[w.key]
			if !ok {
				return false
			}
			var got any
			if json.Unmarshal(raw, &got) != nil || !jsonEqual(got, w.want) {
				return false
			}
		}
		return true
	}
}

// normalize returns v as encoding/json decodes its encoding into an any.
func normalize(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("oracle.Ev: %v", err))
	}
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a) // encoding/json sorts map keys: equal values, equal bytes
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}

// Eventually calls check every few milliseconds until it returns nil, and
// fails the test with check's last error if that takes longer than
// DefaultTimeout. It is for polling state that has no event to wait for.
func Eventually(t testing.TB, check func() error) {
	t.Helper()
	if err := Poll(DefaultTimeout, check); err != nil {
		t.Fatal(err)
	}
}

// Poll calls check until it returns nil or timeout has passed, and returns
// check's last error wrapped with how long it tried.
func Poll(timeout time.Duration, check func() error) error {
	deadline := time.Now().Add(timeout)
	delay := time.Millisecond
	for {
		err := check()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still failing after %v: %w", timeout, err)
		}
		time.Sleep(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// tailBuffer keeps the last 64 KiB written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 64 << 10

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - tailMax; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
