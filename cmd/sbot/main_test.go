package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/ssb/store"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sbot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return sbotIn(t, nil, args...)
}

// sbotIn runs sbot with stdin.
func sbotIn(t *testing.T, stdin []byte, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, bytes.NewReader(stdin), &out, &errOut)
	return out.String(), err
}

// The command line as the README shows it: start the server, then use it.
func TestCommandLine(t *testing.T) {
	dir := t.TempDir()
	var caps [32]byte
	rand.Read(caps[:])

	if _, err := sbot(t, "--path", dir, "whoami"); err == nil || !strings.Contains(err.Error(), "sbot --path "+dir+" server") {
		t.Fatalf("whoami without a server: %v, want how to start it", err)
	}

	stop := startServer(t, dir, "--caps.shs", base64.StdEncoding.EncodeToString(caps[:]), "--logging.level", "debug")
	defer stop()

	out, err := sbot(t, "--path", dir, "whoami")
	var who struct{ ID string }
	if err != nil || json.Unmarshal([]byte(out), &who) != nil || !strings.HasPrefix(who.ID, "@") {
		t.Fatalf("whoami: %q, %v", out, err)
	}
	// Server options anywhere on the line, as ssb-server takes them.
	for _, args := range [][]string{
		{"whoami", "--path", dir},
		{"--port", "8008", "--path", dir, "whoami"},
		{"--path=" + dir, "--logging.level", "warn", "whoami", "--port=9"},
	} {
		if again, err := sbot(t, args...); err != nil || again != out {
			t.Errorf("%q: %q, %v; want %q", args, again, err, out)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); err != nil {
		t.Errorf("no identity file: %v", err)
	}

	// --path is the data directory, not a field of the content.
	out, err = sbot(t, "publish", "--type", "post", "--text", "hello world", "--mentions.0.link", who.ID, "--count", "3", "--draft", "--path", dir)
	var msg struct {
		Key   string
		Value struct{ Content json.RawMessage }
	}
	if err != nil || json.Unmarshal([]byte(out), &msg) != nil {
		t.Fatalf("publish: %q, %v", out, err)
	}
	want := `{"type":"post","text":"hello world","mentions":{"0":{"link":"` + who.ID + `"}},"count":3,"draft":true}`
	var compact bytes.Buffer
	json.Compact(&compact, msg.Value.Content)
	if compact.String() != want { // flags in order, dotted names nested, JSON values typed
		t.Errorf("published content %s, want %s", compact.String(), want)
	}
	sbot(t, "--path", dir, "publish", "--type", "post", "--text", "second")

	// Stream commands print one indented JSON value per message.
	for _, args := range [][]string{{"feed"}, {"log"}, {"hist", who.ID}, {"log", "--limit", "1", "--reverse"}, {"hist", who.ID, "--seq", "2"}} {
		out, err := sbot(t, append([]string{"--path", dir}, args...)...)
		n := strings.Count(out, "\n}\n")
		wantN := 2
		if len(args) > 2 {
			wantN = 1
		}
		if err != nil || n != wantN {
			t.Errorf("%v: %d messages, %v:\n%s", args, n, err, out)
		}
	}
	out, err = sbot(t, "--path", dir, "get", msg.Key)
	if err != nil || !strings.Contains(out, `"text": "hello world"`) {
		t.Errorf("get: %q, %v", out, err)
	}
	out, err = sbot(t, "call", "latestSequence", who.ID, "--path", dir)
	if err != nil || strings.TrimSpace(out) != "2" {
		t.Errorf("call latestSequence: %q, %v", out, err)
	}
	out, err = sbot(t, "--path", dir, "status")
	if err != nil || !strings.Contains(out, `"messages": 2`) {
		t.Errorf("status: %q, %v", out, err)
	}
	out, err = sbot(t, "--path", dir, "progress", "--watch")
	if err != nil || !strings.Contains(out, "replicating 1 feeds with 0 peers: 2 of 2 messages (100.0%)") {
		t.Errorf("progress --watch: %q, %v", out, err)
	}
	if _, err := sbot(t, "--path", dir, "nosuch"); err == nil || !strings.Contains(err.Error(), `no method "nosuch"`) {
		t.Errorf("an unknown method: %v", err)
	}
	if _, err := sbot(t, "--path", dir, "get", "%nonsense"); err == nil {
		t.Error("get of an invalid id succeeded")
	}
}

// startServer runs sbot server on dir with args, on loopback and any port,
// until the returned function is called. It returns once the server logs
// that it listens.
func startServer(t *testing.T, dir string, args ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logR, logW := io.Pipe()
	served := make(chan error, 1)
	go func() {
		args := append([]string{"--path", dir, "server", "--host", "127.0.0.1", "--port", "0", "--logging.level", "info"}, args...)
		served <- run(ctx, args, strings.NewReader(""), &bytes.Buffer{}, logW)
		logW.Close()
	}()
	listening := make(chan struct{})
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		sc := bufio.NewScanner(logR)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), "msg=listening") {
				close(listening)
				seen = true
			}
		}
		io.Copy(io.Discard, logR)
	}()
	stop = func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("server: %v", err)
		}
		<-logged
	}
	select {
	case <-listening:
		return stop
	case err := <-served:
		served <- err
		stop()
		t.Fatalf("the server stopped: %v", err)
	case <-time.After(10 * time.Second):
		stop()
		t.Fatal("the server did not start within 10s")
	}
	return nil
}

