package scuttlebutt_test

// Signed replicas against the real npm scuttlebutt: a Go replica signing
// with RSASHA1 and a JavaScript one signing with security.js verify each
// other through a JavaScript peer without security, which parses and
// re-serializes every update it forwards; and two Go replicas signing
// with Ed25519 do the same through it. The RSA keys are npm scuttlebutt's
// test keys (interop/sb-keys); security_test.go sets rsa1024min=0.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// startMiddle starts an unsigned JavaScript model listening for peers and
// returns it and its port.
func startMiddle(t *testing.T) (*oracle.Peer, int) {
	t.Helper()
	m := startJS(t, "model", "M")
	return m, m.Do(oracle.Cmd{"op": "listen"}).Int("port")
}

// rawPeer is a hostile peer on a TCP connection: it sends lines and
// discards what it receives.
type rawPeer struct {
	conn net.Conn
	done chan struct{}
}

func dialRaw(t *testing.T, port int) *rawPeer {
	t.Helper()
	rp := &rawPeer{conn: dial(t, port), done: make(chan struct{})}
	go func() {
		defer close(rp.done)
		io.Copy(io.Discard, rp.conn)
	}()
	t.Cleanup(func() {
		rp.conn.Close()
		<-rp.done
	})
	return rp
}

func (rp *rawPeer) send(t *testing.T, lines ...string) {
	t.Helper()
	w := bufio.NewWriter(rp.conn)
	for _, l := range lines {
		w.WriteString(l + "\n")
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// unverifiedLog collects what a Go replica rejects.
type unverifiedLog struct {
	mu   sync.Mutex
	ups  []scuttlebutt.Update
	errs []error
}

func logUnverified(r *scuttlebutt.Replica) *unverifiedLog {
	l := &unverifiedLog{}
	r.OnUnverified(func(u scuttlebutt.Update, err error) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.ups = append(l.ups, u)
		l.errs = append(l.errs, err)
	})
	return l
}

func (l *unverifiedLog) changes() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, u := range l.ups {
		out = append(out, string(u.Change))
	}
	return out
}

// Go (RSASHA1, npm's test2 key) <-> unsigned JavaScript middle <-> signed
// JavaScript (security.js, test1 key), the Go link made in both
// directions: each side's updates verify on the other, including values
// whose JSON serializations differ; forged, tampered and unknown-key
// updates injected at the middle are rejected by both signed ends; and
// real updates go on flowing.
func TestInteropSignedRSA(t *testing.T) {
	for _, dir := range directions {
		t.Run(dir.name, func(t *testing.T) { testInteropSignedRSA(t, dir.goListens) })
	}
}

