package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// Two sbkv peers that have nothing to say stay connected, kept alive by
// their pings, and still replicate after an hour of silence.
func TestIdlePeersStayConnected(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		// Local timestamps never go below one handed out earlier in the
		// process, at real time if other tests ran first: far ahead of the
		// bubble's clock, so B must not bound the skew.
		a, b := model.New("a"), model.New("b", scuttlebutt.WithMaxClockSkew(-1))
		ca, cb := net.Pipe()
		doneA, doneB := make(chan error, 1), make(chan error, 1)
		go func() { doneA <- serve(ctx, a, ca, DefaultIdle) }()
		go func() { doneB <- serve(ctx, b, cb, DefaultIdle) }()

		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case err := <-doneA:
			t.Fatalf("A's connection ended: %v", err)
		case err := <-doneB:
			t.Fatalf("B's connection ended: %v", err)
		default:
		}
		a.Set("k", "after an hour")
		synctest.Wait()
		if v, _ := b.Get("k"); string(v) != `"after an hour"` {
			t.Errorf("B holds %s", v)
		}
		cancel()
		<-doneA
		<-doneB
	})
}

// A peer that sends nothing at all (not even a header) is closed after
// idle, and not before.
func TestSilentPeerClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Minute
		m := model.New("a")
		ours, theirs := net.Pipe()
		drained := make(chan struct{})
		go func() { io.Copy(io.Discard, theirs); close(drained) }() // reads, never writes
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- serve(t.Context(), m, ours, idle) }()
		err := <-done
		if took := time.Since(start); took != idle {
			t.Errorf("closed after %v, want %v", took, idle)
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "nothing received from the peer for 1m0s") {
			t.Errorf("serve: %v, want the idle timeout", err)
		}
		<-drained
		theirs.Close()
	})
}

// A peer that never reads is closed once a write has waited for idle.
func TestPeerNotReadingClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const idle = time.Minute
		m := model.New("a")
		ours, theirs := net.Pipe()
		wrote := make(chan struct{})
		go func() { // writes a header, then pings, never reads
			defer close(wrote)
			io.WriteString(theirs, `{"id":"b","clock":{}}`+"\n")
			for {
				time.Sleep(idle / 2)
				if _, err := io.WriteString(theirs, pingLine); err != nil {
					return
				}
			}
		}()
		done := make(chan error, 1)
		go func() { done <- serve(t.Context(), m, ours, idle) }()
		err := <-done
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "the peer read nothing for 1m0s") {
			t.Errorf("serve: %v, want the write timeout", err)
		}
		theirs.Close()
		<-wrote
	})
}

// Over TCP with a short -idle: a client that says nothing gets pings, then
// is closed.
func TestIdleTCPConnectionClosed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := startPeer(t, ctx, options{listen: "127.0.0.1:0", idle: 300 * time.Millisecond})
	c, err := net.DialTimeout("tcp", a.listenAddr(t), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(10 * time.Second)) // bound the test
	var pings int
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		if sc.Text()+"\n" == pingLine {
			pings++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("connection not closed by sbkv: %v", err)
	}
	if pings == 0 {
		t.Error("no ping before the idle timeout")
	}
	a.stop(t)
}
