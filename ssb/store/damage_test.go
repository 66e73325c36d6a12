package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// damageChildEnv names the variable that makes the test binary a damage
// child (see TestMain and damageChild): "op dir".
const damageChildEnv = "SCUTTLE_STORE_DAMAGE_CHILD"

// damageFixture is a store of several feeds, closed, with what it holds.
type damageFixture struct {
	dir   string
	path  string
	feeds map[refs.Feed][]*message.Message
	order []*message.Message // in receive order
	ts    map[refs.Message]float64
}

// buildDamaged makes a closed store of nFeeds feeds with perFeed messages
// each, appended round-robin in batches so that the log interleaves feeds.
func buildDamaged(t testing.TB, nFeeds, perFeed int) *damageFixture {
	t.Helper()
	dir := t.TempDir()
	s, err := Open(dir, WithLogger(quiet()), WithClock(fakeClock(1.7e12, 1)))
	if err != nil {
		t.Fatal(err)
	}
	fx := &damageFixture{dir: dir, path: filepath.Join(dir, FileName), feeds: map[refs.Feed][]*message.Message{}}
	authors := make([]*author, nFeeds)
	for i := range authors {
		authors[i] = newAuthor(t, fmt.Sprintf("damage %d", i))
	}
	for start := 0; start < perFeed; start += 10 {
		for _, a := range authors {
			var ms []*message.Message
			for i := start; i < min(start+10, perFeed); i++ {
				ms = append(ms, a.post(t, float64(1.6e12+i)))
			}
			mustAppend(t, s, ms...)
			fx.feeds[a.id()] = append(fx.feeds[a.id()], ms...)
			fx.order = append(fx.order, ms...)
		}
	}
	mustCheck(t, s)
	fx.ts = map[refs.Message]float64{}
	for _, it := range collect(t)(s.Log(context.Background(), LogQuery{})) {
		fx.ts[it.Key] = it.Timestamp
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fx
}

// leafPages returns, for the bucket named, its leaf pages and, for the
// log, the receive sequences on each, read with the store's page walker.
func leafPages(t testing.TB, path string, bucket []byte) map[uint64][]uint64 {
	t.Helper()
	fd, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	fi, _ := fd.Stat()
	f, err := openBoltFile(fd, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	w := newWalker(f, nil)
	w.want = func(name []byte) bool { return bytes.Equal(name, bucket) }
	pages := map[uint64][]uint64{}
	w.visit = func(_, k, _ []byte) error {
		if w.page != 0 {
			var seq uint64
			if len(k) == seqLen {
				seq = getSeq(k)
			}
			pages[w.page] = append(pages[w.page], seq)
		}
		return nil
	}
	if err := w.run(); err != nil || w.nproblem > 0 {
		t.Fatalf("walk: %v %v", err, w.problems)
	}
	return pages
}

// overwritePage fills page id of the file with random bytes.
func overwritePage(t testing.TB, path string, id uint64) {
	t.Helper()
	fd, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	ps := int64(os.Getpagesize())
	garbage := make([]byte, ps)
	rng := rand.New(rand.NewPCG(id, 7))
	for i := range garbage {
		garbage[i] = byte(rng.Uint32())
	}
	if _, err := fd.WriteAt(garbage, int64(id)*ps); err != nil {
		t.Fatal(err)
	}
}

// someLeaf returns a leaf page of the bucket, from the middle of its pages.
func someLeaf(t testing.TB, path string, bucket []byte) uint64 {
	t.Helper()
	pages := leafPages(t, path, bucket)
	ids := make([]uint64, 0, len(pages))
	for id := range pages {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	if len(ids) < 3 {
		t.Fatalf("bucket %s has only %d leaf pages", bucket, len(ids))
	}
	return ids[len(ids)/2]
}

// TestOpenTruncated truncates the file by a page, by half, and to two
// pages, and checks in a child process (a fault would kill it) that Open
// fails with ErrDamaged saying the file is truncated and how to repair it.
func TestOpenTruncated(t *testing.T) {
	fx := buildDamaged(t, 4, 60)
	fd, err := os.Open(fx.path)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := fd.Stat()
	f, err := openBoltFile(fd, fi.Size())
	fd.Close()
	if err != nil {
		t.Fatal(err)
	}
	// bbolt grows the file ahead of its pages: cut into the pages it uses.
	ps, used := f.ps, int64(f.meta.pgid)*f.ps
	for _, size := range []int64{used - ps, used - 1, used / 2 / ps * ps, 2 * ps, used/2 + 123} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			copyFile(t, fx.path, filepath.Join(dir, FileName))
			if err := os.Truncate(filepath.Join(dir, FileName), size); err != nil {
				t.Fatal(err)
			}
			out := runDamageChild(t, "open", dir)
			if !strings.HasPrefix(out, "damaged ") || !strings.Contains(out, "sbot repair") {
				t.Fatalf("Open of a file truncated to %d bytes: %s", size, out)
			}
			t.Log(out)
			if !strings.Contains(out, "truncated") && !strings.Contains(out, "outside") {
				t.Errorf("the error does not say what is wrong: %s", out)
			}
		})
	}
}

