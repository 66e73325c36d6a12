package ooo

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

func testCore() *core {
	return newCore(func(refs.Message) (json.RawMessage, bool) { return nil, false }, nil)
}

func msgID(i int) refs.Message { return refs.NewMessage([32]byte{byte(i), byte(i >> 8), 1}) }

// Peers' requests fill at most MaxPeerQueries entries, leaving room for
// our own gets up to MaxQueries; a query nobody waits for is dropped
// QueryTTL after its last change.
func TestQueryLimits(t *testing.T) {
	c := testCore()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	s := &session{wake: make(chan struct{}, 1)}
	c.add(s)
	data := map[string]json.RawMessage{}
	for i := range MaxQueries {
		data[msgID(i).String()] = json.RawMessage(`-1`)
	}
	c.incoming(s, data)
	if len(c.queries) != MaxPeerQueries {
		t.Fatalf("%d queries from one peer's requests, want %d", len(c.queries), MaxPeerQueries)
	}
	for i := range MaxQueries - MaxPeerQueries {
		if _, _, err := c.want(msgID(10000 + i)); err != nil {
			t.Fatalf("own get %d: %v", i, err)
		}
	}
	if _, _, err := c.want(msgID(20000)); err != ErrBusy {
		t.Fatalf("own get beyond MaxQueries: %v, want ErrBusy", err)
	}
	now = now.Add(QueryTTL + time.Second)
	c.incoming(s, nil)
	if len(c.queries) != MaxQueries-MaxPeerQueries {
		t.Errorf("after QueryTTL %d queries, want the %d with waiters", len(c.queries), MaxQueries-MaxPeerQueries)
	}
}

// At most MaxStored fetched messages are kept, the oldest dropped first.
func TestStoredBound(t *testing.T) {
	c := testCore()
	for i := range MaxStored + 10 {
		c.keep(msgID(i), json.RawMessage(fmt.Sprint(i)))
	}
	if len(c.stored) != MaxStored || len(c.order) != MaxStored {
		t.Fatalf("%d stored, want %d", len(c.stored), MaxStored)
	}
	if _, ok := c.stored[msgID(0)]; ok {
		t.Errorf("the oldest is kept")
	}
	if _, ok := c.stored[msgID(MaxStored+9)]; !ok {
		t.Errorf("the newest is dropped")
	}
}
