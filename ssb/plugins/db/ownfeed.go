package db

// Own-feed protection: the server never forks its own feed.
//
// An SSB feed is a hash chain, and peers keep the first message they see at
// each sequence. A server that publishes sequence n+1 while peers already
// hold a different n+1 of the same feed (because its store lost messages:
// disk trouble, a bad restore, a secret copied to a new machine) forks the
// feed, and peers reject everything it publishes from then on.
//
// So the server remembers how far its feed goes outside the store: the file
// own-feed.json beside the secret, {"feed":…,"sequence":n,"key":"%…"},
// written atomically (temporary file, fsync, rename, fsync of the
// directory) after each publish is durable in the store and before it is
// acknowledged. Concurrent publishes share a write (one waits for the write
// in progress, then the next write covers all that arrived meanwhile).
// Leftover temporary files (a crash mid-write) are ignored and removed at
// start. The file may lag the store (a crash between the two writes, or
// our messages stored by replication); it is never ahead of what was
// stored.
//
// At start the server compares the file with the store's head for its feed
// and is in one of four states, shown by `status` as ownFeed.state:
//
//   - "ok": the store holds the feed up to the file's sequence, and the
//     message there is the file's key. Publishing works. A store ahead of
//     the file (the file lagged) updates the file.
//   - "recovering": the store holds less than the file says. Publishing,
//     and adding our own messages beyond the remembered sequence (add,
//     createWriteStream), are refused with an error saying how far the
//     store is and that the rest is being fetched. Replication asks peers
//     for our feed (it always wants it) and, in addition, every peer that
//     connects is asked at once for our feed past the store's head
//     (createHistoryStream, live false); what it sends is validated and
//     stored. Once the store reaches the remembered sequence with the
//     remembered key, the state is "ok" again (logged) and publishing
//     resumes with the next sequence.
//   - "unconfirmed": no file and nothing of our feed in the store (a
//     restored identity: the secret copied without the store), or a
//     damaged file, or one of another feed (whatever the store holds).
//     How far the feed goes is unknown.
//     Rule: publishing is refused until one peer has answered our request
//     for the feed (the history stream ended cleanly, however many
//     messages it held) and the store holds all that peer sent; the
//     feed's head is then the highest any answering peer showed. A peer
//     without our feed answers with nothing, which counts: one answer is
//     taken as enough, since waiting for every possible peer is not
//     possible. Until then add and createWriteStream refuse our own
//     messages too.
//   - "forked": the store's message at the remembered sequence is not the
//     remembered one, or a peer sent a message of our feed that conflicts
//     with the store: someone else publishes with this key, or the store
//     was restored from another copy of it. Publishing stays refused.
//
// A new identity created by this server starts "ok" at sequence 0: Open
// notes that the secret did not exist, and the file is written then. A data directory from before the file
// existed (secret, our feed in the store, no file) starts "ok" from the
// store's head. A data directory whose secret exists but whose feed was
// never published, with no file, is indistinguishable from a restored
// identity and starts "unconfirmed".
//
// The way out, when no peer has the feed (or the operator knows better):
// the owner-only method ownFeed.accept (`sbot ownFeed.accept`) takes the
// store's head as the feed's head, writes the file and allows publishing
// from there. It risks the fork this protection prevents, so it is logged
// as a warning.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// ownFeedFile is the name of the head file in the data directory.
const ownFeedFile = "own-feed.json"

// States of the own feed (see the package's own-feed protection).
const (
	ownOK          = "ok"
	ownRecovering  = "recovering"
	ownUnconfirmed = "unconfirmed"
	ownForked      = "forked"
)

// fetchBatch is how many of our messages from a peer are stored at once.
const fetchBatch = 256

// ownHead is the head file's content.
type ownHead struct {
	Feed     string `json:"feed"`
	Sequence int64  `json:"sequence"`
	Key      string `json:"key,omitempty"` // empty at sequence 0
}

// errPrivate refuses content with recipients when no plugin encrypts
// private messages: it would be stored in clear.
var errPrivate = errors.New("publish: content has recps, and no plugin encrypts private messages (they would be published unencrypted); nothing was published")

