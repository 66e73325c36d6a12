package gossip_test

// Interop tests against the real npm secure-gossip@0.3.1, driven through
// interop/sg-peer.js (see its header comment). Every connection is loopback
// TCP; Go dials JavaScript and JavaScript dials Go.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/gossip"
	"github.com/scuttlego/scuttle/internal/oracle"
)

// quiet is how long a test waits before asserting that nothing more
// arrives.
const quiet = 500 * time.Millisecond

type jsPeer struct {
	*oracle.Peer
	public string
}

func startJS(t *testing.T, seed string) *jsPeer {
	t.Helper()
	p := oracle.Start(t, "sg-peer.js", "--seed", seed)
	return &jsPeer{p, p.WaitFor(oracle.Ev("ready")).Str("public")}
}

// jsMessage is a 'message' event of a JavaScript peer.
type jsMessage struct {
	Msg    map[string]any `json:"msg"`
	Public string         `json:"public"`
}

func (p *jsPeer) messages(t *testing.T) []jsMessage {
	t.Helper()
	var ms []jsMessage
	for _, e := range p.Events() {
		if e.Ev() == "message" {
			var m jsMessage
			if err := json.Unmarshal([]byte(e.Line), &m); err != nil {
				t.Fatal(err)
			}
			ms = append(ms, m)
		}
	}
	return ms
}

// debugCount counts secure-gossip's debug lines containing text.
func (p *jsPeer) debugCount(text string) int {
	n := 0
	for _, e := range p.Events() {
		if e.Ev() == "debug" && strings.Contains(e.Str("text"), text) {
			n++
		}
	}
	return n
}

// healthy checks that the JavaScript peer reported no error and did not
// crash, and that secure-gossip refused none of our envelopes.
func (p *jsPeer) healthy(t *testing.T, name string) {
	t.Helper()
	for _, e := range p.Events() {
		if e.Ev() == "error" || e.Ev() == "crash" {
			t.Errorf("%s: %s", name, e.Line)
		}
	}
	if n := p.debugCount("bad signature"); n != 0 {
		t.Errorf("%s refused %d envelopes for their signature", name, n)
	}
}

// links serves Go streams over TCP until the test ends.
type links struct {
	ctx context.Context
	wg  sync.WaitGroup
}

func newLinks(t *testing.T) *links {
	ctx, cancel := context.WithCancel(context.Background())
	ls := &links{ctx: ctx}
	t.Cleanup(func() {
		cancel()
		ls.wg.Wait()
	})
	return ls
}

func (ls *links) serve(g *peer, conn net.Conn) {
	ls.wg.Add(1)
	go func() {
		defer ls.wg.Done()
		g.ServeConn(ls.ctx, conn)
	}()
}

// goDials connects Go peer g to a listening JavaScript peer.
func (ls *links) goDials(t *testing.T, g *peer, js *jsPeer) {
	t.Helper()
	port := js.Do(oracle.Cmd{"op": "listen"}).Int("port")
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	js.WaitFor(oracle.Ev("accepted"))
	ls.serve(g, conn)
}

// jsDials connects a JavaScript peer to Go peer g.
func (ls *links) jsDials(t *testing.T, js *jsPeer, g *peer) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	js.Do(oracle.Cmd{"op": "connect", "port": ln.Addr().(*net.TCPAddr).Port})
	ln.(*net.TCPListener).SetDeadline(time.Now().Add(oracle.DefaultTimeout))
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	ls.serve(g, conn)
}

// goGot checks that g delivered exactly the payloads want (field "from"),
// each once, from the given publishers.
func goGot(t *testing.T, name string, g *peer, want map[string]string) {
	t.Helper()
	got := map[string]int{}
	for _, m := range g.messages() {
		var p struct{ From string }
		json.Unmarshal(m.Data, &p)
		if want[p.From] != m.Public {
			t.Errorf("%s: unexpected %s from %s", name, m.Data, m.Public)
		}
		got[p.From]++
	}
	for from := range want {
		if got[from] != 1 {
			t.Errorf("%s got the message of %s %d times, want once", name, from, got[from])
		}
	}
}

func jsGot(t *testing.T, name string, js *jsPeer, want map[string]string) {
	t.Helper()
	got := map[string]int{}
	for _, m := range js.messages(t) {
		from, _ := m.Msg["from"].(string)
		if want[from] != m.Public {
			t.Errorf("%s: unexpected %v from %s", name, m.Msg, m.Public)
		}
		got[from]++
	}
	for from := range want {
		if got[from] != 1 {
			t.Errorf("%s got the message of %s %d times, want once", name, from, got[from])
		}
	}
}

func waitCounts(t *testing.T, check func() error) {
	t.Helper()
	oracle.Eventually(t, check)
	time.Sleep(quiet) // then nothing more may arrive
}

func goCount(g *peer, n int) func() error {
	return func() error {
		if got := len(g.messages()); got < n {
			return fmt.Errorf("Go peer has %d messages, want %d", got, n)
		}
		return nil
	}
}

func jsCount(t *testing.T, js *jsPeer, n int) func() error {
	return func() error {
		if got := len(js.messages(t)); got < n {
			return fmt.Errorf("JavaScript peer has %d messages, want %d", got, n)
		}
		return nil
	}
}

