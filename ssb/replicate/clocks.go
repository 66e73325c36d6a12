package replicate

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// The clock of each EBT peer (its sequence of each feed as last known) is
// kept in Config.ClockDir, one JSON file per peer named after its key:
// {"@feed.ed25519": seq, ...}, -1 for a feed the peer does not replicate.
// A lost or stale file costs only bigger notes: a clock is a hint for
// request skipping, and the peer's notes correct it.

// maxClockFile bounds the size of a clock file read back.
const maxClockFile = 64 << 20

func (r *Replicator) clockPath(peer refs.Feed) string {
	return filepath.Join(r.cfg.ClockDir, base64.RawURLEncoding.EncodeToString(peer.PublicKey())+".json")
}

// loadClock returns the stored clock of peer; empty if there is none.
func (r *Replicator) loadClock(peer refs.Feed) map[refs.Feed]int64 {
	clock := make(map[refs.Feed]int64)
	if r.cfg.ClockDir == "" {
		return clock
	}
	r.mu.Lock()
	pending, ok := r.clockQueue[peer]
	if !ok {
		pending, ok = r.clockWriting[peer]
	}
	r.mu.Unlock()
	if ok { // not written yet
		return maps.Clone(pending)
	}
	b, err := os.ReadFile(r.clockPath(peer))
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			r.log.Warn("replicate: reading a peer's clock", "peer", peer.String(), "err", err)
		}
		return clock
	}
	clock, err = parseClock(b)
	if err != nil {
		r.log.Warn("replicate: a peer's clock file is unreadable; ignored", "peer", peer.String(), "err", err)
		return make(map[refs.Feed]int64)
	}
	return clock
}

// parseClock reads a clock file; entries that are not a feed id with a
// sequence of -1 or more are left out.
func parseClock(b []byte) (map[refs.Feed]int64, error) {
	if len(b) > maxClockFile {
		return nil, fmt.Errorf("replicate: clock file of %d bytes", len(b))
	}
	var m map[string]int64
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("replicate: clock file: %w", err)
	}
	clock := make(map[refs.Feed]int64, len(m))
	for id, seq := range m {
		if f, err := refs.ParseFeed(id); err == nil && seq >= -1 {
			clock[f] = seq
		}
	}
	return clock, nil
}

// saveClock stores the clock of peer, replacing the file atomically.
func (r *Replicator) saveClock(peer refs.Feed, clock map[refs.Feed]int64) error {
	if r.cfg.ClockDir == "" {
		return nil
	}
	m := make(map[string]int64, len(clock))
	for f, seq := range clock {
		m[f.String()] = seq
	}
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("replicate: clock: %w", err)
	}
	if err := os.MkdirAll(r.cfg.ClockDir, 0o700); err != nil {
		return fmt.Errorf("replicate: clock: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, r.clockPath(peer), b, 0o600); err != nil {
		return fmt.Errorf("replicate: clock: %w", err)
	}
	return nil
}
