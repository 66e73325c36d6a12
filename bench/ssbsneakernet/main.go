// Command ssbsneakernet measures sneakernet (sbot export and sbot import, the
// real command run as a process against the server's local socket) against
// replication over loopback, in one run:
//
//   - a source server holds -feeds feeds of -per signed messages each;
//   - export: `sbot export` of everything to a file;
//   - import: `sbot import` of the file into an empty server, until it holds
//     every message (validated: signature, sequence, previous);
//   - replication: another empty server follows the feeds and dials the
//     source (gossip.connect), until it holds every message;
//   - append: the same messages appended to a bare store (ssb/store,
//     validated, 8 appenders), the store's validated-append speed.
//
// Goal: import at the store's validated-append speed, and not slower than
// replication.
//
//	go run ./bench/ssbsneakernet               # 100 feeds × 1,000 messages
//	go run ./bench/ssbsneakernet -quick        # 50 × 200, for CI
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/scuttlego/scuttle/internal/sbotrun"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

func main() {
	feeds := flag.Int("feeds", 100, "feeds")
	per := flag.Int("per", 1000, "messages per feed")
	quick := flag.Bool("quick", false, "a short run for CI: -feeds 50 -per 200")
	flag.Parse()
	if *quick {
		*feeds, *per = 50, 200
	}
	if err := run(*feeds, *per); err != nil {
		fmt.Fprintln(os.Stderr, "ssbsneakernet:", err)
		os.Exit(1)
	}
}

func run(feeds, per int) error {
	if feeds < 1 || per < 1 {
		return errors.New("bad flags: need feeds, per ≥ 1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	capsB64 := base64.StdEncoding.EncodeToString(caps[:])
	tmp, err := os.MkdirTemp("", "ssbsneakernet")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fmt.Printf("go %s, %s/%s, GOMAXPROCS %d\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0))
	sbot := filepath.Join(tmp, "sbot")
	if out, err := exec.Command("go", "build", "-o", sbot, "./cmd/sbot").CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/sbot: %v\n%s", err, out)
	}

	authors := make([]*keys.KeyPair, feeds)
	msgs := make([][]*message.Message, feeds)
	var wg sync.WaitGroup
	for a := range authors {
		authors[a], _ = keys.Generate(nil) // crypto/rand does not fail
		wg.Go(func() {
			var prev message.FeedState
			for i := range per {
				m, err := message.Create(authors[a], nil, &prev, float64(1_700_000_000_000+i), map[string]any{"type": "post", "text": "message " + strconv.Itoa(i) + " of a feed carried on a USB stick"})
				if err != nil {
					panic(err) // a fresh key and plain content: cannot fail
				}
				msgs[a] = append(msgs[a], m)
				prev = m.State()
			}
		})
	}
	wg.Wait()
	var all []*message.Message
	for i := range per {
		for a := range feeds {
			all = append(all, msgs[a][i])
		}
	}
	total := len(all)

	start := func(name string) (*sbotrun.Running, *client.Client, error) {
		r, err := sbotrun.Start(ctx, server.Config{Path: filepath.Join(tmp, name), Caps: capsB64})
		if err != nil {
			return nil, nil, err
		}
		c, err := client.Dial(ctx, r.Addr, caps, r.Owner, r.Owner.Public, nil)
		if err != nil {
			r.Stop()
			return nil, nil, err
		}
		return r, c, nil
	}
	src, srcC, err := start("source")
	if err != nil {
		return err
	}
	defer src.Stop()
	defer srcC.Close()
	if err := appendAll(ctx, src.Store(), all); err != nil {
		return err
	}

	// export
	bundle := filepath.Join(tmp, "bundle")
	t0 := time.Now()
	if err := sbotCmd(ctx, sbot, filepath.Join(tmp, "source"), bundle, "export"); err != nil {
		return err
	}
	dExport := time.Since(t0)
	fi, _ := os.Stat(bundle)

	// import
	imp, impC, err := start("import")
	if err != nil {
		return err
	}
	t0 = time.Now()
	if err := sbotCmd(ctx, sbot, filepath.Join(tmp, "import"), "", "import", bundle); err != nil {
		return err
	}
	if err := holdsAll(ctx, impC, authors, per); err != nil {
		return err
	}
	dImport := time.Since(t0)
	impC.Close()
	imp.Stop()

	// replication
	rep, repC, err := start("replicate")
	if err != nil {
		return err
	}
	defer rep.Stop()
	defer repC.Close()
	for _, a := range authors {
		var m map[string]any
		if err := repC.AsyncJSON(ctx, &m, muxrpc.Method{"publish"}, map[string]any{"type": "contact", "contact": a.ID.String(), "following": true}); err != nil {
			return err
		}
	}
	t0 = time.Now()
	var m any
	if err := repC.AsyncJSON(ctx, &m, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(src.Addr, src.Owner.ID)); err != nil {
		return err
	}
	if err := holdsAll(ctx, repC, authors, per); err != nil {
		return err
	}
	dRepl := time.Since(t0)

	// bare append
	st, err := store.Open(filepath.Join(tmp, "bare"), store.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		return err
	}
	t0 = time.Now()
	err = appendAll(ctx, st, all)
	dAppend := time.Since(t0)
	st.Close()
	if err != nil {
		return err
	}

	rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() }
	fmt.Printf("\n%d messages, %d feeds; bundle %.1f MB\n", total, feeds, float64(fi.Size())/1e6)
	fmt.Printf("  %-44s %10s %12s\n", "", "seconds", "messages/s")
	row := func(name string, d time.Duration) { fmt.Printf("  %-44s %10.2f %12.0f\n", name, d.Seconds(), rate(d)) }
	row("sbot export (process, local socket)", dExport)
	row("sbot import (process, local socket)", dImport)
	row("replication over loopback (EBT)", dRepl)
	row("bare store append, validated, 8 appenders", dAppend)
	fmt.Printf("import / store append %.2f (goal ≈ 1), import / replication %.2f (goal ≥ 1)\n", rate(dImport)/rate(dAppend), rate(dImport)/rate(dRepl))
	return nil
}

// sbotCmd runs the sbot binary on the data directory dir, its stdout to
// the file out (if set).
func sbotCmd(ctx context.Context, sbot, dir, out string, args ...string) error {
	cmd := exec.CommandContext(ctx, sbot, append([]string{"--path", dir}, args...)...)
	cmd.Stderr = os.Stderr
	if out != "" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		cmd.Stdout = f
	}
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("sbot %v: %w", args, err)
	}
	return nil
}

// appendAll appends the messages with 8 appenders, each a share of the
// feeds, in batches of 100, validated (signatures too) as import's are.
func appendAll(ctx context.Context, st *store.Store, all []*message.Message) error {
	const appenders = 8
	errs := make([]error, appenders)
	var wg sync.WaitGroup
	for k := range appenders {
		wg.Go(func() {
			var mine [][]byte
			for _, m := range all {
				if int(m.Author.String()[1])%appenders == k {
					mine = append(mine, m.Raw)
				}
			}
			for lo := 0; lo < len(mine); lo += 100 {
				if _, err := st.Append(ctx, mine[lo:min(lo+100, len(mine))]...); err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// holdsAll waits until the server holds every feed to per.
func holdsAll(ctx context.Context, c *client.Client, authors []*keys.KeyPair, per int) error {
	for _, a := range authors {
		if err := ssbtest.WaitSeq(ctx, c, a.ID, int64(per)); err != nil {
			return err
		}
	}
	return nil
}
