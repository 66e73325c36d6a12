// Package shs implements the Secure Scuttlebutt secret handshake (SHS v1):
// a client that knows a server's public key and the network key, and a
// server that knows its own key pair and the network key, authenticate each
// other and derive the keys of a box-stream connection.
//
//	1 C→S  hmac(N, a_pk) ‖ a_pk                                    64 bytes
//	2 S→C  hmac(N, b_pk) ‖ b_pk                                    64 bytes
//	3 C→S  box[sha256(N‖ab‖aB)](sign_A(N‖B‖sha256(ab)) ‖ A)       112 bytes
//	4 S→C  box[sha256(N‖ab‖aB‖Ab)](sign_B(N‖sig_A‖A‖sha256(ab)))  80 bytes
//
// N is the network key ("caps.shs"), A and B the long-term ed25519 keys of
// client and server, a and b their ephemeral X25519 keys. A side that
// receives an invalid message hangs up without sending anything more.
package shs

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"filippo.io/edwards25519"
	"golang.org/x/crypto/curve25519"
	"golang.org/x/crypto/nacl/auth"
	"golang.org/x/crypto/nacl/secretbox"

	"github.com/scuttlego/scuttle/internal/sodium"
	"github.com/scuttlego/scuttle/ssb/boxstream"
)

// Message sizes.
const (
	HelloSize  = 64  // messages 1 and 2
	AuthSize   = 112 // message 3
	AcceptSize = 80  // message 4
)

// DefaultTimeout bounds a handshake whose context has no deadline.
const DefaultTimeout = 15 * time.Second

// Errors a handshake returns; each says what a user can check.
var (
	// ErrWrongNetwork: the peer's hello does not authenticate with our
	// network key. The peer is on another network (caps.shs).
	ErrWrongNetwork = errors.New("shs: wrong network key: the peer's hello does not authenticate (check caps.shs)")
	// ErrServerHungUp: the server closed the connection after our
	// authentication. It is not the server whose key we dialed, or it
	// refused us.
	ErrServerHungUp = errors.New("shs: server key mismatch: the server hung up after our authentication (wrong server key, or the server refused us)")
	// ErrClientAuth: the client's authentication (message 3) is invalid.
	ErrClientAuth = errors.New("shs: client authentication failed")
	// ErrServerAccept: the server's accept (message 4) does not verify.
	ErrServerAccept = errors.New("shs: server accept failed: the server does not hold the key we dialed")
	// ErrRefused: the server's Authorize function refused the client.
	ErrRefused = errors.New("shs: client refused")
	// ErrBadKey reports a key of the wrong size or a low-order point.
	ErrBadKey = errors.New("shs: invalid key")
)

// A Result is what a successful handshake yields.
type Result struct {
	Keys   boxstream.Keys    // this side's box-stream keys
	Remote ed25519.PublicKey // the peer's long-term public key
}

// ephemeral is an X25519 key pair.
type ephemeral struct{ sk, pk [32]byte }

func newEphemeral(rnd io.Reader) (ephemeral, error) {
	var e ephemeral
	if _, err := io.ReadFull(rnd, e.sk[:]); err != nil {
		return e, fmt.Errorf("shs: ephemeral key: %w", err)
	}
	pk, err := curve25519.X25519(e.sk[:], curve25519.Basepoint)
	if err != nil {
		return e, fmt.Errorf("shs: ephemeral key: %w", err)
	}
	copy(e.pk[:], pk)
	return e, nil
}

// curvePublic converts an ed25519 public key to X25519, refusing points of
// small order (which would make the shared secret predictable).
func curvePublic(pub ed25519.PublicKey) ([]byte, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes", ErrBadKey, len(pub))
	}
	p, err := new(edwards25519.Point).SetBytes(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return nil, fmt.Errorf("%w: public key of small order", ErrBadKey)
	}
	return p.BytesMontgomery(), nil
}

// curvePrivate converts an ed25519 private key to an X25519 scalar.
func curvePrivate(priv ed25519.PrivateKey) []byte {
	h := sha512.Sum512(priv.Seed())
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	return h[:32]
}

