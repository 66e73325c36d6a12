package persist

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/scuttlebutt"
)

// Defaults of Options.
const (
	// DefaultCompactRatio is the growth, relative to the file's size after
	// the last compaction, at which a Log compacts: the file of a Model is
	// at most about twice the size of its history (or CompactMinSize).
	DefaultCompactRatio = 2.0
	// DefaultCompactMinSize is the size in bytes below which a Log is never
	// compacted.
	DefaultCompactMinSize = 1 << 20
)

// minCompactRatio is the lowest CompactRatio used: below it a log whose
// history does not shrink (Events) would be rewritten too often.
const minCompactRatio = 1.1

// Options configure a Log. The zero value is the defaults.
type Options struct {
	// CompactRatio: the log is compacted when its file has grown larger
	// than CompactRatio times its size after the last compaction (after
	// Open, the estimated size of the replica's history: the file's size
	// times the share of its updates the replica kept). A higher ratio
	// rewrites less often and lets the file grow larger. 0 means
	// DefaultCompactRatio, a negative value disables compaction, and
	// values below 1.1 count as 1.1.
	CompactRatio float64
	// CompactMinSize: a file smaller than this many bytes is never
	// compacted (0 means DefaultCompactMinSize).
	CompactMinSize int64
	// Logger receives warnings: a torn tail cut at Open, a failed
	// compaction (default: discard).
	Logger *slog.Logger

	fs   vfs.FS             // tests: the file system (default vfs.Default)
	wrap func(file) file    // tests: wraps each file the log appends to
	hook func(stage string) // tests: called at each stage of a compaction
}

// file is what a Log appends to: a vfs.File, wrapped in tests to inject
// faults or to slow writes down.
type file interface {
	io.Writer
	Sync() error
	Close() error
}

// Stats are counters of a Log.
type Stats struct {
	Size        int64  // bytes in the file now
	Records     uint64 // updates recorded since Open
	Appended    int64  // bytes of update lines appended since Open (what the file would hold without compaction)
	Syncs       uint64 // rounds of write and fsync: concurrent changes share one
	Compactions int    // compactions completed since Open
	Loaded      int    // updates Open read from the file
	Truncated   int64  // bytes of a torn tail Open cut off
}

// A Log keeps a replica durable in an append-only file; see the package
// documentation. It implements scuttlebutt.Journal. Its methods are safe
// for concurrent use.
type Log struct {
	path    string
	fs      vfs.FS
	r       *scuttlebutt.Replica
	ratio   float64 // <= 0: no automatic compaction
	minSize int64
	logger  *slog.Logger
	wrap    func(file) file
	hook    func(stage string)

	compactMu sync.Mutex // one compaction at a time

	mu        sync.Mutex
	cond      sync.Cond
	f         file
	size      int64  // bytes in f
	base      int64  // the size compaction growth is measured against
	pending   lines  // recorded, not yet handed to a writer
	spare     lines  // the buffer the last writer returned, for reuse
	seq       uint64 // records recorded
	flushed   uint64 // records written and fsynced
	writing   bool   // a writer, or a compaction swapping files, owns f
	swapping  bool   // a compaction waits to own f: no new writer starts
	err       error  // sticky: the file can no longer be trusted
	closed    bool
	capturing bool   // a compaction is running: keep a copy of each record
	capStart  uint64 // seq of the record before the first in captured
	captured  lines
	stats     Stats

	closeOnce sync.Once

	kick    chan struct{} // wakes the flusher: records are pending
	compact chan struct{} // wakes the compactor: the file has grown
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// lines is a buffer of encoded update lines and, for each, its source and
// timestamp, which compaction needs to tell whether a snapshot holds it.
type lines struct {
	buf  []byte
	ents []entry
}

type entry struct {
	src string
	ts  float64
	n   int // bytes of the line, newline included
}

func (ls *lines) add(line []byte, u scuttlebutt.Update) {
	ls.buf = append(ls.buf, line...)
	ls.ents = append(ls.ents, entry{src: u.Source, ts: u.Timestamp, n: len(line)})
}

func (ls *lines) reset() {
	clear(ls.ents)
	ls.buf, ls.ents = ls.buf[:0], ls.ents[:0]
}

// filter keeps the lines whose update a replica with the given clock
// lacks: those a snapshot taken at that clock does not hold.
func (ls *lines) filter(clock scuttlebutt.Clock) {
	w, off, k := 0, 0, 0
	for _, e := range ls.ents {
		if clock.Lacks(scuttlebutt.Update{Source: e.src, Timestamp: e.ts}) {
			copy(ls.buf[w:], ls.buf[off:off+e.n])
			w += e.n
			ls.ents[k] = e
			k++
		}
		off += e.n
	}
	clear(ls.ents[k:])
	ls.buf, ls.ents = ls.buf[:w], ls.ents[:k]
}

// appendLine appends u's wire form and a newline.
func appendLine(dst []byte, u scuttlebutt.Update) []byte {
	dst = append(dst, '[')
	if len(u.Change) == 0 {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, u.Change...)
	}
	dst = append(dst, ',')
	dst = jsjson.AppendFloat(dst, u.Timestamp)
	dst = append(dst, ',')
	dst = jsjson.AppendString(dst, u.Source)
	for _, x := range u.Extra {
		dst = append(append(dst, ','), x...)
	}
	return append(dst, ']', '\n')
}

