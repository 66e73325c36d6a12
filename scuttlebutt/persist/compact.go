package persist

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/scuttlego/scuttle/scuttlebutt"
)

// Compact rewrites the log file as a snapshot of the replica (its header
// and history) followed by the updates applied since, and continues
// appending to it. It runs by itself when the file has grown (see
// Options.CompactRatio); calling it is only needed to shrink the file at a
// moment of one's choosing. Changes go on while the snapshot is written and
// wait only for its final fsync and rename.
//
// The steps: from now on keep a copy of every recorded update; take the
// replica's header and history under its lock (so every update recorded
// before is in it, and every one recorded after is not: its timestamp is
// above the header's clock for its source); write them to path.tmp; append
// the copies that are newer than the clock and already in the old file;
// fsync; then, holding the file (no other write can start), append the
// last such copies, fsync, rename path.tmp to path, fsync the directory,
// and switch to the new file. Updates recorded but not yet written stay
// queued, and go to the new file. A crash before the rename leaves the old
// file (Open removes path.tmp); after it, the new one.
func (l *Log) Compact() error {
	l.compactMu.Lock()
	defer l.compactMu.Unlock()
	l.mu.Lock()
	if err := l.usableLocked(); err != nil {
		l.mu.Unlock()
		return err
	}
	l.capturing = true
	l.capStart = l.seq
	l.captured.reset()
	l.mu.Unlock()

	tf, err := l.fs.OpenFile(l.tmpPath(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
	if err == nil {
		if err = keepMode(l.fs, tf, l.path); err != nil {
			tf.Close()
			l.fs.Remove(l.tmpPath())
		}
	}
	if err != nil {
		l.stopCapture()
		return fmt.Errorf("persist: compact: %w", err)
	}
	swapped := false
	defer func() {
		if !swapped {
			tf.Close()
			l.fs.Remove(l.tmpPath())
		}
	}()
	cw := &countWriter{w: tf}
	bw := bufio.NewWriterSize(cw, 256<<10)
	clock, err := l.writeSnapshot(bw)
	if err != nil {
		l.stopCapture()
		return fmt.Errorf("persist: compact: %w", err)
	}
	l.hook("snapshot")
	// Catch up with what was written to the old file meanwhile, twice, so
	// that little is left for the step that holds the file.
	for range 2 {
		l.mu.Lock()
		done := l.takeCapturedLocked()
		l.mu.Unlock()
		done.filter(clock)
		bw.Write(done.buf)
	}
	err = bw.Flush()
	if err == nil {
		err = tf.Sync()
	}
	if err != nil {
		l.stopCapture()
		return fmt.Errorf("persist: compact: %w", err)
	}

	l.mu.Lock()
	l.swapping = true
	for l.writing {
		l.cond.Wait()
	}
	l.swapping = false
	if err := l.usableLocked(); err != nil {
		l.cond.Broadcast()
		l.capturing = false
		l.captured.reset()
		l.mu.Unlock()
		return err
	}
	l.writing = true // hold the file: Sync callers wait
	last := l.takeCapturedLocked()
	l.capturing = false
	l.captured.reset()
	l.mu.Unlock()

	l.hook("swap")
	last.filter(clock)
	bw.Write(last.buf)
	err = bw.Flush()
	if err == nil {
		err = tf.Sync()
	}
	renamed := false
	if err == nil {
		err = l.fs.Rename(l.tmpPath(), l.path)
		renamed = err == nil
	}
	if err == nil {
		l.hook("renamed")
		err = l.fs.SyncDir(filepath.Dir(l.path))
	}
	l.hook("swapped")

	l.mu.Lock()
	defer l.mu.Unlock()
	l.writing = false
	l.cond.Broadcast()
	if err != nil {
		if renamed {
			// The new file is in place but may not survive a crash, and the
			// old one is gone from the directory: neither can be trusted.
			l.fail(err)
			return l.err
		}
		l.base = l.size // do not retry at once
		return fmt.Errorf("persist: compact: %w", err)
	}
	swapped = true
	old := l.f
	l.f = l.wrap(tf)
	l.size = cw.n
	l.base = cw.n
	l.pending.filter(clock) // what is queued and already in the snapshot
	l.stats.Compactions++
	old.Close()
	return nil
}

// usableLocked returns why the log cannot be compacted, if it cannot.
func (l *Log) usableLocked() error {
	switch {
	case l.err != nil:
		return l.err
	case l.closed || l.ctx.Err() != nil:
		return ErrClosed
	}
	return nil
}

func (l *Log) stopCapture() {
	l.mu.Lock()
	l.capturing = false
	l.captured.reset()
	l.base = l.size // do not retry at once
	l.mu.Unlock()
}

// takeCapturedLocked removes and returns the captured lines that are
// already written to the old file (those not written are also pending, and
// go to the new file from there).
func (l *Log) takeCapturedLocked() lines {
	k := 0
	if l.flushed > l.capStart {
		k = int(min(l.flushed-l.capStart, uint64(len(l.captured.ents))))
	}
	n := 0
	for _, e := range l.captured.ents[:k] {
		n += e.n
	}
	out := lines{buf: l.captured.buf[:n:n], ents: l.captured.ents[:k:k]}
	rest := lines{
		buf:  append([]byte(nil), l.captured.buf[n:]...),
		ents: append([]entry(nil), l.captured.ents[k:]...),
	}
	l.captured = rest
	l.capStart += uint64(k)
	return out
}

// writeSnapshot writes the replica's header and history (a persisted
// stream without its "SYNC") and returns the header's clock.
func (l *Log) writeSnapshot(w io.Writer) (scuttlebutt.Clock, error) {
	s := l.r.NewStream(scuttlebutt.Writable(false), scuttlebutt.Tail(false))
	defer s.Close()
	sw := &snapshotWriter{w: w, ctx: l.ctx}
	if _, err := s.Drain(sw); err != io.EOF {
		if err == nil {
			err = errors.New("read stream did not end")
		}
		return nil, err
	}
	if string(sw.hold) != syncLine {
		return nil, fmt.Errorf("read stream ended with %q, not SYNC", sw.hold)
	}
	var h struct {
		Clock scuttlebutt.Clock `json:"clock"`
	}
	if err := json.Unmarshal(sw.header, &h); err != nil || h.Clock == nil {
		return nil, fmt.Errorf("read stream header %q: %v", sw.header, err)
	}
	return h.Clock, nil
}

// snapshotWriter passes a read stream's output on, except its last line
// ("SYNC"), which it holds back, and keeps a copy of its first line (the
// header). It fails once ctx is done, which abandons the snapshot.
type snapshotWriter struct {
	w       io.Writer
	ctx     context.Context
	header  []byte
	hdrDone bool
	hold    []byte
}

func (s *snapshotWriter) Write(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	if !s.hdrDone {
		i := bytes.IndexByte(p, '\n')
		if i >= 0 {
			s.header = append(s.header, p[:i+1]...)
			s.hdrDone = true
		} else {
			s.header = append(s.header, p...)
		}
	}
	s.hold = append(s.hold, p...)
	if k := len(s.hold) - len(syncLine); k > 0 {
		if _, err := s.w.Write(s.hold[:k]); err != nil {
			return 0, err
		}
		s.hold = s.hold[:copy(s.hold, s.hold[k:])]
	}
	return len(p), nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