func publishFrom(t *testing.T, g *peer, from string) {
	t.Helper()
	if _, err := g.Publish(map[string]string{"from": from}); err != nil {
		t.Fatal(err)
	}
}

// Go - JS - Go: each publishes, everyone gets every other message once.
// The JavaScript peer relays the Go messages with their signed seq intact,
// ignores the digest lines, and gets nothing back it sent.
func TestInteropGoJSGo(t *testing.T) {
	oracle.Require(t)
	ls := newLinks(t)
	g1, g2 := newPeer(t, "go1", gossip.Options{}), newPeer(t, "go2", gossip.Options{})
	js := startJS(t, "js")
	ls.goDials(t, g1, js)
	ls.jsDials(t, js, g2)

	publishFrom(t, g1, "go1")
	js.Do(oracle.Cmd{"op": "publish", "msg": map[string]string{"from": "js"}})
	publishFrom(t, g2, "go2")

	waitCounts(t, func() error {
		for _, c := range []func() error{goCount(g1, 2), goCount(g2, 2), jsCount(t, js, 2)} {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	})
	goGot(t, "go1", g1, map[string]string{"js": js.public, "go2": g2.Public()})
	goGot(t, "go2", g2, map[string]string{"js": js.public, "go1": g1.Public()})
	jsGot(t, "js", js, map[string]string{"go1": g1.Public(), "go2": g2.Public()})

	for _, m := range g2.messages() {
		if m.Public == g1.Public() && !m.SignedSeq {
			t.Error("go1's message lost its signed seq through the JavaScript peer")
		}
		if m.Public == js.public && (m.SignedSeq || m.Seq != 0) {
			t.Errorf("the JavaScript message: seq %d, signed %v", m.Seq, m.SignedSeq)
		}
	}
	// A JavaScript application sees the signed seq as a payload field.
	for _, m := range js.messages(t) {
		if _, ok := m.Msg[gossip.SeqKey].(float64); !ok {
			t.Errorf("JavaScript got %v without %q", m.Msg, gossip.SeqKey)
		}
	}
	js.healthy(t, "js")
	if n := js.debugCount("bad json"); n < 2 {
		t.Errorf("secure-gossip ignored %d lines; want at least the 2 first digests", n)
	}
	for _, text := range []string{"old gossip", "own messages"} {
		if n := js.debugCount(text); n != 0 {
			t.Errorf("js logged %q %d times: a Go peer sent back what it got", text, n)
		}
	}
	for i, g := range []*peer{g1, g2} {
		if s := g.Stats(); s.Invalid() != 0 || s.Replayed != 0 {
			t.Errorf("go%d: %+v", i+1, s)
		}
	}
}

// JS - Go - JS: each publishes, everyone gets every other message once;
// the Go peer in the middle forwards the JavaScript envelopes byte for byte.
func TestInteropJSGoJS(t *testing.T) {
	oracle.Require(t)
	ls := newLinks(t)
	js1, js2 := startJS(t, "js1"), startJS(t, "js2")
	g := newPeer(t, "go", gossip.Options{})
	ls.jsDials(t, js1, g)
	ls.goDials(t, g, js2)

	js1.Do(oracle.Cmd{"op": "publish", "msg": map[string]string{"from": "js1"}})
	publishFrom(t, g, "go")
	js2.Do(oracle.Cmd{"op": "publish", "msg": map[string]string{"from": "js2"}})

	waitCounts(t, func() error {
		for _, c := range []func() error{goCount(g, 2), jsCount(t, js1, 2), jsCount(t, js2, 2)} {
			if err := c(); err != nil {
				return err
			}
		}
		return nil
	})
	goGot(t, "go", g, map[string]string{"js1": js1.public, "js2": js2.public})
	jsGot(t, "js1", js1, map[string]string{"go": g.Public(), "js2": js2.public})
	jsGot(t, "js2", js2, map[string]string{"go": g.Public(), "js1": js1.public})
	for i, js := range []*jsPeer{js1, js2} {
		js.healthy(t, fmt.Sprintf("js%d", i+1))
		if n := js.debugCount("own messages"); n != 0 {
			t.Errorf("js%d got its own message back %d times", i+1, n)
		}
	}
}

// A JavaScript peer that connects late gets what was published before:
// it never sends a digest, so after JSAfter rounds it is sent the retained
// messages in seq order, which secure-gossip accepts.
func TestInteropLateJavaScriptPeer(t *testing.T) {
	oracle.Require(t)
	ls := newLinks(t)
	g := newPeer(t, "go", gossip.Options{})
	for i := range 3 {
		publishFrom(t, g, fmt.Sprint("go", i))
	}
	time.Sleep(300 * time.Millisecond) // rounds pass with no peer
	js := startJS(t, "late")
	ls.jsDials(t, js, g)
	waitCounts(t, jsCount(t, js, 3))
	jsGot(t, "js", js, map[string]string{"go0": g.Public(), "go1": g.Public(), "go2": g.Public()})
	js.healthy(t, "js")
}

// A relayer re-sends messages under new seqs into a JavaScript peer, which
// takes them for new ones (its dedup is the unsigned seq) and forwards
// them. The Go peer behind it delivers each message once: the JavaScript
// message is recognised by its hash, the Go one by its signed seq.
func TestInteropReplayThroughJavaScript(t *testing.T) {
	oracle.Require(t)
	ls := newLinks(t)
	pub, relay := startJS(t, "publisher"), startJS(t, "relay")
	g1, g2 := newPeer(t, "go1", gossip.Options{}), newPeer(t, "go2", gossip.Options{})
	port := relay.Do(oracle.Cmd{"op": "listen"}).Int("port")
	pub.Do(oracle.Cmd{"op": "connect", "port": port})
	for _, g := range []*peer{g1, g2} {
		conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		ls.serve(g, conn)
	}
	attacker, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	for range 4 {
		relay.WaitFor(oracle.Ev("accepted"))
	}

	pub.Do(oracle.Cmd{"op": "publish", "msg": map[string]string{"from": "js"}})
	publishFrom(t, g1, "go1")
	waitCounts(t, goCount(g2, 2))

	// The attacker saw both envelopes go by, and sends them back with new
	// seqs.
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(attacker)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	replayed := 0
	for replayed < 2 {
		select {
		case line := <-lines:
			if !strings.HasPrefix(line, `{"data":`) {
				continue
			}
			var env struct{ Seq json.Number }
			json.Unmarshal([]byte(line), &env)
			line = strings.Replace(line, `"seq":`+string(env.Seq)+"}", `"seq":9007199254740000}`, 1)
			if _, err := attacker.Write([]byte(line + "\n")); err != nil {
				t.Fatal(err)
			}
			replayed++
		case <-time.After(oracle.DefaultTimeout):
			t.Fatal("the attacker saw no envelopes")
		}
	}
	// secure-gossip takes the replays for new messages...
	oracle.Eventually(t, func() error {
		if n := len(relay.messages(t)); n != 4 {
			return fmt.Errorf("the JavaScript relay delivered %d messages, expected the 2 replays too", n)
		}
		return nil
	})
	// ... and forwards them, but no Go peer delivers anything twice.
	oracle.Eventually(t, func() error {
		if s := g2.Stats(); s.Replayed < 2 {
			return fmt.Errorf("go2 has seen %d replays", s.Replayed)
		}
		return nil
	})
	time.Sleep(quiet)
	goGot(t, "go2", g2, map[string]string{"js": pub.public, "go1": g1.Public()})
	goGot(t, "go1", g1, map[string]string{"js": pub.public})
	attacker.Close()
	for range lines {
	}
}

// Every kind of line a Go node writes besides envelopes (first digest,
// request, short answer, answer with have after a loss, and a line of an
// unknown later kind) is ignored by secure-gossip without error, and the
// envelopes around them still arrive.
func TestInteropJavaScriptIgnoresDigests(t *testing.T) {
	oracle.Require(t)
	// Two Go nodes exchange digests of every kind over a lossy link.
	w := newWorld(t)
	a, b := w.add("a", gossip.Config{}), w.add("b", gossip.Config{})
	l := w.connect(a, b)
	kinds := map[string]string{}
	dropped := false
	l.drop = func(line string) bool {
		switch {
		case !strings.HasPrefix(line, `{"gossip":`):
			if !dropped {
				dropped = true
				return true
			}
		case strings.Contains(line, `"req":true`):
			kinds["request"] = line
		case strings.Contains(line, `"lost":`) && strings.Contains(line, `"have":`):
			kinds["answer with have"] = line
		case strings.Contains(line, `"lost":`):
			kinds["answer"] = line
		case strings.Contains(line, `"have":`):
			kinds["first digest"] = line
		}
		return false
	}
	publish(t, a, `{"n":1}`, `{"n":2}`)
	w.steps(3 * gossip.DefaultDigestEvery)
	kinds["later extension"] = `{"gossip":"later","x":[1,{"y":null}]}`
	if len(kinds) != 5 {
		t.Fatalf("the Go nodes wrote only %v", kinds)
	}

	js := startJS(t, "js")
	port := js.Do(oracle.Cmd{"op": "listen"}).Int("port")
	conn, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	js.WaitFor(oracle.Ev("accepted"))
	var buf strings.Builder
	for _, line := range kinds {
		buf.WriteString(line + "\n")
	}
	ms := publish(t, a, `{"n":3}`)
	buf.Write(append(ms[0].Raw, '\n'))
	for _, line := range kinds {
		buf.WriteString(line + "\n")
	}
	if _, err := conn.Write([]byte(buf.String())); err != nil {
		t.Fatal(err)
	}
	js.WaitFor(oracle.Ev("message"))
	oracle.Eventually(t, func() error {
		if n := js.debugCount("bad json"); n != 2*len(kinds) {
			return fmt.Errorf("secure-gossip ignored %d lines, want %d", n, 2*len(kinds))
		}
		return nil
	})
	js.healthy(t, "js")
	if n := len(js.messages(t)); n != 1 {
		t.Errorf("js delivered %d messages, want 1", n)
	}
}