func dh(scalar, point []byte) ([]byte, error) {
	s, err := curve25519.X25519(scalar, point)
	if err != nil { // a low-order point gives an all-zero secret
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	return s, nil
}

func hash(parts ...[]byte) [32]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write(p)
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func hello(network *[32]byte, pk [32]byte) []byte {
	mac := auth.Sum(pk[:], network)
	return append(mac[:32], pk[:]...)
}

// readHello reads message 1 or 2 and returns its MAC and key.
func readHello(r io.Reader, network *[32]byte) (mac [32]byte, pk [32]byte, err error) {
	var msg [HelloSize]byte
	if _, err := io.ReadFull(r, msg[:]); err != nil {
		return mac, pk, fmt.Errorf("shs: reading hello: %w", err)
	}
	copy(mac[:], msg[:32])
	copy(pk[:], msg[32:])
	if !auth.Verify(mac[:], pk[:], network) {
		return mac, pk, ErrWrongNetwork
	}
	return mac, pk, nil
}

// keys derives the box-stream keys of one side.
func keys(shared [32]byte, localPK, remotePK ed25519.PublicKey, localMAC, remoteMAC [32]byte) boxstream.Keys {
	secret := hash(shared[:])
	var k boxstream.Keys
	k.EncryptKey = hash(secret[:], remotePK)
	k.DecryptKey = hash(secret[:], localPK)
	copy(k.EncryptNonce[:], remoteMAC[:24])
	copy(k.DecryptNonce[:], localMAC[:24])
	return k
}

var zeroNonce [24]byte

// Client runs the client side of the handshake over rw: local is the
// client's key, server the public key of the server it expects.
func Client(rw io.ReadWriter, network [32]byte, local ed25519.PrivateKey, server ed25519.PublicKey) (Result, error) {
	return client(rw, network, local, server, rand.Reader)
}

func client(rw io.ReadWriter, network [32]byte, local ed25519.PrivateKey, server ed25519.PublicKey, rnd io.Reader) (Result, error) {
	serverCurve, err := curvePublic(server)
	if err != nil {
		return Result{}, fmt.Errorf("shs: server key: %w", err)
	}
	eph, err := newEphemeral(rnd)
	if err != nil {
		return Result{}, err
	}
	msg1 := hello(&network, eph.pk)
	if _, err := rw.Write(msg1); err != nil {
		return Result{}, fmt.Errorf("shs: sending hello: %w", err)
	}
	var localMAC [32]byte
	copy(localMAC[:], msg1[:32])

	remoteMAC, bPK, err := readHello(rw, &network)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		// A server hangs up on a hello that does not authenticate.
		return Result{}, fmt.Errorf("%w (the server hung up on our hello)", ErrWrongNetwork)
	}
	if err != nil {
		return Result{}, err
	}
	ab, err := dh(eph.sk[:], bPK[:])
	if err != nil {
		return Result{}, err
	}
	aB, err := dh(eph.sk[:], serverCurve)
	if err != nil {
		return Result{}, err
	}
	abHash := sha256.Sum256(ab)
	localPK := local.Public().(ed25519.PublicKey)
	sigA := ed25519.Sign(local, concat(network[:], server, abHash[:]))
	key3 := hash(network[:], ab, aB)
	msg3 := secretbox.Seal(nil, concat(sigA, localPK), &zeroNonce, &key3)
	if _, err := rw.Write(msg3); err != nil {
		return Result{}, fmt.Errorf("shs: sending authentication: %w", err)
	}

	var msg4 [AcceptSize]byte
	if _, err := io.ReadFull(rw, msg4[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return Result{}, ErrServerHungUp
		}
		return Result{}, fmt.Errorf("shs: reading accept: %w", err)
	}
	Ab, err := dh(curvePrivate(local), bPK[:])
	if err != nil {
		return Result{}, err
	}
	key4 := hash(network[:], ab, aB, Ab)
	sigB, ok := secretbox.Open(nil, msg4[:], &zeroNonce, &key4)
	if !ok || !sodium.VerifyBytes(server, concat(network[:], sigA, localPK, abHash[:]), sigB) {
		return Result{}, ErrServerAccept
	}
	return Result{
		Keys:   keys(key4, localPK, server, localMAC, remoteMAC),
		Remote: append(ed25519.PublicKey(nil), server...),
	}, nil
}

// Server runs the server side of the handshake over rw. authorize, when not
// nil, is called with the client's key once it has proved it holds it; an
// error refuses the client (the server hangs up without accepting).
func Server(rw io.ReadWriter, network [32]byte, local ed25519.PrivateKey, authorize func(ed25519.PublicKey) error) (Result, error) {
	return server(rw, network, local, authorize, rand.Reader)
}

