// Package message creates, signs and validates classic Secure Scuttlebutt
// messages so that the JavaScript stack (ssb-keys@8, ssb-validate@4.1.4,
// V8) accepts them byte for byte and gives them the same ids.
//
// # JSON as V8 holds it
//
// A message is signed and hashed over JSON.stringify(value, null, 2) of the
// value a JavaScript peer holds after JSON.parse, so the bytes depend on
// V8's object model: key order (array-index keys first), duplicate keys,
// number formatting, and strings of UTF-16 code units that may hold lone
// surrogates. Value models exactly that. Parse reads JSON as
// Buffer#toString followed by JSON.parse does; AppendPretty and
// AppendCompact write it as JSON.stringify(v, null, 2) and JSON.stringify(v)
// do. Strings are held as WTF-8, UTF-8 extended to unpaired surrogates (see
// Value), so that a string from the wire survives a round trip unchanged.
//
// The id of a message hashes its pretty form's UTF-16 code units masked to
// one byte each (the "latin1 quirk" of ssb-keys), while the signature signs
// the UTF-8 of the same text.
//
// # Messages
//
//   - Create makes and signs the next message of a feed.
//   - Validate checks a message as the next one of a feed with the rules of
//     ssb-validate's append; ValidateValue does the same for a parsed Value.
//   - ValidateOOO checks a message received out of order, with the rules of
//     ssb-validate's checkInvalidOOO.
//   - Decode reads back a message validated before, without verifying it.
//   - ID gives the id of any value, as ssb-validate's id() does.
//
// A Message carries what a store needs: the key, previous, author,
// sequence, timestamp, content type, content, and Raw, the compact JSON
// for the wire. A FeedState (the key and sequence of a feed's latest
// message) is all the validators need to know of a feed.
//
// Errors wrap one of the sentinels ErrShape, ErrContent, ErrTooLarge,
// ErrSignature, ErrSequence, ErrFork, ErrHMACKey or ErrSyntax, so
// errors.Is tells the cases apart. A message is valid exactly when
// ssb-validate accepts it, but the checks run in a cheaper and more useful
// order than ssb-validate's: a wrong sequence is reported before the
// signature is checked, and a fork only after it is.
//
// Signatures are verified as libsodium 1.0.18 (which ssb-keys uses through
// sodium-native) verifies them: on top of crypto/ed25519's rules, public
// keys with a non-canonical encoding and public keys or R points of small
// order are rejected, so that no signature one side accepts is refused by
// the other.
//
// Validate parses once, into a tree whose strings share one copy of the
// input, and reuses its buffers; apart from the signature check it costs
// a few microseconds for a typical message (see BenchmarkValidate,
// BenchmarkEd25519Verify and BenchmarkDecode).
package message
