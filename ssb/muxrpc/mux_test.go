package muxrpc

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"testing"
)

func TestMux(t *testing.T) {
	var m Mux
	m.Register("whoami", Async, func(ctx context.Context, req *Request) { req.Return(map[string]string{"id": "@me"}) })
	m.Register("version", Sync, func(ctx context.Context, req *Request) { req.Return("1.0.0") })
	m.Register("gossip.ping", Duplex, func(ctx context.Context, req *Request) { req.Stream().Send(1) })
	m.Register("createHistoryStream", Source, func(ctx context.Context, req *Request) { req.Stream().Send("msg") })

	manifest, _ := json.Marshal(m.Manifest())
	if want := `{"createHistoryStream":"source","gossip":{"ping":"duplex"},"version":"sync","whoami":"async"}`; string(manifest) != want {
		t.Errorf("manifest %s, want %s", manifest, want)
	}

	ca, cb := net.Pipe()
	a := NewEndpoint(ca, nil)
	b := NewEndpoint(cb, m.Handler(AllowList("createHistoryStream", "gossip.ping", "version")))
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Serve(ctx) })
	wg.Go(func() { b.Serve(ctx) })
	defer func() { cancel(); wg.Wait() }()

	var remote *Error
	if _, err := a.Async(ctx, Method{"whoami"}); !errors.As(err, &remote) || remote.Message != "method:whoami is not in list of allowed methods" {
		t.Errorf("whoami as a stranger: %v", err)
	}
	if _, err := a.Async(ctx, Method{"no", "such"}); !errors.As(err, &remote) || remote.Message != "method:no,such is not in list of allowed methods" {
		t.Errorf("unknown method as a stranger: %v", err)
	}
	var v string
	if err := a.AsyncJSON(ctx, &v, Method{"version"}); err != nil || v != "1.0.0" {
		t.Errorf("sync method called as async: %q, %v", v, err)
	}
	s, err := a.Open(Method{"version"}, Source)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(ctx); !errors.As(err, &remote) || remote.Message != "no source:version" {
		t.Errorf("wrong call type: %v", err)
	}
	s, _ = a.Open(Method{"createHistoryStream"}, Source, map[string]string{"id": "@x"})
	if err := s.RecvJSON(ctx, &v); err != nil || v != "msg" {
		t.Errorf("allowed source: %q, %v", v, err)
	}
}

// ssb-client names a method with a string ("manifest"), not an array.
func TestMethodNameAsString(t *testing.T) {
	var req struct{ Name Method }
	for in, want := range map[string]string{
		`{"name":"manifest"}`:        "manifest",
		`{"name":["gossip","ping"]}`: "gossip.ping",
		`{"name":"blobs.has"}`:       "blobs.has",
	} {
		if err := json.Unmarshal([]byte(in), &req); err != nil || req.Name.String() != want {
			t.Errorf("%s: %v, %v; want %s", in, req.Name, err, want)
		}
	}
	if err := json.Unmarshal([]byte(`{"name":5}`), &req); err == nil {
		t.Error("a number as a method name was accepted")
	}
}
