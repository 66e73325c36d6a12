package blobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	blobstore "github.com/scuttlego/scuttle/ssb/blobs"
	"github.com/scuttlego/scuttle/ssb/blobs/wants"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Bounds of the exchange, beside those of wants.Config.
const (
	// maxFetches is how many blobs are fetched at once, from all peers.
	maxFetches = 32
	// maxFetchesPerPeer is how many blobs are fetched at once from one
	// peer.
	maxFetchesPerPeer = 8
	// maxCommits is how many fetched blobs are made durable at once (the
	// store's fsyncs and link), from all peers. A fetch leaves its peer's
	// slot and its slot of maxFetches once it has every byte and holds one
	// of these: the disk's latency is not the peer's, and with the slots
	// held through it a fetch of many small blobs waited for the disk
	// with the network idle.
	maxCommits = 64
	// maxPendingEntries bounds the entries queued for a peer's
	// createWants stream that it has not read (or not opened) yet, after
	// the first message (our whole want map, bounded by the core's
	// limits). Past it the peer is dropped from the exchange until it
	// opens the stream again, which starts over with our want map. About
	// 60 bytes an entry: 240 KiB a peer.
	maxPendingEntries = 4096
	// tick is how often the exchange looks for stalled fetches.
	tick = time.Second
)

// exchange runs the want protocol of ssb-blobs (the state machine of
// ssb/blobs/wants) over the server's connections: it serves each peer's
// blobs.createWants stream and reads the one the peer serves us, answers
// blobs.want and blobs.push, takes a peer's blobs.has as wants, and
// fetches with blobs.get what is wanted and announced.
//
// One mutex guards the core and everything here; no I/O is done under it
// except the small file of pushes.
type exchange struct {
	log      *slog.Logger
	store    *blobstore.Store
	goFn     func(func()) // server.Go: the server waits for these goroutines
	pushFile string
	slots    chan struct{} // maxFetches
	commits  chan struct{} // maxCommits

	mu      sync.Mutex
	core    *wants.Core
	peers   map[refs.Feed]*wantPeer
	fetches map[wants.FetchID]*running
	waiters map[refs.Blob][]chan struct{}
	pushes  map[refs.Blob]bool // persisted in pushFile
	slow    int                // peers dropped for not reading their createWants stream
}

// wantPeer is a connected peer.
type wantPeer struct {
	conn  *server.Conn
	ctx   context.Context
	slots chan struct{} // maxFetchesPerPeer

	queue   []wants.Message // for its createWants stream, not sent yet
	entries int             // queued after the first message
	fresh   bool            // the next message is the first of the stream
	wake    chan struct{}   // capacity 1: the queue or stream changed
	gen     uint64          // bumped to end the createWants stream we serve
	inCore  bool            // connected in the core
	moved   time.Time       // when a fetch from it last received bytes
}

// running is a fetch in progress.
type running struct {
	peer   *wantPeer
	cancel context.CancelFunc
	stage  stage
}

// stage is where a fetch is.
type stage int

const (
	waitingPeer   stage = iota // for one of its peer's slots
	waitingGlobal              // for one of maxFetches
	transferring
	committing // every byte came: waiting for one of maxCommits, or storing
)

// storeSizes adapts the blob store to wants.Store.
type storeSizes struct{ s *blobstore.Store }

func (s storeSizes) Size(id refs.Blob) (int64, bool) {
	n, err := s.s.Size(id)
	return n, err == nil
}

func newExchange(cfg wants.Config, store *blobstore.Store, log *slog.Logger, goFn func(func()), pushFile string) (*exchange, error) {
	x := &exchange{
		log:      log,
		store:    store,
		goFn:     goFn,
		pushFile: pushFile,
		slots:    make(chan struct{}, maxFetches),
		commits:  make(chan struct{}, maxCommits),
		core:     wants.New(cfg, storeSizes{store}),
		peers:    map[refs.Feed]*wantPeer{},
		fetches:  map[wants.FetchID]*running{},
		waiters:  map[refs.Blob][]chan struct{}{},
		pushes:   map[refs.Blob]bool{},
	}
	ids, err := readPushes(pushFile)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		x.pushes[id] = true
		x.core.Push(id)
	}
	x.core.Ready() // nobody is connected yet
	return x, nil
}

