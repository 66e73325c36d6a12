// Package all is the server's default plugin list, shared by cmd/sbot, the
// in-process servers of the benchmarks and the tests.
package all

import (
	"github.com/scuttlego/scuttle/ssb/plugins/blobs"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/plugins/friends"
	"github.com/scuttlego/scuttle/ssb/plugins/gossip"
	"github.com/scuttlego/scuttle/ssb/plugins/invite"
	"github.com/scuttlego/scuttle/ssb/plugins/lan"
	"github.com/scuttlego/scuttle/ssb/plugins/links"
	"github.com/scuttlego/scuttle/ssb/plugins/npm"
	"github.com/scuttlego/scuttle/ssb/plugins/ooo"
	"github.com/scuttlego/scuttle/ssb/plugins/private"
	"github.com/scuttlego/scuttle/ssb/plugins/query"
	"github.com/scuttlego/scuttle/ssb/plugins/replication"
	"github.com/scuttlego/scuttle/ssb/plugins/secretstack"
	"github.com/scuttlego/scuttle/ssb/plugins/status"
	"github.com/scuttlego/scuttle/ssb/server"
)

// Default returns new instances of the default plugins: status (whoami,
// version, status), db (ssb-db's methods, own-feed protection), gossip
// (the known peers, the keep-alive), replication (EBT, legacy, the
// follow graph), blobs (ssb-blobs: the local methods and the exchange with
// peers), private (private messages: encryption on publish, the index
// of ours, private: true reads) and friends (ssb-friends' methods over
// the replicator's follow graph; after replication) and secretstack
// (address, auth, multiserver.parse/address), and npm (plugins.*, which
// answer that sbot does not install npm packages) and ooo (messages by id
// from peers, out of order) and invite (pub invites: create, use,
// accept; an invite's key may call only invite.use) and lan (LAN discovery
// as ssb-local and ssb-lan; off unless config local or --local) and query
// (ssb-query's map-filter-reduce reads) and links (ssb-db's links,
// links2.read, backlinks.read over a view of the log). A connection is
// offered to replication before db (db asks peers for our feed while it is
// being recovered).
func Default() []server.Plugin {
	return []server.Plugin{status.New(), replication.New(), db.New(), gossip.New(), blobs.New(), private.New(), friends.New(), secretstack.New(), npm.New(), ooo.New(), invite.New(), lan.New(), query.New(), links.New()}
}
