package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/ssb/keys"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// peer runs sbkv in-process with its input and output as pipes.
type peer struct {
	id    string // the replica id it printed
	in    *io.PipeWriter
	lines chan string
	done  chan error
}

// startPeer runs sbkv with o, its key file in a new temporary directory
// unless o names one.
func startPeer(t *testing.T, ctx context.Context, o options) *peer {
	t.Helper()
	if o.keys == "" {
		o.keys = filepath.Join(t.TempDir(), "secret")
	}
	if o.idle == 0 {
		o.idle = DefaultIdle
	}
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	p := &peer{in: inW, lines: make(chan string, 100), done: make(chan error, 1)}
	log := slog.New(slog.DiscardHandler)
	go func() {
		p.done <- run(ctx, log, o, inR, outW)
		outW.Close()
		inR.Close()
	}()
	go func() {
		defer close(p.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
	}()
	p.id = strings.TrimPrefix(p.expect(t, "sbkv: replica "), "sbkv: replica ")
	return p
}

// listenAddr waits for the address p listens on.
func (p *peer) listenAddr(t *testing.T) string {
	t.Helper()
	return strings.TrimPrefix(p.expect(t, "listening on "), "sbkv: listening on ")
}

// expect waits for an output line containing want.
func (p *peer) expect(t *testing.T, want string) string {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("output ended before %q", want)
			}
			if strings.Contains(line, want) {
				return line
			}
		case <-timeout:
			t.Fatalf("no output line with %q within 10s", want)
		}
	}
}

// expectAll waits for output lines containing each of wants, in any order.
func (p *peer) expectAll(t *testing.T, wants ...string) {
	t.Helper()
	left := map[string]bool{}
	for _, w := range wants {
		left[w] = true
	}
	timeout := time.After(10 * time.Second)
	for len(left) > 0 {
		select {
		case line, ok := <-p.lines:
			if !ok {
				t.Fatalf("output ended before %v", left)
			}
			for w := range left {
				if strings.Contains(line, w) {
					delete(left, w)
				}
			}
		case <-timeout:
			t.Fatalf("no output lines with %v within 10s", left)
		}
	}
}

func (p *peer) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.in, line+"\n"); err != nil {
		t.Fatal(err)
	}
}

// ask sends a command and returns the line it prints, which must contain
// marker.
func (p *peer) ask(t *testing.T, cmd, marker string) string {
	t.Helper()
	p.send(t, cmd)
	return p.expect(t, marker)
}

// stop ends p's input, which ends the program.
func (p *peer) stop(t *testing.T) {
	t.Helper()
	p.in.Close()
	if err := <-p.done; err != nil {
		t.Error(err)
	}
	for range p.lines {
	}
}

// rawPeer is a TCP client writing protocol lines by hand: an attacker.
type rawPeer struct {
	c     net.Conn
	lines chan string
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawPeer{c: c, lines: make(chan string, 1000)}
	go func() {
		defer close(r.lines)
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			select {
			case r.lines <- sc.Text():
			default: // not kept
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		for range r.lines {
		}
	})
	return r
}

func (r *rawPeer) send(t *testing.T, lines ...string) {
	t.Helper()
	for _, l := range lines {
		if _, err := io.WriteString(r.c, l+"\n"); err != nil {
			t.Fatal(err)
		}
	}
}

// update returns the wire line of [change, now, source, extra...].
func update(change, source string, extra ...string) string {
	u := scuttlebutt.Update{Change: json.RawMessage(change), Timestamp: float64(time.Now().UnixMilli()), Source: source}
	for _, e := range extra {
		u.Extra = append(u.Extra, json.RawMessage(e))
	}
	return u.String()
}

// signed returns the wire line of an update signed with priv, claiming
// source (which may be another replica's id).
func signed(t *testing.T, priv ed25519.PrivateKey, change, source string) string {
	t.Helper()
	u := scuttlebutt.Update{Change: json.RawMessage(change), Timestamp: float64(time.Now().UnixMilli()), Source: source}
	sig, err := scuttlebutt.NewEd25519(priv, nil).Sign(u)
	if err != nil {
		t.Fatal(err)
	}
	u.Extra = []json.RawMessage{sig}
	return u.String()
}

