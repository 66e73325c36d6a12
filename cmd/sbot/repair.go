package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// errServerRunning refuses a repair under a running server.
var errServerRunning = errors.New("a server is running on this data directory (its socket answers): stop it before repairing its store")

// runRepair rebuilds the store of the data directory path with
// store.Repair and prints the report. It refuses to run while a server
// answers on the directory's socket; the store's lock is a second guard.
func runRepair(ctx context.Context, path string, line commandLine, stdout, stderr io.Writer) error {
	if len(line.rest) > 0 {
		return fmt.Errorf("repair takes only --path, not %q (see sbot repair -h)", line.rest)
	}
	cfg, err := server.LoadConfig(path)
	if err != nil {
		return err
	}
	if err := line.configure(&cfg); err != nil {
		return err
	}
	if serverAnswers(ctx, path) {
		return fmt.Errorf("%w: %s", errServerRunning, server.SocketPath(path))
	}
	level, err := cfg.Level()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: max(level, slog.LevelWarn)}))
	opts := []store.Option{store.WithLogger(log), store.WithLockTimeout(time.Second)}
	if cfg.Sign != "" && cfg.Sign != "null" {
		k, err := base64.StdEncoding.Strict().DecodeString(cfg.Sign) // Validate checked it
		if err != nil {
			return fmt.Errorf("caps.sign: %w", err)
		}
		opts = append(opts, store.WithHMACKey(k))
	}
	rep, err := store.Repair(ctx, filepath.Join(path, "db"), opts...)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w\nis a server starting or running on %s?", err, path)
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, rep)
	if kp, err := keys.Load(filepath.Join(path, "secret")); err == nil {
		for _, l := range rep.Lost {
			if l.Feed == kp.ID {
				// The server remembers our head beside the secret: the
				// old file may have lost every trace of the last ones.
				had := max(l.Had, rememberedHead(path))
				fmt.Fprintf(stdout, "Your own feed lost messages %d to %d: the server will not publish until\n"+
					"peers have sent them back (sbot status shows ownFeed).\n", l.Kept+1, had)
			}
		}
	}
	return nil
}

// serverAnswers reports whether a server accepts connections on the local
// socket of the data directory path.
func serverAnswers(ctx context.Context, path string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", server.SocketPath(path))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// rememberedHead returns the sequence of our latest message as the server
// remembers it in <path>/own-feed.json, or 0.
func rememberedHead(path string) int64 {
	b, err := os.ReadFile(filepath.Join(path, "own-feed.json"))
	if err != nil {
		return 0
	}
	var head struct {
		Sequence int64 `json:"sequence"`
	}
	if json.Unmarshal(b, &head) != nil {
		return 0
	}
	return head.Sequence
}
