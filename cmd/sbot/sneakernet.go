package main

// Sneakernet: feeds carried on a USB stick. `sbot export` writes the
// messages another peer lacks into one file, a bundle; `sbot import` adds
// a bundle's messages to the store. The format, one JSON value per line:
//
//	{"sneakernet":1,"from":"@…","created":T,"feeds":{"@a":[FIRST,LAST],…}}
//	<a signed message value, compact, as replication sends it>
//	…
//	{"end":N,"sha256":"<base64 of the SHA-256 of every line before this one>"}
//
// The first line says what the exporter meant to write; the last says what
// it wrote: N messages, and a hash that shows a truncated or edited file.
// A feed's messages are consecutive and in order. Every message carries its
// author's signature, so the importer (the server's createWriteStream, the
// validation replication uses: signature, sequence, previous, forks) needs
// to trust nothing else: a bundle can add only messages their authors
// signed, in their feeds' order. Import stops at the first message that
// does not validate and says which line it is; what came before it is
// stored, since each of those is valid.

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/refs"
)

const (
	bundleVersion = 1
	// maxBundleLine bounds one line of a bundle: ssb-validate's limit on a
	// message is 8 KiB of JSON (in UTF-16 units), far below.
	maxBundleLine = 1 << 20
	// progressEvery is how often a progress line is written to stderr, once
	// a run has lasted that long.
	progressEvery = time.Second
)

type bundleHeader struct {
	Sneakernet int                 `json:"sneakernet"`
	From       string              `json:"from"`
	Created    float64             `json:"created"`
	Feeds      map[string][2]int64 `json:"feeds"`
}

type bundleTrailer struct {
	End    *int64 `json:"end"`
	SHA256 string `json:"sha256"`
}

// progress writes a line to stderr, rewritten in place, at most every
// progressEvery, and only for runs that last longer than that.
type progress struct {
	w     io.Writer
	what  string
	total int64
	start time.Time
	last  time.Time
	shown bool
}

func newProgress(w io.Writer, what string, total int64) *progress {
	now := time.Now()
	return &progress{w: w, what: what, total: total, start: now, last: now}
}

func (p *progress) update(n int64) {
	if time.Since(p.last) < progressEvery {
		return
	}
	p.last = time.Now()
	p.shown = true
	rate := float64(n) / time.Since(p.start).Seconds()
	if p.total > 0 {
		fmt.Fprintf(p.w, "\r%s %d of %d messages (%.0f%%, %.0f/s)   ", p.what, n, p.total, 100*float64(n)/float64(p.total), rate)
	} else {
		fmt.Fprintf(p.w, "\r%s %d messages (%.0f/s)   ", p.what, n, rate)
	}
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprintln(p.w)
	}
}

// readClock reads a vector clock, {feed: sequence}: the argument itself
// when it is JSON, else the file it names ("-" for stdin).
func readClock(arg string, stdin io.Reader) (map[string]int64, error) {
	var b []byte
	switch {
	case strings.HasPrefix(strings.TrimSpace(arg), "{"):
		b = []byte(arg)
	case arg == "-":
		var err error
		if b, err = io.ReadAll(io.LimitReader(stdin, 64<<20)); err != nil {
			return nil, err
		}
	default:
		var err error
		if b, err = os.ReadFile(arg); err != nil {
			return nil, fmt.Errorf("--since: %w", err)
		}
	}
	var clock map[string]int64
	if err := json.Unmarshal(b, &clock); err != nil {
		return nil, fmt.Errorf("--since: not a vector clock ({\"@feed\": sequence}, as sbot getVectorClock prints): %w", err)
	}
	for f := range clock {
		if _, err := refs.ParseFeed(f); err != nil {
			return nil, fmt.Errorf("--since: %w", err)
		}
	}
	return clock, nil
}

