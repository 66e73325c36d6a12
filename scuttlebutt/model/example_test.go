package model_test

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log"
	"net"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

// Two Models over TCP: b dials a, both send their history and stop
// (Tail(false)), and each ends with the other's keys. With the default
// Tail(true) the connection stays open and changes flow live.
func Example_tcp() {
	a, b := model.New("a"), model.New("b")
	if err := a.Set("greeting", "hello"); err != nil {
		log.Fatal(err)
	}
	if err := b.Set("answer", 42); err != nil {
		log.Fatal(err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		served <- a.ServeConn(context.Background(), conn, scuttlebutt.Tail(false))
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	if err := b.ServeConn(context.Background(), conn, scuttlebutt.Tail(false)); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	greeting, _ := b.Get("greeting")
	answer, _ := a.Get("answer")
	fmt.Println(string(greeting), string(answer))
	// Output: "hello" 42
}

// Any io.ReadWriteCloser carries a stream, also one that cannot
// half-close, such as net.Pipe: the end of a side's output is then a
// close, once it has the peer's history.
func Example_pipe() {
	a, b := model.New("a"), model.New("b")
	if err := a.Set("color", "blue"); err != nil {
		log.Fatal(err)
	}
	ca, cb := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- a.ServeConn(context.Background(), ca, scuttlebutt.Tail(false)) }()
	if err := b.ServeConn(context.Background(), cb, scuttlebutt.Tail(false)); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	fmt.Println(b.Keys())
	// Output: [color]
}

// Changes made anywhere reach OnChange, the replica's own included; a
// deletion comes with a nil value.
func ExampleModel_OnChange() {
	m := model.New("m")
	remove := m.OnChange(func(key string, value json.RawMessage) {
		if value == nil {
			fmt.Printf("%s deleted\n", key)
			return
		}
		fmt.Printf("%s = %s\n", key, value)
	})
	defer remove()
	if err := m.Set("n", 1); err != nil {
		log.Fatal(err)
	}
	if err := m.Delete("n"); err != nil {
		log.Fatal(err)
	}
	// Output:
	// n = 1
	// n deleted
}

// Signed updates: each replica's id is its Ed25519 key, every update it
// makes is signed, and a replica with a trust list takes updates only from
// the sources in it, verified before its clock advances.
func Example_signed() {
	newReplica := func(trusted scuttlebutt.KeyStore) *model.Model {
		pub, priv, err := ed25519.GenerateKey(nil)
		if err != nil {
			log.Fatal(err)
		}
		sec := scuttlebutt.NewEd25519(priv, trusted)
		return model.New(scuttlebutt.Ed25519ID(pub), scuttlebutt.WithSecurity(sec))
	}
	var trusted scuttlebutt.Keys
	a, b := newReplica(nil), newReplica(&trusted)
	pub, err := scuttlebutt.Ed25519PublicKey(a.ID())
	if err != nil {
		log.Fatal(err)
	}
	trusted.Add(a.ID(), pub) // b takes a's updates, and only those

	if err := a.Set("signed", true); err != nil {
		log.Fatal(err)
	}
	ca, cb := net.Pipe()
	served := make(chan error, 1)
	go func() { served <- a.ServeConn(context.Background(), ca, scuttlebutt.Tail(false)) }()
	if err := b.ServeConn(context.Background(), cb, scuttlebutt.Tail(false)); err != nil {
		log.Fatal(err)
	}
	if err := <-served; err != nil {
		log.Fatal(err)
	}
	v, _ := b.Get("signed")
	fmt.Println(string(v))
	// Output: true
}
