package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// A RepairReport says what Repair kept of a store and what it lost.
type RepairReport struct {
	Path   string // the database file, rebuilt
	Backup string // where the old file is kept; empty when Repair failed before the swap
	// Damage lists the problems found in the old file (at most 20, like
	// DamageError); empty for a healthy file.
	Damage []string
	// Records is the number of log records read from the old file, and
	// Unreadable the number of receive sequences, up to the last record
	// read, whose record could not be read (on a damaged page).
	Records    int
	Unreadable uint64
	// Kept is the number of messages in the new store; Dropped the number
	// of records read but not kept: invalid (signature, shape), or after
	// a gap or an invalid message in their feed.
	Kept, Dropped int
	// Feeds is the number of feeds in the new store; Lost lists the feeds
	// known to have lost messages, ordered by feed. A feed whose last
	// messages are unreadable and whose entry in the old head index is
	// unreadable too cannot be known to have had them: it is not listed
	// (Unreadable still counts its records, unless they were the last of
	// the whole log).
	Feeds int
	Lost  []FeedLoss
	Took  time.Duration
}

// A FeedLoss is a feed that Repair could not rebuild whole.
type FeedLoss struct {
	Feed refs.Feed
	// Kept is the feed's last sequence in the new store (messages 1 to
	// Kept are there; 0 for none), and Had the last sequence the old file
	// knew of (its head index, an old copy of it, or the highest
	// sequence read).
	Kept, Had int64
	// Reason says why the message after Kept was not kept; empty when it
	// could not be read.
	Reason string
}

func (r RepairReport) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "store: repair of %s: kept %d messages of %d feeds; %d records read, %d unreadable, %d dropped",
		r.Path, r.Kept, r.Feeds, r.Records, r.Unreadable, r.Dropped)
	if r.Backup != "" {
		fmt.Fprintf(&b, "; old file kept as %s", r.Backup)
	}
	for _, l := range r.Lost {
		fmt.Fprintf(&b, "\n  %s: kept 1..%d of %d", l.Feed, l.Kept, l.Had)
		if l.Reason != "" {
			fmt.Fprintf(&b, " (%s)", l.Reason)
		}
	}
	for _, d := range r.Damage {
		fmt.Fprintf(&b, "\n  damage: %s", d)
	}
	return b.String()
}