func server(rw io.ReadWriter, network [32]byte, local ed25519.PrivateKey, authorize func(ed25519.PublicKey) error, rnd io.Reader) (Result, error) {
	remoteMAC, aPK, err := readHello(rw, &network)
	if err != nil {
		return Result{}, err
	}
	eph, err := newEphemeral(rnd)
	if err != nil {
		return Result{}, err
	}
	ab, err := dh(eph.sk[:], aPK[:])
	if err != nil {
		return Result{}, err
	}
	msg2 := hello(&network, eph.pk)
	if _, err := rw.Write(msg2); err != nil {
		return Result{}, fmt.Errorf("shs: sending hello: %w", err)
	}
	var localMAC [32]byte
	copy(localMAC[:], msg2[:32])

	var msg3 [AuthSize]byte
	if _, err := io.ReadFull(rw, msg3[:]); err != nil {
		return Result{}, fmt.Errorf("shs: reading authentication: %w", err)
	}
	aB, err := dh(curvePrivate(local), aPK[:])
	if err != nil {
		return Result{}, err
	}
	key3 := hash(network[:], ab, aB)
	plain, ok := secretbox.Open(nil, msg3[:], &zeroNonce, &key3)
	if !ok {
		return Result{}, fmt.Errorf("%w: message 3 does not decrypt", ErrClientAuth)
	}
	sigA, clientPK := plain[:ed25519.SignatureSize], ed25519.PublicKey(plain[ed25519.SignatureSize:])
	abHash := sha256.Sum256(ab)
	localPK := local.Public().(ed25519.PublicKey)
	clientCurve, err := curvePublic(clientPK)
	if err != nil {
		return Result{}, fmt.Errorf("%w: %w", ErrClientAuth, err)
	}
	if !sodium.VerifyBytes(clientPK, concat(network[:], localPK, abHash[:]), sigA) {
		return Result{}, fmt.Errorf("%w: signature does not verify", ErrClientAuth)
	}
	if authorize != nil {
		if err := authorize(clientPK); err != nil {
			return Result{}, fmt.Errorf("%w: %w", ErrRefused, err)
		}
	}
	Ab, err := dh(eph.sk[:], clientCurve)
	if err != nil {
		return Result{}, err
	}
	key4 := hash(network[:], ab, aB, Ab)
	sigB := ed25519.Sign(local, concat(network[:], sigA, clientPK, abHash[:]))
	if _, err := rw.Write(secretbox.Seal(nil, sigB, &zeroNonce, &key4)); err != nil {
		return Result{}, fmt.Errorf("shs: sending accept: %w", err)
	}
	return Result{
		Keys:   keys(key4, localPK, clientPK, localMAC, remoteMAC),
		Remote: append(ed25519.PublicKey(nil), clientPK...),
	}, nil
}

func concat(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	out := make([]byte, 0, n)
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// deadline applies ctx's deadline, or DefaultTimeout, to conn for the
// handshake, and returns a function that clears it.
func deadline(ctx context.Context, conn net.Conn) (clear func()) {
	d, ok := ctx.Deadline()
	if !ok {
		d = time.Now().Add(DefaultTimeout)
	}
	conn.SetDeadline(d)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	return func() {
		stop()
		conn.SetDeadline(time.Time{})
	}
}

// ClientConn runs the client handshake on conn and returns the encrypted
// connection. The handshake is bounded by ctx (DefaultTimeout when it has no
// deadline). On failure conn is closed.
func ClientConn(ctx context.Context, conn net.Conn, network [32]byte, local ed25519.PrivateKey, server ed25519.PublicKey) (*boxstream.Conn, error) {
	clear := deadline(ctx, conn)
	res, err := Client(conn, network, local, server)
	clear()
	if err != nil {
		conn.Close()
		return nil, ctxErr(ctx, err)
	}
	return boxstream.NewConn(conn, res.Keys), nil
}

// ServerConn runs the server handshake on conn and returns the encrypted
// connection and the client's key. The handshake is bounded by ctx
// (DefaultTimeout when it has no deadline). On failure conn is closed.
func ServerConn(ctx context.Context, conn net.Conn, network [32]byte, local ed25519.PrivateKey, authorize func(ed25519.PublicKey) error) (*boxstream.Conn, ed25519.PublicKey, error) {
	clear := deadline(ctx, conn)
	res, err := Server(conn, network, local, authorize)
	clear()
	if err != nil {
		conn.Close()
		return nil, nil, ctxErr(ctx, err)
	}
	return boxstream.NewConn(conn, res.Keys), res.Remote, nil
}

func ctxErr(ctx context.Context, err error) error {
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("shs: handshake: %w (%w)", ctx.Err(), err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		// The connection's deadline can fire just before ctx's timer.
		return fmt.Errorf("shs: handshake timed out: %w (%w)", context.DeadlineExceeded, err)
	}
	return err
}