// An ownFeedError refuses a publish (or an append of our own messages)
// while the own feed is not "ok".
type ownFeedError struct{ msg string }

func (e *ownFeedError) Error() string { return e.msg }

// ownFeed guards the server's own feed against forks.
type ownFeed struct {
	path  string // the head file
	self  refs.Feed
	store *store.Store
	log   *slog.Logger

	mu       sync.Mutex
	state    string
	expected message.FeedState // how far our feed is known to go
	answered int               // peers that answered about our feed (unconfirmed)
	note     string            // why forked
	writeErr error             // the last head file write failed
	changed  chan struct{}     // closed and replaced when the above change

	// The head file writer, shared by concurrent publishes.
	wmu     sync.Mutex
	want    message.FeedState // the highest head asked to be written
	written int64             // the sequence the file holds; -1 unknown
	writing chan struct{}     // closed when the write in progress ends
}

// openOwnFeed sets up own-feed protection; fresh tells that the identity
// was created by this Open. Call it once the store is open.
func (p *Plugin) openOwnFeed(dir string, fresh bool, log *slog.Logger) error {
	p.own = &ownFeed{
		path: filepath.Join(dir, ownFeedFile), self: p.keys.ID, store: p.store,
		log: log, written: -1, changed: make(chan struct{}),
	}
	return p.own.open(fresh)
}

// open reads the head file and the store and sets the state.
func (o *ownFeed) open(fresh bool) error {
	o.removeTemps()
	stored, err := o.storeHead()
	if err != nil {
		return fmt.Errorf("server: own feed: %w", err)
	}
	o.expected = stored
	if fresh {
		o.state = ownOK
		if err := o.reset(stored); err != nil {
			return fmt.Errorf("server: own feed: %w", err)
		}
		return nil
	}
	file, err := o.readFile()
	switch {
	case errors.Is(err, fs.ErrNotExist) && stored.Sequence > 0:
		// A data directory from before the head file: the store is all
		// there is to go by.
		o.state = ownOK
		if err := o.reset(stored); err != nil {
			return fmt.Errorf("server: own feed: %w", err)
		}
		o.log.Info("own feed: head recorded from the store", "sequence", stored.Sequence, "file", o.path)
		return nil
	case err != nil:
		o.state = ownUnconfirmed
		why := "no record of how far this identity's feed goes (a restored or copied identity?)"
		if !errors.Is(err, fs.ErrNotExist) {
			why = err.Error()
		}
		o.log.Warn("own feed: publishing is held until a peer tells how far our feed goes, so as not to fork it; if no peer has it, call ownFeed.accept",
			"reason", why, "stored", stored.Sequence)
		return nil
	}
	o.expected = file
	switch {
	case stored.Sequence < file.Sequence:
		o.state = ownRecovering
		o.log.Warn("own feed: the store lacks our latest messages; publishing is held while they are fetched from peers",
			"stored", stored.Sequence, "expected", file.Sequence, "file", o.path)
		return nil
	case stored.Sequence > file.Sequence && file.Sequence > 0:
		key, err := o.keyAt(context.Background(), file.Sequence)
		if err != nil {
			return fmt.Errorf("server: own feed: %w", err)
		}
		if key != file.ID {
			o.forked(fmt.Sprintf("the store holds %s at sequence %d, but %s was published there", key, file.Sequence, file.ID))
			return nil
		}
	case stored.Sequence == file.Sequence && stored.ID != file.ID:
		o.forked(fmt.Sprintf("the store holds %s at sequence %d, but %s was published there", stored.ID, file.Sequence, file.ID))
		return nil
	}
	o.state = ownOK
	o.expected = stored
	o.written = file.Sequence
	if stored.Sequence > file.Sequence {
		if err := o.record(stored); err != nil {
			return fmt.Errorf("server: own feed: %w", err)
		}
	}
	return nil
}

// forked sets the forked state; o.mu is held (or not yet shared, at open).
func (o *ownFeed) forked(note string) {
	o.state, o.note = ownForked, note
	o.notifyLocked()
	o.log.Error("own feed: forked: publishing is refused", "reason", note)
}