// added is the store's hook: a blob is stored (added by a client or
// fetched). It is announced, and its wants end.
func (x *exchange) added(info blobstore.Info) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.core.Added(info.ID, info.Size)
	x.process()
}

// connected starts the exchange with a peer: our want map goes first on
// the createWants stream it opens on us, and we open its own.
func (x *exchange) connected(ctx context.Context, c *server.Conn) {
	x.mu.Lock()
	if old := x.peers[c.ID]; old != nil { // a second connection replaces the first
		x.endStream(old)
	}
	ps := &wantPeer{conn: c, ctx: ctx, slots: make(chan struct{}, maxFetchesPerPeer), wake: make(chan struct{}, 1), inCore: true, fresh: true}
	x.peers[c.ID] = ps
	x.core.Connect(c.ID)
	x.process()
	x.mu.Unlock()
	x.goFn(func() { x.readWants(ctx, c) })
}

// disconnected ends the exchange with a peer: its wants end, and fetches
// from it move to other peers.
func (x *exchange) disconnected(c *server.Conn) {
	x.mu.Lock()
	defer x.mu.Unlock()
	ps := x.peers[c.ID]
	if ps != nil && ps.conn != c {
		return // a newer connection of the same peer
	}
	if ps != nil {
		delete(x.peers, c.ID)
		x.endStream(ps)
	}
	x.core.Disconnect(c.ID) // also a peer known only by its blobs.has
	x.process()
}

