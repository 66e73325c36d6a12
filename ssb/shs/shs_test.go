package shs

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newKey(t testing.TB) ed25519.PrivateKey {
	_, sk, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

func pub(sk ed25519.PrivateKey) ed25519.PublicKey { return sk.Public().(ed25519.PublicKey) }

type outcome struct {
	res Result
	err error
}

// handshake runs a client and a server over an in-memory pipe.
func handshake(t *testing.T, clientNet, serverNet [32]byte, client, server ed25519.PrivateKey, dialed ed25519.PublicKey, authorize func(ed25519.PublicKey) error) (c, s outcome) {
	t.Helper()
	cc, sc := net.Pipe()
	done := make(chan outcome, 1)
	go func() {
		res, err := Server(sc, serverNet, server, authorize)
		sc.Close() // a failing server hangs up
		done <- outcome{res, err}
	}()
	res, err := Client(cc, clientNet, client, dialed)
	cc.Close()
	return outcome{res, err}, <-done
}

func TestHandshake(t *testing.T) {
	var network [32]byte
	network[0] = 7
	client, server := newKey(t), newKey(t)
	c, s := handshake(t, network, network, client, server, pub(server), nil)
	if c.err != nil || s.err != nil {
		t.Fatalf("client: %v, server: %v", c.err, s.err)
	}
	if !c.res.Remote.Equal(pub(server)) || !s.res.Remote.Equal(pub(client)) {
		t.Error("each side must learn the other's long-term key")
	}
	ck, sk := c.res.Keys, s.res.Keys
	if ck.EncryptKey != sk.DecryptKey || ck.EncryptNonce != sk.DecryptNonce ||
		ck.DecryptKey != sk.EncryptKey || ck.DecryptNonce != sk.EncryptNonce {
		t.Fatal("client and server keys do not pair up")
	}
	if ck.EncryptKey == ck.DecryptKey {
		t.Error("the two directions must use different keys")
	}
}

func TestWrongNetworkKey(t *testing.T) {
	var a, b [32]byte
	b[0] = 1
	client, server := newKey(t), newKey(t)
	c, s := handshake(t, a, b, client, server, pub(server), nil)
	if !errors.Is(s.err, ErrWrongNetwork) {
		t.Errorf("server: %v, want ErrWrongNetwork", s.err)
	}
	if !errors.Is(c.err, ErrWrongNetwork) {
		t.Errorf("client: %v, want ErrWrongNetwork", c.err)
	}
}

func TestWrongServerKey(t *testing.T) {
	var network [32]byte
	client, server, other := newKey(t), newKey(t), newKey(t)
	c, s := handshake(t, network, network, client, server, pub(other), nil)
	if !errors.Is(c.err, ErrServerHungUp) {
		t.Errorf("client: %v, want ErrServerHungUp", c.err)
	}
	if !errors.Is(s.err, ErrClientAuth) {
		t.Errorf("server: %v, want ErrClientAuth", s.err)
	}
}

func TestAuthorizeRefuses(t *testing.T) {
	var network [32]byte
	client, server := newKey(t), newKey(t)
	var asked ed25519.PublicKey
	c, s := handshake(t, network, network, client, server, pub(server), func(k ed25519.PublicKey) error {
		asked = k
		return errors.New("blocked")
	})
	if !errors.Is(s.err, ErrRefused) || !asked.Equal(pub(client)) {
		t.Errorf("server: %v (asked about %x), want ErrRefused for the client", s.err, asked)
	}
	if !errors.Is(c.err, ErrServerHungUp) {
		t.Errorf("client: %v, want ErrServerHungUp", c.err)
	}
}

func TestLowOrderServerKey(t *testing.T) {
	var network [32]byte
	lowOrder := make(ed25519.PublicKey, 32) // y = 0 is a point of order 4
	_, err := Client(&bytes.Buffer{}, network, newKey(t), lowOrder)
	if !errors.Is(err, ErrBadKey) {
		t.Fatalf("err = %v, want ErrBadKey", err)
	}
}

func TestStalledClientTimesOut(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stalled, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	conn, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	stalled.Write(make([]byte, 10)) // part of a hello, then nothing
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err = ServerConn(ctx, conn, [32]byte{}, newKey(t), nil)
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrWrongNetwork) {
		t.Fatalf("err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("handshake gave up after %v", d)
	}
}

func TestConnsOverTCP(t *testing.T) {
	var network [32]byte
	network[5] = 9
	client, server := newKey(t), newKey(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		conn, remote, err := ServerConn(ctx, raw, network, server, nil)
		if err != nil {
			done <- err
			return
		}
		defer conn.Close()
		if !remote.Equal(pub(client)) {
			done <- errors.New("server saw the wrong client key")
			return
		}
		msg, err := io.ReadAll(conn)
		if err == nil {
			_, err = conn.Write(append([]byte("got "), msg...))
		}
		done <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	conn, err := ClientConn(ctx, raw, network, client, pub(server))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("secret"))
	conn.CloseWrite()
	reply, err := io.ReadAll(conn)
	if err != nil || string(reply) != "got secret" {
		t.Fatalf("reply %q, %v", reply, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// The shs1-test suite (npm shs1-test@1.1.1) drives cmd/shs1test through both
// roles, with valid and misbehaving peers.
func TestSHS1TestSuite(t *testing.T) {
	oracle.Require(t)
	bin := filepath.Join(t.TempDir(), "shs1test")
	build := exec.Command("go", "build", "-o", bin, "../../cmd/shs1test")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, role := range []string{"server", "client"} {
		t.Run(role, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			script := filepath.Join(oracle.Dir(), "node_modules", "shs1-test", "test-"+role+".js")
			out, err := exec.CommandContext(ctx, "node", script, bin).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("Passed the "+role+" test suite")) {
				t.Fatalf("shs1-test %s suite: %v\n%s", role, err, out)
			}
		})
	}
}

// FuzzServer feeds arbitrary bytes to a server: it must fail cleanly.
func FuzzServer(f *testing.F) {
	f.Add(make([]byte, HelloSize+AuthSize))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	sk := ed25519.NewKeyFromSeed(make([]byte, 32))
	f.Fuzz(func(t *testing.T, data []byte) {
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(data), io.Discard}
		if _, err := Server(rw, [32]byte{}, sk, nil); err == nil {
			t.Fatal("a server accepted random bytes")
		}
	})
}
