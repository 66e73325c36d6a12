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
// # Signed updates
//
// With WithSecurity a replica signs every update it makes and applies an
// update from a peer only after its signature verifies, so an update is
// authentic however many replicas relayed it, signed or not (relays keep
// the signature, the update's fourth element, untouched).
//
//	sec := scuttlebutt.NewEd25519(privateKey, trusted) // trusted: a KeyStore, or nil
//	m := model.New("", scuttlebutt.WithSecurity(sec))  // m.ID() is the key's id
//
// Ed25519 is the Security to use: the id is the public key, so it cannot be
// bound to another key, and the signature covers the canonical JSON of
// [change, timestamp, source], which survives relays that re-serialize.
// RSASHA1 speaks npm scuttlebutt's security.js (RSA-SHA1 over
// JSON.stringify, id = base64(SHA-1(public key PEM))) so that signed Go and
// JavaScript replicas verify each other; it is for compatibility only. A
// KeyStore says where public keys come from: Keys (in memory), LoadKeys (a
// file), KeyFunc (a callback, which may be slow).
//
// Verification runs before the source's clock advances, without the
// replica's lock held (a slow KeyStore holds up only the stream waiting for
// it), several updates at once, and updates are then applied in the order
// they arrived. A forged, tampered, unsigned or unknown-key update never
// moves the clock (in npm scuttlebutt it does, so one forgery stamped in
// the future blocks its victim's real updates), is not applied, not
// forwarded, and is reported to Replica.OnUnverified; the stream goes on,
// because an honest relay forwards what it cannot check. A replayed update
// is old data. The same update arriving on two streams at once may be
// verified twice; it is applied once.
//
// # Hostile peers
//
// A peer can only fail its own stream. Each of these fails the stream with
// an error (returned by Write and Serve, and by Stream.Err), closes it, and
// applies nothing of the offending line; the replica and its other streams
// go on:
//
//   - a line that is not JSON, or not a header, update or value (ErrProtocol);
//   - a line longer than WithMaxLine, 1 MiB by default (ErrLineTooLong); no
//     more than the limit is ever buffered;
//   - an output that ends in the middle of a line, from a peer that died or
//     was cut off (an error wrapping io.ErrUnexpectedEOF); the partial line
//     is not applied;
//   - a non-finite timestamp (ErrProtocol), or one more than
//     WithMaxClockSkew (10 minutes by default) ahead of the local wall
//     clock (ErrFutureTimestamp): local timestamps are raised above every
//     applied one, so without a bound one update could move this replica's
//     clock forward for good;
//   - a history (the updates before the peer's "SYNC") in which a source's
//     timestamp goes back (ErrProtocol): npm scuttlebutt sends history
//     sorted. After "SYNC" an older update is only old data, as in
//     JavaScript;
//   - a clock, or updates, bringing more sources than WithMaxSources
//     (100,000 by default; ErrTooManySources). A header's clock entries are
//     counted before it is decoded, so a clock of a million sources costs
//     no more than its line.
//
// # Flow control
//
// Per stream, memory is bounded by a page of history, the live queue, one
// read of output, one line of input, and a record of what the peer has (see
// Stream). A peer that reads slowly makes TCP push back on the stream's
// writer; the stream then drops live updates past WithQueueLimit and, once
// the peer reads again, sends what the peer lacks by its clock, which in a
// Model is the latest update per key, not every change.
//
// WithMTU turns this into delta batching after van Renesse et al. (2008):
// history and catch-up go out in rounds of at most MTU bytes holding what
// the peer lacks, the sources it lacks the most of first (scuttle-depth),
// each source's updates in order as JavaScript peers require. Under a load
// above what the links carry, staleness then stays bounded instead of
// growing with the backlog (bench/sbsim).
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
//   - Memory per stream is bounded: a stream holds a page of history and
//     at most WithQueueLimit live updates for a slow reader, then falls
//     back to recomputing what the peer lacks from its clock (see Flow
//     control). JavaScript buffers everything.
//   - Peers that break the protocol, send timestamps far in the future or
//     too many sources lose their stream (see Hostile peers).
//   - Signed updates are verified before the clock advances; updates
//     claiming this replica's own id are verified too (npm scuttlebutt
//     treats them as its own: it does not verify them, and signs them
//     again); and an update must carry exactly one signature element (see
//     Signed updates).
//   - Output is ASCII-only JSON, so a JavaScript reader that splits UTF-8 at
//     a chunk boundary (npm stream-serializer does) cannot corrupt it.
//   - A stream that is not readable sends nothing after the peer's header
//     (JavaScript sends its history anyway), and a non-writable stream sends
//     its history once (JavaScript sends it twice over TCP).
//   - A clock entry of 0 means "has the update at 0", not "has nothing"
//     (JavaScript tests the entry for truthiness).
//   - A peer's output that ends without a final newline fails the stream
//     (io.ErrUnexpectedEOF); JavaScript parses the rest as a last line.
//   - Over a connection that cannot half-close, the end of a stream's output
//     closes the connection once nothing more is wanted from the peer (see
//     Stream.Serve); a JavaScript stream's end closes such a transport at
//     once.
package scuttlebutt
