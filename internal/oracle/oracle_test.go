package oracle_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
)

// fakeScript is a script following the oracle convention, written for these
// tests so that they do not depend on an npm package:
//
//	{"op":"echo","v":V}        reply {"ev":"echo","v":V}, after an event {"ev":"before"}
//	{"op":"later","ms":N,"v":V} reply {"ev":"ok"}; N ms later the event {"ev":"later","v":V}
//	{"op":"fail"}              reply {"ev":"cmdError",...}
//	{"op":"silent"}            no reply
//	{"op":"crash"}             write to stderr and exit 3
//	{"op":"stubborn"}          reply, then ignore the end of stdin and SIGTERM
const fakeScript = `
'use strict'
let buf = ''
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n')
const reply = (cmd, r) => { r.tag = cmd.tag; out(r) }
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buf += chunk
  let i
  while ((i = buf.indexOf('\n')) >= 0) {
    const cmd = JSON.parse(buf.slice(0, i)); buf = buf.slice(i + 1)
    switch (cmd.op) {
      case 'echo': out({ ev: 'before' }); reply(cmd, { ev: 'echo', v: cmd.v }); break
      case 'later': setTimeout(() => out({ ev: 'later', v: cmd.v }), cmd.ms); reply(cmd, { ev: 'ok' }); break
      case 'fail': reply(cmd, { ev: 'cmdError', message: 'asked to fail' }); break
      case 'silent': break
      case 'crash': process.stderr.write('fake: crashing on purpose\n'); process.exit(3)
      case 'stubborn':
        process.stdin.removeAllListeners('end'); process.on('SIGTERM', () => {})
        setInterval(() => {}, 1000); reply(cmd, { ev: 'ok' }); break
    }
  }
})
process.stdin.on('end', () => process.exit(0))
out({ ev: 'ready' })
`

func startFake(t *testing.T) *oracle.Peer {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake.js")
	if err := os.WriteFile(path, []byte(fakeScript), 0o644); err != nil {
		t.Fatal(err)
	}
	return oracle.StartScript(t, oracle.Script{Path: path})
}

func TestDir(t *testing.T) {
	d := oracle.Dir()
	if _, err := os.Stat(filepath.Join(d, "sb-peer.js")); err != nil {
		t.Fatalf("Dir() = %q: %v", d, err)
	}
}

func TestCallAndEvents(t *testing.T) {
	p := startFake(t)
	p.WaitFor(oracle.Ev("ready"))

	m := p.Do(oracle.Cmd{"op": "echo", "v": map[string]any{"a": []int{1, 2}}})
	if m.Ev() != "echo" || m.Str("tag") == "" {
		t.Fatalf("reply = %s", m.Line)
	}
	var v struct{ A []int }
	if err := m.Decode("v", &v); err != nil || len(v.A) != 2 {
		t.Fatalf("Decode: %v %v", v, err)
	}
	// Replies are not events; the event written before the reply is.
	evs := p.Events()
	if len(evs) != 2 || evs[0].Ev() != "ready" || evs[1].Ev() != "before" {
		t.Fatalf("events = %v", evs)
	}

	mark := p.Mark()
	p.Do(oracle.Cmd{"op": "later", "ms": 20, "v": 1})
	p.Do(oracle.Cmd{"op": "later", "ms": 60, "v": 2})
	if m, err := p.Wait(mark, oracle.Ev("later", "v", 2)); err != nil || m.Int("v") != 2 {
		t.Fatalf("Wait: %v %v", m, err)
	}
	if n := len(p.Events()); n != mark+2 {
		t.Fatalf("%d events after mark, want 2", n-mark)
	}
	// Wait from a mark ignores earlier events.
	p.Timeout = 100 * time.Millisecond
	if _, err := p.Wait(p.Mark(), oracle.Ev("later")); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Wait for nothing new: err = %v", err)
	}
}

func TestCmdErrorAndTimeout(t *testing.T) {
	p := startFake(t)
	m, err := p.Call(oracle.Cmd{"op": "fail"})
	if err != nil || m.Ev() != "cmdError" {
		t.Fatalf("Call(fail) = %s, %v", m.Line, err)
	}
	p.Timeout = 100 * time.Millisecond
	start := time.Now()
	if _, err := p.Call(oracle.Cmd{"op": "silent"}); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("Call(silent): err = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Call(silent) took %v", d)
	}
	if _, err := p.Call([]int{1}); err == nil {
		t.Fatal("Call with a non-object: no error")
	}
}

func TestCrash(t *testing.T) {
	p := startFake(t)
	_, err := p.Call(oracle.Cmd{"op": "crash"})
	if err == nil || !strings.Contains(err.Error(), "exited") || !strings.Contains(err.Error(), "crashing on purpose") {
		t.Fatalf("Call(crash): err = %v", err)
	}
	if err := p.Close(); err == nil || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Close after crash: err = %v", err)
	}
	if _, err := p.Call(oracle.Cmd{"op": "echo"}); err == nil {
		t.Fatal("Call after exit: no error")
	}
}

func TestCloseKillsStubbornScript(t *testing.T) {
	defer oracle.SetExitTimeout(300 * time.Millisecond)()
	p := startFake(t)
	p.Do(oracle.Cmd{"op": "stubborn"})
	start := time.Now()
	err := p.Close()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("Close: err = %v", err)
	}
	select {
	case <-p.Exited():
	default:
		t.Fatal("not exited after Close")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Close took %v", d)
	}
}

func TestSBPeer(t *testing.T) {
	p := oracle.Start(t, "sb-peer.js", "--type", "model", "--id", "X")
	if id := p.WaitFor(oracle.Ev("ready")).Str("id"); id != "X" {
		t.Fatalf("ready id = %q", id)
	}
	p.Do(oracle.Cmd{"op": "set", "key": "k", "value": "v"})
	var st struct{ JSON map[string]string }
	if err := p.Do(oracle.Cmd{"op": "dump"}).Decode("json", &st.JSON); err != nil || st.JSON["k"] != "v" {
		t.Fatalf("dump: %v %v", st.JSON, err)
	}
	if m, _ := p.Call(oracle.Cmd{"op": "nope"}); m.Ev() != "cmdError" {
		t.Fatalf("unknown op: %s", m.Line)
	}
	p.WaitFor(oracle.Ev("change", "key", "k", "value", "v"))
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestPoll(t *testing.T) {
	n := 0
	if err := oracle.Poll(time.Second, func() error {
		if n++; n < 3 {
			return errors.New("not yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := oracle.Poll(30*time.Millisecond, func() error { return errors.New("never") }); err == nil || !strings.Contains(err.Error(), "never") {
		t.Fatalf("Poll: %v", err)
	}
}

func TestRequireSkipsWithoutNode(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CI", "")
	var skipped bool
	t.Run("inner", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		oracle.Require(t)
	})
	if !skipped {
		t.Fatal("Require did not skip without node on PATH")
	}
}