// export writes a bundle of what the server holds beyond since (every feed,
// or those of --feeds) to out.
func (c *client) export(ctx context.Context, f flags, stdin io.Reader, out, stderr io.Writer) error {
	if len(f.args) > 0 {
		return errors.New("usage: sbot export [--feeds @FEED[,@FEED...]] [--since CLOCK] > BUNDLE")
	}
	since := map[string]int64{}
	if v, ok := f.get("since"); ok {
		var err error
		if since, err = readClock(v, stdin); err != nil {
			return err
		}
	}
	var clock map[string]int64
	if err := c.e.AsyncJSON(ctx, &clock, muxrpc.Method{"getVectorClock"}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	var who struct{ ID string }
	if err := c.e.AsyncJSON(ctx, &who, muxrpc.Method{"whoami"}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	feeds := map[string]bool{}
	for i, name := range f.names {
		if name != "feeds" {
			continue
		}
		for _, id := range strings.Split(f.values[i], ",") {
			if _, err := refs.ParseFeed(id); err != nil {
				return fmt.Errorf("--feeds: %w", err)
			}
			feeds[id] = true
		}
	}
	h := bundleHeader{Sneakernet: bundleVersion, From: who.ID, Created: float64(time.Now().UnixMilli()), Feeds: map[string][2]int64{}}
	var order []string
	var total int64
	for id, latest := range clock {
		if len(feeds) > 0 && !feeds[id] {
			continue
		}
		if first := since[id] + 1; first <= latest {
			h.Feeds[id] = [2]int64{first, latest}
			order = append(order, id)
			total += latest - first + 1
		}
	}
	slices.Sort(order)

	w := bufio.NewWriterSize(out, 1<<16)
	sum := sha256.New()
	line := func(b []byte) error {
		sum.Write(b)
		sum.Write([]byte{'\n'})
		if _, err := w.Write(b); err != nil {
			return err
		}
		return w.WriteByte('\n')
	}
	hb, _ := json.Marshal(h)
	if err := line(hb); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	prog := newProgress(stderr, "exported", total)
	var n int64
	for _, id := range order {
		r := h.Feeds[id]
		s, err := c.e.Open(muxrpc.Method{"createHistoryStream"}, muxrpc.Source,
			map[string]any{"id": id, "seq": r[0], "limit": r[1] - r[0] + 1, "keys": false})
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		for {
			p, err := s.Recv(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("export: %s: %w", id, err)
			}
			if err := line(p.Body); err != nil {
				s.Close()
				return fmt.Errorf("export: %w", err)
			}
			n++
			prog.update(n)
		}
	}
	tb, _ := json.Marshal(bundleTrailer{End: &n, SHA256: base64.StdEncoding.EncodeToString(sum.Sum(nil))})
	if _, err := w.Write(append(tb, '\n')); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	prog.done()
	fmt.Fprintf(stderr, "exported %d messages of %d feeds\n", n, len(order))
	return nil
}

// importReport counts what an import did.
type importReport struct {
	lines    int64 // message lines read
	known    int64 // already held
	imported int64
	feeds    map[string]bool // feeds that got messages
}

// A bundleError says where a bundle broke.
type bundleError struct {
	line int64
	err  error
}

func (e *bundleError) Error() string { return fmt.Sprintf("line %d: %v", e.line, e.err) }
func (e *bundleError) Unwrap() error { return e.err }

// appendErrRE finds the author and sequence in the server's error for a
// message it refused (store.AppendError's text).
var appendErrRE = regexp.MustCompile(`\((%[^,]+), (@\S+) sequence (\d+)\)`)

// pendingLine is a message line on its way to the server.
type pendingLine struct {
	line   int64
	author string
	seq    int64
	key    string
}

// importBundle adds the messages of the bundle file to the server.
func (c *client) importBundle(ctx context.Context, f flags, stdout, stderr io.Writer) error {
	if len(f.args) != 1 {
		return errors.New("usage: sbot import BUNDLE")
	}
	file, err := os.Open(f.args[0])
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	defer file.Close()
	var clock map[string]int64
	if err := c.e.AsyncJSON(ctx, &clock, muxrpc.Method{"getVectorClock"}); err != nil {
		return fmt.Errorf("import: %w", err)
	}
	rep := &importReport{feeds: map[string]bool{}}
	err = c.importLines(ctx, file, clock, rep, stderr)
	fmt.Fprintf(stdout, "imported %d new messages of %d feeds; %d of the bundle's %d were already here\n",
		rep.imported, len(rep.feeds), rep.known, rep.lines)
	if err != nil {
		return fmt.Errorf("import: %s: %w", f.args[0], err)
	}
	return nil
}

// A bundleReader reads a bundle: its header, then its messages one at a
// time, checked for shape (message.Decode: no signature) and order within
// the bundle; at the end line it checks the count and the hash.
type bundleReader struct {
	r      *bufio.Reader
	sum    hash.Hash
	lineNo int64
	header bundleHeader
	total  int64            // messages the header announces
	n      int64            // message lines read
	lastOf map[string]int64 // the bundle's latest sequence per feed so far
}

func newBundleReader(r io.Reader) (*bundleReader, error) {
	br := &bundleReader{r: bufio.NewReaderSize(r, 1<<16), sum: sha256.New(), lastOf: map[string]int64{}}
	first, err := br.line()
	if err != nil {
		return nil, err
	}
	if json.Unmarshal(first, &br.header) != nil || br.header.Sneakernet == 0 {
		return nil, &bundleError{1, errors.New("not a bundle of sbot export")}
	}
	if br.header.Sneakernet != bundleVersion {
		return nil, &bundleError{1, fmt.Errorf("a bundle of version %d; this sbot reads version %d", br.header.Sneakernet, bundleVersion)}
	}
	br.hash(first)
	for _, r := range br.header.Feeds {
		br.total += max(0, r[1]-r[0]+1)
	}
	return br, nil
}

func (br *bundleReader) hash(b []byte) {
	br.sum.Write(b)
	br.sum.Write([]byte{'\n'})
}

// line reads the next line, without its newline, up to maxBundleLine.
func (br *bundleReader) line() ([]byte, error) {
	b, err := br.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), b...)
		for errors.Is(err, bufio.ErrBufferFull) && len(long) <= maxBundleLine {
			b, err = br.r.ReadSlice('\n')
			long = append(long, b...)
		}
		if len(long) > maxBundleLine {
			return nil, &bundleError{br.lineNo + 1, fmt.Errorf("a line longer than %d bytes", maxBundleLine)}
		}
		b = long
	}
	if errors.Is(err, io.EOF) {
		if len(b) > 0 {
			return nil, &bundleError{br.lineNo + 1, errors.New("the bundle is truncated: its last line is incomplete")}
		}
		return nil, &bundleError{br.lineNo, errors.New("the bundle is truncated: no end line")}
	}
	if err != nil {
		return nil, err
	}
	br.lineNo++
	return b[:len(b)-1], nil
}

