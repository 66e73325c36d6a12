package replicate

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"

	"github.com/scuttlego/scuttle/internal/vfs"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// The replication policy beside the follow graph: feeds the owner asked
// for or against (replicate.request, ebt.request) and blocks (who may not
// get a feed: replicate.block, ebt.block). In ssb-server both live in
// memory and are fed again at each start by ssb-friends from the contact
// messages; here the graph still comes from the contact messages, and what
// the owner asked on top of it is kept in Config.PolicyFile, so that a request or
// a block survives a restart.
//
// The wanted feeds are the graph's (within hops), plus the feeds requested,
// minus the feeds requested with false; our own feed is always wanted (own
// feed recovery needs it). A feed f is not exchanged with peer p when f
// blocks p in the graph (f's latest contact message about p) or the owner
// called block(f, p, true); block(f, p, false) takes back the owner's block
// only: a block published in a contact message stays until a contact
// message takes it back.

// Bounds of the policy: the owner's calls cannot grow it without end.
const (
	maxRequests = 1 << 16
	maxBlocks   = 1 << 16
)

// ErrPolicyFull reports a request or a block beyond the policy's bounds.
var ErrPolicyFull = errors.New("replicate: too many requests or blocks")

// policy is what Config.PolicyFile holds.
type policy struct {
	Requests map[string]bool     `json:"requests"` // feed: replicate it (true) or not (false)
	Blocks   map[string][]string `json:"blocks"`   // feed: the peers that do not get it
}

// maxPolicyFile bounds the size of the policy file read back.
const maxPolicyFile = 64 << 20

// LoadPolicy reads Config.PolicyFile (nothing if it does not exist). Call it once,
// before Run and AddPeer. A file that cannot be read is an error: starting
// without the owner's blocks would serve feeds to peers they exclude.
func (r *Replicator) LoadPolicy() error {
	if r.cfg.PolicyFile == "" {
		return nil
	}
	b, err := os.ReadFile(r.cfg.PolicyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("replicate: policy: %w", err)
	}
	req, blocks, err := parsePolicy(b)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.requests, r.blocks = req, blocks
	r.mu.Unlock()
	r.update()
	return nil
}

// parsePolicy decodes a policy file; entries that are not feed ids are an
// error.
func parsePolicy(b []byte) (map[refs.Feed]bool, map[refs.Feed]map[refs.Feed]bool, error) {
	if len(b) > maxPolicyFile {
		return nil, nil, fmt.Errorf("replicate: policy file of %d bytes", len(b))
	}
	var p policy
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, nil, fmt.Errorf("replicate: policy file: %w", err)
	}
	if len(p.Requests) > maxRequests {
		return nil, nil, fmt.Errorf("replicate: policy file: %w", ErrPolicyFull)
	}
	req := make(map[refs.Feed]bool, len(p.Requests))
	for id, v := range p.Requests {
		f, err := refs.ParseFeed(id)
		if err != nil {
			return nil, nil, fmt.Errorf("replicate: policy file: %w", err)
		}
		req[f] = v
	}
	blocks := make(map[refs.Feed]map[refs.Feed]bool)
	n := 0
	for id, to := range p.Blocks {
		f, err := refs.ParseFeed(id)
		if err != nil {
			return nil, nil, fmt.Errorf("replicate: policy file: %w", err)
		}
		for _, t := range to {
			g, err := refs.ParseFeed(t)
			if err != nil {
				return nil, nil, fmt.Errorf("replicate: policy file: %w", err)
			}
			if n++; n > maxBlocks {
				return nil, nil, fmt.Errorf("replicate: policy file: %w", ErrPolicyFull)
			}
			if blocks[f] == nil {
				blocks[f] = make(map[refs.Feed]bool)
			}
			blocks[f][g] = true
		}
	}
	return req, blocks, nil
}

// savePolicyLocked writes the policy to Config.PolicyFile (temporary file, fsync,
// rename, fsync of the directory). r.mu is held: calls are the owner's and
// rare, and each writes the state it set.
func (r *Replicator) savePolicyLocked() error {
	if r.cfg.PolicyFile == "" {
		return nil
	}
	p := policy{Requests: make(map[string]bool, len(r.requests)), Blocks: make(map[string][]string, len(r.blocks))}
	for f, v := range r.requests {
		p.Requests[f.String()] = v
	}
	for f, to := range r.blocks {
		var ids []string
		for t := range to {
			ids = append(ids, t.String())
		}
		slices.Sort(ids)
		p.Blocks[f.String()] = ids
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("replicate: policy: %w", err)
	}
	dir := filepath.Dir(r.cfg.PolicyFile)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("replicate: policy: %w", err)
	}
	if err := vfs.WriteFile(vfs.Default, r.cfg.PolicyFile, b, 0o600); err != nil {
		return fmt.Errorf("replicate: policy: %w", err)
	}
	return nil
}