// notifyLocked wakes those waiting for a change of state; o.mu is held.
func (o *ownFeed) notifyLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// waitFor waits until cond, called with o.mu held, holds.
func (o *ownFeed) waitFor(ctx context.Context, cond func() bool) error {
	for {
		o.mu.Lock()
		ok, ch := cond(), o.changed
		o.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// storeHead returns the store's head of our feed (zero when empty).
func (o *ownFeed) storeHead() (message.FeedState, error) {
	h, err := o.store.Latest(o.self)
	if errors.Is(err, store.ErrNotFound) {
		return message.FeedState{}, nil
	}
	return h.State, err
}

// keyAt returns the key of our message at seq in the store.
func (o *ownFeed) keyAt(ctx context.Context, seq int64) (refs.Message, error) {
	keys, values := true, false
	it, err := o.store.History(ctx, store.HistoryQuery{ID: o.self, Seq: seq, Limit: 1, Keys: &keys, Values: &values})
	if err != nil {
		return refs.Message{}, err
	}
	defer it.Close()
	item, err := it.Next(ctx)
	if err != nil {
		return refs.Message{}, fmt.Errorf("our message %d: %w", seq, err)
	}
	return item.Key, nil
}

// readFile reads the head file. A file of another feed, or one that does
// not parse, is an error (not fs.ErrNotExist).
func (o *ownFeed) readFile() (message.FeedState, error) {
	data, err := os.ReadFile(o.path)
	if err != nil {
		return message.FeedState{}, err
	}
	h, err := parseOwnHead(data, o.self)
	if err != nil {
		return h, fmt.Errorf("%s: %w", o.path, err)
	}
	return h, nil
}

// parseOwnHead decodes a head file of feed self.
func parseOwnHead(data []byte, self refs.Feed) (message.FeedState, error) {
	var h ownHead
	if err := json.Unmarshal(data, &h); err != nil {
		return message.FeedState{}, fmt.Errorf("damaged: %w", err)
	}
	if h.Feed != self.String() {
		return message.FeedState{}, fmt.Errorf("of feed %q, not of this identity", h.Feed)
	}
	if h.Sequence < 0 || (h.Sequence == 0) != (h.Key == "") {
		return message.FeedState{}, fmt.Errorf("damaged: sequence %d with key %q", h.Sequence, h.Key)
	}
	st := message.FeedState{Sequence: h.Sequence}
	if h.Key != "" {
		var err error
		if st.ID, err = refs.ParseMessage(h.Key); err != nil {
			return message.FeedState{}, fmt.Errorf("damaged: %w", err)
		}
	}
	return st, nil
}

// appendOwnHead encodes a head file of feed self.
func appendOwnHead(dst []byte, self refs.Feed, h message.FeedState) []byte {
	head := ownHead{Feed: self.String(), Sequence: h.Sequence}
	if h.Sequence > 0 {
		head.Key = h.ID.String()
	}
	data, _ := json.Marshal(head) // strings and a number: cannot fail
	return append(append(dst, data...), '\n')
}

// removeTemps removes temporary files left by a write that a crash cut.
func (o *ownFeed) removeTemps() {
	temps, _ := filepath.Glob(o.path + ".tmp*")
	for _, t := range temps {
		os.Remove(t)
	}
}

// writeFile writes the head file atomically and durably.
func (o *ownFeed) writeFile(h message.FeedState) error {
	if err := vfs.WriteFile(vfs.Default, o.path, appendOwnHead(nil, o.self, h), 0o600); err != nil {
		return fmt.Errorf("own feed head: %w", err)
	}
	return nil
}

// record makes the head file say at least h, sharing writes between
// concurrent callers: a caller waits for the write in progress, and the
// next write covers every head asked for meanwhile.
func (o *ownFeed) record(h message.FeedState) error {
	o.wmu.Lock()
	if h.Sequence > o.want.Sequence {
		o.want = h
	}
	for {
		if o.written >= h.Sequence {
			o.wmu.Unlock()
			return nil
		}
		if o.writing != nil {
			ch := o.writing
			o.wmu.Unlock()
			<-ch
			o.wmu.Lock()
			continue
		}
		target := o.want
		done := make(chan struct{})
		o.writing = done
		o.wmu.Unlock()
		err := o.writeFile(target)
		o.wmu.Lock()
		o.writing = nil
		close(done)
		o.mu.Lock()
		o.writeErr = err
		o.mu.Unlock()
		if err != nil {
			o.wmu.Unlock()
			return err
		}
		o.written = target.Sequence
	}
}

// reset makes the head file say exactly h, even if it said more.
func (o *ownFeed) reset(h message.FeedState) error {
	o.wmu.Lock()
	for o.writing != nil {
		ch := o.writing
		o.wmu.Unlock()
		<-ch
		o.wmu.Lock()
	}
	o.want, o.written = h, -1
	o.wmu.Unlock()
	return o.record(h)
}

// missing reports whether messages of our feed may be missing from the
// store (recovering or unconfirmed): what peers are asked for.
func (o *ownFeed) missing() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state == ownRecovering || o.state == ownUnconfirmed
}

// ready reports whether our feed may grow.
func (o *ownFeed) ready() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.state == ownOK
}