// next returns the next message and its line, or io.EOF after an end line
// that matches what was read.
func (br *bundleReader) next() (*message.Message, []byte, error) {
	b, err := br.line()
	if err != nil {
		return nil, nil, err
	}
	if bytesHasPrefixKey(b, "end") {
		var t bundleTrailer
		if json.Unmarshal(b, &t) != nil || t.End == nil {
			return nil, nil, &bundleError{br.lineNo, errors.New("a damaged end line")}
		}
		got := base64.StdEncoding.EncodeToString(br.sum.Sum(nil))
		if *t.End != br.n || t.SHA256 != got {
			return nil, nil, &bundleError{br.lineNo, fmt.Errorf("the bundle was changed: its end line says %d messages and hash %s, the file has %d and %s", *t.End, t.SHA256, br.n, got)}
		}
		if _, err := br.r.ReadByte(); err == nil {
			return nil, nil, &bundleError{br.lineNo + 1, errors.New("lines after the end line")}
		}
		return nil, nil, io.EOF
	}
	br.hash(b)
	br.n++
	m, err := message.Decode(b)
	if err != nil {
		return nil, nil, &bundleError{br.lineNo, err}
	}
	author := m.Author.String()
	if last, ok := br.lastOf[author]; ok && m.Sequence != last+1 {
		return nil, nil, &bundleError{br.lineNo, fmt.Errorf("%s sequence %d follows sequence %d in the bundle", author, m.Sequence, last)}
	}
	br.lastOf[author] = m.Sequence
	return m, b, nil
}