// Repair rebuilds the store in directory dir from every message that can
// still be read from its database file and still validates, and reports
// what it kept and lost. The store must not be open (Repair takes its
// lock and fails with ErrLocked after WithLockTimeout). WithHMACKey sets
// the network key signatures are verified with; WithLogger the logger.
//
// Repair reads the old file without bbolt, checking every page (see
// verifyFile), so a damaged file cannot crash it: it walks the log
// bucket's B+tree, skipping damaged pages, and when the walk meets damage
// it also scans the pages the tree no longer reaches (and free pages) for
// log records. The log is the source of truth: the indexes are rebuilt
// from it. Each record's message is verified as Append verifies it
// (signature, shape, content) and must extend its feed: sequence 1, 2,
// 3... each with previous the message before. A feed keeps its messages
// up to the first one that is missing, invalid or forked; the ones after
// are dropped and reported. Messages keep their receive order and receive
// timestamps, and get new receive sequences, from 1 without gaps.
//
// Messages deleted (DeleteFeed, DeleteMessage) are not in the log's tree;
// but when the file is damaged, old copies of their pages among the free
// pages may be scanned and such messages kept again.
//
// The new store is written in a directory beside the old file, fsynced
// and checked (Check), then swapped in with a rename; the old file is kept
// as FileName.damaged-<UTC time> (a hard link made before the rename, so
// the swap is atomic). On error nothing is changed. Repairing a healthy
// store keeps every message.
func Repair(ctx context.Context, dir string, opts ...Option) (RepairReport, error) {
	start := time.Now()
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return RepairReport{}, err
		}
	}
	path := filepath.Join(dir, FileName)
	rep := RepairReport{Path: path}
	fd, err := os.Open(path)
	if err != nil {
		return rep, fmt.Errorf("store: repair: %w", err)
	}
	defer fd.Close()
	if err := lockFile(fd, cfg.lockTimeout); errors.Is(err, errLockTimeout) {
		return rep, fmt.Errorf("%w: %s (waited %v)", ErrLocked, path, cfg.lockTimeout)
	} else if err != nil {
		return rep, fmt.Errorf("store: repair: lock %s: %w", path, err)
	}
	defer unlockFile(fd)
	fi, err := fd.Stat()
	if err != nil {
		return rep, fmt.Errorf("store: repair: %w", err)
	}

	tmp, err := os.MkdirTemp(dir, ".repair-")
	if err != nil {
		return rep, fmt.Errorf("store: repair: %w", err)
	}
	defer os.RemoveAll(tmp)
	clock := &replayClock{}
	replay := func(c *config) error { c.replay = clock.next; return nil }
	ns, err := Open(tmp, WithLogger(cfg.logger), WithLockTimeout(cfg.lockTimeout), replay)
	if err != nil {
		return rep, fmt.Errorf("store: repair: new store: %w", err)
	}
	r := &rebuild{
		ctx:   ctx,
		cfg:   cfg,
		ns:    ns,
		clock: clock,
		rep:   &rep,
		heads: make(map[refs.Feed]*rebuiltFeed),
	}
	err = r.salvage(fd, fi.Size())
	if err == nil {
		err = r.flush()
	}
	if err == nil {
		err = ns.Check(ctx)
	}
	if cerr := ns.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return rep, fmt.Errorf("store: repair: %w", err)
	}
	r.report()

	backup := path + ".damaged-" + time.Now().UTC().Format("20060102T150405.000Z")
	if err := swap(filepath.Join(tmp, FileName), path, backup); err != nil {
		return rep, fmt.Errorf("store: repair: %w", err)
	}
	rep.Backup = backup
	rep.Took = time.Since(start)
	cfg.logger.Info("store: repaired", "path", path, "kept", rep.Kept, "feeds", rep.Feeds,
		"unreadable", rep.Unreadable, "dropped", rep.Dropped, "feeds_with_losses", len(rep.Lost), "backup", backup, "took", rep.Took)
	return rep, nil
}

