// Package persist saves scuttlebutt replicas to files and keeps them
// durable, in the file format of npm scuttlebutt: a persisted document is
// the stream a read stream writes,
//
//	{"id":"A","clock":{"A":1795315732794,"OTHER":5}}
//	[["z",3],5,"OTHER"]
//	[["x",1],1795315732793,"A"]
//	[["y",2],1795315732794,"A"]
//	"SYNC"
//
// one JSON value per line: a header, the updates, and the "SYNC" marker. A
// file that JavaScript wrote with
// m.createReadStream({tail: false}).pipe(fs.createWriteStream(f)) loads
// with Load, and a file written by Save or by a Log loads in JavaScript
// with fs.createReadStream(f).pipe(m.createWriteStream()).
//
// # Save and Load
//
// Save writes a replica's header, its whole history and "SYNC", which is
// what npm scuttlebutt writes; SaveFile does it atomically (a temporary
// file, fsync, rename, fsync of the directory). Load applies what a file
// holds to a replica, as a write stream would: the header's clock is not
// imported (the replica's clock is rebuilt from the updates), "SYNC" and
// other values that carry no update are skipped.
//
// # Durable log
//
// Open loads a file into a replica and attaches a Log to it (see
// scuttlebutt.Replica.SetJournal): every update the replica applies, local
// or from a peer, is appended to the file as one line, and a local change
// (Model.Set, Emitter.Emit, Value.Set) returns only after the line is
// written and fsynced. Concurrent changes share one write and one fsync
// (group commit). Updates that arrive from peers are written the same way
// by a background goroutine, at once; Replica.Sync waits for them.
//
// The file is always a valid persisted stream without its "SYNC": a header
// line first, then updates, in the order the replica applied them (each
// source's updates in increasing timestamp order, as a JavaScript reader
// requires). Close writes the "SYNC", so a cleanly closed file is a
// complete persisted stream; Open removes it again before appending.
//
// After a crash the last line may be torn (written in part). Open
// truncates an unfinished last line, and invalid lines at the end of the
// file, before it appends: such lines were never acknowledged, because a
// change is acknowledged only after the fsync that follows its whole line.
// An invalid line followed by valid ones is not a torn write but damage:
// Open then fails with ErrCorrupt and leaves the file alone.
//
// # Compaction
//
// A Model keeps only the latest update per key, so its log grows without
// bound while its history does not. When the file has grown past
// Options.CompactRatio times its size after the last compaction (and past
// Options.CompactMinSize), the Log writes the replica's history to a
// temporary file, appends the updates applied since, fsyncs it, renames it
// over the log and fsyncs the directory, then goes on appending to the new
// file. Changes go on while the snapshot is written; they wait only for
// the final fsync and rename. The file is never rewritten in place, so the
// crash case of npm scuttlebutt's README (the process dies after the file
// was truncated and before the history was written again) cannot happen: a
// crash at any moment leaves either the old file or the new one, each
// complete.
//
// Events keeps every event, so compaction does not shrink its log: it
// rewrites the file each time it has grown by CompactRatio, which costs
// about 1/(CompactRatio-1) extra bytes written per byte logged. Disable it
// with a negative CompactRatio, unless the emitter bounds its history
// (Emitter.Retain), in which case compaction does shrink the file.
//
// The file work goes through internal/vfs, so that tests run the Log on
// vfs.MemFS and check, at every point where a crash could strike, that a
// log reopened from what was fsynced holds every acknowledged change.
//
// One file must be used by one Log at a time, in one process.
package persist