// importLines reads the bundle and writes the messages the server lacks
// to createWriteStream.
func (c *client) importLines(ctx context.Context, r io.Reader, clock map[string]int64, rep *importReport, stderr io.Writer) error {
	br, err := newBundleReader(r)
	if err != nil {
		return err
	}
	prog := newProgress(stderr, "imported", br.total)
	defer prog.done()
	w := &bundleWriter{c: c, ctx: ctx}
	defer w.close()
	for {
		m, b, err := br.next()
		if errors.Is(err, io.EOF) {
			return w.flush(rep)
		}
		if err != nil {
			return errors.Join(err, w.flush(rep))
		}
		rep.lines++
		author := m.Author.String()
		if held := clock[author]; m.Sequence <= held {
			if m.Sequence == held {
				// The bundle's copy of our latest must be ours: else the
				// feed is forked, and nothing more of it can be added.
				var latest struct{ Key string }
				if err := c.e.AsyncJSON(ctx, &latest, muxrpc.Method{"getLatest"}, author); err != nil {
					return errors.Join(fmt.Errorf("getLatest %s: %w", author, err), w.flush(rep))
				}
				if latest.Key != m.Key.String() {
					return errors.Join(&bundleError{br.lineNo, fmt.Errorf("%s is forked: its message %d here is %s, the bundle's is %s", author, held, latest.Key, m.Key)}, w.flush(rep))
				}
			}
			rep.known++
			continue
		}
		if err := w.send(b, pendingLine{br.lineNo, author, m.Sequence, m.Key.String()}, rep); err != nil {
			return err
		}
		clock[author] = m.Sequence
		prog.update(rep.known + rep.imported)
	}
}

// bytesHasPrefixKey reports whether the JSON object b starts with key.
func bytesHasPrefixKey(b []byte, key string) bool {
	return strings.HasPrefix(string(b[:min(len(b), len(key)+3)]), `{"`+key+`"`)
}

// chunkLines is how many messages are written between two checks that
// the server stored them: the server answers a sink's end at once, so a
// chunk is known stored when the server holds its last message, and a
// refusal can be told apart from what was stored before it. chunksAhead
// chunks are written before the first of them is checked, so that the
// server always has the next chunk to store while the client checks; at
// most (chunksAhead+1)·chunkLines raws are kept meanwhile.
var chunkLines = 4096

const chunksAhead = 2

// bundleWriter sends the messages to the server's createWriteStream a chunk
// at a time. ssb-server's muxrpc answers the end of a sink at once, before
// the messages are stored, so a chunk is known stored when the server holds
// its last message (createWriteStream stores in order); a refusal ends the
// stream with the server's error.
type bundleWriter struct {
	c      *client
	ctx    context.Context
	st     *muxrpc.Stream
	ended  chan struct{} // closed when the stream has ended: endErr says how
	endErr error
	raws   [][]byte
	lines  []pendingLine
	sent   int   // lines[:sent] are written on st, not yet known stored
	marks  []int // the ends of the chunks written, not yet known stored
}

func (w *bundleWriter) send(b []byte, p pendingLine, rep *importReport) error {
	w.raws = append(w.raws, slices.Clone(b))
	w.lines = append(w.lines, p)
	if len(w.lines)-w.sent < chunkLines {
		return nil
	}
	if err := w.push(len(w.lines)); err != nil {
		return w.settle(rep, w.sent, err)
	}
	if len(w.marks) <= chunksAhead {
		return nil
	}
	if err := w.wait(w.lines[w.marks[0]-1].key); err != nil {
		return w.settle(rep, w.sent, err)
	}
	w.confirm(rep, w.marks[0])
	return nil
}

// flush writes what is left and waits until the server has stored it all.
func (w *bundleWriter) flush(rep *importReport) error {
	if len(w.lines) == 0 {
		return nil
	}
	err := w.push(len(w.lines))
	if err == nil {
		err = w.wait(w.lines[len(w.lines)-1].key)
	}
	return w.settle(rep, w.sent, err)
}

// confirm counts lines[:n], known stored, and forgets them.
func (w *bundleWriter) confirm(rep *importReport, n int) {
	for _, p := range w.lines[:n] {
		rep.imported++
		rep.feeds[p.author] = true
	}
	w.raws, w.lines = w.raws[n:], w.lines[n:]
	w.sent -= n
	marks := w.marks[:0]
	for _, m := range w.marks {
		if m > n {
			marks = append(marks, m-n)
		}
	}
	w.marks = marks
}

// settle takes the outcome, err, of writing lines[:n], and writes all
// the lines. When the server refuses a message, the valid messages around
// it that its batch took down with it are written again and the refusal
// is returned with the line it was on. The server's error names the
// message when it could read it; when it could not, halves of what was
// not stored are written until one message is refused. A message that is
// already here (a peer gave it meanwhile) is not a refusal.
func (w *bundleWriter) settle(rep *importReport, n int, err error) error {
	probe := len(w.lines)
	for {
		if err == nil {
			w.confirm(rep, n)
		} else {
			var stop error
			if probe, stop = w.refused(rep, n, err); stop != nil {
				return stop
			}
		}
		if len(w.lines) == 0 {
			return nil
		}
		n = min(probe, len(w.lines))
		if err = w.push(n); err == nil {
			err = w.wait(w.lines[n-1].key)
		}
	}
}