func testInteropSignedRSA(t *testing.T, goListens bool) {
	keyDir := filepath.Join(oracle.Dir(), "sb-keys")
	mid, midPort := startMiddle(t)
	js := oracle.Start(t, "sb-peer.js", "--type", "model",
		"--private", filepath.Join(keyDir, "test1.key"), "--public", filepath.Join(keyDir, "test1.pem"),
		"--trust", filepath.Join(keyDir, "test2.pem"))
	jsID := js.WaitFor(oracle.Ev("ready")).Str("id")
	if jsID != "lk5RPxZJ4InN3AxwVYiqIOHHpQs=" {
		t.Fatalf("JavaScript id %q, want security.js's createId of test1.pem", jsID)
	}
	keys := &scuttlebutt.Keys{}
	keys.Add(jsID, secFile(t, "test1.pem"))
	sec := secRSA(t, "test2", keys)
	g := model.New("", scuttlebutt.WithSecurity(sec))
	unv := logUnverified(g.Replica)

	js.Do(oracle.Cmd{"op": "connect", "port": midPort})
	connect(t, goListens, mid, g.Replica, nil)

	want := map[string]string{}
	for k, v := range secValues {
		goSet(t, g, "go-"+k, v)
		jsSet(t, js, "js-"+k, v)
		want["go-"+k] = mustMarshal(t, v)
		want["js-"+k] = mustMarshal(t, v)
	}
	converge(t, g, js, want)
	if got := unv.changes(); len(got) != 0 {
		t.Fatalf("Go rejected %q", got)
	}
	for _, e := range js.Events() {
		if e.Ev() == "unverified_data" || e.Ev() == "sbError" {
			t.Fatalf("JavaScript: %s", e.Line)
		}
	}

	// A hostile peer of the middle, which forwards whatever it gets.
	lastGo := g.Clock()[g.ID()]
	priv, pub := secNewRSAPEM(t)
	stranger, err := scuttlebutt.NewRSASHA1(priv, pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	test1 := secRSA(t, "test1", nil)
	genuine := signLine(t, sec, g.ID(), `["k","genuine"]`, lastGo+0.25)
	bad := []string{ // in timestamp order, or the middle drops some as old
		strings.Replace(genuine, `"genuine"`, `"tampered"`, 1),             // a signed update of Go's, changed
		signLine(t, test1, g.ID(), `["k","forged"]`, lastGo+0.5),           // Go's id, JavaScript's key
		signLine(t, stranger, stranger.ID(), `["k","stranger"]`, lastGo+1), // a key nobody trusts
	}
	rp := dialRaw(t, midPort)
	rp.send(t, utPeerHeader)
	rp.send(t, bad...)

	// Both signed ends report each one, and apply none.
	oracle.Eventually(t, func() error {
		if got := unv.changes(); len(got) != len(bad) {
			return fmt.Errorf("Go rejected %q, want the %d bad updates", got, len(bad))
		}
		return nil
	})
	for _, c := range []string{"forged", "tampered", "stranger"} {
		js.WaitFor(func(m oracle.Msg) bool {
			var u []json.RawMessage
			return m.Ev() == "unverified_data" && m.Decode("update", &u) == nil && len(u) > 0 && strings.Contains(string(u[0]), c)
		})
	}
	if _, ok := g.Get("k"); ok {
		t.Fatal("Go applied a bad update")
	}
	if st := dump(t, js); st.JSON["k"] != nil {
		t.Fatalf("JavaScript applied a bad update: k = %s", st.JSON["k"])
	}
	if c := g.Clock(); c[g.ID()] != lastGo || c[stranger.ID()] != 0 {
		t.Fatalf("Go's clock moved: %v", c)
	}

	// Real updates still flow both ways.
	time.Sleep(2 * time.Millisecond) // past the forged timestamps, which the middle has taken
	goSet(t, g, "after-go", 1)
	jsSet(t, js, "after-js", 2)
	want["after-go"], want["after-js"] = "1", "2"
	converge(t, g, js, want)
}

// Go (Ed25519) <-> unsigned JavaScript middle <-> Go (Ed25519): the
// signatures survive JavaScript's parsing and re-serializing, and an
// update changed on the way is rejected.
func TestInteropSignedEd25519ThroughJS(t *testing.T) {
	mid, midPort := startMiddle(t)
	a := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(1), nil)))
	b := model.New("", scuttlebutt.WithSecurity(scuttlebutt.NewEd25519(secKey(2), nil)))
	unvA, unvB := logUnverified(a.Replica), logUnverified(b.Replica)
	connect(t, true, mid, a.Replica, nil)
	connect(t, false, mid, b.Replica, nil)
	for k, v := range secValues {
		goSet(t, a, "a-"+k, v)
		goSet(t, b, "b-"+k, v)
	}
	oracle.Eventually(t, func() error {
		for _, m := range []*model.Model{a, b} {
			if m.Len() != 2*len(secValues) {
				return fmt.Errorf("%s has %v", m.ID(), m.Keys())
			}
		}
		return nil
	})
	for k := range secValues {
		for _, key := range []string{"a-" + k, "b-" + k} {
			va, _ := a.Get(key)
			vb, _ := b.Get(key)
			if string(va) != string(vb) {
				t.Fatalf("%s: a has %s, b has %s", key, va, vb)
			}
		}
	}
	if len(unvA.changes())+len(unvB.changes()) != 0 {
		t.Fatalf("rejected: a %q, b %q", unvA.changes(), unvB.changes())
	}

	// An update of a's, changed by a hostile peer of the middle.
	genuine := signLine(t, scuttlebutt.NewEd25519(secKey(1), nil), a.ID(), `["k","genuine"]`, a.Clock()[a.ID()]+0.5)
	rp := dialRaw(t, midPort)
	rp.send(t, utPeerHeader, strings.Replace(genuine, "genuine", "tampered", 1))
	oracle.Eventually(t, func() error {
		for _, u := range []*unverifiedLog{unvA, unvB} {
			if got := u.changes(); len(got) != 1 || got[0] != `["k","tampered"]` {
				return fmt.Errorf("rejected %q, want the tampered update", got)
			}
		}
		return nil
	})
	for _, m := range []*model.Model{a, b} {
		if _, ok := m.Get("k"); ok {
			t.Fatalf("%s applied the tampered update", m.ID())
		}
	}
}
