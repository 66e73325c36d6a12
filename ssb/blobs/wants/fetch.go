package wants

import (
	"slices"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// fetchNext starts a fetch of a wanted blob from the first connected peer
// that announced it and has not failed it (JS isAvailable: peers in the
// order they connected, a size under max).
func (c *Core) fetchNext(id refs.Blob) {
	if c.wants[id] == nil || c.fetches[id] != nil {
		return
	}
	for _, from := range c.order {
		p := c.peers[from]
		if h, ok := p.haves[id]; ok && !p.failed[id] {
			c.startFetch(from, id, h.size)
			return
		}
	}
}

func (c *Core) startFetch(from refs.Feed, id refs.Blob, size int64) {
	c.lastFetch++
	f := &fetch{
		Fetch: Fetch{ID: c.lastFetch, Peer: from, Blob: id, Size: size, Max: c.cfg.Max},
		since: c.now,
	}
	c.fetches[id] = f
	c.byID[f.ID] = f
	c.out.Fetches = append(c.out.Fetches, f.Fetch)
}

func (c *Core) endFetch(f *fetch) {
	delete(c.fetches, f.Blob)
	delete(c.byID, f.ID)
}

// failed marks a peer as unable to deliver a blob: its have is forgotten,
// and its later haves of that blob are ignored while the blob is wanted, so
// a lying peer cannot make us fetch from it again and again.
func (c *Core) failed(f *fetch) {
	if p := c.peers[f.Peer]; p != nil {
		p.forget(f.Blob)
		if c.wants[f.Blob] != nil {
			p.failed[f.Blob] = true
		}
	}
}

// FetchProgress reports that a fetch received bytes: its stall clock
// restarts (at the time of the latest Tick).
func (c *Core) FetchProgress(id FetchID) {
	if f := c.byID[id]; f != nil {
		f.since = c.now
	}
}

// FetchDone reports the end of a fetch. With an error (the peer's stream
// failed, the bytes did not hash to the id, more bytes than announced or
// than Max) the blob is fetched from the next peer that has it (JS get()'s
// callback). Without one, the blob's arrival is reported by Added, before
// or after. The end of a cancelled fetch is ignored.
func (c *Core) FetchDone(id FetchID, err error) {
	f := c.byID[id]
	if f == nil {
		return
	}
	c.endFetch(f)
	if err == nil {
		return
	}
	c.stats.FetchesFailed++
	c.failed(f)
	c.fetchNext(f.Blob)
}

// Tick gives the core the current time: the budgets refill, and fetches
// without progress for FetchTimeout are cancelled (Ready.Cancels) and the
// blob fetched from the next peer that has it. The driver ticks about once a second; the stall
// clock of a fetch started before the first Tick starts at that Tick.
func (c *Core) Tick(now time.Time) {
	c.now = now
	c.refill(now)
	stalled := []*fetch{}
	for _, f := range c.fetches {
		switch {
		case f.since.IsZero():
			f.since = now
		case now.Sub(f.since) >= c.cfg.FetchTimeout:
			stalled = append(stalled, f)
		}
	}
	slices.SortFunc(stalled, func(a, b *fetch) int { return compareBlobs(a.Blob, b.Blob) })
	for _, f := range stalled {
		c.stats.FetchesStalled++
		c.out.Cancels = append(c.out.Cancels, f.Fetch)
		c.endFetch(f)
		c.failed(f)
		c.fetchNext(f.Blob)
	}
}