// -h or --help anywhere, and sbot help, print help and exit 0 without
// touching any data directory.
func TestHelpAnywhere(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home) // the default data directory, ~/.ssb-go
	dir := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage: sbot [OPTIONS] COMMAND"},
		{[]string{"-h"}, "usage: sbot [OPTIONS] COMMAND"},
		{[]string{"--help"}, "--caps.shs KEY"},
		{[]string{"help"}, "sbot repair --path /tmp/alice"},
		{[]string{"server", "-h"}, "usage: sbot server [OPTIONS]"},
		{[]string{"server", "--help"}, "--port N"},
		{[]string{"-h", "server"}, "usage: sbot server [OPTIONS]"},
		{[]string{"--path", dir, "server", "--port", "8009", "-h"}, "usage: sbot server [OPTIONS]"},
		{[]string{"--port", "nonsense", "server", "-h"}, "usage: sbot server [OPTIONS]"},
		{[]string{"help", "server"}, "--logging.level LEVEL"},
		{[]string{"help", "repair"}, "usage: sbot repair [--path DIR]"},
		{[]string{"repair", "--path", dir, "--help"}, "usage: sbot repair [--path DIR]"},
		{[]string{"--path", dir, "whoami", "-h"}, "usage: sbot whoami"},
		{[]string{"publish", "--type", "post", "--text", "-h"}, "usage: sbot publish"},
		{[]string{"feed", "--help"}, "stream options: --live"},
		{[]string{"status", "-h"}, `"status" is not a command of sbot`},
	} {
		out, err := sbot(t, tc.args...)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("sbot %q: %v, output without %q:\n%s", tc.args, err, tc.want, out)
		}
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("help wrote to the home directory: %v", entries)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("help created the data directory: %v", err)
	}
}