// refused handles the server's refusal, err, of lines[:n], which ended the
// stream: it counts what was stored, and returns the error to stop with,
// or keeps what was not stored to be written again in pieces of probe.
func (w *bundleWriter) refused(rep *importReport, n int, err error) (probe int, stop error) {
	w.sent, w.marks = 0, nil
	count := func(lines []pendingLine) {
		for _, p := range lines {
			rep.imported++
			rep.feeds[p.author] = true
		}
	}
	// What did the server store? Each message at or below its feed's
	// latest is there.
	latest := map[string]int64{}
	for _, p := range w.lines[:n] {
		if _, ok := latest[p.author]; ok {
			continue
		}
		var state struct{ Sequence int64 }
		if lerr := w.c.e.AsyncJSON(w.ctx, &state, muxrpc.Method{"getFeedState"}, p.author); lerr != nil {
			return 0, errors.Join(err, lerr)
		}
		latest[p.author] = state.Sequence
	}
	bad := -1
	if m := appendErrRE.FindStringSubmatch(err.Error()); m != nil {
		seq, _ := strconv.ParseInt(m[3], 10, 64)
		for i, p := range w.lines[:n] {
			if p.author == m[2] && p.seq == seq {
				bad = i
			}
		}
	}
	var raws [][]byte
	var lines []pendingLine
	for i, p := range w.lines[:n] {
		if p.seq <= latest[p.author] {
			if i != bad {
				count(w.lines[i : i+1]) // stored by this import (the clock was checked first)
			}
			continue
		}
		if i == bad {
			// Refused: the bundle breaks here. The valid messages
			// before it are written first.
			w.raws, w.lines = raws, lines
			var rerr error
			if len(lines) > 0 {
				if rerr = w.push(len(lines)); rerr == nil {
					rerr = w.wait(lines[len(lines)-1].key)
				}
				if rerr == nil {
					count(lines)
				}
			}
			w.raws, w.lines, w.sent, w.marks = nil, nil, 0, nil
			return 0, errors.Join(&bundleError{p.line, err}, rerr)
		}
		raws, lines = append(raws, w.raws[i]), append(lines, p)
	}
	if len(lines) == 1 && n == 1 {
		w.raws, w.lines = nil, nil
		return 0, &bundleError{lines[0].line, err}
	}
	w.raws = append(raws, w.raws[n:]...)
	w.lines = append(lines, w.lines[n:]...)
	return max(1, len(lines)/2), nil
}

// push writes lines[sent:upto] on the stream, opened if need be, as a
// chunk. A send that fails means the stream has ended: wait tells why.
func (w *bundleWriter) push(upto int) error {
	if w.st == nil {
		st, err := w.c.e.Open(muxrpc.Method{"createWriteStream"}, muxrpc.Sink)
		if err != nil {
			return err
		}
		w.st, w.ended, w.endErr = st, make(chan struct{}), nil
		go func() {
			defer close(w.ended)
			if _, err := st.Recv(w.ctx); !errors.Is(err, io.EOF) {
				w.endErr = err
			}
		}()
	}
	for _, b := range w.raws[w.sent:upto] {
		if err := w.st.SendRaw(muxrpc.JSON, b); err != nil {
			break // the stream has ended: its answer says why
		}
	}
	w.sent = upto
	w.marks = append(w.marks, upto)
	return nil
}

// wait waits until the server holds the message last or has ended the
// stream.
func (w *bundleWriter) wait(last string) error {
	delay := time.Millisecond
	for {
		select {
		case <-w.ended:
			err := w.endErr
			if err == nil {
				err = errors.New("the server ended createWriteStream")
			}
			w.st = nil
			return err
		case <-time.After(delay):
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
		var v json.RawMessage
		if w.c.e.AsyncJSON(w.ctx, &v, muxrpc.Method{"get"}, last) == nil {
			return nil
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// close ends the stream and waits for the server's answer.
func (w *bundleWriter) close() {
	if w.st != nil {
		w.st.Close()
		<-w.ended
		w.st = nil
	}
}