// swap replaces path with the file at fresh, keeping the old file as
// backup, and fsyncs the directory.
func swap(fresh, path, backup string) error {
	if err := os.Link(path, backup); err != nil {
		// No hard links here: rename, leaving a moment without a file.
		if err := os.Rename(path, backup); err != nil {
			return err
		}
	}
	if err := os.Rename(fresh, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// A replayClock gives the new store's committer the receive timestamps
// of the old records, in the order they are appended.
type replayClock struct {
	mu  sync.Mutex
	ts  []float64
	pos int
}

func (c *replayClock) push(ts float64) {
	c.mu.Lock()
	c.ts = append(c.ts, ts)
	c.mu.Unlock()
}

func (c *replayClock) next() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ts float64
	if c.pos < len(c.ts) {
		ts = c.ts[c.pos]
		c.pos++
	}
	if c.pos == len(c.ts) {
		c.ts, c.pos = c.ts[:0], 0
	}
	return ts
}

// repairBatch is how many messages Repair appends per transaction.
const repairBatch = 2000

// rebuild is the state of one Repair.
type rebuild struct {
	ctx   context.Context
	cfg   config
	ns    *Store
	clock *replayClock
	rep   *RepairReport

	heads      map[refs.Feed]*rebuiltFeed
	oldHeads   map[refs.Feed]int64 // the old head index, as far as it reads
	batch      []*message.Message
	lastSeq    uint64 // the highest receive sequence read
	distinct   uint64 // distinct receive sequences read
	prevSeq    uint64
	badRecords []string // problems of records
	version    []byte
	deleted    uint64 // messages deleted from the old store (its meta bucket)
}

type rebuiltFeed struct {
	state   message.FeedState
	highest int64
	broken  string // why the feed stopped; empty while it is whole
}

// A salvaged record is a log record found outside the log's B+tree.
type salvaged struct {
	seq    uint64
	rec    record
	orphan bool // found outside the log's B+tree
}

// salvage reads the log from the old file and appends what validates.
func (r *rebuild) salvage(rd io.ReaderAt, size int64) error {
	f, err := openBoltFile(rd, size)
	var note string
	if err != nil {
		f, note = salvageMeta(rd, size)
		if f == nil {
			return fmt.Errorf("no page of %s can be trusted: %w", r.rep.Path, err)
		}
		r.rep.Damage = append(r.rep.Damage, err.Error())
	}
	if note != "" {
		r.rep.Damage = append(r.rep.Damage, note)
	}
	free, err := f.freelist()
	if err != nil {
		r.rep.Damage = append(r.rep.Damage, err.Error())
		free = map[uint64]bool{}
	}
	w, err := r.survey(f, free)
	if err != nil {
		return err
	}
	var orphans []salvaged
	if w.nproblem > 0 || note != "" {
		// Pages the walk did not reach may hold log records.
		orphans = scanOrphans(f, w.seen, func(feed refs.Feed, seq int64) {
			r.oldHeads[feed] = max(r.oldHeads[feed], seq)
		})
		slices.SortStableFunc(orphans, func(a, b salvaged) int { return cmp.Compare(a.seq, b.seq) })
		// Free pages hold old copies of the same records.
		orphans = slices.CompactFunc(orphans, func(a, b salvaged) bool { return a.seq == b.seq && bytes.Equal(a.rec, b.rec) })
	}
	if err := r.readLog(f, free, orphans); err != nil {
		return err
	}
	r.rep.Damage = append(r.rep.Damage, w.problems...)
	if w.nproblem > len(w.problems) {
		r.rep.Damage = append(r.rep.Damage, fmt.Sprintf("and %d more problems", w.nproblem-len(w.problems)))
	}
	r.rep.Damage = append(r.rep.Damage, r.badRecords...)
	r.rep.Damage = r.rep.Damage[:min(len(r.rep.Damage), maxProblems)]
	// Deleted messages left their positions empty: they are not
	// unreadable. (Those deleted after the last record read are not in
	// the gap; the count is then low.)
	r.rep.Unreadable = r.lastSeq - r.distinct
	r.rep.Unreadable -= min(r.rep.Unreadable, r.deleted)
	return nil
}

// survey walks every bucket of f, checking its pages, and reads the old
// head index and the format version; the walker it returns has the
// problems found and the pages reached.
func (r *rebuild) survey(f *boltFile, free map[uint64]bool) (*walker, error) {
	w := newWalker(f, free)
	r.oldHeads = make(map[refs.Feed]int64)
	w.visit = func(bucket, k, v []byte) error {
		switch {
		case bytes.Equal(bucket, bucketHead) && len(k) == 32 && len(v) == headLen:
			if feed, err := feedOf(k); err == nil {
				r.oldHeads[feed] = int64(binary.BigEndian.Uint32(v))
			}
		case bytes.Equal(bucket, bucketMeta) && bytes.Equal(k, metaVersion):
			r.version = append([]byte(nil), v...)
		case bytes.Equal(bucket, bucketMeta) && bytes.Equal(k, metaDeleted) && len(v) == 8:
			r.deleted = binary.BigEndian.Uint64(v)
		}
		return nil
	}
	if err := w.run(); err != nil {
		return nil, err
	}
	if r.version != nil && (len(r.version) != 4 || binary.BigEndian.Uint32(r.version) != formatVersion && binary.BigEndian.Uint32(r.version) != formatDeleted) {
		return nil, fmt.Errorf("database format %x, this version reads %d and %d: not a damaged file of this version", r.version, formatVersion, formatDeleted)
	}
	return w, nil
}

// readLog walks the log's B+tree in receive order and processes its
// records, merging in the orphans (sorted by receive sequence).
func (r *rebuild) readLog(f *boltFile, free map[uint64]bool, orphans []salvaged) error {
	w := newWalker(f, free)
	w.want = func(name []byte) bool { return bytes.Equal(name, bucketLog) }
	var tree []salvaged
	w.visit = func(_, k, v []byte) error {
		if len(k) == seqLen && record(v).valid() {
			tree = append(tree, salvaged{seq: getSeq(k), rec: record(bytes.Clone(v))})
		}
		if len(tree) >= repairBatch {
			return r.records(&tree, &orphans)
		}
		return nil
	}
	if err := w.run(); err != nil {
		return err
	}
	if err := r.records(&tree, &orphans); err != nil {
		return err
	}
	return r.records(&tree, &orphans) // the orphans after the tree's last record
}

// salvageMeta makes the most of a file whose meta pages are damaged or
// which is truncated: the pages that are in the file are read, and the
// missing ones are reported.
func salvageMeta(rd io.ReaderAt, size int64) (*boltFile, string) {
	f, err := openBoltFileLax(rd, size)
	if err != nil {
		// No meta page to trust: scan every page of the file, assuming
		// the page size bbolt gives new files here.
		ps := int64(os.Getpagesize())
		if size/ps < 3 {
			return nil, ""
		}
		f = &boltFile{r: rd, size: size, ps: ps, meta: boltMeta{pageSize: uint32(ps), pgid: uint64(size / ps), freelist: noFreelist}}
		return f, fmt.Sprintf("no meta page: scanning all %d pages of %d bytes", f.meta.pgid, ps)
	}
	if have := uint64(size / f.ps); f.meta.pgid > have {
		note := fmt.Sprintf("pages %d to %d are missing", have, f.meta.pgid-1)
		f.meta.pgid = have
		return f, note
	}
	return f, ""
}

// records processes the tree's records in *tree, with the orphans of lower
// receive sequences before them (all remaining orphans when tree is
// empty), and empties *tree.
func (r *rebuild) records(tree *[]salvaged, orphans *[]salvaged) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	var items []salvaged
	for _, t := range *tree {
		for len(*orphans) > 0 && (*orphans)[0].seq < t.seq {
			items = append(items, (*orphans)[0])
			*orphans = (*orphans)[1:]
		}
		for len(*orphans) > 0 && (*orphans)[0].seq == t.seq && bytes.Equal((*orphans)[0].rec, t.rec) {
			*orphans = (*orphans)[1:] // an old copy of the same record
		}
		items = append(items, t)
	}
	if len(*tree) == 0 {
		items, *orphans = *orphans, nil
	}
	*tree = (*tree)[:0]
	// Signatures are verified on every core, then the chains in order.
	msgs := make([]*message.Message, len(items))
	errs := make([]error, len(items))
	workers := max(1, min(runtime.GOMAXPROCS(0), len(items)/minPerWorker))
	per := (len(items) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w * per; i < min((w+1)*per, len(items)); i++ {
				msgs[i], errs[i] = verify(bytes.Clone(items[i].rec.raw()), r.cfg.hmacKey)
			}
		})
	}
	wg.Wait()
	for i, it := range items {
		if err := r.record(it, msgs[i], errs[i]); err != nil {
			return err
		}
	}
	return nil
}