// Open loads the log file at path into the replica, creating the file
// (with a header line) if it does not exist, and attaches a Log to the
// replica: from then on every update the replica applies is appended to
// the file, and local changes return once they are durable.
//
// Call Open before the replica is connected to peers or changed
// concurrently. If the replica already holds updates, Open writes them to
// the file too (by a compaction). A torn tail left by a crash is cut off
// (Stats.Truncated); a file damaged elsewhere fails with ErrCorrupt, and
// the replica then holds the updates before the damage.
//
// The replica should have the id of the file's header (see ReadID), so
// that its own updates keep their source across restarts.
func Open(path string, r *scuttlebutt.Replica, opts Options) (*Log, error) {
	l := &Log{
		path:    path,
		fs:      opts.fs,
		r:       r,
		ratio:   opts.CompactRatio,
		minSize: opts.CompactMinSize,
		logger:  opts.Logger,
		wrap:    opts.wrap,
		hook:    opts.hook,
		kick:    make(chan struct{}, 1),
		compact: make(chan struct{}, 1),
	}
	l.cond.L = &l.mu
	switch {
	case l.ratio == 0:
		l.ratio = DefaultCompactRatio
	case l.ratio > 0 && l.ratio < minCompactRatio:
		l.ratio = minCompactRatio
	}
	if l.minSize == 0 {
		l.minSize = DefaultCompactMinSize
	}
	if l.fs == nil {
		l.fs = vfs.Default
	}
	if l.logger == nil {
		l.logger = slog.New(slog.DiscardHandler)
	}
	if l.wrap == nil {
		l.wrap = func(f file) file { return f }
	}
	if l.hook == nil {
		l.hook = func(string) {}
	}
	if err := l.fs.Remove(l.tmpPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("persist: open: %w", err)
	}
	hadState := len(r.Clock()) > 0
	f, err := l.load()
	if err != nil {
		return nil, err
	}
	l.f = l.wrap(f)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	r.SetJournal(l)
	l.wg.Add(2)
	go l.flusher()
	go l.compactor()
	if hadState {
		if err := l.Compact(); err != nil {
			l.Close()
			return nil, err
		}
	} else {
		l.mu.Lock()
		l.maybeCompactLocked()
		l.mu.Unlock()
	}
	return l, nil
}

func (l *Log) tmpPath() string { return l.path + ".tmp" }

