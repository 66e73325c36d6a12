package blobs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// Environment of a crash child (see TestMain): the store's directory, the
// round (which picks the child's blobs) and the index of the blob whose
// add blocks halfway (-1: none).
const (
	crashChildEnv = "SCUTTLE_BLOBS_CRASH_CHILD"
	crashRoundEnv = "SCUTTLE_BLOBS_CRASH_ROUND"
	crashBlockEnv = "SCUTTLE_BLOBS_CRASH_BLOCK"
)

// crashBlob returns blob i of a crash round, the same in parent and child.
func crashBlob(round, i int) []byte {
	return randBytes(uint64(round*1000+i), 256<<10+i*4099)
}

// crashChild adds blobs to the store in dir, printing "ack ID" after each
// add returns. Blob number SCUTTLE_BLOBS_CRASH_BLOCK prints "mid ID" when
// half of it has been read and then blocks on stdin, which the parent
// never writes, so that it is killed in the middle of the add.
func crashChild(dir string) {
	round, _ := strconv.Atoi(os.Getenv(crashRoundEnv))
	block, _ := strconv.Atoi(os.Getenv(crashBlockEnv))
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		data := crashBlob(round, i)
		var r io.Reader = bytes.NewReader(data)
		if i == block {
			half := len(data) / 2
			r = io.MultiReader(bytes.NewReader(data[:half]), &failingReader{
				r: bytes.NewReader(nil),
				before: func() {
					fmt.Println("mid", idOf(data))
					io.Copy(io.Discard, os.Stdin)
				},
			}, bytes.NewReader(data[half:]))
		}
		id, _, err := s.Add(context.Background(), r, nil)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println("ack", id)
	}
}

// TestCrash kills a child process (this test binary, see TestMain) with
// SIGKILL while it adds blobs: in the middle of an add at a chosen point in
// even rounds, at a random moment in odd ones. Then it opens the store and
// checks that the temporary files are gone, that every acknowledged blob is
// there and every stored file holds the bytes of its id: no partial or torn
// blob is ever visible.
func TestCrash(t *testing.T) {
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	acked := map[refs.Blob]bool{}
	// Where adds write unnamed files, a crash leaves no temporary file at
	// all; elsewhere one killed mid-add leaves its file, removed by Open.
	unnamed := canLinkUnnamed(t.TempDir())
	for round := range 8 {
		block := -1
		delay := time.Duration(5+seed%97*uint64(round+1)%150) * time.Millisecond
		if round%2 == 0 {
			block = round / 2
		}
		lines, mid := runCrashChild(t, dir, round, block, delay)
		for _, id := range lines {
			acked[id] = true
		}
		left := tmpFiles(t, dir)
		if block >= 0 && (len(left) == 0) != unnamed {
			t.Fatalf("round %d: killed mid-add, %d temporary files on disk (unnamed files: %v)", round, len(left), unnamed)
		}
		s, err := Open(dir, WithLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		if left := tmpFiles(t, dir); len(left) != 0 {
			t.Fatalf("round %d: temporary files after Open: %v", round, left)
		}
		stored := listAll(t, s)
		for id := range acked {
			if _, ok := stored[id]; !ok {
				t.Fatalf("round %d: acknowledged blob %s missing", round, id)
			}
		}
		if _, ok := stored[mid]; ok && block >= 0 {
			t.Fatalf("round %d: the blob killed halfway is visible", round)
		}
		for id := range stored {
			rc, _, err := s.Get(id)
			if h := sha256.Sum256(readAll(t, rc, err)); refs.NewBlob(h) != id {
				t.Fatalf("round %d: torn blob %s", round, id)
			}
		}
		s.Close()
		t.Logf("round %d: %d acknowledged, %d temporary files before Open, %d stored", round, len(lines), len(left), len(stored))
	}
}

// runCrashChild runs a child on dir and kills it: when it says "mid" if
// block >= 0, else after delay. It returns the ids the child acknowledged
// and the one it blocked in.
func runCrashChild(t *testing.T, dir string, round, block int, delay time.Duration) (acked []refs.Blob, mid refs.Blob) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dir,
		crashRoundEnv+"="+strconv.Itoa(round), crashBlockEnv+"="+strconv.Itoa(block))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	kill := make(chan struct{})
	var readErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			verb, arg, _ := strings.Cut(sc.Text(), " ")
			switch verb {
			case "ready":
				if block < 0 {
					time.AfterFunc(delay, func() { close(kill) })
				}
			case "ack", "mid":
				id, err := ParseID(arg)
				if err != nil {
					readErr = err
					return
				}
				if verb == "mid" {
					mid = id
					close(kill)
				} else {
					acked = append(acked, id)
				}
			default:
				readErr = fmt.Errorf("child says %q", sc.Text())
			}
		}
	}()
	select {
	case <-kill:
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("child did not reach the point to be killed in 30 s")
	}
	cmd.Process.Kill()
	<-done
	cmd.Wait()
	if readErr != nil {
		t.Fatalf("round %d: %v\nstderr: %s", round, readErr, stderr.String())
	}
	return acked, mid
}