// refusal says why op (publish, add…) is refused, or nil if it is not;
// stored is the store's head of our feed. o.mu is held.
func (o *ownFeed) refusal(op string, stored int64) error {
	switch o.state {
	case ownRecovering:
		return &ownFeedError{fmt.Sprintf("%s: our own feed is being recovered: the store holds it up to sequence %d, but it was published up to %d; "+
			"the missing messages are being fetched from peers, and publishing resumes once they are back (nothing was stored)",
			op, stored, o.expected.Sequence)}
	case ownUnconfirmed:
		return &ownFeedError{fmt.Sprintf("%s: our own feed is unconfirmed: there is no record of how far it goes (a restored or copied identity?) "+
			"and the store holds it up to sequence %d; publishing waits until a peer has sent what it has of our feed, so as not to fork it "+
			"(nothing was stored). If no peer has this feed, `sbot ownFeed.accept` publishes from the store's head", op, stored)}
	case ownForked:
		return &ownFeedError{fmt.Sprintf("%s: our own feed is forked: %s; someone else publishes with this key, or the store was restored "+
			"from another copy; refusing to publish (nothing was stored). `sbot ownFeed.accept` continues from the store's head", op, o.note)}
	}
	return nil
}

// allowPublish returns nil if publishing may go ahead, or why not.
func (o *ownFeed) allowPublish(ctx context.Context) error {
	o.mu.Lock()
	ok := o.state == ownOK && o.writeErr == nil
	o.mu.Unlock()
	if ok {
		return nil // checkPrev checks again, against the store's head
	}
	o.refresh(ctx)
	stored, err := o.storeHead()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	o.mu.Lock()
	err, writeErr := o.refusal("publish", stored.Sequence), o.writeErr
	o.mu.Unlock()
	if err != nil {
		return err
	}
	if writeErr != nil {
		// The last publish is stored but was not recorded: record it now,
		// or refuse before storing another.
		if err := o.record(stored); err != nil {
			return fmt.Errorf("publish: cannot record our feed's head (nothing was stored): %w", err)
		}
	}
	return nil
}

// checkPrev is the check made in the store's transaction, against the head
// the new message will follow: it must not be behind what was published.
// It must not call the store.
func (o *ownFeed) checkPrev(prev message.FeedState) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.refusal("publish", prev.Sequence); err != nil {
		return err
	}
	switch {
	case prev.Sequence < o.expected.Sequence:
		o.state = ownRecovering
		o.notifyLocked()
		o.log.Error("own feed: the store lost our latest messages while running", "stored", prev.Sequence, "expected", o.expected.Sequence)
		return o.refusal("publish", prev.Sequence)
	case prev.Sequence == o.expected.Sequence && prev.ID != o.expected.ID:
		o.forked(fmt.Sprintf("the store holds %s at sequence %d, but %s was published there", prev.ID, prev.Sequence, o.expected.ID))
		return o.refusal("publish", prev.Sequence)
	}
	return nil
}

// published records a message of our feed that is durable in the store,
// before it is acknowledged.
func (o *ownFeed) published(h message.FeedState) error {
	o.mu.Lock()
	if o.state == ownOK && h.Sequence > o.expected.Sequence {
		o.expected = h
	}
	ok := o.state == ownOK
	o.mu.Unlock()
	if !ok {
		return nil // recovering: the head is recorded once recovered
	}
	return o.record(h)
}