// load opens the file, applies it to the replica, cuts a torn tail and a
// final "SYNC", and leaves the file positioned for appending.
func (l *Log) load() (vfs.File, error) {
	f, err := l.fs.OpenFile(l.path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = l.create()
	}
	if err != nil {
		return nil, fmt.Errorf("persist: open: %w", err)
	}
	fail := func(err error) (vfs.File, error) {
		f.Close()
		return nil, err
	}
	res, err := scan(bufio.NewReaderSize(f, 256<<10), l.r.Apply, true)
	if err != nil {
		return fail(fmt.Errorf("persist: open %s: %w", l.path, err))
	}
	if res.lines == 0 && res.size > 0 {
		// Open writes a new file's header atomically, so a crash cannot
		// leave a file without a valid line: this is some other file.
		return fail(fmt.Errorf("%w: %s has no valid line", ErrCorrupt, l.path))
	}
	l.stats.Loaded = res.updates
	l.stats.Truncated = res.size - res.valid
	if res.end < res.size {
		if l.stats.Truncated > 0 {
			l.logger.Warn("persist: cut a torn tail", "path", l.path, "bytes", l.stats.Truncated)
		}
		if err := f.Truncate(res.end); err != nil {
			return fail(fmt.Errorf("persist: open: %w", err))
		}
	}
	if _, err := f.Seek(res.end, io.SeekStart); err != nil {
		return fail(fmt.Errorf("persist: open: %w", err))
	}
	if res.end == 0 { // an empty file
		hdr := l.header()
		if _, err := f.Write(hdr); err != nil {
			return fail(fmt.Errorf("persist: open: %w", err))
		}
		res.end = int64(len(hdr))
	}
	if res.end != res.size {
		if err := f.Sync(); err != nil {
			return fail(fmt.Errorf("persist: open: %w", err))
		}
	}
	// The file's directory entry is made durable on every open: an
	// earlier open (or create) may have renamed it into place and then
	// failed, or crashed, before it synced the directory, and what is
	// acknowledged from now on must not vanish with the entry.
	if err := l.fs.SyncDir(filepath.Dir(l.path)); err != nil {
		return fail(fmt.Errorf("persist: open: %w", err))
	}
	l.size = res.end
	l.base = res.end
	if l.ratio > 0 && res.updates > 0 {
		// The replica keeps fewer updates than the file holds if some were
		// superseded: measure growth against its history's share.
		live := len(l.r.History(nil))
		l.base = max(1, res.end*int64(min(live, res.updates))/int64(res.updates))
	}
	return f, nil
}

// header returns the first line of a new file: the replica's id and an
// empty clock (readers do not import the clock).
func (l *Log) header() []byte {
	hdr := []byte(`{"id":`)
	return append(jsjson.AppendString(hdr, l.r.ID()), `,"clock":{}}`+"\n"...)
}

// create writes a new file holding a header line atomically (a temporary
// file renamed into place), so that the file never exists without one,
// and opens it.
func (l *Log) create() (vfs.File, error) {
	tmp, err := l.fs.OpenFile(l.tmpPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err != nil {
		return nil, err
	}
	_, err = tmp.Write(l.header())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = l.fs.Rename(l.tmpPath(), l.path)
	}
	if err == nil {
		err = l.fs.SyncDir(filepath.Dir(l.path))
	}
	if err != nil {
		l.fs.Remove(l.tmpPath())
		return nil, err
	}
	return l.fs.OpenFile(l.path, os.O_RDWR, 0)
}

