package muxrpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// BodyType is the encoding of a packet's body.
type BodyType byte

// Body types.
const (
	Binary BodyType = 0
	String BodyType = 1
	JSON   BodyType = 2
)

const (
	flagStream = 0x08
	flagEnd    = 0x04
	typeMask   = 0x03

	// HeaderSize is the size of a packet header:
	// flags(1) ‖ body length uint32be ‖ request number int32be.
	HeaderSize = 9
	// DefaultMaxBody bounds a packet body (4 MiB). A larger announced body is
	// an error that ends the connection.
	DefaultMaxBody = 4 << 20
)

// Codec errors.
var (
	// ErrBodyTooLarge reports a packet announcing a body over the limit.
	ErrBodyTooLarge = errors.New("muxrpc: packet body too large")
	// ErrEmptyBody reports an attempt to send a packet with an empty body,
	// which every JavaScript peer reads as GOODBYE.
	ErrEmptyBody = errors.New("muxrpc: empty packet body (reads as goodbye)")
)

// A Packet is one frame of packet-stream-codec.
type Packet struct {
	Stream bool
	End    bool
	Type   BodyType
	Req    int32 // positive from the caller, negated in replies
	Body   []byte
}

func (p Packet) String() string {
	return fmt.Sprintf("packet{req %d stream %v end %v type %d body %q}", p.Req, p.Stream, p.End, p.Type, p.Body)
}

// AppendPacket appends the encoding of p to dst. An empty body is refused.
func AppendPacket(dst []byte, p Packet) ([]byte, error) {
	if len(p.Body) == 0 {
		return dst, ErrEmptyBody
	}
	flags := byte(p.Type) & typeMask
	if p.Stream {
		flags |= flagStream
	}
	if p.End {
		flags |= flagEnd
	}
	var h [HeaderSize]byte
	h[0] = flags
	binary.BigEndian.PutUint32(h[1:5], uint32(len(p.Body)))
	binary.BigEndian.PutUint32(h[5:9], uint32(p.Req))
	return append(append(dst, h[:]...), p.Body...), nil
}

// Goodbye is the packet that ends a connection: nine zero bytes.
var Goodbye = [HeaderSize]byte{}

// A Decoder reads packets.
type Decoder struct {
	r       io.Reader
	maxBody uint32
	header  [HeaderSize]byte
	// charge, if set, is called before body bytes are allocated; an error
	// ends the read with it.
	charge func(n int) error
}

// NewDecoder returns a decoder that refuses bodies over maxBody bytes
// (DefaultMaxBody when 0).
func NewDecoder(r io.Reader, maxBody uint32) *Decoder {
	if maxBody == 0 {
		maxBody = DefaultMaxBody
	}
	return &Decoder{r: r, maxBody: maxBody}
}

// firstChunk is the part of a body allocated before its bytes arrive; the
// buffer then doubles as they do, so a peer that announces a large body
// and sends little costs little.
const firstChunk = 64 << 10

// Next reads the next packet. It returns io.EOF at a goodbye (any header
// with an empty body, as packet-stream-codec reads it) and
// io.ErrUnexpectedEOF when the input ends elsewhere.
func (d *Decoder) Next() (Packet, error) {
	if _, err := io.ReadFull(d.r, d.header[:]); err != nil {
		if errors.Is(err, io.EOF) {
			return Packet{}, io.ErrUnexpectedEOF
		}
		return Packet{}, err
	}
	n := binary.BigEndian.Uint32(d.header[1:5])
	if n == 0 {
		return Packet{}, io.EOF
	}
	if n > d.maxBody {
		return Packet{}, fmt.Errorf("%w: %d bytes, limit %d", ErrBodyTooLarge, n, d.maxBody)
	}
	body, err := d.readBody(int(n))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Packet{}, err
	}
	return Packet{
		Stream: d.header[0]&flagStream != 0,
		End:    d.header[0]&flagEnd != 0,
		Type:   BodyType(d.header[0] & typeMask),
		Req:    int32(binary.BigEndian.Uint32(d.header[5:9])),
		Body:   body,
	}, nil
}

// readBody reads n bytes, allocating (and charging) as they arrive: in
// all, exactly n bytes are charged.
func (d *Decoder) readBody(n int) ([]byte, error) {
	body := []byte{}
	for len(body) < n {
		size := min(n, max(firstChunk, 2*len(body)))
		if d.charge != nil {
			if err := d.charge(size - len(body)); err != nil {
				return nil, err
			}
		}
		grown := make([]byte, size)
		copy(grown, body)
		if _, err := io.ReadFull(d.r, grown[len(body):]); err != nil {
			return nil, err
		}
		body = grown
	}
	return body, nil
}
