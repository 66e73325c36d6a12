package index_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/plugins/links"
	"github.com/scuttlego/scuttle/ssb/store"
)

const benchFeeds = 32

// benchMessages makes n messages over benchFeeds feeds, each a post of
// about 500 bytes that replies to the feed's previous message (root,
// branch) and mentions another feed: four links per message.
func benchMessages(b *testing.B, n int) [][]*message.Message {
	perFeed := (n + benchFeeds - 1) / benchFeeds
	kps := make([]*keys.KeyPair, benchFeeds)
	for i := range kps {
		kp, err := keys.Generate(nil)
		if err != nil {
			b.Fatal(err)
		}
		kps[i] = kp
	}
	text := strings.Repeat("scuttlebutt ", 30)
	out := make([][]*message.Message, benchFeeds)
	var wg sync.WaitGroup
	for f := range benchFeeds {
		wg.Go(func() {
			var prev message.FeedState
			for i := range perFeed {
				content := map[string]any{"type": "post", "text": text,
					"mentions": []map[string]any{{"link": kps[(f+1)%benchFeeds].ID.String(), "name": "friend"}}}
				if i > 0 {
					content["root"] = out[f][0].Key.String()
					content["branch"] = prev.ID.String()
				}
				m, err := message.Create(kps[f], nil, &prev, float64(1.7e12+i), content)
				if err != nil {
					b.Error(err)
					return
				}
				prev = m.State()
				out[f] = append(out[f], m)
			}
		})
	}
	wg.Wait()
	return out
}

// BenchmarkAppendWithLinks measures durable appends (8 appenders, batches
// of 100, messages pre-validated) into a new store, alternately without
// and with the links view following the log, b.N messages each time, and
// reports both append rates, their ratio, and the rate at which the view
// caught up. Alternating keeps a machine busy with other work from
// favouring one side.
func BenchmarkAppendWithLinks(b *testing.B) {
	feeds := benchMessages(b, b.N)
	b.ResetTimer()
	var plain, with, caught time.Duration
	var n float64
	const rounds = 3
	for range rounds {
		d, _, m := appendRound(b, feeds, false)
		plain += d
		d, c, _ := appendRound(b, feeds, true)
		with += d
		caught += c
		n += m
	}
	b.ReportMetric(n/plain.Seconds(), "plain-msgs/s")
	b.ReportMetric(n/with.Seconds(), "links-msgs/s")
	b.ReportMetric(plain.Seconds()/with.Seconds(), "ratio")
	b.ReportMetric(n/caught.Seconds(), "caught-up-msgs/s")
}

// appendRound appends the feeds into a new store, with the links view
// following when follow is set, and returns the time the appends took,
// the time until the view had seen them all, and the messages appended.
func appendRound(b *testing.B, feeds [][]*message.Message, follow bool) (appended, caughtUp time.Duration, n float64) {
	st, err := store.Open(b.TempDir(), store.WithLogger(quiet))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var v *index.View
	done := make(chan error, 1)
	if follow {
		if v, err = index.Open(st, b.TempDir(), links.Spec(nil), quiet); err != nil {
			b.Fatal(err)
		}
		go func() { done <- v.Run(ctx) }()
	}
	const appenders, batch = 8, 100
	start := time.Now()
	var wg sync.WaitGroup
	for a := range appenders {
		wg.Go(func() {
			for f := a; f < benchFeeds; f += appenders {
				for i := 0; i < len(feeds[f]); i += batch {
					if err := st.AppendMessages(ctx, feeds[f][i:min(i+batch, len(feeds[f]))]...); err != nil {
						b.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	appended = time.Since(start)
	if follow {
		if err := v.Wait(ctx, st.Durable()); err != nil {
			b.Fatal(err)
		}
		caughtUp = time.Since(start)
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		v.Close()
	}
	return appended, caughtUp, float64(st.Durable())
}
