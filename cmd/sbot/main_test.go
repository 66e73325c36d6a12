package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func sbot(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	err := run(ctx, args, &out, &errOut)
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

	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	var serverLog bytes.Buffer
	go func() {
		served <- run(ctx, []string{"--path", dir, "server", "--host", "127.0.0.1", "--port", "0",
			"--caps.shs", base64.StdEncoding.EncodeToString(caps[:]), "--logging.level", "debug"}, &bytes.Buffer{}, &serverLog)
	}()
	defer func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(dir, "socket")); err == nil {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("the server did not start")
		}
	}

	out, err := sbot(t, "--path", dir, "whoami")
	var who struct{ ID string }
	if err != nil || json.Unmarshal([]byte(out), &who) != nil || !strings.HasPrefix(who.ID, "@") {
		t.Fatalf("whoami: %q, %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret")); err != nil {
		t.Errorf("no identity file: %v", err)
	}

	out, err = sbot(t, "--path", dir, "publish", "--type", "post", "--text", "hello world", "--mentions.0.link", who.ID, "--count", "3", "--draft")
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
	out, err = sbot(t, "--path", dir, "call", "latestSequence", who.ID)
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
