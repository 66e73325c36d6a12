// Package scuttlebutt replicates data structures between peers in real time,
// wire-compatible with npm scuttlebutt@5.
//
// A Replica holds one copy of a document (a Doc: the Model, Events and
// Value packages provide three) and a Clock: for each source, the latest
// timestamp applied from it. Each connection to a peer is a Stream. Both
// sides first send a header with their clock, then every update the other
// lacks (its history, in timestamp order), then the line "SYNC", then live
// updates as they are applied. Updates are JSON arrays
// [change, timestamp, source]; a replica applies an update only if its
// timestamp is newer than the last one from that source, so duplicates and
// loops die out.
//
//	m := model.New("a")
//	m.Set("greeting", "hello")
//	conn, _ := net.Dial("tcp", "127.0.0.1:7000")
//	err := m.ServeConn(ctx, conn)
//
// # Differences from npm scuttlebutt
//
// Everything a JavaScript peer sends is understood, and everything sent to
// one is what it expects. Behaviour differs where the JavaScript version is
// wrong or unsafe:
//
//   - No echo. npm scuttlebutt sends every live update back on the stream it
//     came from (the sender drops it as old). A Stream records what the peer
//     sent and never sends it back.
//   - Convergence on timestamp ties. A Model update replaces the stored one
//     when its timestamp is greater, or equal with a greater source id
//     (JavaScript lets the later arrival win, so two replicas can disagree
//     forever). Against JavaScript peers a tie can still diverge on their
//     side; ties need two sources to pick the same float64 millisecond.
//   - Timestamps never go backwards and never spin. Local timestamps are the
//     wall clock in milliseconds, raised above every timestamp the replica
//     has applied; npm's monotonic-timestamp hangs after about 3,000 calls
//     in one millisecond and drops local changes after a clock step back.
//     A local Model change therefore always wins over what the replica has
//     seen, even from a peer with a fast clock.
//   - Remote data cannot trigger internal events. Listeners are Go
//     callbacks registered per kind; an event named "dispose" or "_update"
//     arriving from a peer is only a user event.
//   - Bad input closes the stream. A line that is not JSON, an update with
//     the wrong types, a header without a clock, or a line over the limit
//     (1 MiB by default) fails that stream with an error wrapping
//     ErrProtocol or ErrLineTooLong; the replica and its other streams go
//     on. (JavaScript reports some of these and carries on, and crashes on
//     others.) Valid JSON lines that mean nothing (null, numbers, other
//     strings) are ignored, as JavaScript does.
//   - Memory per stream is bounded: a stream buffers at most the history
//     snapshot plus WithQueueLimit live updates for a slow reader, then
//     falls back to recomputing what the peer lacks from its clock.
//   - Output is ASCII-only JSON, so a JavaScript reader that splits UTF-8 at
//     a chunk boundary (npm stream-serializer does) cannot corrupt it.
//   - A stream that is not readable sends nothing after the peer's header
//     (JavaScript sends its history anyway), and a non-writable stream sends
//     its history once (JavaScript sends it twice over TCP).
//   - A clock entry of 0 means "has the update at 0", not "has nothing"
//     (JavaScript tests the entry for truthiness).
package scuttlebutt
