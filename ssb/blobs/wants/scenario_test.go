package wants_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/ssb/blobs/wants"
	"github.com/scuttlego/scuttle/ssb/refs"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Scenarios ported from ssb-blobs 1.2.2 test/simple.js, integration.js,
// legacy.js, local.js and push.js (named after them), then hostile peers:
// floods of wants, junk entries, lies about sizes, peers that never answer.

func messages(t *testing.T, c *wants.Core, to refs.Feed) []string {
	t.Helper()
	var out []string
	for _, o := range c.Ready().Messages {
		if o.Peer != to {
			t.Errorf("message for %v, want only %v", o.Peer, to)
		}
		b, _ := o.Msg.MarshalJSON()
		out = append(out, string(b))
	}
	return out
}

func js(id refs.Blob, n int64) string { return fmt.Sprintf(`{"%s":%d}`, id, n) }

// simple.js 'simple': a peer that receives a WANT for a blob it has
// responds with a HAS.
func TestSimpleWantAnsweredWithHave(t *testing.T) {
	st := memStore{}
	c := wants.New(wants.Config{}, st)
	b := fake("hello", 256)
	h := blobOf(b)
	st[h] = b
	c.Added(h, 256)
	peer := feedOf("test")
	c.Connect(peer)
	if got, want := messages(t, c, peer), []string{`{}`}; !slices.Equal(got, want) {
		t.Fatalf("first message %q, want %q", got, want)
	}
	if err := c.Receive(peer, []byte(js(h, -1))); err != nil {
		t.Fatal(err)
	}
	if got, want := messages(t, c, peer), []string{js(h, 256)}; !slices.Equal(got, want) {
		t.Fatalf("answer %q, want %q", got, want)
	}
}