// TestTruncatedUnderOpenStore truncates the file under an open store (as
// a full disk or another program could) and checks, in a child process,
// that reads fail with ErrDamaged instead of a SIGBUS, that later calls
// fail fast, and that the store still closes.
func TestTruncatedUnderOpenStore(t *testing.T) {
	fx := buildDamaged(t, 4, 60)
	out := runDamageChild(t, "truncate-read", fx.dir)
	if out != "ok" {
		t.Fatal(out)
	}
}

// TestCorruptPageAtOpen overwrites a leaf page of the log and of an index
// with garbage: Open must say which bucket's page is damaged.
func TestCorruptPageAtOpen(t *testing.T) {
	for _, bucket := range [][]byte{bucketLog, bucketFeed, bucketID} {
		t.Run(string(bucket), func(t *testing.T) {
			fx := buildDamaged(t, 4, 60)
			overwritePage(t, fx.path, someLeaf(t, fx.path, bucket))
			_, err := Open(fx.dir, WithLogger(quiet()))
			var de *DamageError
			if !errors.Is(err, ErrDamaged) || !errors.As(err, &de) {
				t.Fatalf("Open: %v, want a DamageError", err)
			}
			t.Log(err)
			if !strings.Contains(err.Error(), fmt.Sprintf("bucket %q", bucket)) {
				t.Errorf("the error does not name bucket %s: %v", bucket, err)
			}
		})
	}
}

