package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The blobs commands as ssb-server's: add a file, get it back, has, ls,
// size, rm.
func TestBlobsCommandLine(t *testing.T) {
	dir := t.TempDir()
	stop := startServer(t, dir)
	defer stop()

	data := make([]byte, 300_000)
	rand.Read(data)
	h := sha256.Sum256(data)
	id := "&" + base64.StdEncoding.EncodeToString(h[:]) + ".sha256"

	// sbot blobs.add < FILE prints the id once the blob is stored.
	out, err := sbotIn(t, data, "--path", dir, "blobs.add")
	if err != nil || out != id+"\n" {
		t.Fatalf("blobs.add < FILE: %q, %v; want %s", out, err, id)
	}
	// sbot blobs.get ID > FILE writes the bytes, nothing else.
	out, err = sbot(t, "--path", dir, "blobs.get", id)
	if err != nil || !bytes.Equal([]byte(out), data) {
		t.Fatalf("blobs.get: %d bytes, %v; want the %d added", len(out), err, len(data))
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"blobs.has", id}, "true\n"},
		{[]string{"blobs.size", id}, "300000\n"},
		{[]string{"blobs.ls"}, `"` + id + "\"\n"},
		{[]string{"blobs.ls", "--long"}, "  \"size\": 300000,\n"},
		{[]string{"call", "blobs.getSlice", `{"id":"` + id + `","start":10,"end":20}`}, string(data[10:20])},
		{[]string{"blobs.want", id}, "true\n"},  // here already: at once
		{[]string{"blobs.push", id}, "false\n"}, // as ssb-blobs
	} {
		if out, err := sbot(t, append([]string{"--path", dir}, c.args...)...); err != nil || out != c.want && !strings.Contains(out, c.want) {
			t.Errorf("%v: %q, %v; want %q", c.args, out, err, c.want)
		}
	}

	// A file given as an argument, as ssb-server takes it; adding it again
	// is no error.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, data[:1000], 0o600)
	h = sha256.Sum256(data[:1000])
	small := "&" + base64.StdEncoding.EncodeToString(h[:]) + ".sha256"
	for range 2 {
		if out, err := sbot(t, "--path", dir, "blobs.add", file); err != nil || out != small+"\n" {
			t.Errorf("blobs.add FILE: %q, %v; want %s", out, err, small)
		}
	}

	if out, err := sbot(t, "--path", dir, "blobs.rm", id); err != nil || out != "false\n" { // as multiblob
		t.Errorf("blobs.rm: %q, %v", out, err)
	}
	if out, err := sbot(t, "--path", dir, "blobs.has", id); err != nil || out != "false\n" {
		t.Errorf("blobs.has after rm: %q, %v", out, err)
	}
	if out, err := sbot(t, "--path", dir, "blobs.ls"); err != nil || out != `"`+small+"\"\n" {
		t.Errorf("blobs.ls after rm: %q, %v", out, err)
	}

	// Errors: a malformed id, a missing blob, a blob over the limit (5 MiB;
	// well over, so that the refusal comes before the end of the stream:
	// the end of a sink is answered at once).
	if _, err := sbot(t, "--path", dir, "blobs.has", "&nope"); err == nil || !strings.Contains(err.Error(), "invalid id:&nope") {
		t.Errorf("blobs.has of a malformed id: %v", err)
	}
	if _, err := sbot(t, "--path", dir, "blobs.get", id); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("blobs.get of a removed blob: %v", err)
	}
	big := make([]byte, 12<<20)
	if _, err := sbotIn(t, big, "--path", dir, "blobs.add"); err == nil || !strings.Contains(err.Error(), "over the limit of 5242880 bytes") {
		t.Errorf("blobs.add over the limit: %v", err)
	}
}
