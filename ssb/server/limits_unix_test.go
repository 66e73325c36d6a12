//go:build unix

package server

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
)

func TestSocketNeverWider(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir := t.TempDir()
	var caps [32]byte
	rand.Read(caps[:])
	cfg := Config{Path: dir, Host: "127.0.0.1", Caps: base64.StdEncoding.EncodeToString(caps[:])}
	sock := SocketPath(dir)

	stop := make(chan struct{})
	var wider atomic.Value
	var seen atomic.Int64
	var watcher sync.WaitGroup
	watcher.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			fi, err := os.Lstat(sock)
			if err != nil {
				continue
			}
			seen.Add(1)
			if fi.Mode().Perm()&0o077 != 0 {
				wider.Store(fi.Mode().String())
			}
		}
	})
	for range 5 {
		srv, err := Open(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		ready := make(chan struct{})
		go func() { done <- srv.Serve(ctx, func(net.Addr) { close(ready) }) }()
		<-ready
		fi, err := os.Lstat(sock)
		if err != nil || fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
			t.Errorf("socket: %v, %v; want a socket with mode 0600", fi.Mode(), err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		srv.Close()
	}
	close(stop)
	watcher.Wait()
	if m := wider.Load(); m != nil {
		t.Fatalf("socket seen with mode %v", m)
	}
	if seen.Load() == 0 {
		t.Fatal("the watcher never saw the socket")
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("data directory: %v, %v; want 0700", fi.Mode(), err)
	}
}

func TestDataDirectoryMadePrivate(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg, _ := LoadConfig(dir)
	srv, err := Open(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data directory after Open: %v, %v; want 0700", fi.Mode(), err)
	}
}