// allowAppend checks messages signed elsewhere (add, createWriteStream)
// before they are stored: while our feed is not "ok", ours are accepted
// only up to the sequence it is known to reach (they help recovery; a
// wrong one shows as a fork there), never beyond.
func (o *ownFeed) allowAppend(ctx context.Context, op string, raws [][]byte) error {
	if o.ready() {
		return nil
	}
	o.refresh(ctx)
	if o.ready() {
		return nil
	}
	stored, err := o.storeHead()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for _, raw := range raws {
		v, err := message.Parse(raw)
		if err != nil {
			continue // the store reports it
		}
		if a, _ := v.Get("author"); a.Str() != o.self.String() {
			continue
		}
		seq, _ := v.Get("sequence")
		o.mu.Lock()
		var refused error
		if o.state != ownRecovering || int64(seq.Number()) > o.expected.Sequence {
			refused = o.refusal(op, stored.Sequence)
		}
		o.mu.Unlock()
		if refused != nil {
			return refused
		}
	}
	return nil
}

// appended records our messages among msgs, stored by add or
// createWriteStream.
func (o *ownFeed) appended(ctx context.Context, msgs []*message.Message) error {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Author == o.self {
			if !o.ready() {
				o.refresh(ctx)
				return nil
			}
			return o.published(msgs[i].State())
		}
	}
	return nil
}

// refresh moves a recovering (or answered unconfirmed) feed to "ok" once
// the store has caught up, or to "forked" if what it holds is not what
// was published.
func (o *ownFeed) refresh(ctx context.Context) {
	o.mu.Lock()
	state, exp, answered := o.state, o.expected, o.answered
	o.mu.Unlock()
	if state != ownRecovering && (state != ownUnconfirmed || answered == 0) {
		return
	}
	stored, err := o.storeHead()
	if err != nil {
		o.log.Error("own feed: reading the store", "err", err)
		return
	}
	if stored.Sequence < exp.Sequence {
		return
	}
	note := ""
	if exp.Sequence > 0 {
		key, err := o.keyAt(ctx, exp.Sequence)
		if err != nil {
			o.log.Error("own feed: reading the store", "err", err)
			return
		}
		if key != exp.ID {
			note = fmt.Sprintf("the store holds %s at sequence %d, but %s was published there", key, exp.Sequence, exp.ID)
		}
	}
	o.mu.Lock()
	if o.state != state || o.expected != exp {
		o.mu.Unlock()
		return // changed meanwhile: the next refresh decides
	}
	if note != "" {
		o.forked(note)
		o.mu.Unlock()
		return
	}
	o.state, o.expected = ownOK, stored
	o.notifyLocked()
	o.mu.Unlock()
	if err := o.record(stored); err != nil {
		o.log.Error("own feed: recording its head", "err", err)
	}
	o.log.Info("own feed: recovered; publishing resumes", "sequence", stored.Sequence, "was", state)
}

// accept takes the store's head as our feed's head: the operator's way out.
func (o *ownFeed) accept() (message.FeedState, error) {
	stored, err := o.storeHead()
	if err != nil {
		return stored, err
	}
	o.mu.Lock()
	was := o.state
	o.state, o.expected, o.note = ownOK, stored, ""
	o.notifyLocked()
	o.mu.Unlock()
	if err := o.reset(stored); err != nil {
		return stored, err
	}
	o.log.Warn("own feed: the operator accepted the store's head as our feed's head", "sequence", stored.Sequence, "was", was)
	return stored, nil
}

// status is ownFeed in the status method's answer.
func (o *ownFeed) status(ctx context.Context) map[string]any {
	o.refresh(ctx)
	stored, err := o.storeHead()
	o.mu.Lock()
	defer o.mu.Unlock()
	st := map[string]any{"state": o.state, "stored": stored.Sequence, "expected": o.expected.Sequence}
	if o.state == ownUnconfirmed {
		st["peersAnswered"] = o.answered
	}
	if refused := o.refusal("publish", stored.Sequence); refused != nil {
		st["error"] = refused.Error()
	}
	if err != nil {
		st["storeError"] = err.Error()
	}
	if o.writeErr != nil {
		st["writeError"] = o.writeErr.Error()
	}
	return st
}