// Request asks to replicate feed (replicate true) or not (false),
// whatever the follow graph says, as ssb-replicate's request(id, bool);
// it is kept in Config.PolicyFile. Our own feed stays wanted. Peers are asked for
// a newly wanted feed at once; a feed no longer wanted is given up: EBT
// peers are told (-1) and legacy streams of it end.
func (r *Replicator) Request(feed refs.Feed, replicate bool) error {
	r.mu.Lock()
	old, had := r.requests[feed]
	if had && old == replicate {
		r.mu.Unlock()
		return nil
	}
	if !had && len(r.requests) >= maxRequests {
		r.mu.Unlock()
		return ErrPolicyFull
	}
	r.requests[feed] = replicate
	if err := r.savePolicyLocked(); err != nil {
		if had {
			r.requests[feed] = old
		} else {
			delete(r.requests, feed)
		}
		r.mu.Unlock()
		return err
	}
	r.mu.Unlock()
	r.update()
	return nil
}

// Requests returns the feeds requested (true) or refused (false) by
// Request.
func (r *Replicator) Requests() map[refs.Feed]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[refs.Feed]bool, len(r.requests))
	for f, v := range r.requests {
		out[f] = v
	}
	return out
}

// Block records that feed from is not to be exchanged with peer to
// (blocking true), or takes such a record back (false), as ssb-replicate's
// and ssb-ebt's block(from, to, blocking); it is kept in Config.PolicyFile. From
// then on, to is not served from's history (createHistoryStream ends at
// once; EBT notes from as -1 to it and neither sends nor receives it), and
// a live stream of from to to ends. When from is our feed, to is served no
// feed at all (the caller disconnects it, as ssb-ebt does). Blocks from a
// contact message are the graph's and stay: see the package's policy.
func (r *Replicator) Block(from, to refs.Feed, blocking bool) error {
	r.mu.Lock()
	if r.blocks[from][to] == blocking {
		r.mu.Unlock()
		return nil
	}
	if blocking {
		n := 0
		for _, m := range r.blocks {
			n += len(m)
		}
		if n >= maxBlocks {
			r.mu.Unlock()
			return ErrPolicyFull
		}
		if r.blocks[from] == nil {
			r.blocks[from] = make(map[refs.Feed]bool)
		}
		r.blocks[from][to] = true
	} else {
		delete(r.blocks[from], to)
		if len(r.blocks[from]) == 0 {
			delete(r.blocks, from)
		}
	}
	if err := r.savePolicyLocked(); err != nil {
		if blocking {
			delete(r.blocks[from], to)
		} else {
			if r.blocks[from] == nil {
				r.blocks[from] = make(map[refs.Feed]bool)
			}
			r.blocks[from][to] = true
		}
		r.mu.Unlock()
		return err
	}
	r.mu.Unlock()
	r.blockChanged(from, to)
	return nil
}

// IsBlocked reports whether our feed blocks peer (in the graph or by
// Block): such a peer is served nothing.
func (r *Replicator) IsBlocked(peer refs.Feed) bool { return r.Excludes(r.self, peer) }

// Excludes reports whether feed is kept from peer: feed blocks peer in the
// follow graph, or by Block.
func (r *Replicator) Excludes(feed, peer refs.Feed) bool {
	r.mu.Lock()
	b := r.blocks[feed][peer]
	r.mu.Unlock()
	return b || r.graph.IsBlocking(feed, peer)
}

// excludesLocked is Excludes with r.mu held.
func (r *Replicator) excludesLocked(feed, peer refs.Feed) bool {
	return r.blocks[feed][peer] || r.graph.IsBlocking(feed, peer)
}

// withheld reports whether feed is not exchanged with peer: peer is
// blocked by us, or feed excludes it.
func (r *Replicator) withheld(feed, peer refs.Feed) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.excludesLocked(r.self, peer) || r.excludesLocked(feed, peer)
}
