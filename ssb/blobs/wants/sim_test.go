package wants_test

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/blobs/wants"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// This file is a test driver: a network of Cores with in-memory stores,
// where messages go through the JSON encoding and fetches are served from
// the other node's store, synchronously and in a fixed order, so that every
// scenario is deterministic. Time moves only by tick.

type memStore map[refs.Blob][]byte

func (s memStore) Size(id refs.Blob) (int64, bool) {
	b, ok := s[id]
	return int64(len(b)), ok
}

// serving says how a node answers blobs.get.
type serving int

const (
	serveOK      serving = iota
	serveCorrupt         // flips a bit (JS test: pull-bitflipper)
	serveStall           // never sends a byte
	serveLong            // sends one byte more than it has
)

type node struct {
	name     string
	id       refs.Feed
	core     *wants.Core
	store    memStore
	serve    serving
	resolved []refs.Blob
	pushed   []wants.Pushed
	fetches  []wants.Fetch // every fetch this node started, in order
	cancels  []wants.Fetch
}

type link struct{ from, to refs.Feed }

type network struct {
	t       *testing.T
	nodes   []*node
	byID    map[refs.Feed]*node
	links   map[link]bool
	wire    map[link][]string // messages sent, JSON, by (from, to)
	stalled map[wants.FetchID]*node
	now     time.Time
}

func newNetwork(t *testing.T) *network {
	return &network{
		t:       t,
		byID:    map[refs.Feed]*node{},
		links:   map[link]bool{},
		wire:    map[link][]string{},
		stalled: map[wants.FetchID]*node{},
		now:     time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC),
	}
}

func feedOf(name string) refs.Feed {
	k := sha256.Sum256([]byte(name))
	f, err := refs.NewFeed(k[:])
	if err != nil {
		panic(err)
	}
	return f
}

func (n *network) add(name string, cfg wants.Config) *node {
	st := memStore{}
	nd := &node{name: name, id: feedOf(name), core: wants.New(cfg, st), store: st}
	nd.core.Tick(n.now)
	n.nodes = append(n.nodes, nd)
	n.byID[nd.id] = nd
	return nd
}

// connect links two nodes both ways, as util.peers does.
func (n *network) connect(a, b *node) {
	n.links[link{a.id, b.id}] = true
	n.links[link{b.id, a.id}] = true
	a.core.Connect(b.id)
	b.core.Connect(a.id)
}

func (n *network) disconnect(a, b *node) {
	delete(n.links, link{a.id, b.id})
	delete(n.links, link{b.id, a.id})
	a.core.Disconnect(b.id)
	b.core.Disconnect(a.id)
}

// addBlob adds bytes to a node's store, as blobs.add would, and reports it.
func (nd *node) addBlob(data []byte) refs.Blob {
	id := refs.NewBlob(sha256.Sum256(data))
	if _, ok := nd.store[id]; !ok {
		nd.store[id] = data
		nd.core.Added(id, int64(len(data)))
	}
	return id
}

func (nd *node) has(id refs.Blob) bool { _, ok := nd.store[id]; return ok }

// run delivers outputs until every node is quiet.
func (n *network) run() {
	for round := 0; ; round++ {
		if round > 1000 {
			n.t.Fatal("network does not settle")
		}
		busy := false
		for _, nd := range n.nodes {
			r := nd.core.Ready()
			if r.Empty() {
				continue
			}
			busy = true
			n.deliver(nd, r)
		}
		if !busy {
			return
		}
	}
}

func (n *network) deliver(nd *node, r wants.Ready) {
	for _, o := range r.Messages {
		data, err := o.Msg.MarshalJSON()
		if err != nil {
			n.t.Fatal(err)
		}
		l := link{nd.id, o.Peer}
		n.wire[l] = append(n.wire[l], string(data))
		if n.links[l] {
			if err := n.byID[o.Peer].core.Receive(nd.id, data); err != nil {
				n.t.Fatal(err)
			}
		}
	}
	nd.resolved = append(nd.resolved, r.Resolved...)
	nd.pushed = append(nd.pushed, r.Pushed...)
	for _, f := range r.Cancels {
		nd.cancels = append(nd.cancels, f)
		delete(n.stalled, f.ID)
		nd.core.FetchDone(f.ID, errors.New("cancelled")) // the aborted stream ends
	}
	for _, f := range r.Fetches {
		nd.fetches = append(nd.fetches, f)
		n.get(nd, f)
	}
}

// get serves a fetch from the peer's store and checks it as the blob store
// would (hash, size, max).
func (n *network) get(nd *node, f wants.Fetch) {
	src := n.byID[f.Peer]
	if src == nil || !n.links[link{nd.id, f.Peer}] {
		nd.core.FetchDone(f.ID, errors.New("no such peer"))
		return
	}
	data, ok := src.store[f.Blob]
	if !ok {
		nd.core.FetchDone(f.ID, errors.New("no blob"))
		return
	}
	switch src.serve {
	case serveStall:
		n.stalled[f.ID] = nd
		return
	case serveCorrupt:
		data = slices.Clone(data)
		data[0] ^= 1
	case serveLong:
		data = append(slices.Clone(data), 0)
	}
	if err := verify(f, data); err != nil {
		nd.core.FetchDone(f.ID, err)
		return
	}
	nd.core.FetchProgress(f.ID)
	nd.addBlob(data)
	nd.core.FetchDone(f.ID, nil)
}

func verify(f wants.Fetch, data []byte) error {
	if int64(len(data)) > f.Max {
		return fmt.Errorf("blob over max: %d bytes", len(data))
	}
	if int64(len(data)) != f.Size {
		return fmt.Errorf("peer announced %d bytes, sent %d", f.Size, len(data))
	}
	if refs.NewBlob(sha256.Sum256(data)) != f.Blob {
		return errors.New("bytes do not hash to the id")
	}
	return nil
}

// tick moves time and ticks every node.
func (n *network) tick(d time.Duration) {
	n.now = n.now.Add(d)
	for _, nd := range n.nodes {
		nd.core.Tick(n.now)
	}
}

// fake is test/util.js fake(): string repeated to length bytes.
func fake(s string, length int) []byte {
	b := make([]byte, length)
	for i := 0; i < length; i += len(s) {
		copy(b[i:], s)
	}
	return b
}

func blobOf(data []byte) refs.Blob { return refs.NewBlob(sha256.Sum256(data)) }

// sent returns the messages a node sent to another, JSON.
func (n *network) sent(from, to *node) []string { return n.wire[link{from.id, to.id}] }
