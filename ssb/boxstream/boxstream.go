// Package boxstream implements the box-stream framing of Secure
// Scuttlebutt: after the secret handshake, each direction of a connection
// is a sequence of encrypted, authenticated frames.
//
// A frame is a 34-byte header, secretbox(uint16be(len) ‖ body_mac, n), and
// the body, secretbox(chunk, n+1) without its 16-byte MAC; the nonce n is a
// 24-byte big-endian counter that advances by 2 per frame. Bodies are 1 to
// 4096 bytes. A header whose plaintext is 18 zero bytes ("goodbye") ends
// the stream cleanly.
package boxstream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/nacl/secretbox"
)

// Sizes of the framing.
const (
	// MaxChunk is the largest body of one frame; longer writes are split.
	MaxChunk = 4096
	// HeaderSize is the size of an encrypted frame header.
	HeaderSize = 2 + secretbox.Overhead + secretbox.Overhead
)

// Errors of a Reader.
var (
	// ErrAuth reports a frame that does not authenticate: wrong keys, or
	// data altered on the way.
	ErrAuth = errors.New("boxstream: frame failed authentication")
	// ErrFrame reports a header announcing a body of 0 or more than
	// MaxChunk bytes.
	ErrFrame = errors.New("boxstream: invalid frame length")
	// ErrNoGoodbye reports a connection that ended without a goodbye frame.
	ErrNoGoodbye = errors.New("boxstream: connection ended without goodbye")
)

// increment adds 1 to the big-endian 24-byte nonce, wrapping.
func increment(n *[24]byte) {
	for i := len(n) - 1; i >= 0; i-- {
		n[i]++
		if n[i] != 0 {
			return
		}
	}
}

// A Writer encrypts what is written to it into box-stream frames on the
// underlying writer. It is safe for concurrent use; each Write is sent as
// whole frames.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	key    [32]byte
	nonce  [24]byte
	buf    []byte
	closed bool
}

// NewWriter returns a Writer that encrypts with key, starting at nonce.
func NewWriter(w io.Writer, key [32]byte, nonce [24]byte) *Writer {
	return &Writer{w: w, key: key, nonce: nonce}
}

// Write sends p as frames of at most MaxChunk bytes. Empty writes send
// nothing, as pull-box-stream does.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fmt.Errorf("boxstream: write after goodbye: %w", io.ErrClosedPipe)
	}
	// Seal every frame first, then write them with one call.
	w.buf = w.buf[:0]
	for rest := p; len(rest) > 0; {
		chunk := rest[:min(len(rest), MaxChunk)]
		w.buf = w.seal(w.buf, chunk)
		rest = rest[len(chunk):]
	}
	if len(w.buf) == 0 {
		return 0, nil
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return 0, fmt.Errorf("boxstream: %w", err)
	}
	return len(p), nil
}

// seal appends the frame of chunk to dst and advances the nonce.
func (w *Writer) seal(dst, chunk []byte) []byte {
	headerNonce := w.nonce
	increment(&w.nonce)
	// secretbox output is MAC ‖ ciphertext: the header carries the MAC.
	var body [secretbox.Overhead + MaxChunk]byte
	sealed := secretbox.Seal(body[:0], chunk, &w.nonce, &w.key)
	increment(&w.nonce)
	var plain [2 + secretbox.Overhead]byte
	binary.BigEndian.PutUint16(plain[:2], uint16(len(chunk)))
	copy(plain[2:], sealed[:secretbox.Overhead])
	dst = secretbox.Seal(dst, plain[:], &headerNonce, &w.key)
	return append(dst, sealed[secretbox.Overhead:]...)
}

// Close sends the goodbye frame. It does not close the underlying writer.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.goodbyeLocked()
}

// tryClose sends the goodbye frame unless a Write is in progress (it may be
// blocked on a peer that does not read); busy reports that it did not.
func (w *Writer) tryClose() (busy bool, err error) {
	if !w.mu.TryLock() {
		return true, nil
	}
	defer w.mu.Unlock()
	return false, w.goodbyeLocked()
}

func (w *Writer) goodbyeLocked() error {
	if w.closed {
		return nil
	}
	w.closed = true
	var zero [2 + secretbox.Overhead]byte
	if _, err := w.w.Write(secretbox.Seal(nil, zero[:], &w.nonce, &w.key)); err != nil {
		return fmt.Errorf("boxstream: goodbye: %w", err)
	}
	return nil
}