// Bad configuration fails with a clear error before anything is written:
// no data directory, no identity.
func TestBadConfigWritesNothing(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"server", "--port", "abc"}, `--port "abc" is not a whole number`},
		{[]string{"--port", "70000", "server"}, "port 70000 is not in 0..65535"},
		{[]string{"server", "--port=-1"}, "port -1 is not in 0..65535"},
		{[]string{"server", "--caps.shs", "bad"}, "caps.shs"},
		{[]string{"server", "--caps.sign", "c2hvcnQ="}, "caps.sign must be base64 of 32 bytes"},
		{[]string{"server", "--logging.level", "loud"}, `unknown logging.level "loud"`},
		{[]string{"server", "--friends.hops", "-1"}, "friends.hops -1 is negative"},
		{[]string{"server", "--timers.inactivity", "0"}, "--timers.inactivity"},
		{[]string{"server", "--port"}, "--port needs a value"},
		{[]string{"server", "extra"}, "server takes only options"},
		{[]string{"--live", "feed"}, "unknown option --live before the command"},
		{[]string{"--port", "abc", "whoami"}, `--port "abc" is not a whole number`},
		{[]string{"repair", "--port", "99999"}, "port 99999 is not in 0..65535"},
		{[]string{"repair"}, "no such file"},
	} {
		dir := filepath.Join(t.TempDir(), "data")
		_, err := sbot(t, append([]string{"--path", dir}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("sbot %q: %v, want an error with %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("sbot %q created the data directory: %v", tc.args, err)
		}
	}

	// A data directory whose config file has a bad port: no identity.
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(`{"port": 70000}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := sbot(t, "--path", dir, "server"); err == nil || !strings.Contains(err.Error(), "port 70000") {
		t.Errorf("a config file with port 70000: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("the data directory holds %v, want only its config", entries)
	}
}

// A store truncated on disk: the server refuses to start and says how to
// repair; repair refuses while a server runs, then rebuilds the store from
// what validates, reports it, keeps the old file, and the server starts
// on the result.
func TestRepairTruncatedStore(t *testing.T) {
	dir := t.TempDir()
	stop := startServer(t, dir)
	text := strings.Repeat("many words ", 300)
	for i := range 40 {
		if _, err := sbot(t, "--path", dir, "publish", "--type", "post", "--text", fmt.Sprint(i, text)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sbot(t, "repair", "--path", dir); !errors.Is(err, errServerRunning) {
		t.Errorf("repair under a running server: %v", err)
	}
	stop()
	if backups, _ := filepath.Glob(filepath.Join(dir, "db", "*.damaged-*")); len(backups) != 0 {
		t.Errorf("the refused repair left %v", backups)
	}

	db := filepath.Join(dir, "db", store.FileName)
	used := usedBytes(t, db)
	ps := int64(os.Getpagesize())
	if err := os.Truncate(db, used/2/ps*ps); err != nil {
		t.Fatal(err)
	}
	if _, err := sbot(t, "--path", dir, "server", "--port", "0"); err == nil || !strings.Contains(err.Error(), "repair it with: sbot --path "+dir+" repair") {
		t.Fatalf("server on a truncated store: %v, want how to repair", err)
	}

	out, err := sbot(t, "--path", dir, "repair")
	if err != nil {
		t.Fatalf("repair: %v\n%s", err, out)
	}
	t.Logf("sbot repair:\n%s", out)
	m := regexp.MustCompile(`kept (\d+) messages of (\d+) feeds`).FindStringSubmatch(out)
	backup := regexp.MustCompile(`old file kept as (\S+)`).FindStringSubmatch(out)
	if m == nil || backup == nil {
		t.Fatalf("repair report without what was kept and the backup:\n%s", out)
	}
	kept, _ := strconv.Atoi(m[1])
	if kept >= 40 || !strings.Contains(out, "Your own feed lost messages "+strconv.Itoa(kept+1)+" to 40") {
		t.Errorf("repair of a store cut in half kept %d of 40 messages, and says:\n%s", kept, out)
	}
	if _, err := os.Stat(backup[1]); err != nil {
		t.Errorf("the old file: %v", err)
	}

	stop = startServer(t, dir)
	defer stop()
	out, err = sbot(t, "--path", dir, "status")
	if err != nil || !strings.Contains(out, fmt.Sprintf(`"messages": %d`, kept)) {
		t.Errorf("status after the repair (want %d messages): %v\n%s", kept, err, out)
	}
}

// usedBytes returns the bytes of the database file at path that bbolt
// uses (the file is grown ahead of them).
func usedBytes(t *testing.T, path string) int64 {
	t.Helper()
	db, err := bolt.Open(path, 0o400, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var size int64
	db.View(func(tx *bolt.Tx) error { size = tx.Size(); return nil })
	return size
}