// record verifies one old record and queues its message if it extends its
// feed.
func (r *rebuild) record(sv salvaged, m *message.Message, err error) error {
	if err != nil && sv.orphan {
		return nil // not a record, or a damaged one whose sequence means nothing
	}
	r.rep.Records++
	if sv.seq != r.prevSeq || r.distinct == 0 {
		r.distinct++
		r.prevSeq = sv.seq
		r.lastSeq = max(r.lastSeq, sv.seq)
	}
	if err != nil {
		r.rep.Dropped++
		if len(r.badRecords) < maxProblems {
			r.badRecords = append(r.badRecords, fmt.Sprintf("log record %d does not validate: %v", sv.seq, err))
		}
		return nil // its feed is unknown; its next message shows the gap
	}
	h := r.heads[m.Author]
	if h == nil {
		h = &rebuiltFeed{}
		r.heads[m.Author] = h
	}
	h.highest = max(h.highest, m.Sequence)
	if m.Sequence <= h.state.Sequence && sv.orphan {
		_, err := r.ns.Get(m.Key)
		if err == nil || slices.ContainsFunc(r.batch, func(b *message.Message) bool { return b.Key == m.Key }) {
			r.rep.Records--
			return nil // a stale copy of a kept message
		}
	}
	if h.broken == "" {
		switch {
		case m.Sequence != h.state.Sequence+1:
			h.broken = fmt.Sprintf("message %d is missing or invalid", h.state.Sequence+1)
		case m.Sequence > 1 && (m.Previous == nil || *m.Previous != h.state.ID):
			h.broken = fmt.Sprintf("message %d (%s) does not follow message %d: a fork", m.Sequence, m.Key, h.state.Sequence)
		case m.Sequence == 1 && m.Previous != nil:
			h.broken = "message 1 has a previous"
		}
	}
	if h.broken != "" {
		r.rep.Dropped++
		return nil
	}
	h.state = m.State()
	r.batch = append(r.batch, m)
	r.clock.push(sv.rec.received())
	if len(r.batch) >= repairBatch {
		return r.flush()
	}
	return nil
}