// simple.js 'simple wants': a want received is wanted too, sympathetically,
// one hop further, and only once ({h:-2} coming back is a cycle).
func TestSimpleWantsOnlyOnce(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	h := blobOf(fake("hello", 256))
	peer := feedOf("test")
	c.Connect(peer)
	got := messages(t, c, peer)
	for _, m := range []string{js(h, -1), js(h, -2)} {
		if err := c.Receive(peer, []byte(m)); err != nil {
			t.Fatal(err)
		}
		got = append(got, messages(t, c, peer)...)
	}
	if want := []string{`{}`, js(h, -2)}; !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// simple.js 'want': if you want something, tell your peer.
func TestWantToldToPeer(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	h := blobOf(fake("foobar", 64))
	peer := feedOf("test")
	c.Connect(peer)
	got := messages(t, c, peer)
	c.Want(h)
	got = append(got, messages(t, c, peer)...)
	if want := []string{`{}`, js(h, -1)}; !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// simple.js 'already wanted, before connection': the first message holds
// the wants.
func TestWantBeforeConnection(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	h := blobOf(fake("foobar", 64))
	c.Want(h)
	peer := feedOf("test")
	c.Connect(peer)
	if got, want := messages(t, c, peer), []string{js(h, -1)}; !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// local.js 'createWants does not error after abort': a new stream starts
// again with the want map.
func TestReconnectSendsWantMapAgain(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	peer := feedOf("test")
	c.Connect(peer)
	c.Connect(peer)
	if got, want := messages(t, c, peer), []string{`{}`}; !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
}

// integration.js 'want - has' and 'want - has 2': alice wants, bob has,
// whichever comes first.
func TestWantHas(t *testing.T) {
	for _, bobFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("bob adds first=", bobFirst), func(t *testing.T) {
			n := newNetwork(t)
			alice, bob := n.add("alice", wants.Config{}), n.add("bob", wants.Config{})
			blob := fake("foobar", 64)
			h := blobOf(blob)
			n.connect(alice, bob)
			if bobFirst {
				bob.addBlob(blob)
				n.run()
			}
			alice.core.Want(h)
			if !bobFirst {
				n.run()
				bob.addBlob(blob)
			}
			n.run()
			if !alice.has(h) || !slices.Equal(alice.resolved, []refs.Blob{h}) {
				t.Fatalf("alice has %v, resolved %v", alice.has(h), alice.resolved)
			}
			if len(alice.fetches) != 1 || alice.fetches[0].Peer != bob.id {
				t.Fatalf("alice fetched %+v, want once from bob", alice.fetches)
			}
		})
	}
}

// integration.js 'want - want -has': alice - bob - carol; alice wants,
// carol adds. Bob, in the middle, wants it at -2 for alice, tells carol,
// fetches it from carol himself when she has it, and announces it to alice,
// who fetches it from him (inject.js has(): `if(want[id] && !getting[id] &&
// size < max) get(peer_id, id)` runs for a want taken up from a peer too,
// and the blobs.ls live drain queues the have to every peer).
func TestWantThroughMiddlePeer(t *testing.T) {
	for _, carolFirst := range []bool{false, true} {
		t.Run(fmt.Sprint("carol adds first=", carolFirst), func(t *testing.T) {
			n := newNetwork(t)
			alice, bob, carol := n.add("alice", wants.Config{}), n.add("bob", wants.Config{}), n.add("carol", wants.Config{})
			blob := fake("baz", 64)
			h := blobOf(blob)
			n.connect(alice, bob)
			n.connect(bob, carol)
			if carolFirst {
				carol.addBlob(blob)
				n.run()
			}
			alice.core.Want(h)
			n.run()
			if !carolFirst {
				if got := bob.core.Wanted(h); got != -2 {
					t.Fatalf("bob wants %d, want -2", got)
				}
				if !slices.Contains(n.sent(bob, carol), js(h, -2)) {
					t.Fatalf("bob sent carol %q, want the -2", n.sent(bob, carol))
				}
				carol.addBlob(blob)
				n.run()
			}
			if !alice.has(h) || !bob.has(h) {
				t.Fatalf("alice has %v, bob has %v", alice.has(h), bob.has(h))
			}
			if len(bob.fetches) != 1 || bob.fetches[0].Peer != carol.id {
				t.Fatalf("bob fetched %+v, want once from carol", bob.fetches)
			}
			if len(alice.fetches) != 1 || alice.fetches[0].Peer != bob.id {
				t.Fatalf("alice fetched %+v, want once from bob", alice.fetches)
			}
			if !slices.Contains(n.sent(bob, alice), js(h, 64)) {
				t.Fatalf("bob sent alice %q, want the have", n.sent(bob, alice))
			}
			if bob.core.Wanted(h) != 0 || alice.core.Wanted(h) != 0 {
				t.Fatal("wants left after the blob arrived")
			}
		})
	}
}

// integration.js 'peers want what you have': alice - bob - carol, alice
// wants and adds; carol gets it only because JS's sympathy (3) takes up
// bob's -2 as -3. With our default sympathy of 2 carol does not take up a
// want bob merely forwards, and fetches nothing.
func TestPeersWantWhatYouHave(t *testing.T) {
	for _, tc := range []struct {
		sympathy  int
		carolGets bool
	}{{3, true}, {0, false}} {
		t.Run(fmt.Sprint("sympathy=", tc.sympathy), func(t *testing.T) {
			n := newNetwork(t)
			cfg := wants.Config{Sympathy: tc.sympathy}
			alice, bob, carol := n.add("alice", cfg), n.add("bob", cfg), n.add("carol", cfg)
			blob := fake("baz", 64)
			h := blobOf(blob)
			n.connect(alice, bob)
			n.connect(bob, carol)
			alice.core.Want(h)
			alice.addBlob(blob)
			n.run()
			if !bob.has(h) {
				t.Fatal("bob did not fetch a blob alice wanted through him")
			}
			if carol.has(h) != tc.carolGets {
				t.Fatalf("carol has %v, want %v", carol.has(h), tc.carolGets)
			}
			if !tc.carolGets && carol.core.Stats().WantsTooFar == 0 {
				t.Fatal("carol did not count the forwarded want she ignored")
			}
		})
	}
}

// integration.js 'triangle': bob wants, alice and carol on either side
// both have it; bob fetches it once.
func TestTriangle(t *testing.T) {
	n := newNetwork(t)
	alice, bob, carol := n.add("alice", wants.Config{}), n.add("bob", wants.Config{}), n.add("carol", wants.Config{})
	blob := fake("baz", 64)
	h := blobOf(blob)
	n.connect(alice, bob)
	n.connect(bob, carol)
	alice.addBlob(blob)
	carol.addBlob(blob)
	bob.core.Want(h)
	n.run()
	if !bob.has(h) || len(bob.fetches) != 1 {
		t.Fatalf("bob has %v after %d fetches, want it after 1", bob.has(h), len(bob.fetches))
	}
}

// integration.js 'corrupt': everything alice serves is corrupt; bob
// fetches from alice first (connected first), the hash does not match, and
// he fetches from carol. Alice's later haves of it are ignored.
func TestLyingPeerThenAnother(t *testing.T) {
	for _, lie := range []serving{serveCorrupt, serveLong} {
		t.Run(fmt.Sprint("lie=", lie), func(t *testing.T) {
			n := newNetwork(t)
			alice, bob, carol := n.add("alice", wants.Config{}), n.add("bob", wants.Config{}), n.add("carol", wants.Config{})
			alice.serve = lie
			blob := fake("baz", 64)
			h := blobOf(blob)
			n.connect(alice, bob)
			n.connect(bob, carol)
			bob.core.Want(h)
			n.run()
			alice.addBlob(blob)
			n.run()
			if bob.has(h) {
				t.Fatal("bob stored a corrupt blob")
			}
			if got := bob.core.Stats().FetchesFailed; got != 1 {
				t.Fatalf("FetchesFailed = %d, want 1", got)
			}
			// Alice announces again: ignored, no second fetch from her.
			if err := bob.core.Receive(alice.id, []byte(js(h, 64))); err != nil {
				t.Fatal(err)
			}
			n.run()
			if len(bob.fetches) != 1 || bob.core.Stats().HavesDropped != 1 {
				t.Fatalf("fetches %+v, HavesDropped %d: want alice's second have ignored", bob.fetches, bob.core.Stats().HavesDropped)
			}
			carol.addBlob(blob)
			n.run()
			if !bob.has(h) || bob.fetches[1].Peer != carol.id {
				t.Fatalf("bob has %v, fetches %+v: want it from carol", bob.has(h), bob.fetches)
			}
		})
	}
}

// The same with both holders known when the fetch fails: the next one is
// tried at once (inject.js get(): `if(peer = isAvailable(id)) get(peer, id,
// name)`).
func TestLyingPeerNextPeerAtOnce(t *testing.T) {
	n := newNetwork(t)
	alice, bob, carol := n.add("alice", wants.Config{}), n.add("bob", wants.Config{}), n.add("carol", wants.Config{})
	alice.serve = serveCorrupt
	blob := fake("baz", 64)
	h := blobOf(blob)
	n.connect(alice, bob)
	n.connect(bob, carol)
	alice.addBlob(blob)
	carol.addBlob(blob)
	n.run()
	bob.core.Want(h)
	n.run()
	if !bob.has(h) || len(bob.fetches) != 2 || bob.fetches[0].Peer != alice.id || bob.fetches[1].Peer != carol.id {
		t.Fatalf("bob has %v, fetches %+v: want alice then carol", bob.has(h), bob.fetches)
	}
}

// integration.js 'cycle': alice - bob - carol - dan - alice; alice wants,
// dan adds; the wants going round stop.
func TestCycle(t *testing.T) {
	n := newNetwork(t)
	var ns []*node
	for _, name := range []string{"alice", "bob", "carol", "dan"} {
		ns = append(ns, n.add(name, wants.Config{}))
	}
	for i := range ns {
		n.connect(ns[i], ns[(i+1)%len(ns)])
	}
	blob := fake("gurg", 64)
	h := blobOf(blob)
	ns[0].core.Want(h)
	n.run()
	ns[3].addBlob(blob)
	n.run()
	if !slices.Equal(ns[0].resolved, []refs.Blob{h}) {
		t.Fatalf("alice resolved %v", ns[0].resolved)
	}
}

// A peer that stalls: after FetchTimeout without progress, as seen by
// ticks, the fetch is cancelled and the blob fetched from another peer.
// Progress keeps a slow fetch alive.
func TestStallingPeer(t *testing.T) {
	n := newNetwork(t)
	cfg := wants.Config{FetchTimeout: 10 * time.Second}
	alice, bob, carol := n.add("alice", cfg), n.add("bob", cfg), n.add("carol", cfg)
	alice.serve = serveStall
	blob := fake("baz", 64)
	h := blobOf(blob)
	n.connect(alice, bob)
	n.connect(bob, carol)
	alice.addBlob(blob)
	carol.addBlob(blob)
	n.run()
	bob.core.Want(h)
	n.run()
	if len(bob.fetches) != 1 || bob.fetches[0].Peer != alice.id {
		t.Fatalf("fetches %+v, want one from alice", bob.fetches)
	}
	for range 3 { // progress now and then: not a stall
		n.tick(9 * time.Second)
		bob.core.FetchProgress(bob.fetches[0].ID)
		n.run()
	}
	n.tick(9 * time.Second)
	n.run()
	if len(bob.cancels) != 0 || bob.has(h) {
		t.Fatalf("cancelled %+v before the timeout", bob.cancels)
	}
	n.tick(time.Second)
	n.run()
	if len(bob.cancels) != 1 || bob.cancels[0].Peer != alice.id {
		t.Fatalf("cancels %+v, want alice's fetch", bob.cancels)
	}
	if !bob.has(h) || bob.fetches[1].Peer != carol.id || bob.core.Stats().FetchesStalled != 1 {
		t.Fatalf("bob has %v, fetches %+v, stats %+v", bob.has(h), bob.fetches, bob.core.Stats())
	}
}

// A stall with no other holder: the want stays, and the next peer that
// announces the blob gets the fetch.
func TestStallThenLaterPeer(t *testing.T) {
	n := newNetwork(t)
	alice, bob, carol := n.add("alice", wants.Config{}), n.add("bob", wants.Config{}), n.add("carol", wants.Config{})
	alice.serve = serveStall
	blob := fake("baz", 64)
	h := blobOf(blob)
	n.connect(alice, bob)
	alice.addBlob(blob)
	bob.core.Want(h)
	n.run()
	n.tick(wants.DefaultFetchTimeout)
	n.run()
	if len(bob.cancels) != 1 || bob.core.Wanted(h) != -1 {
		t.Fatalf("cancels %+v, wanted %d", bob.cancels, bob.core.Wanted(h))
	}
	n.connect(bob, carol)
	carol.addBlob(blob)
	n.run()
	if !bob.has(h) {
		t.Fatal("bob did not fetch from carol")
	}
}

// A peer that leaves mid-fetch: the fetch is cancelled and moves to the
// next holder; a late FetchDone of the old fetch is ignored.
func TestDisconnectMidFetch(t *testing.T) {
	n := newNetwork(t)
	alice, bob, carol := n.add("alice", wants.Config{}), n.add("bob", wants.Config{}), n.add("carol", wants.Config{})
	alice.serve = serveStall
	blob := fake("baz", 64)
	h := blobOf(blob)
	n.connect(alice, bob)
	n.connect(bob, carol)
	alice.addBlob(blob)
	carol.addBlob(blob)
	n.run()
	carol.serve = serveStall // carol too, so the moved fetch stays open
	bob.core.Want(h)
	n.run()
	first := bob.fetches[0]
	n.disconnect(alice, bob)
	n.run()
	if len(bob.cancels) != 1 || bob.cancels[0] != first {
		t.Fatalf("cancels %+v, want %+v", bob.cancels, first)
	}
	if len(bob.fetches) != 2 || bob.fetches[1].Peer != carol.id {
		t.Fatalf("fetches %+v, want the second from carol", bob.fetches)
	}
	bob.core.FetchDone(first.ID, nil) // late: must not end carol's fetch
	if got := bob.core.Stats().Fetching; got != 1 {
		t.Fatalf("Fetching = %d, want carol's fetch still running", got)
	}
	if bob.core.Stats().FetchesOrphaned != 1 {
		t.Fatalf("stats %+v", bob.core.Stats())
	}
}

// A peer flooding wants: at most MaxWantsPerPeer are taken up (forwarded,
// fetched), the rest counted; wants of blobs here are still answered; the
// total bound holds across peers; a peer's wants end with it.
func TestWantFloodBounded(t *testing.T) {
	cfg := wants.Config{MaxWantsPerPeer: 10, MaxWants: 15}
	st := memStore{}
	c := wants.New(cfg, st)
	mallory, eve, friend := feedOf("mallory"), feedOf("eve"), feedOf("friend")
	here := fake("here", 100)
	st[blobOf(here)] = here
	for _, p := range []refs.Feed{mallory, eve, friend} {
		c.Connect(p)
	}
	c.Ready()
	flood := func(from string, count int) wants.Message {
		m := wants.Message{}
		for i := range count {
			m[blobOf(fmt.Appendf(nil, "%s %d", from, i))] = -1
		}
		return m
	}
	m := flood("mallory", 1000)
	m[blobOf(here)] = -1
	c.Step(mallory, m)
	if s := c.Stats(); s.Wants != 10 || s.WantsDropped != 990 {
		t.Fatalf("after mallory: %+v, want 10 wants, 990 dropped", s)
	}
	r := c.Ready()
	for _, o := range r.Messages {
		if o.Peer == mallory {
			if got := o.Msg[blobOf(here)]; got != 100 || len(o.Msg) != 11 {
				t.Fatalf("mallory got %d entries, have %d: want 10 echoed wants and the have", len(o.Msg), got)
			}
		} else if len(o.Msg) != 10 {
			t.Fatalf("%v got %d wants forwarded, want 10", o.Peer, len(o.Msg))
		}
	}
	c.Step(eve, flood("eve", 1000))
	if s := c.Stats(); s.Wants != 15 || s.WantsDropped != 990+995 {
		t.Fatalf("after eve: %+v, want the total bound of 15", s)
	}
	c.Want(blobOf([]byte("ours"))) // local wants are not limited
	if s := c.Stats(); s.Wants != 16 {
		t.Fatalf("local want refused: %+v", s)
	}
	c.Disconnect(mallory)
	c.Step(friend, flood("friend", 3))
	if s := c.Stats(); s.Wants != 5+1+3 {
		t.Fatalf("after mallory left: %+v, want eve's 5, ours and friend's 3", s)
	}
}

// Haves of Max bytes or more are ignored (JS: `size < max`); below, fetched.
func TestHaveOverMaxIgnored(t *testing.T) {
	c := wants.New(wants.Config{Max: 1000}, memStore{})
	big, small := blobOf([]byte("big")), blobOf([]byte("small"))
	peer := feedOf("peer")
	c.Connect(peer)
	c.Want(big)
	c.Want(small)
	c.Ready()
	if err := c.Receive(peer, []byte(fmt.Sprintf(`{"%s":1000,"%s":999}`, big, small))); err != nil {
		t.Fatal(err)
	}
	r := c.Ready()
	if len(r.Fetches) != 1 || r.Fetches[0].Blob != small || r.Fetches[0].Max != 1000 || r.Fetches[0].Size != 999 {
		t.Fatalf("fetches %+v, want only the small blob", r.Fetches)
	}
	if c.Stats().HavesOverMax != 1 {
		t.Fatalf("stats %+v", c.Stats())
	}
}

// By default a peer's forwarded want (-2) is answered if the blob is here
// but never taken up: not forwarded, never fetched.
func TestForwardedWantNotFetched(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	h := blobOf([]byte("theirs"))
	a, b := feedOf("a"), feedOf("b")
	c.Connect(a)
	c.Connect(b)
	c.Ready()
	c.Step(a, wants.Message{h: -2})
	c.Step(b, wants.Message{h: 10})
	r := c.Ready()
	if len(r.Messages) != 0 || len(r.Fetches) != 0 || c.Wanted(h) != 0 {
		t.Fatalf("ready %+v, wanted %d: want nothing", r, c.Wanted(h))
	}
}

// push.js 'push 3': alice pushes to bob, carol and dan; each fetches it,
// announces it, and alice reports the push done with their sizes.
func TestPush3(t *testing.T) {
	n := newNetwork(t)
	alice := n.add("alice", wants.Config{})
	peers := []*node{n.add("bob", wants.Config{}), n.add("carol", wants.Config{}), n.add("dan", wants.Config{})}
	for _, p := range peers {
		n.connect(alice, p)
	}
	blob := fake("baz", 64)
	h := alice.addBlob(blob)
	n.run()
	alice.core.Push(h)
	n.run()
	if len(alice.pushed) != 1 {
		t.Fatalf("pushed %+v, want one", alice.pushed)
	}
	want := map[refs.Feed]int64{}
	for _, p := range peers {
		want[p.id] = 64
		if !p.has(h) {
			t.Errorf("%s does not have the pushed blob", p.name)
		}
	}
	if got := alice.pushed[0]; got.Blob != h || fmt.Sprint(got.Peers) != fmt.Sprint(want) {
		t.Fatalf("pushed %+v, want %v", got, want)
	}
	for _, p := range peers { // done: no longer in the first message
		n.disconnect(alice, p)
		n.connect(alice, p)
	}
	n.run()
	if got := n.sent(alice, peers[0]); got[len(got)-1] != `{}` {
		t.Fatalf("first message after the push %q, want {}", got[len(got)-1])
	}
}

// secret-stack.js 'alice pushes to bob': with fewer than Pushy peers the
// push reaches them and stays in the first message.
func TestPushOnePeer(t *testing.T) {
	n := newNetwork(t)
	alice, bob := n.add("alice", wants.Config{}), n.add("bob", wants.Config{})
	n.connect(alice, bob)
	h := alice.addBlob([]byte("Hello World"))
	alice.core.Push(h)
	n.run()
	if !bob.has(h) || len(alice.pushed) != 0 {
		t.Fatalf("bob has %v, pushed %+v", bob.has(h), alice.pushed)
	}
	carol := n.add("carol", wants.Config{})
	n.connect(alice, carol)
	n.run()
	if got := n.sent(alice, carol); len(got) == 0 || got[0] != js(h, -1) || !carol.has(h) {
		t.Fatalf("alice sent carol %q; carol has %v", got, carol.has(h))
	}
}

// legacy.js 'legacy calls modern': a remote blobs.has is a want: answered
// false, sent on as -2, and the have follows when the blob arrives.
func TestRemoteHasIsWant(t *testing.T) {
	st := memStore{}
	c := wants.New(wants.Config{}, st)
	listener, caller := feedOf("listener"), feedOf("other")
	c.Connect(listener)
	blob := fake("foo", 100)
	h := blobOf(blob)
	got := messages(t, c, listener)
	if res := c.RemoteHas(caller, []refs.Blob{h}); !slices.Equal(res, []bool{false}) {
		t.Fatalf("has = %v", res)
	}
	got = append(got, messages(t, c, listener)...)
	st[h] = blob
	c.Added(h, 100)
	got = append(got, messages(t, c, listener)...)
	if want := []string{`{}`, js(h, -2), js(h, 100)}; !slices.Equal(got, want) {
		t.Fatalf("sent %q, want %q", got, want)
	}
	if res := c.RemoteHas(caller, []refs.Blob{h, blobOf(nil)}); !slices.Equal(res, []bool{true, false}) {
		t.Fatalf("has = %v, want [true false] (the empty blob is never announced)", res)
	}
}

// The empty blob is always here: a local want resolves at once, a peer's
// want of it is neither answered nor taken up.
func TestEmptyBlob(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	peer := feedOf("peer")
	c.Connect(peer)
	c.Ready()
	c.Want(wants.EmptyBlob)
	c.Step(peer, wants.Message{wants.EmptyBlob: -1})
	r := c.Ready()
	if !slices.Equal(r.Resolved, []refs.Blob{wants.EmptyBlob}) || len(r.Messages) != 0 {
		t.Fatalf("ready %+v", r)
	}
}

// Messages from a peer that is not connected are ignored.
func TestStepUnknownPeer(t *testing.T) {
	c := wants.New(wants.Config{}, memStore{})
	c.Step(feedOf("stranger"), wants.Message{blobOf([]byte("x")): -1})
	if r := c.Ready(); !r.Empty() || c.Stats().Wants != 0 {
		t.Fatalf("ready %+v, stats %+v", r, c.Stats())
	}
}

// A peer's wants cost what they fetch: past PeerBudget bytes its new wants
// are ignored (still answered when the blob is here), another peer's are
// not, and an hour later the budget is back. The total Budget bounds all
// peers together.
func TestFetchBudget(t *testing.T) {
	cfg := wants.Config{PeerBudget: 1000, Budget: 1500, Max: 10_000}
	st := memStore{}
	c := wants.New(cfg, st)
	greedy, other, holder := feedOf("greedy"), feedOf("other"), feedOf("holder")
	for _, p := range []refs.Feed{greedy, other, holder} {
		c.Connect(p)
	}
	now := time.Unix(1e9, 0)
	c.Tick(now)
	c.Ready()
	// fetch has holder announce a blob of size n that peer wants, and
	// completes the fetch; it reports whether the want was taken up.
	fetch := func(peer refs.Feed, name string, n int) bool {
		t.Helper()
		b := fake(name, n)
		id := blobOf(b)
		before := c.Stats().WantsOverBudget
		c.Step(peer, wants.Message{id: -1})
		if c.Stats().WantsOverBudget != before {
			c.Ready()
			return false
		}
		c.Step(holder, wants.Message{id: int64(n)})
		r := c.Ready()
		if len(r.Fetches) != 1 {
			t.Fatalf("%s: fetches %v", name, r.Fetches)
		}
		st[id] = b
		c.Added(id, int64(n))
		c.FetchDone(r.Fetches[0].ID, nil)
		c.Ready()
		return true
	}
	if !fetch(greedy, "a", 600) || !fetch(greedy, "b", 600) {
		t.Fatal("wants within the budget refused")
	}
	if fetch(greedy, "c", 10) {
		t.Fatal("a want past the peer's budget taken up")
	}
	// Still answered when here.
	c.Step(greedy, wants.Message{blobOf(fake("a", 600)): -1})
	if r := c.Ready(); len(r.Messages) != 1 || r.Messages[0].Msg[blobOf(fake("a", 600))] != 600 {
		t.Fatalf("a want of a blob here, past the budget: %+v", r.Messages)
	}
	// 1200 of the total's 1500 spent: another peer's wants are taken up
	// until the total is spent.
	if !fetch(other, "d", 200) || !fetch(other, "e", 200) {
		t.Fatal("another peer's want within the total refused")
	}
	if fetch(other, "f", 10) {
		t.Fatal("a want past the total budget taken up")
	}
	if s := c.Stats(); s.FetchedForPeers != 1600 || s.WantsOverBudget != 2 {
		t.Fatalf("%+v: want 1600 bytes fetched for peers, 2 wants over budget", s)
	}
	// Our own wants are never limited.
	c.Want(blobOf(fake("ours", 5000)))
	if c.Stats().Wants == 0 {
		t.Fatal("a local want refused past the budgets")
	}
	c.Tick(now.Add(time.Hour))
	if !fetch(greedy, "g", 10) {
		t.Fatal("the budget did not refill after an hour")
	}
}
