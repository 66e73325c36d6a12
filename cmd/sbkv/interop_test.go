package main

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/internal/oracle"
)

// sbkv -insecure with npm scuttlebutt@5 (model): the JavaScript peer reads
// sbkv's ping lines and ignores them; it sends none itself, so sbkv closes
// it once it has been quiet for -idle, dials again at once, and the two go
// on replicating both ways.
func TestInsecureWithJavaScript(t *testing.T) {
	js := oracle.Start(t, "sb-peer.js", "--type", "model", "--id", "js")
	port := js.Do(oracle.Cmd{"op": "listen"}).Int("port")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const idle = 1500 * time.Millisecond // pings every 500 ms
	g := startPeer(t, ctx, options{connect: []string{fmt.Sprint("127.0.0.1:", port)}, insecure: true, id: "go", idle: idle})
	js.WaitFor(oracle.Ev("sync", "conn", 1))
	js.Do(oracle.Cmd{"op": "set", "key": "from-js", "value": 1})
	g.expect(t, `change "from-js" = 1 (from js)`)

	js.WaitFor(oracle.Ev("close", "conn", 1)) // sbkv gave up on the quiet peer
	js.WaitFor(oracle.Ev("sync", "conn", 2))  // and dialed again
	g.send(t, "set from-go 2")
	js.WaitFor(oracle.Ev("change", "key", "from-go", "value", 2))
	js.Do(oracle.Cmd{"op": "set", "key": "again", "value": 3})
	g.expect(t, `change "again" = 3 (from js)`)
	for _, ev := range js.Events() {
		if ev.Ev() == "error" {
			t.Errorf("the JavaScript peer reported %v", ev)
		}
	}
	g.stop(t)
}
