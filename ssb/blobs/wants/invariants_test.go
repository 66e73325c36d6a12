package wants

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/scuttlego/scuttle/ssb/refs"
)

type sizes map[refs.Blob]int64

func (s sizes) Size(id refs.Blob) (int64, bool) { n, ok := s[id]; return n, ok }

// TestInvariants runs random sequences of inputs and checks, after each,
// the bookkeeping behind the bounds: counts match the maps, limits hold,
// at most one fetch per blob and only for wanted blobs from connected peers.
func TestInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{MaxWantsPerPeer: 3, MaxWants: 5, MaxHavesPerPeer: 2, Max: 100, FetchTimeout: 10 * time.Second}
		st := sizes{}
		c := New(cfg, st)
		var feeds []refs.Feed
		var blobs []refs.Blob
		for i := range 4 {
			k := sha256.Sum256(fmt.Append(nil, "peer", i))
			f, _ := refs.NewFeed(k[:])
			feeds = append(feeds, f)
		}
		for i := range 8 {
			blobs = append(blobs, refs.NewBlob(sha256.Sum256(fmt.Append(nil, "blob", i))))
		}
		now := time.Unix(1e9, 0)
		var open []FetchID
		peerGen := rapid.SampledFrom(feeds)
		blobGen := rapid.SampledFrom(blobs)
		t.Repeat(map[string]func(*rapid.T){
			"connect":    func(t *rapid.T) { c.Connect(peerGen.Draw(t, "peer")) },
			"disconnect": func(t *rapid.T) { c.Disconnect(peerGen.Draw(t, "peer")) },
			"step": func(t *rapid.T) {
				m := Message{}
				for range rapid.IntRange(0, 6).Draw(t, "entries") {
					m[blobGen.Draw(t, "blob")] = rapid.Int64Range(-4, 150).Draw(t, "n")
				}
				c.Step(peerGen.Draw(t, "peer"), m)
			},
			"has":  func(t *rapid.T) { c.RemoteHas(peerGen.Draw(t, "peer"), []refs.Blob{blobGen.Draw(t, "blob")}) },
			"want": func(t *rapid.T) { c.Want(blobGen.Draw(t, "blob")) },
			"push": func(t *rapid.T) { c.Push(blobGen.Draw(t, "blob")) },
			"added": func(t *rapid.T) {
				id := blobGen.Draw(t, "blob")
				if _, ok := st[id]; !ok {
					st[id] = 50
					c.Added(id, 50)
				}
			},
			"done": func(t *rapid.T) {
				if len(open) == 0 {
					return
				}
				i := rapid.IntRange(0, len(open)-1).Draw(t, "fetch")
				var err error
				if rapid.Bool().Draw(t, "fails") {
					err = errors.New("bad hash")
				}
				c.FetchDone(open[i], err)
				open = append(open[:i], open[i+1:]...)
			},
			"tick": func(t *rapid.T) {
				now = now.Add(time.Duration(rapid.IntRange(0, 15).Draw(t, "seconds")) * time.Second)
				c.Tick(now)
			},
			"": func(t *rapid.T) {
				r := c.Ready()
				for _, f := range r.Fetches {
					open = append(open, f.ID)
				}
				check(t, c)
			},
		})
	})
}

func check(t *rapid.T, c *Core) {
	taken := 0
	perPeer := map[refs.Feed]int{}
	for id, w := range c.wants {
		if !w.local && len(w.from) == 0 {
			t.Fatalf("want of %v with no reason", id)
		}
		if len(w.from) > 0 {
			taken++
		}
		for f, h := range w.from {
			perPeer[f]++
			if h >= -1 || h < -int64(c.cfg.Sympathy) {
				t.Fatalf("want at %d taken up from a peer", h)
			}
		}
	}
	if taken != c.taken || taken > c.cfg.MaxWants {
		t.Fatalf("taken %d, counted %d, limit %d", taken, c.taken, c.cfg.MaxWants)
	}
	for f, p := range c.peers {
		if p.wants != perPeer[f] || p.wants > c.cfg.MaxWantsPerPeer {
			t.Fatalf("peer wants %d, counted %d", perPeer[f], p.wants)
		}
		counted := 0
		for id, h := range p.haves {
			if h.counted {
				counted++
			} else if c.wants[id] == nil && c.pushes[id] == nil {
				t.Fatalf("uncounted have of %v, neither wanted nor pushed", id)
			}
			if h.size >= c.cfg.Max || h.size <= 0 {
				t.Fatalf("have of %d bytes kept", h.size)
			}
		}
		if counted != p.unwanted || counted > c.cfg.MaxHavesPerPeer {
			t.Fatalf("counted haves %d, unwanted %d", counted, p.unwanted)
		}
		for id := range p.failed {
			if c.wants[id] == nil {
				t.Fatalf("failure kept for unwanted %v", id)
			}
		}
	}
	if len(c.byID) != len(c.fetches) {
		t.Fatalf("%d fetches by id, %d by blob", len(c.byID), len(c.fetches))
	}
	for id, f := range c.fetches {
		if c.byID[f.ID] != f || f.Blob != id {
			t.Fatal("fetch maps disagree")
		}
		if p := c.peers[f.Peer]; p == nil || !p.connected {
			t.Fatalf("fetch from a peer that is not connected")
		}
	}
}