// endStream ends the createWants stream served to ps, if any.
func (x *exchange) endStream(ps *wantPeer) {
	ps.gen++
	ps.queue, ps.entries = nil, 0
	signal(ps.wake)
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// process carries out what the core asks for; x.mu is held.
func (x *exchange) process() {
	for {
		r := x.core.Ready()
		if r.Empty() {
			return
		}
		for _, m := range r.Messages {
			x.enqueue(m)
		}
		for _, f := range r.Cancels {
			if run := x.fetches[f.ID]; run != nil {
				run.cancel()
				delete(x.fetches, f.ID)
			}
		}
		for _, f := range r.Fetches {
			x.startFetch(f)
		}
		for _, id := range r.Resolved {
			for _, ch := range x.waiters[id] {
				close(ch)
			}
			delete(x.waiters, id)
		}
		for _, p := range r.Pushed {
			x.log.Info("blobs: pushed", "id", p.Blob, "peers", len(p.Peers))
			delete(x.pushes, p.Blob)
			x.savePushes()
		}
	}
}

// enqueue queues a message for a peer's createWants stream. A peer that
// lets too much pile up is dropped from the core until it opens the stream
// again.
func (x *exchange) enqueue(m wants.Outgoing) {
	ps := x.peers[m.Peer]
	if ps == nil || !ps.inCore {
		return
	}
	ps.queue = append(ps.queue, m.Msg)
	if ps.fresh {
		ps.fresh = false
	} else {
		ps.entries += len(m.Msg)
	}
	if ps.entries > maxPendingEntries {
		x.log.Warn("blobs: peer does not read its createWants stream; wants exchange with it stopped", "peer", m.Peer, "pending", ps.entries)
		ps.inCore = false
		x.slow++
		x.endStream(ps)
		x.core.Disconnect(m.Peer) // its outputs are handled by process's loop
		return
	}
	signal(ps.wake)
}

// createWants serves a peer the stream of our wants and haves: first our
// whole want map, then every change. A second call restarts it (the map
// again), ending the first.
func (x *exchange) createWants(ctx context.Context, c *server.Conn, req *muxrpc.Request) {
	if !c.Peer() {
		req.Fail(errors.New("blobs.createWants: the stream is for peers, not the owner"))
		return
	}
	x.mu.Lock()
	ps := x.peers[c.ID]
	if ps == nil || ps.conn != c {
		x.mu.Unlock()
		req.Fail(errors.New("blobs.createWants: the connection has ended"))
		return
	}
	ps.gen++
	gen := ps.gen
	if gen > 1 || !ps.inCore { // restarted, or dropped: start over
		ps.queue, ps.entries = nil, 0
		ps.inCore, ps.fresh = true, true
		x.core.Connect(c.ID)
		x.process()
	}
	x.mu.Unlock()
	st := req.Stream()
	for {
		x.mu.Lock()
		if ps.gen != gen {
			dropped := !ps.inCore
			x.mu.Unlock()
			if dropped {
				req.Fail(errors.New("blobs.createWants: too far behind"))
			}
			return
		}
		queue := ps.queue
		ps.queue, ps.entries = nil, 0
		x.mu.Unlock()
		for _, m := range queue {
			b, _ := m.MarshalJSON()
			if st.SendRaw(muxrpc.JSON, b) != nil {
				return
			}
		}
		select {
		case <-ps.wake:
		case <-ctx.Done():
			return
		}
	}
}

// readWants reads the createWants stream the peer serves us into the core.
// A peer without the method (an old ssb-server) is left alone: the legacy
// polling of blobs.has and blobs.changes is left out on purpose, as
// ssb-server 16 peers all serve createWants (see ssb/blobs/wants).
func (x *exchange) readWants(ctx context.Context, c *server.Conn) {
	st, err := c.RPC.Open(muxrpc.Method{"blobs", "createWants"}, muxrpc.Source)
	if err != nil {
		return
	}
	defer st.Close()
	for n := 0; ; n++ {
		p, err := st.Recv(ctx)
		if err != nil {
			if n == 0 && !errors.Is(err, muxrpc.ErrClosed) && ctx.Err() == nil {
				x.log.Info("blobs: peer serves no createWants; blobs are not exchanged with it", "peer", c.ID, "err", err)
			}
			return
		}
		x.mu.Lock()
		if ps := x.peers[c.ID]; ps != nil && ps.conn == c && ps.inCore {
			if err := x.core.Receive(c.ID, p.Body); err != nil {
				x.log.Debug("blobs: createWants message ignored", "peer", c.ID, "err", err)
			}
			x.process()
		}
		x.mu.Unlock()
	}
}

// remoteHas answers a peer's blobs.has, taking the missing blobs as the
// peer's wants (ssb-blobs' legacy rule).
func (x *exchange) remoteHas(c *server.Conn, ids []refs.Blob) []bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	res := x.core.RemoteHas(c.ID, ids)
	x.process()
	return res
}

// want waits until a blob is stored, wanting it from every peer.
func (x *exchange) want(ctx context.Context, id refs.Blob) error {
	ch := make(chan struct{})
	x.mu.Lock()
	x.waiters[id] = append(x.waiters[id], ch)
	x.core.Want(id)
	x.process()
	x.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		x.mu.Lock()
		x.waiters[id] = slices.DeleteFunc(x.waiters[id], func(c chan struct{}) bool { return c == ch })
		if len(x.waiters[id]) == 0 {
			delete(x.waiters, id)
		}
		x.mu.Unlock()
		return ctx.Err()
	}
}

// push announces a blob to peers until wants.Config.Pushy of them hold it;
// the pushes are kept in pushFile until then.
func (x *exchange) push(id refs.Blob) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.pushes[id] = true
	if err := x.savePushes(); err != nil {
		delete(x.pushes, id)
		return err
	}
	x.core.Push(id)
	x.process()
	return nil
}

