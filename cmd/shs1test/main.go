// Command shs1test runs one side of the secret handshake over standard input
// and output, as the shs1-test suite (npm shs1-test) drives it:
//
//	shs1test NETWORK_KEY SERVER_SECRET SERVER_PUBLIC   server role
//	shs1test NETWORK_KEY SERVER_PUBLIC                 client role
//
// Arguments are hex. After a successful handshake it writes the 112 bytes
// encryption key ‖ encryption nonce ‖ decryption key ‖ decryption nonce;
// on any failure it exits with status 1 and writes nothing more.
package main

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/scuttlego/scuttle/ssb/shs"
)

type stdio struct {
	io.Reader
	io.Writer
}

func main() {
	if err := run(os.Args[1:], stdio{os.Stdin, os.Stdout}); err != nil {
		fmt.Fprintln(os.Stderr, "shs1test:", err)
		os.Exit(1)
	}
}

func run(args []string, rw io.ReadWriter) error {
	if len(args) != 2 && len(args) != 3 {
		return fmt.Errorf("usage: shs1test NETWORK_KEY [SERVER_SECRET] SERVER_PUBLIC (hex)")
	}
	var network [32]byte
	if err := decode(network[:], args[0]); err != nil {
		return fmt.Errorf("network key: %w", err)
	}
	var res shs.Result
	if len(args) == 3 {
		sk := make([]byte, ed25519.PrivateKeySize)
		if err := decode(sk, args[1]); err != nil {
			return fmt.Errorf("server secret: %w", err)
		}
		var err error
		if res, err = shs.Server(rw, network, ed25519.PrivateKey(sk), nil); err != nil {
			return err
		}
	} else {
		pk := make([]byte, ed25519.PublicKeySize)
		if err := decode(pk, args[1]); err != nil {
			return fmt.Errorf("server public key: %w", err)
		}
		_, local, err := ed25519.GenerateKey(nil)
		if err != nil {
			return err
		}
		if res, err = shs.Client(rw, network, local, ed25519.PublicKey(pk)); err != nil {
			return err
		}
	}
	k := res.Keys
	out := make([]byte, 0, 112)
	out = append(append(out, k.EncryptKey[:]...), k.EncryptNonce[:]...)
	out = append(append(out, k.DecryptKey[:]...), k.DecryptNonce[:]...)
	_, err := rw.Write(out)
	return err
}

func decode(dst []byte, s string) error {
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	if len(b) != len(dst) {
		return fmt.Errorf("%d bytes, want %d", len(b), len(dst))
	}
	copy(dst, b)
	return nil
}
