package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
)

// benchFeeds holds messages made once for all benchmarks: benchFeedCount
// feeds, each a chain from sequence 1, grown as benchmarks need more.
var benchFeeds struct {
	sync.Mutex
	authors []*author
	msgs    [][]*message.Message
}

const benchFeedCount = 64

// benchMessages returns the first perFeed messages of each bench feed.
// Their content is about 500 bytes of JSON, the median SSB message size.
func benchMessages(b *testing.B, perFeed int) [][]*message.Message {
	bf := &benchFeeds
	bf.Lock()
	defer bf.Unlock()
	if bf.authors == nil {
		for range benchFeedCount {
			bf.authors = append(bf.authors, generated(b))
		}
		bf.msgs = make([][]*message.Message, benchFeedCount)
	}
	text := strings.Repeat("scuttlebutt ", 30)
	var wg sync.WaitGroup
	for f, a := range bf.authors {
		wg.Go(func() {
			for len(bf.msgs[f]) < perFeed {
				m, err := message.Create(a.kp, nil, &a.state, float64(1700000000000+len(bf.msgs[f])), map[string]any{
					"type": "post", "text": text, "mentions": []string{}, "root": nil,
				})
				if err != nil {
					b.Error(err)
					return
				}
				a.state = m.State()
				bf.msgs[f] = append(bf.msgs[f], m)
			}
		})
	}
	wg.Wait()
	out := make([][]*message.Message, benchFeedCount)
	for f := range out {
		out[f] = bf.msgs[f][:perFeed]
	}
	return out
}

// BenchmarkAppend measures durable appends (fsync per commit) of messages
// already validated (AppendMessages), with appenders goroutines each
// appending batches of batch messages of its own feeds. msgs/s excludes
// validation; msgs/commit is the group-commit factor.
func BenchmarkAppend(b *testing.B) {
	for _, c := range []struct{ appenders, batch int }{{1, 1}, {16, 1}, {8, 100}, {32, 100}} {
		b.Run(fmt.Sprintf("appenders=%d/batch=%d", c.appenders, c.batch), func(b *testing.B) {
			perFeed := (b.N + benchFeedCount - 1) / benchFeedCount
			feeds := benchMessages(b, perFeed)
			s := openStore(b)
			ctx := context.Background()
			b.ResetTimer()
			var wg sync.WaitGroup
			for a := range c.appenders {
				wg.Go(func() {
					for start := 0; start < perFeed; start += c.batch {
						for f := a; f < benchFeedCount; f += c.appenders {
							end := min(start+c.batch, perFeed)
							if err := s.AppendMessages(ctx, feeds[f][start:end]...); err != nil {
								b.Error(err)
								return
							}
						}
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			st := s.Stats()
			b.ReportMetric(float64(st.Appended)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(st.Appended)/float64(max(st.Commits, 1)), "msgs/commit")
		})
	}
}

// BenchmarkAppendValidate is BenchmarkAppend with validation: Append
// verifies each message's signature in the appender's goroutine.
func BenchmarkAppendValidate(b *testing.B) {
	const appenders, batch = 8, 50
	perFeed := (b.N + benchFeedCount - 1) / benchFeedCount
	feeds := benchMessages(b, perFeed)
	s := openStore(b)
	ctx := context.Background()
	b.ResetTimer()
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for start := 0; start < perFeed; start += batch {
				for f := a; f < benchFeedCount; f += appenders {
					end := min(start+batch, perFeed)
					if _, err := s.Append(ctx, raws(feeds[f][start:end])...); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(s.Stats().Appended)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkLog measures reading the log through an Iterator.
func BenchmarkLog(b *testing.B) {
	perFeed := (b.N + benchFeedCount - 1) / benchFeedCount
	feeds := benchMessages(b, perFeed)
	s := openStore(b)
	ctx := context.Background()
	for f := range feeds {
		if err := s.AppendMessages(ctx, feeds[f]...); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	it, err := s.Log(ctx, LogQuery{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for {
		if _, err := it.Next(ctx); err != nil {
			break
		}
		n++
	}
	b.StopTimer()
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkOpenCheck measures the check of the database file that Open
// makes before bbolt maps it (verifyFile: every page of every B+tree), on
// a store of 100,000 messages of about 500 bytes, with the file in the
// page cache; then Open and Close, and Repair of the healthy store.
func BenchmarkOpenCheck(b *testing.B) {
	const n = 100_000
	feeds := benchMessages(b, n/benchFeedCount)
	dir := b.TempDir()
	s, err := Open(dir, WithLogger(quiet()))
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for start := 0; start < n/benchFeedCount; start += 100 {
		for f := range feeds {
			if err := s.AppendMessages(ctx, feeds[f][start:min(start+100, len(feeds[f]))]...); err != nil {
				b.Fatal(err)
			}
		}
	}
	size := s.Stats().FileBytes
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	path := filepath.Join(dir, FileName)
	b.Run("verify", func(b *testing.B) {
		var pages int
		for b.Loop() {
			if pages, err = verifyFile(path); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(pages), "pages")
		b.ReportMetric(float64(size)/(1<<20), "file-MiB")
	})
	b.Run("open+close", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(dir, WithLogger(quiet()))
			if err != nil {
				b.Fatal(err)
			}
			s.Close()
		}
	})
	b.Run("repair", func(b *testing.B) {
		for b.Loop() {
			rep, err := Repair(ctx, dir, WithLogger(quiet()))
			if err != nil || rep.Kept != n/benchFeedCount*benchFeedCount {
				b.Fatal(rep, err)
			}
			os.Remove(rep.Backup)
		}
		b.ReportMetric(float64(n)/(float64(b.Elapsed().Seconds())/float64(b.N)), "msgs/s")
	})
}