func newKey(t *testing.T) *keys.KeyPair {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

func TestTwoPeersReplicateLive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startPeer(t, ctx, options{listen: "127.0.0.1:0"})
	addr := a.listenAddr(t)
	a.send(t, `set before {"n":1}`)
	a.expect(t, `change "before" = {"n":1}`)

	b := startPeer(t, ctx, options{connect: []string{addr}})
	b.expect(t, `change "before" = {"n":1} (from `+a.id+`)`) // history
	b.send(t, "set greeting héllo wörld")
	a.expect(t, `change "greeting" = "h\u00e9llo w\u00f6rld" (from `+b.id+`)`) // live, B to A
	a.send(t, "del before")
	b.expect(t, `change "before" = null`) // live, A to B
	b.send(t, "dump")
	b.expect(t, `{"greeting":"h\u00e9llo w\u00f6rld"}`)
	if !strings.HasPrefix(a.id, "@") || !strings.HasSuffix(a.id, ".ed25519") || a.id == b.id {
		t.Errorf("replica ids %q and %q, want two ed25519 ids", a.id, b.id)
	}

	b.stop(t)
	a.stop(t)
}

// A raw TCP client writes well-formed updates under other replicas' ids,
// unsigned or signed with the wrong key: A rejects each one, applies
// nothing and passes nothing on to C, while real updates flow from B
// through A to C. Anyone may still add updates under its own id.
func TestForgedUpdatesRejected(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startPeer(t, ctx, options{listen: "127.0.0.1:0"})
	addr := a.listenAddr(t)
	b := startPeer(t, ctx, options{connect: []string{addr}})
	c := startPeer(t, ctx, options{connect: []string{addr}})
	a.send(t, "set hello 1")
	b.expect(t, `change "hello" = 1`)
	c.expect(t, `change "hello" = 1`)

	mallory := newKey(t)
	atk := dialRaw(t, addr)
	atk.send(t, `{"id":"mallory","clock":{}}`,
		update(`["forged1","unsigned"]`, b.id),
		update(`["forged2","garbage signature"]`, b.id, `"AAAA.sig.ed25519"`),
		signed(t, mallory.Private, `["forged3","signed by mallory as A"]`, a.id),
		signed(t, mallory.Private, `["forged4","signed by mallory as C"]`, c.id),
		`"SYNC"`)
	a.expectAll(t,
		`rejected ["forged1","unsigned"] from `+b.id+`: scuttlebutt: update not verified: not signed`,
		`rejected ["forged2","garbage signature"] from `+b.id+`: scuttlebutt: update not verified: not an ed25519 signature`,
		`rejected ["forged3","signed by mallory as A"] from `+a.id+`: scuttlebutt: update not verified: bad signature`,
		`rejected ["forged4","signed by mallory as C"] from `+c.id+`: scuttlebutt: update not verified: bad signature`)

	// Mallory's own updates are welcome: anyone may join, no one may forge.
	atk.send(t, signed(t, mallory.Private, `["mallory","hi"]`, mallory.ID.String()))
	c.expect(t, `change "mallory" = "hi" (from `+mallory.ID.String()+`)`)
	b.expect(t, `change "mallory" = "hi" (from `+mallory.ID.String()+`)`)
	b.send(t, "set real yes")
	c.expect(t, `change "real" = "yes" (from `+b.id+`)`)

	want := `{"hello":1,"mallory":"hi","real":"yes"}`
	for name, p := range map[string]*peer{"A": a, "B": b, "C": c} {
		if got := p.ask(t, "dump", "{"); got != want {
			t.Errorf("%s holds %s, want %s", name, got, want)
		}
	}
	c.stop(t)
	b.stop(t)
	a.stop(t)
}

// With -trust, only the listed replicas (and this one) are believed: a
// stranger's validly signed updates are rejected, a trusted peer's apply.
func TestTrustList(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	bob := newKey(t)
	bobKeys := filepath.Join(dir, "bob")
	if err := keys.Save(bobKeys, bob); err != nil {
		t.Fatal(err)
	}
	a := startPeer(t, ctx, options{listen: "127.0.0.1:0", trust: []string{bob.ID.String()}})
	addr := a.listenAddr(t)
	b := startPeer(t, ctx, options{connect: []string{addr}, keys: bobKeys})
	if b.id != bob.ID.String() {
		t.Fatalf("B runs as %s, want the id of its key file, %s", b.id, bob.ID)
	}

	mallory := newKey(t)
	atk := dialRaw(t, addr)
	atk.send(t, `{"id":"mallory","clock":{}}`, signed(t, mallory.Private, `["mallory","hi"]`, mallory.ID.String()))
	a.expect(t, `rejected ["mallory","hi"] from `+mallory.ID.String()+`: scuttlebutt: update not verified: scuttlebutt: unknown key`)
	b.send(t, "set bob here")
	a.expect(t, `change "bob" = "here" (from `+bob.ID.String()+`)`)
	if got := a.ask(t, "dump", "{"); got != `{"bob":"here"}` {
		t.Errorf("A holds %s", got)
	}
	b.stop(t)
	a.stop(t)
}

