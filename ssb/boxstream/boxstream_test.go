package boxstream

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"testing"
	"testing/iotest"

	"go.uber.org/goleak"
	"golang.org/x/crypto/nacl/secretbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testdata/vectors.json is transcribed from sunrise-choir/box-stream-c
// src/test.c (see its "source" field).
type vectors struct {
	Key, Nonce string
	Chunks     []struct{ Plaintext, Header, Body string }
	Goodbye    string
}

func loadVectors(t testing.TB) (v vectors, key [32]byte, nonce [24]byte) {
	b, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	copy(key[:], unhex(t, v.Key))
	copy(nonce[:], unhex(t, v.Nonce))
	return v, key, nonce
}

func unhex(t testing.TB, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVectorsWrite(t *testing.T) {
	v, key, nonce := loadVectors(t)
	var out bytes.Buffer
	w := NewWriter(&out, key, nonce)
	var want []byte
	for _, c := range v.Chunks {
		if _, err := w.Write(unhex(t, c.Plaintext)); err != nil {
			t.Fatal(err)
		}
		want = append(append(want, unhex(t, c.Header)...), unhex(t, c.Body)...)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	want = append(want, unhex(t, v.Goodbye)...)
	if !bytes.Equal(out.Bytes(), want) {
		t.Fatalf("frames differ from the vectors:\n got %x\nwant %x", out.Bytes(), want)
	}
}

func TestVectorsRead(t *testing.T) {
	v, key, nonce := loadVectors(t)
	var in []byte
	var want []byte
	for _, c := range v.Chunks {
		in = append(append(in, unhex(t, c.Header)...), unhex(t, c.Body)...)
		want = append(want, unhex(t, c.Plaintext)...)
	}
	in = append(in, unhex(t, v.Goodbye)...)
	got, err := io.ReadAll(NewReader(bytes.NewReader(in), key, nonce))
	if err != nil {
		t.Fatalf("ReadAll: %v (a goodbye must read as a clean EOF)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got %x, want %x", got, want)
	}
}

func TestRoundTripSplitsLargeWrites(t *testing.T) {
	var key [32]byte
	var nonce [24]byte
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range key {
		key[i] = byte(rng.Uint32())
	}
	nonce[23] = 0xff // exercise the carry across bytes
	nonce[22] = 0xff
	var wire bytes.Buffer
	w := NewWriter(&wire, key, nonce)
	var want []byte
	for _, size := range []int{1, 100, MaxChunk, MaxChunk + 1, 3*MaxChunk + 7, 0} {
		p := make([]byte, size)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		if n, err := w.Write(p); n != size || err != nil {
			t.Fatalf("Write(%d bytes) = %d, %v", size, n, err)
		}
		want = append(want, p...)
	}
	w.Close()
	// Every frame carries at most MaxChunk bytes: 1, 100, 4096, 4096+1,
	// 4096*3+7 are 1+1+1+2+4 frames, plus the goodbye; nothing for 0.
	wantLen := len(want) + 9*HeaderSize + HeaderSize
	if wire.Len() != wantLen {
		t.Errorf("wire has %d bytes, want %d", wire.Len(), wantLen)
	}
	got, err := io.ReadAll(NewReader(&wire, key, nonce))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("round trip: %d bytes, %v", len(got), err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// The read-ahead gives the same bytes whatever the underlying reader
// returns at once (one byte, half of what is asked, everything), across
// many frames and more than one read-ahead buffer; it gives its buffer
// back once drained, and at the end.
func TestReadAhead(t *testing.T) {
	var key [32]byte
	var nonce [24]byte
	key[0] = 7
	var wire bytes.Buffer
	w := NewWriter(&wire, key, nonce)
	want := make([]byte, 3*ReadAhead+12345)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range want {
		want[i] = byte(rng.Uint32())
	}
	for rest := want; len(rest) > 0; {
		n := min(len(rest), 1+rng.IntN(3*MaxChunk))
		w.Write(rest[:n])
		rest = rest[n:]
	}
	w.Close()
	wire.Write([]byte("after the goodbye"))
	for name, wrap := range map[string]func(io.Reader) io.Reader{
		"one byte": iotest.OneByteReader,
		"half":     iotest.HalfReader,
		"all":      func(r io.Reader) io.Reader { return r },
	} {
		t.Run(name, func(t *testing.T) {
			r := NewReader(wrap(bytes.NewReader(wire.Bytes())), key, nonce)
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %d bytes of %d, %v", len(got), len(want), err)
			}
			if r.ahead != nil {
				t.Error("the read-ahead buffer is held after the goodbye")
			}
		})
	}
	t.Run("ends inside a body after a read-ahead", func(t *testing.T) {
		cut := wire.Bytes()[:ReadAhead+HeaderSize+100]
		_, err := io.ReadAll(NewReader(bytes.NewReader(cut), key, nonce))
		if !errors.Is(err, ErrNoGoodbye) {
			t.Fatalf("err = %v, want ErrNoGoodbye", err)
		}
	})
}

func TestBadInput(t *testing.T) {
	v, key, nonce := loadVectors(t)
	frame := append(unhex(t, v.Chunks[0].Header), unhex(t, v.Chunks[0].Body)...)

	t.Run("ends without goodbye", func(t *testing.T) {
		_, err := io.ReadAll(NewReader(bytes.NewReader(frame), key, nonce))
		if !errors.Is(err, ErrNoGoodbye) {
			t.Fatalf("err = %v, want ErrNoGoodbye", err)
		}
	})
	t.Run("ends inside a frame", func(t *testing.T) {
		_, err := io.ReadAll(NewReader(bytes.NewReader(frame[:HeaderSize+3]), key, nonce))
		if !errors.Is(err, ErrNoGoodbye) {
			t.Fatalf("err = %v, want ErrNoGoodbye", err)
		}
	})
	t.Run("tampered body", func(t *testing.T) {
		bad := bytes.Clone(frame)
		bad[len(bad)-1] ^= 1
		_, err := io.ReadAll(NewReader(bytes.NewReader(bad), key, nonce))
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other := key
		other[0] ^= 1
		_, err := io.ReadAll(NewReader(bytes.NewReader(frame), other, nonce))
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
	})
	for _, n := range []int{0, MaxChunk + 1, 65535} {
		// A header that authenticates but announces an impossible length.
		var plain [18]byte
		binary.BigEndian.PutUint16(plain[:2], uint16(n))
		plain[5] = 1 // not a goodbye
		header := secretbox.Seal(nil, plain[:], &nonce, &key)
		r := NewReader(bytes.NewReader(append(header, make([]byte, 70000)...)), key, nonce)
		if _, err := io.ReadAll(r); !errors.Is(err, ErrFrame) {
			t.Errorf("length %d: err = %v, want ErrFrame", n, err)
		}
		if _, err := r.Read(make([]byte, 1)); !errors.Is(err, ErrFrame) {
			t.Errorf("length %d: a second Read gave %v, want the same error", n, err)
		}
	}
}

func TestConnHalfClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var k Keys
	k.EncryptKey[0], k.DecryptKey[0] = 1, 2
	k.EncryptNonce[0], k.DecryptNonce[0] = 3, 4
	peer := Keys{EncryptKey: k.DecryptKey, EncryptNonce: k.DecryptNonce, DecryptKey: k.EncryptKey, DecryptNonce: k.EncryptNonce}
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		sc := NewConn(c, peer)
		defer sc.Close()
		msg, err := io.ReadAll(sc) // until our goodbye
		if err != nil {
			done <- err
			return
		}
		_, err = sc.Write(append([]byte("echo:"), msg...))
		done <- err
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := NewConn(raw, k)
	defer c.Close()
	c.Write([]byte("hello"))
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "echo:hello" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// FuzzReader: arbitrary bytes never panic; a Reader returns an error or
// io.EOF, and never more plaintext than the input.
func FuzzReader(f *testing.F) {
	v, key, nonce := loadVectors(f)
	var valid []byte
	for _, c := range v.Chunks {
		valid = append(append(valid, unhex(f, c.Header)...), unhex(f, c.Body)...)
	}
	f.Add(append(valid, unhex(f, v.Goodbye)...))
	f.Add(valid[:40])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), key, nonce)
		buf := make([]byte, 512)
		total := 0
		for {
			n, err := r.Read(buf)
			total += n
			if total > len(data) {
				t.Fatalf("read %d plaintext bytes from %d input bytes", total, len(data))
			}
			if err != nil {
				return
			}
		}
	})
}

// A Close while a Write is blocked on a peer that does not read must not
// wait for that Write: it closes the connection, which ends the Write.
func TestConnCloseDuringBlockedWrite(t *testing.T) {
	a, b := net.Pipe() // unbuffered: a Write blocks until b reads
	defer b.Close()
	var k Keys
	c := NewConn(a, k)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("nobody reads this"))
		wrote <- err
	}()
	// Wait until the Write holds the writer: b sees the first bytes.
	var first [1]byte
	if _, err := b.Read(first[:]); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- c.Close() }()
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-wrote; err == nil {
		t.Fatal("the blocked Write succeeded after Close")
	}
}