// startFetch runs a fetch the core asked for.
func (x *exchange) startFetch(f wants.Fetch) {
	ps := x.peers[f.Peer]
	if ps == nil { // cannot be: the core fetches from connected peers
		x.core.FetchDone(f.ID, errors.New("blobs: peer not connected"))
		return
	}
	ctx, cancel := context.WithCancel(ps.ctx)
	run := &running{peer: ps, cancel: cancel}
	x.fetches[f.ID] = run
	x.goFn(func() {
		defer cancel()
		err := x.fetch(ctx, run, f)
		x.mu.Lock()
		defer x.mu.Unlock()
		if x.fetches[f.ID] == run {
			delete(x.fetches, f.ID)
		}
		x.core.FetchDone(f.ID, err) // ignored if cancelled
		x.process()
		switch {
		case err == nil:
			x.log.Debug("blobs: fetched", "id", f.Blob, "peer", f.Peer, "size", f.Size)
		case ctx.Err() == nil:
			x.log.Info("blobs: fetch failed; trying another peer", "id", f.Blob, "peer", f.Peer, "err", err)
		}
	})
}

// fetch gets a blob from a peer with blobs.get into the store, which
// checks its hash. The transfer holds one of the peer's slots and one of
// maxFetches; once every byte came, the fetch takes one of maxCommits and
// leaves those, while the store makes the blob durable.
func (x *exchange) fetch(ctx context.Context, run *running, f wants.Fetch) error {
	select {
	case run.peer.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	var peerSlot, globalSlot, commitSlot bool
	peerSlot = true
	release := func() {
		if peerSlot {
			<-run.peer.slots
		}
		if globalSlot {
			<-x.slots
		}
		peerSlot, globalSlot = false, false
	}
	defer func() {
		release()
		if commitSlot {
			<-x.commits
		}
	}()
	x.mu.Lock()
	run.stage = waitingGlobal
	x.mu.Unlock()
	select {
	case x.slots <- struct{}{}:
		globalSlot = true
	case <-ctx.Done():
		return ctx.Err()
	}
	x.mu.Lock()
	run.stage = transferring
	x.core.FetchProgress(f.ID)
	x.mu.Unlock()

	st, err := run.peer.conn.RPC.Open(muxrpc.Method{"blobs", "get"}, muxrpc.Source, map[string]any{"key": f.Blob.String(), "max": f.Max})
	if err != nil {
		return fmt.Errorf("blobs: fetch: %w", err)
	}
	defer st.Close()
	r := &fetchReader{ctx: ctx, st: st, left: f.Size, progress: func() { x.progress(run, f.ID) }}
	r.complete = func() error {
		// Every byte came: the store's fsyncs follow, under a commit slot.
		x.mu.Lock()
		run.stage = committing
		x.mu.Unlock()
		select {
		case x.commits <- struct{}{}:
			commitSlot = true
		case <-ctx.Done():
			return ctx.Err()
		}
		release()
		return nil
	}
	_, _, err = x.store.Add(ctx, r, &f.Blob)
	switch {
	case errors.Is(err, blobstore.ErrMismatch):
		return fmt.Errorf("blobs: fetch: the peer's bytes do not hash to %s", f.Blob)
	case errors.Is(err, blobstore.ErrTooLarge):
		return fmt.Errorf("blobs: fetch: the peer sent more than %d bytes", x.store.Max())
	case err != nil:
		return fmt.Errorf("blobs: fetch: %w", err)
	}
	return nil
}

// progress restarts a fetch's stall clock.
func (x *exchange) progress(run *running, id wants.FetchID) {
	x.mu.Lock()
	defer x.mu.Unlock()
	run.peer.moved = time.Now()
	x.core.FetchProgress(id)
}

// tick gives the core the time, so that it cancels stalled fetches. A
// fetch waiting for a slot is not stalled when the wait is not its peer's
// fault: all slots are busy, or its peer is sending other blobs; nor is
// one that has every byte and waits for the disk.
func (x *exchange) tick(now time.Time, timeout time.Duration) {
	x.mu.Lock()
	defer x.mu.Unlock()
	for id, run := range x.fetches {
		if run.stage == waitingGlobal || run.stage == committing || (run.stage == waitingPeer && now.Sub(run.peer.moved) < timeout) {
			x.core.FetchProgress(id)
		}
	}
	x.core.Tick(now)
	x.process()
}

// fetchReader reads a blobs.get stream as bytes, failing when the peer
// sends more than it announced. At the stream's end it calls complete
// once, before returning io.EOF (or complete's error).
type fetchReader struct {
	ctx      context.Context
	st       *muxrpc.Stream
	left     int64
	rest     []byte
	progress func()
	complete func() error
}

// end returns io.EOF after calling complete, once.
func (r *fetchReader) end() (int, error) {
	if r.complete != nil {
		done := r.complete
		r.complete = nil
		if err := done(); err != nil {
			return 0, err
		}
	}
	return 0, io.EOF
}

func (r *fetchReader) Read(b []byte) (int, error) {
	for len(r.rest) == 0 {
		p, err := r.st.Recv(r.ctx)
		if errors.Is(err, io.EOF) {
			return r.end()
		}
		if err != nil && r.left == 0 && errors.Is(err, muxrpc.ErrClosed) {
			// Every announced byte came, then the connection ended before
			// the stream's end: JavaScript ssb-server 16 does that after
			// the last chunk of a blob whose size is a multiple of 64 KiB
			// (its own client fails the same). The hash decides whether
			// the bytes are the blob.
			return r.end()
		}
		if err != nil {
			return 0, fmt.Errorf("the peer's blobs.get failed: %w", err)
		}
		if int64(len(p.Body)) > r.left {
			return 0, errors.New("the peer sent more bytes than it announced")
		}
		r.left -= int64(len(p.Body))
		r.rest = p.Body
		r.progress()
	}
	n := copy(b, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// status is the exchange's part of the status answer.
func (x *exchange) status() map[string]any {
	x.mu.Lock()
	defer x.mu.Unlock()
	st := x.core.Stats()
	return map[string]any{
		"peers":     len(x.peers),
		"wants":     st.Wants,
		"fetching":  st.Fetching,
		"pushing":   len(x.pushes),
		"slowPeers": x.slow,
		"ignored": map[string]int{
			"malformedMessages": st.MalformedMessages,
			"malformedEntries":  st.MalformedEntries,
			"wantsDropped":      st.WantsDropped,
			"wantsTooFar":       st.WantsTooFar,
			"wantsOverBudget":   st.WantsOverBudget,
			"havesOverMax":      st.HavesOverMax,
			"havesDropped":      st.HavesDropped,
		},
		"fetchedForPeers": st.FetchedForPeers,
		"fetchesFailed":   st.FetchesFailed,
		"fetchesStalled":  st.FetchesStalled,
		"fetchesOrphaned": st.FetchesOrphaned,
	}
}

// readPushes reads the blobs being pushed, kept across restarts (ssb-blobs
// writes them to blobs_push but never reads them back).
func readPushes(file string) ([]refs.Blob, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("blobs: pushes: %w", err)
	}
	var ids []refs.Blob
	if err := json.Unmarshal(b, &ids); err != nil {
		return nil, fmt.Errorf("blobs: pushes %s: %w", file, err)
	}
	return ids, nil
}

// savePushes writes the pushes durably (temporary file, fsync, rename);
// x.mu is held.
func (x *exchange) savePushes() error {
	ids := make([]string, 0, len(x.pushes))
	for id := range x.pushes {
		ids = append(ids, id.String())
	}
	slices.Sort(ids)
	b := marshal(ids)
	tmp := x.pushFile + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err == nil {
		_, err = f.Write(b)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = os.Rename(tmp, x.pushFile)
	}
	if err == nil {
		var d *os.File
		if d, err = os.Open(filepath.Dir(x.pushFile)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		x.log.Warn("blobs: saving the pushes failed", "err", err)
		return fmt.Errorf("blobs: pushes: %w", err)
	}
	return nil
}