// askOwnFeed, for a peer that just connected, asks it for our feed past
// the store's head while the own feed is not "ok". The request runs until
// the peer answers or the connection ends.
func (p *Plugin) askOwnFeed(ctx context.Context, e *muxrpc.Endpoint, peer refs.Feed) {
	if !p.own.missing() {
		return
	}
	p.srv.Go(func() { p.own.fetch(ctx, e, peer) })
}

// fetch asks peer (on e) for our feed from the store's head on, stores
// what it sends, and counts its answer.
func (o *ownFeed) fetch(ctx context.Context, e *muxrpc.Endpoint, peer refs.Feed) {
	log := o.log.With("peer", peer.String())
	stored, err := o.storeHead()
	if err != nil {
		log.Error("own feed: reading the store", "err", err)
		return
	}
	args := map[string]any{"id": o.self.String(), "seq": stored.Sequence + 1, "live": false, "keys": false}
	st, err := e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source, args)
	if err != nil {
		return // the connection ended
	}
	defer st.Close()
	var last message.FeedState // the last of our messages the peer sent
	var batch [][]byte
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		h, err := o.storeFromPeer(ctx, batch)
		batch = batch[:0]
		if h.Sequence > last.Sequence {
			last = h
		}
		return err
	}
	for {
		p, err := st.Recv(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			log.Debug("own feed: the peer did not answer", "err", err)
			return
		}
		batch = append(batch, p.Body)
		if len(batch) >= fetchBatch || st.Pending() == 0 {
			if err := flush(); err != nil {
				o.peerFailed(ctx, log, err)
				return
			}
		}
	}
	if err := flush(); err != nil {
		o.peerFailed(ctx, log, err)
		return
	}
	o.mu.Lock()
	o.answered++
	if o.state == ownUnconfirmed && last.Sequence > o.expected.Sequence {
		o.expected = last
	}
	o.notifyLocked()
	o.mu.Unlock()
	log.Info("own feed: a peer sent what it has of our feed", "from", stored.Sequence+1, "to", last.Sequence)
	o.refresh(ctx)
}

// storeFromPeer stores a batch of our messages from a peer, skipping those
// stored meanwhile (by replication), and returns the head of the last one
// stored or skipped.
func (o *ownFeed) storeFromPeer(ctx context.Context, batch [][]byte) (message.FeedState, error) {
	var last message.FeedState
	for _, raw := range batch {
		v, err := message.Parse(raw)
		if err != nil {
			return last, fmt.Errorf("own feed: a message from the peer: %w", err)
		}
		if a, _ := v.Get("author"); a.Str() != o.self.String() {
			return last, fmt.Errorf("own feed: the peer sent a message of %q when asked for ours", a.Str())
		}
	}
	for len(batch) > 0 {
		msgs, err := o.store.Append(ctx, batch...)
		if err == nil {
			return msgs[len(msgs)-1].State(), nil
		}
		var ae *store.AppendError
		if !errors.As(err, &ae) || !errors.Is(err, store.ErrDuplicate) {
			return last, err
		}
		if ae.Index > 0 {
			msgs, err := o.store.Append(ctx, batch[:ae.Index]...)
			if err != nil {
				return last, err
			}
			last = msgs[len(msgs)-1].State()
		}
		last = message.FeedState{ID: ae.Key, Sequence: ae.Sequence}
		batch = batch[ae.Index+1:]
	}
	return last, nil
}

// peerFailed handles a peer whose copy of our feed could not be stored:
// a conflicting message proves a fork; anything else only disqualifies
// this peer's answer.
func (o *ownFeed) peerFailed(ctx context.Context, log *slog.Logger, err error) {
	if errors.Is(err, message.ErrFork) {
		o.mu.Lock()
		if o.state != ownOK {
			o.forked("a peer holds a different message of our feed than the store: " + err.Error())
		}
		o.mu.Unlock()
		return
	}
	if ctx.Err() == nil && !errors.Is(err, store.ErrClosed) {
		log.Warn("own feed: the peer's copy of our feed was not accepted", "err", err)
	}
}