// flush appends the queued messages to the new store.
func (r *rebuild) flush() error {
	if len(r.batch) == 0 {
		return nil
	}
	if err := r.ns.AppendMessages(r.ctx, r.batch...); err != nil {
		return err
	}
	r.rep.Kept += len(r.batch)
	r.batch = r.batch[:0]
	return nil
}

// report fills in the feeds of the report.
func (r *rebuild) report() {
	for feed, h := range r.heads {
		if h.state.Sequence > 0 {
			r.rep.Feeds++
		}
		had := max(h.highest, r.oldHeads[feed])
		if had > h.state.Sequence {
			r.rep.Lost = append(r.rep.Lost, FeedLoss{Feed: feed, Kept: h.state.Sequence, Had: had, Reason: h.broken})
		}
	}
	for feed, had := range r.oldHeads {
		if r.heads[feed] == nil && had > 0 {
			r.rep.Lost = append(r.rep.Lost, FeedLoss{Feed: feed, Had: had})
		}
	}
	slices.SortFunc(r.rep.Lost, func(a, b FeedLoss) int { return strings.Compare(a.Feed.String(), b.Feed.String()) })
}

// scanOrphans reads every page of f that seen does not mark and returns
// the log records of those that are leaves of the log: 8-byte keys with
// records as values. They are old copies of log pages (free pages) or
// pages whose parent is damaged. It hands the entries of leaves of the
// head index (32-byte keys, 44-byte values) to head: they tell how long a
// feed was.
func scanOrphans(f *boltFile, seen []uint64, head func(refs.Feed, int64)) []salvaged {
	var out []salvaged
	for id := uint64(2); id < f.meta.pgid; id++ {
		if seen[id/64]&(1<<(id%64)) != 0 {
			continue
		}
		p, err := f.page(id)
		if err != nil || ne.Uint16(p[8:]) != leafPage {
			continue
		}
		count := int(ne.Uint16(p[10:]))
		for i := range count {
			e := pageHeaderSize + i*elementSize
			if e+elementSize > len(p) {
				break
			}
			flags, pos, ksize, vsize := ne.Uint32(p[e:]), uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
			if flags != 0 || uint64(e)+pos+ksize+vsize > uint64(len(p)) {
				continue
			}
			k := p[uint64(e)+pos : uint64(e)+pos+ksize]
			v := record(p[uint64(e)+pos+ksize : uint64(e)+pos+ksize+vsize])
			if ksize == 32 && vsize == headLen {
				if feed, err := feedOf(k); err == nil {
					head(feed, int64(binary.BigEndian.Uint32(v)))
				}
				continue
			}
			if ksize != seqLen {
				continue
			}
			if !v.valid() || v.raw()[0] != '{' {
				continue
			}
			out = append(out, salvaged{getSeq(k), record(bytes.Clone(v)), true})
		}
	}
	return out
}