// A Reader decrypts box-stream frames from the underlying reader. Read
// returns io.EOF after a goodbye frame, ErrNoGoodbye (wrapped) when the
// underlying reader ends without one, and ErrAuth or ErrFrame on a bad
// frame; after an error every Read returns it again.
//
// A frame's body is read together with whatever follows it that has
// arrived, up to ReadAhead bytes, into a buffer of a pool that the Reader
// holds only while it has unread bytes: a stream of frames costs about
// one read call per ReadAhead bytes rather than two per frame, and an idle
// connection, which waits on a frame's header, holds no such buffer. The
// Reader may therefore read past the goodbye frame.
type Reader struct {
	r     io.Reader
	key   [32]byte
	nonce [24]byte
	frame [HeaderSize + MaxChunk]byte
	plain []byte // decrypted bytes not yet read
	buf   [MaxChunk]byte
	ahead *[ReadAhead]byte // from aheadPool while it has unread bytes
	in    []byte           // the unread bytes of ahead
	err   error
}

// ReadAhead is the size of a Reader's read-ahead buffer.
const ReadAhead = 64 << 10

var aheadPool = sync.Pool{New: func() any { return new([ReadAhead]byte) }}

// readFull fills p from the read-ahead bytes, then from the underlying
// reader: directly for a header, with a read-ahead for a body (as
// io.ReadFull: io.EOF only when nothing was read).
func (r *Reader) readFull(p []byte, body bool) error {
	n := copy(p, r.in)
	r.in = r.in[n:]
	if len(r.in) == 0 && r.ahead != nil {
		aheadPool.Put(r.ahead)
		r.ahead = nil
	}
	rest := p[n:]
	if len(rest) == 0 {
		return nil
	}
	var err error
	if !body {
		_, err = io.ReadFull(r.r, rest)
	} else {
		ahead := aheadPool.Get().(*[ReadAhead]byte)
		var got int
		got, err = io.ReadAtLeast(r.r, ahead[:], len(rest))
		copy(rest, ahead[:min(got, len(rest))])
		if got > len(rest) {
			r.ahead, r.in = ahead, ahead[len(rest):got]
		} else {
			aheadPool.Put(ahead)
		}
	}
	if n > 0 && errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// NewReader returns a Reader that decrypts with key, starting at nonce.
func NewReader(r io.Reader, key [32]byte, nonce [24]byte) *Reader {
	return &Reader{r: r, key: key, nonce: nonce}
}

// Read reads decrypted bytes.
func (r *Reader) Read(p []byte) (int, error) {
	for len(r.plain) == 0 {
		if r.err != nil {
			if r.ahead != nil { // nothing more is read: what is left is not needed
				aheadPool.Put(r.ahead)
				r.ahead, r.in = nil, nil
			}
			return 0, r.err
		}
		r.plain, r.err = r.next()
	}
	n := copy(p, r.plain)
	r.plain = r.plain[n:]
	return n, nil
}

// next reads and opens one frame.
func (r *Reader) next() ([]byte, error) {
	header := r.frame[:HeaderSize]
	if err := r.readFull(header, false); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: %w", ErrNoGoodbye, err)
		}
		return nil, fmt.Errorf("boxstream: %w", err)
	}
	var plain [2 + secretbox.Overhead]byte
	if _, ok := secretbox.Open(plain[:0], header, &r.nonce, &r.key); !ok {
		return nil, fmt.Errorf("%w: header", ErrAuth)
	}
	if plain == [2 + secretbox.Overhead]byte{} {
		return nil, io.EOF // goodbye
	}
	n := int(binary.BigEndian.Uint16(plain[:2]))
	if n == 0 || n > MaxChunk {
		return nil, fmt.Errorf("%w: %d bytes", ErrFrame, n)
	}
	// Rebuild MAC ‖ ciphertext of the body to open it.
	body := r.frame[HeaderSize-secretbox.Overhead : HeaderSize+n]
	copy(body, plain[2:])
	if err := r.readFull(body[secretbox.Overhead:], true); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: inside a frame: %w", ErrNoGoodbye, io.ErrUnexpectedEOF)
		}
		return nil, fmt.Errorf("boxstream: %w", err)
	}
	increment(&r.nonce)
	out, ok := secretbox.Open(r.buf[:0], body, &r.nonce, &r.key)
	if !ok {
		return nil, fmt.Errorf("%w: body", ErrAuth)
	}
	increment(&r.nonce)
	return out, nil
}
