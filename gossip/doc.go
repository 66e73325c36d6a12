// Package gossip spreads signed messages to every peer of a network, over
// any byte streams, wire-compatible with npm secure-gossip@0.3.1.
//
// Any peer publishes a message, a JSON object signed with its ed25519 key
// (ssb-keys format). Rounds of gossip between neighbours carry it to every
// peer; a relayer can neither forge nor alter it. Each neighbour is one
// Stream, an io.ReadWriteCloser to connect to anything (Serve runs one over
// a net.Conn):
//
//	g, _ := gossip.New(gossip.Options{OnMessage: func(m gossip.Message) {
//		fmt.Printf("%s from %s\n", m.Data, m.Public)
//	}})
//	defer g.Close()
//	conn, _ := net.Dial("tcp", "127.0.0.1:7100")
//	go g.ServeConn(ctx, conn)
//	g.Publish(map[string]string{"hello": "world"})
//
// A Gossip is a Node (the protocol as a state machine: lines in, rounds,
// lines out; no goroutines, locks or I/O) plus streams and a timer. Package
// gossipsim runs thousands of Nodes in one goroutine in virtual time.
//
// # Wire format
//
// Newline-separated JSON, as secure-gossip writes it. A message is an
// envelope:
//
//	{"data":{"hello":"world","gossip:seq":1763000000000000,"signature":"<base64>.sig.ed25519"},"public":"<base64>.ed25519","seq":1763000000000000}
//
// The signature signs the UTF-8 of JSON.stringify(data without signature,
// null, 2), as ssb-keys signObj does (V8's key order and number format,
// from package message), under the key in public. Envelopes are forwarded as
// the bytes received, never re-serialized, so signatures survive any chain
// of relays. A line is read as secure-gossip reads it (JSON.parse, the curve
// from an envelope's "curve" field or the key's suffix), but only canonical
// encodings are accepted (base64 keys and signatures of the right length,
// a seq that is an integer from 0 to 2^53-1, data an object), and
// signatures are checked with libsodium's rules: whatever a Go node accepts
// and forwards, a JavaScript peer accepts too.
//
// # What the Go peer does better, and how
//
// Everything below is invisible to, or accepted by, a JavaScript peer; the
// interop tests run the real npm package between and around Go peers.
//
// Signed seq. secure-gossip's seq is outside the signature, so a relayer
// can re-send a message under a new seq and JavaScript delivers it again
// (or blocks the publisher with a huge seq). A Go publisher also writes its
// seq inside data under SeqKey ("gossip:seq"), which the signature covers.
// A JavaScript peer treats it as payload: its applications see the extra
// field. A Go node drops an envelope whose seq differs from its signed seq
// (ErrReplay), strips SeqKey from Message.Data and reports it as Message.Seq
// with SignedSeq set. Publish refuses payloads using SeqKey, "signature" or
// "__proto__" (which JavaScript's clone drops before verifying).
//
// A Go publisher's first seq is the current time in microseconds, and then
// counts up by one: after a restart its seqs stay above the ones it used
// before, which JavaScript peers need (they drop any seq not above the
// highest seen). This assumes a clock that does not go back across a
// restart, and one process per key: a publisher that reuses seqs (two
// processes with one key, or a clock set back by more than the messages
// published since) has its messages with reused seqs dropped by every
// peer that saw the earlier ones.
//
// Message IDs and replays. A message is identified by its ID, the SHA-256
// of its publisher's key and its signed bytes; the envelope's seq is not
// part of it. A node remembers the last MaxSeen IDs (retained messages
// always among them) and drops a known ID whatever its seq. It also keeps,
// per publisher, the spans of seqs seen; a signed seq already seen with
// other content is a replay (or an equivocation) and is dropped without
// checking its signature. So a Go message is never delivered twice while
// its publisher is among the MaxPublishers most recent; a JavaScript
// message (unsigned seq) is not delivered twice while its ID is among the
// last MaxSeen. One consequence: a JavaScript publisher that publishes the
// same payload twice has it delivered once by Go peers (the two are the
// same signed bytes, indistinguishable from a replay).
//
// No loss to reordering. secure-gossip drops a message whose seq is not
// above the highest seen from its publisher, even if it never had it. A Go
// node delivers every message it has not seen, in any order.
//
// No echo, no repeats. A node never sends a message to the link it came
// from or to a link that sent it, and never twice on a link (unless a
// digest shows it was lost). secure-gossip sends everything to every peer,
// the sender included.
//
// Digests: late joiners, reconnections and losses. The first line of every
// link is a digest of what the node has seen (the scuttlebutt idea of van
// Renesse et al.: per publisher, its high-water mark; here the spans of
// seqs seen, one span in the usual case):
//
//	{"gossip":"digest","n":1,"ack":0,"have":{"<public>":[lo,hi,...],...}}
//
// The peer answers nothing to it but sends, at its next round, every
// retained message the digest lacks: a peer that joins late or reconnects
// gets what it missed, and only that. A JavaScript peer ignores the line
// (JSON.parse succeeds, verification throws, secure-gossip catches it), so
// a link on which no digest arrives within JSAfter rounds (200 ms) is taken
// for a JavaScript peer, which is then sent every retained message it was
// not sent, ordered by publisher and seq so that secure-gossip's seq check
// accepts them all.
//
// Between Go nodes, messages lost on the way (on a transport that can lose
// lines, or when a connection breaks) are sent again. A node with messages
// written on a link and not yet confirmed asks, every DigestEvery rounds,
// with a request carrying how many envelope lines it has written on the
// link and how many it knows were lost ("req","sent","lostAck"). The peer
// compares with the lines it received and answers at its next round
// ("lost"); only when lines were lost does the answer carry its have, from
// which the asker sends again what is missing. Otherwise the short answer
// confirms every message written before the request. On a reliable link
// this costs two short lines per link per DigestEvery rounds while
// messages flow, and nothing when idle. Digest numbers ("n", "ack") tie an
// answer to the messages written before the request it answers. On a link
// taken for a JavaScript peer, a short request every 5 DigestEvery rounds
// lets a Go peer whose first digest was lost make itself known. A line
// {"gossip":"<other kind>",...} is ignored, for later extensions.
//
// Retention. A node keeps the last MaxRetained messages (4,096), at most
// MaxRetainedBytes (16 MiB) of them, for at most RetainFor (10 minutes),
// and serves them to peers that (re)connect: a peer away longer than that,
// or while more messages went by, misses the ones dropped meanwhile (from
// every neighbour that also dropped them). Messages published while no peer
// is connected are kept the same way (secure-gossip drops them).
//
// Bounds. Memory is bounded: retained messages as above; MaxSeen IDs;
// MaxPublishers publishers (of those without retained messages, the least
// recently heard is forgotten) with at most MaxRanges seq spans each (past
// that the two lowest merge, and a message that old arriving later is
// dropped); per link, MaxQueue messages waiting for the next round and
// about MaxBuffered bytes written and not yet read by the transport. A
// message that finds a link's queue full is not queued (Stats.NotQueued);
// once the queue has drained to half, a Go peer is asked for its have
// ("full":true in the request) and gets what it lacks; a JavaScript peer
// misses it.
//
// Bad input. A line that is not JSON, an envelope of the wrong shape, an
// unknown curve, a bad signature or a line over MaxMessage (64 KiB for an
// envelope) or MaxLine (1 MiB for any line) is dropped and counted in
// Stats, and the stream goes on, as in secure-gossip. After GarbageLimit
// (16) such lines in a row the stream is closed with ErrGarbage. Replays
// do not count toward that: JavaScript peers relay them in good faith.
//
// # JavaScript peers and "exactly once"
//
// A JavaScript receiver's only dedup is its per-publisher highest seq. A Go
// node forwards the publisher's bytes, so the seq it sees is the
// publisher's; never sends a message back or twice on a link; and drops
// replays, so none reaches a JavaScript neighbour through it. A JavaScript
// peer fed by several neighbours still drops a message that reaches it
// after a later one from the same publisher (its rule, not fixable from
// outside); Go sends catch-up messages in seq order, live ones in the order
// they arrive. JavaScript peers accept replays from each other; Go peers
// behind them do not deliver them.
//
// # Rounds
//
// Every Interval (100 ms, as secure-gossip; negative disables, then call
// Gossip) a node writes to each link the messages queued for it since the
// last round, then any digest due. A message thus moves one hop per round
// of the receiving node; with rounds at unsynchronized phases a hop takes
// half an interval on average plus the link's latency.
package gossip
