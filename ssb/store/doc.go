// Package store is the durable message store of an SSB server: a log of
// validated messages in receive order, with the indexes ssb-db's queries
// need, in one bbolt file (FileName) in the data directory.
//
// # Layout
//
// Every key sorts as it should byte by byte: integers are big-endian, and
// float64 timestamps use an order-preserving encoding (positive numbers
// with the sign bit set, negative ones with all bits flipped). "seq" is
// the receive sequence, a uint64 from 1, never given twice, without gaps
// but those deleted messages leave (see Deletion); "rts" the receive
// timestamp (ms, float64).
//
//	bucket   key                                   value
//	log      seq                                   rts ‖ resolved ts ‖ message hash (32) ‖ compact JSON
//	feed     author (32) ‖ sequence (uint32)       seq
//	id       seq>>16 (uint32) ‖ message hash (32)  seq
//	claimed  resolved ts (ordered) ‖ seq           (empty)
//	type     len(type) (1 byte) ‖ type ‖ seq       (empty)
//	head     author (32)                           sequence (uint32) ‖ message hash ‖ seq
//	meta     "version"                             format version (uint32): 1, or 2 once a message was deleted
//	meta     "top"                                 last seq assigned ‖ its rts (written by deletions)
//	meta     "deleted"                             number of messages deleted (uint64)
//
// The id index is split into epochs of 65,536 receive sequences, so that
// appends dirty only the current epoch's pages (ids are random); Get
// probes each epoch, newest first.
//
// The log holds each message once, as the compact JSON that goes over the
// wire; the indexes hold keys and receive sequences only. The resolved
// timestamp is createFeedStream's sort key (see FeedQuery). The head of a
// feed is its latest message: what validation of the next needs, and what
// replication exchanges (Feeds).
//
// # Durability and atomicity
//
// Appending is validation, then group commit. Signatures are verified in
// the caller's goroutine (Append), so concurrent appenders verify in
// parallel. One committer goroutine then takes every queued call, checks
// each message's sequence and previous against the feed's persisted head,
// and writes the accepted calls — the log record and all index entries of
// every message — in one bbolt transaction, committed with fsync (bbolt's
// NoSync is never set). Append returns only after that commit, so an
// acknowledged message survives a crash, and a crash at any moment leaves
// either all of a transaction or none of it: the indexes can never
// disagree with the log. A call's messages are stored all or none: a call
// rejected for its chain (a gap, a fork, a duplicate) is left out of the
// transaction, which carries the others. Calls queue while a commit is in
// flight, so the number of messages per fsync grows with the load.
//
// Receive sequences are assigned by the committer in commit order, which
// is also the order of each feed's sequences: a feed's history is a
// subsequence of the log.
//
// # Deletion
//
// DeleteFeed removes all of a feed, DeleteMessage the latest message of
// its feed: never a message in the middle, which would leave a gap in a
// feed the store serves. A deletion is a transaction of its own, run by
// the committer between appends: the log records, every index entry and
// the head change together, with the meta counters, and the call returns
// after the fsync. A deleted position is absent: queries skip it, Get and
// GetSeq report ErrNotFound, and it is never given again, so a consumer
// that follows the log by receive sequence simply never sees it. Check
// verifies that the positions the log lacks are exactly as many as the
// messages deleted.
//
// # Queries
//
// History, Log, Feed and Type have the semantics of ssb-db 20's
// createHistoryStream, createLogStream, createFeedStream and
// messagesByType: ranges with gt/gte/lt/lte, limit, reverse, keys and
// values, and live streams with or without the old messages. A query
// starts by noting the last durable receive sequence: its old part is what
// was stored up to there, its live part everything after, so a live reader
// sees each message exactly once, in order, and never a message before it
// is durable. As in pull-level, limit bounds the old part only.
//
// Readers pull: an Iterator reads a chunk of at most 64 items in a short
// read transaction and, when a live one has caught up, waits for the next
// commit. The store keeps no queue per reader, so a slow reader costs
// nothing but its own progress.
//
// Get, Latest and Feeds read single records. Check verifies the whole
// database, like fsck.
//
// # Damage
//
// bbolt trusts its file: it follows page ids and offsets into its memory
// map unchecked, so a truncated file faults (SIGBUS) and a damaged page
// panics ("page expected to be …"). The store never lets either crash the
// process:
//
//   - Open checks the file before bbolt maps it, reading it with pread,
//     never through a map: the meta pages, the file's length against the
//     pages the meta page counts, the freelist, and the structure of every
//     page of every bucket's B+tree (page ids and types, element offsets
//     within the page, key order, child ids within the file, no page
//     reached twice or reached and free). This reads the whole file once:
//     about 150 ms per 100,000 messages (BenchmarkOpenCheck). It does not
//     read the values: Check does. A damaged file fails Open with a
//     *DamageError wrapping ErrDamaged that says what is wrong.
//   - Every read and commit runs with runtime/debug.SetPanicOnFault, so a
//     fault on the map (the file truncated or damaged while open, an I/O
//     error) is a panic of that goroutine; the store recovers bbolt's
//     panics, rolls the transaction back, logs the panic with its stack
//     and marks itself damaged: that call and every later one fail with
//     the *DamageError (see Damaged) until the store is closed.
//   - Repair rebuilds the store from every log record it can still read
//     and whose message still validates, in a new file swapped in
//     atomically, the damaged file kept beside it, and reports what it
//     kept and lost per feed.
package store
