package boxstream

import (
	"errors"
	"net"
	"sync"
)

// Keys are the secrets of one side of a connection after the handshake.
type Keys struct {
	EncryptKey   [32]byte
	EncryptNonce [24]byte
	DecryptKey   [32]byte
	DecryptNonce [24]byte
}

// A Conn is a net.Conn whose both directions are box-streams.
type Conn struct {
	net.Conn
	r         *Reader
	w         *Writer
	closeOnce sync.Once
	closeErr  error
}

// NewConn wraps conn with the keys of one side of the handshake.
func NewConn(conn net.Conn, k Keys) *Conn {
	return &Conn{
		Conn: conn,
		r:    NewReader(conn, k.DecryptKey, k.DecryptNonce),
		w:    NewWriter(conn, k.EncryptKey, k.EncryptNonce),
	}
}

// Read reads decrypted bytes; io.EOF after the peer's goodbye.
func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// Write sends p encrypted.
func (c *Conn) Write(p []byte) (int, error) { return c.w.Write(p) }

// CloseWrite sends goodbye and half-closes the connection when it can.
func (c *Conn) CloseWrite() error {
	err := c.w.Close()
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		err = errors.Join(err, cw.CloseWrite())
	}
	return err
}

// Close sends goodbye (if not sent yet) and closes the connection. When a
// Write is in progress (a peer that does not read can block it forever),
// it closes the connection without goodbye, which ends that Write.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		_, err := c.w.tryClose()
		c.closeErr = errors.Join(err, c.Conn.Close())
	})
	return c.closeErr
}
