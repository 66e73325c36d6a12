//go:build unix

package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/server"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The local socket gives the owner's rights: no other user may ever reach
// it. With a umask of 0 the socket is bound with mode 0777, so it must be
// bound where only this user can reach it (a 0700 directory) and appear
// under its name only with mode 0600; the data directory is private too.
func TestSocketNeverWider(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	var caps [32]byte
	rand.Read(caps[:])
	cfg := server.Config{Path: dir, Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:])}
	sock := server.SocketPath(dir)
	for range 3 {
		srv, err := server.Open(cfg, nil, all.Default()...)
		if err != nil {
			t.Fatal(err)
		}
		var stages []string
		server.SetSocketHook(srv, func(stage, name string) {
			stages = append(stages, stage)
			switch stage {
			case "bound": // the socket exists, with the umask's mode: only its directory protects it
				parent, err := os.Stat(filepath.Dir(name))
				if err != nil || parent.Mode().Perm() != 0o700 || filepath.Dir(filepath.Dir(name)) != dir {
					t.Errorf("socket bound in %s (%v, %v); want a 0700 directory inside the data directory", filepath.Dir(name), parent.Mode(), err)
				}
				if fi, err := os.Lstat(sock); err == nil && fi.Mode().Perm()&0o077 != 0 {
					t.Errorf("socket at %s with mode %v", sock, fi.Mode())
				}
			case "renamed":
				fi, err := os.Lstat(name)
				if name != sock || err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
					t.Errorf("socket at %s: %v, %v; want a socket with mode 0600 at %s", name, fi.Mode(), err, sock)
				}
			}
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() { done <- srv.Serve(ctx, func(net.Addr) { close(ready) }) }()
		<-ready
		if got := strings.Join(stages, ","); got != "bound,renamed" {
			t.Errorf("socket steps %q, want bound,renamed", got)
		}
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), ".socket-") {
				t.Errorf("temporary socket directory %s left behind", e.Name())
			}
		}
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("data directory: %v, %v; want 0700", fi.Mode(), err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		srv.Close()
	}
}

// The server refuses local connections from another user, whatever the
// socket's permissions (SO_PEERCRED). Connecting as another user needs
// root, which CI has.
func TestLocalSocketRefusesOtherUsers(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peer credentials are checked on Linux only")
	}
	if os.Getuid() != 0 {
		t.Skip("connecting as another user needs root")
	}
	// A directory every user can enter, holding the socket and a copy of
	// this test binary (the child that connects as nobody).
	open, err := os.MkdirTemp("", "sbot-peercred-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(open)
	if err := os.Chmod(open, 0o755); err != nil {
		t.Fatal(err)
	}
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(open, "child")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(open, "socket")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ln.(*net.UnixListener).SetDeadline(time.Now().Add(time.Minute)) // a child that failed to dial
	if err := os.Chmod(sock, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		uid     uint32
		refused bool
	}{{"nobody", 65534, true}, {"this user", uint32(os.Getuid()), false}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), "SBOT_TEST_DIAL_UNIX="+sock)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.uid}}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer cmd.Wait()
			c, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			err = server.SameUser(c)
			switch {
			case tc.refused && (err == nil || !strings.Contains(err.Error(), "from user 65534")):
				t.Errorf("connection from uid %d: %v; want refused, naming the user", tc.uid, err)
			case !tc.refused && err != nil:
				t.Errorf("connection from this user refused: %v", err)
			}
		})
	}
}

// dialUnixChild connects to the socket and waits for the other side to
// close (TestLocalSocketRefusesOtherUsers runs it as another user).
func dialUnixChild(path string) {
	c, err := net.Dial("unix", path)
	if err != nil {
		os.Exit(2)
	}
	io.Copy(io.Discard, c)
	c.Close()
}

func TestDataDirectoryMadePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _ := server.LoadConfig(dir)
	srv, err := server.Open(cfg, nil, all.Default()...)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory after Open: %v, %v; want 0700", fi.Mode(), err)
	}
}