// -insecure is npm scuttlebutt without security: whatever a peer claims is
// believed and passed on.
func TestInsecureBelievesPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startPeer(t, ctx, options{listen: "127.0.0.1:0", insecure: true, id: "alice"})
	addr := a.listenAddr(t)
	c := startPeer(t, ctx, options{connect: []string{addr}, insecure: true})
	if a.id != "alice" || len(c.id) != 40 {
		t.Errorf("ids %q and %q, want alice and a random npm-style id", a.id, c.id)
	}
	a.send(t, "set hello 1")
	c.expect(t, `change "hello" = 1`)

	atk := dialRaw(t, addr)
	atk.send(t, `{"id":"mallory","clock":{}}`, update(`["forged","unsigned"]`, "bob"))
	c.expect(t, `change "forged" = "unsigned" (from bob)`)
	c.stop(t)
	a.stop(t)
}

func TestFlagsThatNeedEachOther(t *testing.T) {
	for _, tc := range []struct {
		o    options
		want string
	}{
		{options{id: "alice"}, "-id is for -insecure"},
		{options{insecure: true, trust: []string{newKey(t).ID.String()}}, "-trust needs signed updates"},
	} {
		tc.o.listen, tc.o.keys = "127.0.0.1:0", filepath.Join(t.TempDir(), "k")
		err := run(t.Context(), slog.New(slog.DiscardHandler), tc.o, strings.NewReader(""), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.o, err, tc.want)
		}
	}
}

// A key file keeps the replica's id across restarts, and one sbkv at a
// time may use it.
func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sbkv", "secret")
	kp, release, err := openIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := openIdentity(path); !errors.Is(err, errKeysInUse) {
		t.Errorf("second open of a key file in use: %v, want errKeysInUse", err)
	}
	release()
	again, release, err := openIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if again.ID != kp.ID {
		t.Errorf("id after a restart %s, want %s", again.ID, kp.ID)
	}
}

func TestLoadTrust(t *testing.T) {
	dir := t.TempDir()
	a, b, c := newKey(t).ID.String(), newKey(t).ID.String(), newKey(t).ID.String()
	lines := filepath.Join(dir, "trusted")
	writeFile(t, lines, "# friends\n"+a+"\n\n  "+b+"  # bob\n")
	jsonFile := filepath.Join(dir, "keys.json")
	writeFile(t, jsonFile, `{"`+c+`":"`+strings.TrimPrefix(c, "@")+`"}`)
	k, err := loadTrust([]string{lines, jsonFile})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{a, b, c} {
		if _, err := k.PublicKey(t.Context(), id); err != nil {
			t.Errorf("%s not trusted: %v", id, err)
		}
	}
	if k.Len() != 3 {
		t.Errorf("%d ids trusted, want 3", k.Len())
	}
	bad := filepath.Join(dir, "bad")
	writeFile(t, bad, a+"\nnot-an-id\n")
	if _, err := loadTrust([]string{bad}); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a file with a bad id: %v, want an error at line 2", err)
	}
	if _, err := loadTrust([]string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing trust file was accepted")
	}
}

func FuzzParseTrust(f *testing.F) {
	f.Add([]byte("@" + strings.Repeat("A", 43) + "=.ed25519\n# c\n"))
	f.Add([]byte(`{"@` + strings.Repeat("A", 43) + `=.ed25519":"` + strings.Repeat("A", 43) + `=.ed25519"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k := &scuttlebutt.Keys{}
		if err := parseTrust(k, data); err != nil {
			return
		}
		if k.Len() > strings.Count(string(data), ".ed25519") {
			t.Errorf("%d ids from %q", k.Len(), data)
		}
	})
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}