// TestCorruptPageWhileOpen damages a page under an open store (bbolt has
// it mapped, so the reads see it at once): the first read of that part of
// the store fails with ErrDamaged (bbolt panics with "page expected to be
// …"), never a panic, and every later call fails fast.
func TestCorruptPageWhileOpen(t *testing.T) {
	fx := buildDamaged(t, 4, 60)
	leaf := someLeaf(t, fx.path, bucketFeed)
	var logs bytes.Buffer
	s, err := Open(fx.dir, WithLogger(slogTo(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	overwritePage(t, fx.path, leaf)
	ctx := context.Background()
	var readErr error
	for feed := range fx.feeds {
		it, err := s.History(ctx, HistoryQuery{ID: feed})
		if err == nil {
			for err == nil {
				_, err = it.Next(ctx)
			}
			if errors.Is(err, io.EOF) {
				continue
			}
		}
		readErr = err
		break
	}
	if !errors.Is(readErr, ErrDamaged) {
		t.Fatalf("reading every feed of a store with a damaged feed index page: %v", readErr)
	}
	if s.Damaged() == nil {
		t.Error("Damaged is nil after a damaged read")
	}
	if !strings.Contains(logs.String(), "stack=") {
		t.Errorf("the panic was not logged with its stack: %s", logs.String())
	}
	a := newAuthor(t, "after damage")
	if _, err := s.Append(ctx, a.post(t, 1).Raw); !errors.Is(err, ErrDamaged) {
		t.Errorf("Append after damage: %v", err)
	}
	if _, err := s.Feeds(ctx); !errors.Is(err, ErrDamaged) {
		t.Errorf("Feeds after damage: %v", err)
	}
}

// TestRepair repairs a healthy store, a truncated one and ones with a
// damaged page, and checks that the new store opens, passes Check, holds
// every message whose record is intact and whose feed is intact up to it,
// in the same receive order with the same receive timestamps, and that
// the report counts what was lost.
func TestRepair(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, fx *damageFixture) map[uint64]bool // receive sequences lost
	}{
		{"healthy", func(*testing.T, *damageFixture) map[uint64]bool { return nil }},
		{"truncated", func(t *testing.T, fx *damageFixture) map[uint64]bool {
			fi, _ := os.Stat(fx.path)
			ps := uint64(os.Getpagesize())
			cut := uint64(fi.Size()) / 2 / ps
			lost := map[uint64]bool{}
			for id, seqs := range leafPages(t, fx.path, bucketLog) {
				if id >= cut {
					for _, s := range seqs {
						lost[s] = true
					}
				}
			}
			if err := os.Truncate(fx.path, int64(cut*ps)); err != nil {
				t.Fatal(err)
			}
			return lost
		}},
		{"log page", func(t *testing.T, fx *damageFixture) map[uint64]bool {
			id := someLeaf(t, fx.path, bucketLog)
			lost := map[uint64]bool{}
			for _, s := range leafPages(t, fx.path, bucketLog)[id] {
				lost[s] = true
			}
			overwritePage(t, fx.path, id)
			return lost
		}},
		{"meta pages", func(t *testing.T, fx *damageFixture) map[uint64]bool {
			// Both meta pages lost: the B+trees have no root, the scan of
			// every page finds the log's leaves.
			overwritePage(t, fx.path, 0)
			overwritePage(t, fx.path, 1)
			return map[uint64]bool{}
		}},
		{"index page", func(t *testing.T, fx *damageFixture) map[uint64]bool {
			overwritePage(t, fx.path, someLeaf(t, fx.path, bucketClaimed))
			return nil
		}},
		{"record bytes", func(t *testing.T, fx *damageFixture) map[uint64]bool {
			// A flipped byte inside a message: the page is sound, the
			// message no longer validates.
			data, err := os.ReadFile(fx.path)
			if err != nil {
				t.Fatal(err)
			}
			victim := fx.order[len(fx.order)/3]
			i := bytes.Index(data, victim.Raw)
			if i < 0 {
				t.Fatal("message not found in the file")
			}
			data[i+len(victim.Raw)/2] ^= 0x01
			if err := os.WriteFile(fx.path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return map[uint64]bool{uint64(len(fx.order)/3) + 1: true}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fx := buildDamaged(t, 5, 80)
			lostSeqs := tt.damage(t, fx)
			rep, err := Repair(context.Background(), fx.dir, WithLogger(quiet()))
			if err != nil {
				t.Fatal(err)
			}
			t.Log(rep)
			// What must survive: each feed up to its first lost message.
			want := map[refs.Feed]int64{}
			broken := map[refs.Feed]bool{}
			// A loss shows when a message after the first lost one is
			// still readable; a feed whose tail is lost with the head index
			// cannot be known to have had more.
			visible := map[refs.Feed]bool{}
			for i, m := range fx.order {
				if broken[m.Author] {
					visible[m.Author] = visible[m.Author] || !lostSeqs[uint64(i)+1]
					continue
				}
				if lostSeqs[uint64(i)+1] {
					broken[m.Author] = true
					continue
				}
				want[m.Author] = m.Sequence
			}
			s, err := Open(fx.dir, WithLogger(quiet()))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			mustCheck(t, s)
			total, lost := 0, 0
			losses := map[refs.Feed]FeedLoss{}
			for _, l := range rep.Lost {
				losses[l.Feed] = l
			}
			for feed, ms := range fx.feeds {
				h, err := s.Latest(feed)
				if err != nil && !errors.Is(err, ErrNotFound) {
					t.Fatal(err)
				}
				kept := h.State.Sequence
				if kept < want[feed] {
					t.Errorf("feed %s: kept %d messages, want at least %d", feed, kept, want[feed])
				}
				for _, m := range ms[:kept] {
					it, err := s.Get(m.Key)
					if err != nil || !bytes.Equal(it.Value, m.Raw) {
						t.Fatalf("feed %s message %d: %v", feed, m.Sequence, err)
					}
				}
				total += int(kept)
				if had := int64(len(ms)); kept < had {
					lost += int(had - kept)
					// The old file's head index may be lost too: Had
					// is what the repair could still see.
					l, ok := losses[feed]
					if ok && (l.Kept != kept || l.Had <= kept || l.Had > had) || !ok && visible[feed] {
						t.Errorf("feed %s: report says kept %d of %d, the store has %d of %d", feed, l.Kept, l.Had, kept, had)
					}
				} else if _, ok := losses[feed]; ok {
					t.Errorf("feed %s is reported lossy but was kept whole", feed)
				}
			}
			if rep.Kept != total || int(s.Durable()) != total {
				t.Errorf("report says %d kept, store has %d, counted %d", rep.Kept, s.Durable(), total)
			}
			if len(lostSeqs) == 0 && (total != len(fx.order) || len(rep.Lost) != 0 || rep.Dropped != 0 || rep.Unreadable != 0) {
				t.Errorf("nothing of the log was damaged, but %d of %d kept: %s", total, len(fx.order), rep)
			}
			if len(lostSeqs) > 0 && lost == 0 {
				t.Errorf("log records were destroyed but nothing was lost: %s", rep)
			}
			// Receive order and timestamps are kept.
			items := collect(t)(s.Log(context.Background(), LogQuery{}))
			pos := map[refs.Message]int{}
			for i, m := range fx.order {
				pos[m.Key] = i
			}
			for i := 1; i < len(items); i++ {
				if pos[items[i-1].Key] >= pos[items[i].Key] {
					t.Fatalf("receive order changed at %d", i)
				}
			}
			for _, it := range items {
				if want := fx.ts[it.Key]; it.Timestamp != want {
					t.Fatalf("message %s has receive timestamp %v, was %v", it.Key, it.Timestamp, want)
				}
			}
			if _, err := os.Stat(rep.Backup); err != nil {
				t.Errorf("backup: %v", err)
			}
			if tt.name != "healthy" && len(rep.Damage) == 0 {
				t.Errorf("the report lists no damage: %s", rep)
			}
		})
	}
}

// TestRepairLocked checks that Repair refuses a store that is open.
func TestRepairLocked(t *testing.T) {
	s := openStore(t)
	_, err := Repair(context.Background(), s.Dir(), WithLogger(quiet()), WithLockTimeout(100*time.Millisecond))
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Repair of an open store: %v", err)
	}
}

// slogTo returns a logger that writes text to w.
func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

func copyFile(t testing.TB, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runDamageChild runs op on dir in a child process (this test binary, see
// TestMain) and returns what it printed; a child that crashes fails the
// test.
func runDamageChild(t *testing.T, op, dir string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), damageChildEnv+"="+op+" "+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child %s: %v\n%s", op, err, stderr.Bytes())
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	var last string
	for sc.Scan() {
		last = sc.Text()
	}
	return last
}

// damageChild is the child's main: it runs op on dir and prints the
// outcome as its last line.
func damageChild(spec string) int {
	op, dir, _ := strings.Cut(spec, " ")
	switch op {
	case "open":
		s, err := Open(dir, WithLogger(quiet()))
		switch {
		case errors.Is(err, ErrDamaged):
			fmt.Println("damaged", err)
		case err != nil:
			fmt.Println("error", err)
		default:
			s.Close()
			fmt.Println("opened")
		}
	case "truncate-read":
		fmt.Println(truncateRead(dir))
	default:
		fmt.Println("unknown op", op)
	}
	return 0
}

// truncateRead opens the store in dir, cuts its file to two pages and
// reads: it returns "ok" or what went wrong.
func truncateRead(dir string) string {
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		return fmt.Sprint("open: ", err)
	}
	defer s.Close()
	ctx := context.Background()
	heads, err := s.Feeds(ctx)
	if err != nil {
		return fmt.Sprint("feeds: ", err)
	}
	if err := os.Truncate(filepath.Join(dir, FileName), int64(2*os.Getpagesize())); err != nil {
		return fmt.Sprint("truncate: ", err)
	}
	it, err := s.Log(ctx, LogQuery{})
	for err == nil {
		_, err = it.Next(ctx)
	}
	if !errors.Is(err, ErrDamaged) {
		return fmt.Sprint("reading the log of a truncated file: ", err)
	}
	if _, err := s.Latest(heads[0].Feed); !errors.Is(err, ErrDamaged) {
		return fmt.Sprint("Latest after damage: ", err)
	}
	if err := s.Check(ctx); !errors.Is(err, ErrDamaged) {
		return fmt.Sprint("Check after damage: ", err)
	}
	if s.Damaged() == nil || !strings.Contains(s.Damaged().Error(), "fault") {
		return fmt.Sprint("Damaged: ", s.Damaged())
	}
	return "ok"
}

// TestPublishPanicIsNotDamage checks that a panic in Publish's create
// function, the caller's code, fails that call and leaves the store
// usable: the guard against damage must not take the caller's bugs for
// damage, nor hide them (they are logged with their stack).
func TestPublishPanicIsNotDamage(t *testing.T) {
	var logs bytes.Buffer
	s, err := Open(t.TempDir(), WithLogger(slogTo(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := newAuthor(t, "publisher")
	ctx := context.Background()
	_, err = s.Publish(ctx, a.id(), func(message.FeedState) (*message.Message, error) { panic("a bug in the caller") })
	if err == nil || errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), "a bug in the caller") {
		t.Fatalf("Publish with a panicking create: %v", err)
	}
	if !strings.Contains(logs.String(), "stack=") {
		t.Errorf("the panic was not logged with its stack: %s", logs.String())
	}
	if s.Damaged() != nil {
		t.Fatalf("store marked damaged: %v", s.Damaged())
	}
	mustAppend(t, s, a.post(t, 1))
	mustCheck(t, s)
}
