package shs_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// server accepts one connection: handshake, then muxrpc with manifest and
// whoami. It reports the handshake's outcome and the client's key.
type server struct {
	ln     net.Listener
	key    ed25519.PrivateKey
	caps   [32]byte
	result chan error
	client chan ed25519.PublicKey
}

func startServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	s := &server{ln: ln, key: key, result: make(chan error, 1), client: make(chan ed25519.PublicKey, 1)}
	rand.Read(s.caps[:])
	id, _ := refs.NewFeed(key.Public().(ed25519.PublicKey))
	var mux muxrpc.Mux
	mux.Register("manifest", muxrpc.Sync, func(ctx context.Context, req *muxrpc.Request) { req.Return(mux.Manifest()) })
	mux.Register("whoami", muxrpc.Async, func(ctx context.Context, req *muxrpc.Request) {
		req.Return(map[string]string{"id": id.String()})
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); ln.Close(); <-done })
	go func() {
		defer close(done)
		raw, err := ln.Accept()
		if err != nil {
			s.result <- err
			return
		}
		conn, remote, err := shs.ServerConn(ctx, raw, s.caps, s.key, nil)
		s.result <- err
		if err != nil {
			return
		}
		s.client <- remote
		err = muxrpc.NewEndpoint(conn, mux.Handler(nil)).Serve(ctx)
		t.Logf("server endpoint ended: %v", err)
	}()
	return s
}

func (s *server) callJS(t *testing.T, caps [32]byte, serverKey ed25519.PublicKey, calls []map[string]any) *oracle.Peer {
	t.Helper()
	id, _ := refs.NewFeed(serverKey)
	cfg, _ := json.Marshal(map[string]any{
		"host": "127.0.0.1", "port": s.ln.Addr().(*net.TCPAddr).Port,
		"key": id.String(), "caps": base64.StdEncoding.EncodeToString(caps[:]),
		"calls": calls,
	})
	return oracle.Start(t, "ssb-call.js", string(cfg))
}

// The real ssb-client (secret-handshake, pull-box-stream, muxrpc) connects
// to the Go stack and calls it.
func TestInteropSSBClient(t *testing.T) {
	oracle.Require(t)
	s := startServer(t)
	js := s.callJS(t, s.caps, s.key.Public().(ed25519.PublicKey), []map[string]any{{"method": "whoami", "type": "async"}})
	ready := js.WaitFor(func(m oracle.Msg) bool { return len(m.Fields["ready"]) > 0 || m.Str("connectError") != "" })
	if e := ready.Str("connectError"); e != "" {
		t.Fatalf("ssb-client could not connect: %s (server: %v)", e, <-s.result)
	}
	if err := <-s.result; err != nil {
		t.Fatalf("server handshake: %v", err)
	}
	clientKey := <-s.client
	clientID, _ := refs.NewFeed(clientKey)
	if ready.Str("id") != clientID.String() {
		t.Errorf("server saw client %s, the client is %s", clientID, ready.Str("id"))
	}
	m := js.WaitFor(func(m oracle.Msg) bool { return m.Str("method") == "whoami" })
	var who struct{ ID string }
	if err := m.Decode("result", &who); err != nil || who.ID == "" {
		t.Fatalf("whoami: %s", m.Line)
	}
	serverID, _ := refs.NewFeed(s.key.Public().(ed25519.PublicKey))
	if who.ID != serverID.String() {
		t.Errorf("whoami = %s, want %s", who.ID, serverID)
	}
	js.WaitFor(func(m oracle.Msg) bool { return len(m.Fields["done"]) > 0 })
}

func TestInteropSSBClientWrongCaps(t *testing.T) {
	oracle.Require(t)
	s := startServer(t)
	var other [32]byte
	rand.Read(other[:])
	js := s.callJS(t, other, s.key.Public().(ed25519.PublicKey), nil)
	m := js.WaitFor(func(m oracle.Msg) bool { return m.Str("connectError") != "" })
	t.Logf("ssb-client says: %s", m.Str("connectError"))
	select {
	case err := <-s.result:
		if !errors.Is(err, shs.ErrWrongNetwork) {
			t.Errorf("server: %v, want ErrWrongNetwork", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("server handshake did not end")
	}
}

func TestInteropSSBClientWrongServerKey(t *testing.T) {
	oracle.Require(t)
	s := startServer(t)
	otherPub, _, _ := ed25519.GenerateKey(nil)
	js := s.callJS(t, s.caps, otherPub, nil)
	m := js.WaitFor(func(m oracle.Msg) bool { return m.Str("connectError") != "" })
	t.Logf("ssb-client says: %s", m.Str("connectError"))
	if err := <-s.result; !errors.Is(err, shs.ErrClientAuth) {
		t.Errorf("server: %v, want ErrClientAuth", err)
	}
}