// Record implements scuttlebutt.Journal: it queues the update's line for
// the next write. The replica calls it with its lock held.
func (l *Log) Record(u scuttlebutt.Update) {
	l.mu.Lock()
	if l.closed || l.err != nil {
		l.mu.Unlock()
		return
	}
	start := len(l.pending.buf)
	l.pending.buf = appendLine(l.pending.buf, u)
	line := l.pending.buf[start:]
	l.pending.ents = append(l.pending.ents, entry{src: u.Source, ts: u.Timestamp, n: len(line)})
	if l.capturing {
		l.captured.add(line, u)
	}
	l.seq++
	l.stats.Records++
	l.mu.Unlock()
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Sync implements scuttlebutt.Journal: it returns once every update
// recorded before the call is written and fsynced. Callers that arrive
// while a write is in flight wait for it, then one of them writes what
// they all recorded with one fsync (group commit). After a failed write or
// fsync the log stays failed and Sync returns the error.
func (l *Log) Sync() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		// Record drops what a failed log is given: nothing is pending,
		// and the change is not durable.
		return l.err
	}
	target := l.seq
	for l.flushed < target {
		switch {
		case l.err != nil:
			return l.err
		case l.closed:
			return ErrClosed
		case l.writing || l.swapping:
			l.cond.Wait()
		default:
			l.flushLocked()
		}
	}
	return nil
}

// flushLocked writes and fsyncs the pending lines, releasing the lock
// meanwhile; other callers wait on writing.
func (l *Log) flushLocked() {
	out, f, end := l.pending, l.f, l.seq
	l.pending, l.spare = l.spare, lines{}
	l.pending.reset()
	l.writing = true
	l.mu.Unlock()
	_, err := f.Write(out.buf)
	if err == nil {
		err = f.Sync()
	}
	l.mu.Lock()
	l.writing = false
	l.cond.Broadcast()
	if err != nil {
		l.fail(err)
		return
	}
	l.flushed = end
	l.size += int64(len(out.buf))
	l.stats.Appended += int64(len(out.buf))
	l.stats.Syncs++
	out.reset()
	l.spare = out
	l.maybeCompactLocked()
}

// fail makes the log fail for good. The lock is held.
func (l *Log) fail(err error) {
	if l.err == nil {
		l.err = fmt.Errorf("persist: %s: %w", l.path, err)
		l.logger.Error("persist: log failed", "path", l.path, "err", err)
	}
	l.pending.reset()
	l.cond.Broadcast()
}

func (l *Log) maybeCompactLocked() {
	if l.shouldCompactLocked() {
		select {
		case l.compact <- struct{}{}:
		default:
		}
	}
}

func (l *Log) shouldCompactLocked() bool {
	return l.ratio > 0 && !l.capturing && l.err == nil && !l.closed &&
		l.size >= l.minSize && float64(l.size) > l.ratio*float64(l.base)
}

// flusher writes updates recorded outside LocalUpdate (those from peers),
// so that they become durable without waiting for a local change.
func (l *Log) flusher() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.kick:
			l.Sync() // an error is sticky and was logged
		}
	}
}

func (l *Log) compactor() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.compact:
			l.mu.Lock()
			due := l.shouldCompactLocked()
			l.mu.Unlock()
			if !due {
				continue
			}
			if err := l.Compact(); err != nil && l.ctx.Err() == nil {
				l.logger.Warn("persist: compaction failed", "path", l.path, "err", err)
			}
		}
	}
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.stats
	st.Size = l.size
	return st
}

// Close detaches the log from the replica, stops its goroutines (a running
// compaction is abandoned, its temporary file removed), writes what is
// pending followed by "SYNC", fsyncs and closes the file. The replica keeps
// working, without durability. Close returns the error that failed the log,
// if any; later calls return it again and do nothing else.
func (l *Log) Close() error {
	l.closeOnce.Do(l.close)
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

func (l *Log) close() {
	l.r.SetJournal(nil)
	l.cancel()
	l.wg.Wait()
	l.compactMu.Lock() // a Compact called by the user ends too
	defer l.compactMu.Unlock()
	err := l.Sync()
	l.mu.Lock()
	defer l.mu.Unlock()
	for l.writing {
		l.cond.Wait()
	}
	if err == nil && l.err == nil {
		if _, err = io.WriteString(l.f, syncLine); err == nil {
			err = l.f.Sync()
		}
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.closed = true
	l.cond.Broadcast()
	if err != nil {
		l.fail(err)
	}
}
