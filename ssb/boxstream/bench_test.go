package boxstream

import (
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkConn sends 64 KiB writes over a box-stream connection on
// loopback TCP to a reader that reads them as muxrpc does (a 9-byte
// header, then the body), and reports the CPU time and the read system
// calls per 64 KiB.
func BenchmarkConn(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	var k Keys
	k.EncryptKey[0], k.DecryptKey[0] = 1, 2
	peer := Keys{EncryptKey: k.DecryptKey, EncryptNonce: k.DecryptNonce, DecryptKey: k.EncryptKey, DecryptNonce: k.EncryptNonce}
	const size = 64 << 10
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		sc := NewConn(c, peer)
		defer sc.Close()
		header, body := make([]byte, 9), make([]byte, size-9)
		for {
			if _, err := io.ReadFull(sc, header); err != nil {
				if err == io.EOF {
					err = nil
				}
				done <- err
				return
			}
			if _, err := io.ReadFull(sc, body); err != nil {
				done <- err
				return
			}
		}
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	c := NewConn(raw, k)
	defer c.Close()
	buf := make([]byte, size)
	b.SetBytes(size)
	cpu0, r0 := cpuTime(), readCalls()
	for b.Loop() {
		if _, err := c.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	if err := c.CloseWrite(); err != nil {
		b.Fatal(err)
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(readCalls()-r0)/float64(b.N), "reads/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// readCalls returns the read system calls of the process so far
// (/proc/self/io), or 0 without it.
func readCalls() int64 {
	b, _ := os.ReadFile("/proc/self/io")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "syscr:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
