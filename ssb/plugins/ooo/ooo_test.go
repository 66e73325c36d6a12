package ooo_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/internal/servertest"
	"github.com/scuttlego/scuttle/internal/ssbtest"
	"github.com/scuttlego/scuttle/ssb/client"
	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/all"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goServer runs our server with all.Default() (ooo included) until the test ends,
// and returns it, its owner's connection and its address.
func goServer(t *testing.T, caps [32]byte) (*server.Server, *client.Client, net.Addr) {
	t.Helper()
	r := servertest.Start(t, server.Config{Path: t.TempDir(), Caps: servertest.Caps(caps)}, all.Default()...)
	return r.Server, &client.Client{Endpoint: r.Owner(t)}, r.Addr
}

// feed returns n messages of a new author and their ids.
func feed(t *testing.T, n int) (*keys.KeyPair, [][]byte, []refs.Message) {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	raws, err := ssbtest.Feed(kp, n, 1.7e12)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]refs.Message, n)
	for i, raw := range raws {
		m, err := message.Decode(raw)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = m.Key
	}
	return kp, raws, ids
}

// getResult is ooo.get's answer.
type getResult struct {
	Key       string
	Value     json.RawMessage
	Timestamp float64
	OOO       bool
}

func oooGet(ctx context.Context, e *muxrpc.Endpoint, id refs.Message, timeoutMS int) (getResult, error) {
	var r getResult
	err := e.AsyncJSON(ctx, &r, muxrpc.Method{"ooo", "get"}, map[string]any{"id": id.String(), "timeout": timeoutMS})
	return r, err
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

// Our server, connected to ssb-server 16, fetches with ooo.get a message
// of a feed it does not replicate that only ssb-server holds; and
// ssb-server's ooo.get fetches from us a message only we hold. Neither
// lands in the other's main log. The ooo.stream is opened by the side that
// dialed: ours on ssb-server, or ssb-server's on ours.
func TestInteropBothWays(t *testing.T) {
	oracle.Require(t)
	t.Run("we dial", func(t *testing.T) { interop(t, false) })
	t.Run("ssb-server dials", func(t *testing.T) { interop(t, true) })
}

func interop(t *testing.T, jsDials bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	js, err := ssbtest.StartJSServer(ctx, oracle.Runner(t, "ssb-server-peer.js"), t.TempDir(), caps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(js.Close)
	srv, local, addr := goServer(t, caps)

	jsAuthor, jsRaws, jsIDs := feed(t, 3)
	if err := ssbtest.Load(ctx, js.Client, jsAuthor.ID, jsRaws); err != nil {
		t.Fatal(err)
	}
	goAuthor, goRaws, goIDs := feed(t, 3)
	if err := ssbtest.Load(ctx, local, goAuthor.ID, goRaws); err != nil {
		t.Fatal(err)
	}
	if jsDials {
		if _, err := js.Client.Async(ctx, muxrpc.Method{"gossip", "connect"}, ssbtest.Address(addr.String(), srv.ID())); err != nil {
			t.Fatal(err)
		}
	} else if _, err := srv.Connect(ctx, js.Address()); err != nil {
		t.Fatal(err)
	}

	r, err := oooGet(ctx, local.Endpoint, jsIDs[1], 20000)
	if err != nil {
		t.Fatalf("our ooo.get of a message ssb-server holds: %v", err)
	}
	if r.Key != jsIDs[1].String() || !r.OOO || r.Timestamp == 0 || !sameJSON(t, r.Value, jsRaws[1]) {
		t.Errorf("our ooo.get: %+v, want key %s, ooo true and the value %s", r, jsIDs[1], jsRaws[1])
	}
	if _, err := srv.Store().Get(jsIDs[1]); err == nil {
		t.Errorf("the fetched message is in our main log")
	}

	r, err = oooGet(ctx, js.Client.Endpoint, goIDs[2], 20000)
	if err != nil {
		t.Fatalf("ssb-server's ooo.get of a message we hold: %v", err)
	}
	if r.Key != goIDs[2].String() || !r.OOO || !sameJSON(t, r.Value, goRaws[2]) {
		t.Errorf("ssb-server's ooo.get: %+v, want key %s, ooo true and the value %s", r, goIDs[2], goRaws[2])
	}
	var latest int64
	js.Client.AsyncJSON(ctx, &latest, muxrpc.Method{"latestSequence"}, goAuthor.ID.String())
	if latest != 0 {
		t.Errorf("ssb-server's main log holds our author up to %d", latest)
	}

	if jsDials {
		return
	}
	// ooo.help as ssb-server answers it.
	var want, got any
	if err := js.Client.AsyncJSON(ctx, &want, muxrpc.Method{"ooo", "help"}); err != nil {
		t.Fatal(err)
	}
	if err := local.AsyncJSON(ctx, &got, muxrpc.Method{"ooo", "help"}); err != nil {
		t.Fatal(err)
	}
	wb, _ := json.Marshal(want)
	gb, _ := json.Marshal(got)
	if string(wb) != string(gb) {
		t.Errorf("ooo.help:\n got %s\nwant %s", gb, wb)
	}
}

// fakePeer connects to the server as a stranger, opens ooo.stream, and
// answers each request it reads with answer(id) (nothing when nil).
func fakePeer(t *testing.T, ctx context.Context, caps [32]byte, srv *server.Server, addr net.Addr, answer func(id string) []byte) {
	t.Helper()
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.Dial(ctx, addr.String(), caps, kp, srv.Keys().Public, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.Open(muxrpc.Method{"ooo", "stream"}, muxrpc.Duplex)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			var data map[string]json.RawMessage
			if err := st.RecvJSON(ctx, &data); err != nil {
				return
			}
			for id := range data {
				if b := answer(id); b != nil {
					st.SendRaw(muxrpc.JSON, []byte(`{"`+id+`":`+string(b)+`}`))
				}
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
}

// A peer that answers with a message whose hash is not the id asked for is
// refused: with no other peer, ooo.get ends at its timeout and says why;
// with another peer that answers right, ooo.get gets the message.
func TestInvalidAnswerRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var caps [32]byte
	rand.Read(caps[:])
	srv, local, addr := goServer(t, caps)
	_, raws, ids := feed(t, 3)
	wrong := func(string) []byte { return raws[0] }
	fakePeer(t, ctx, caps, srv, addr, wrong)

	_, err := oooGet(ctx, local.Endpoint, ids[1], 300)
	var rerr *muxrpc.Error
	if !errors.As(err, &rerr) || !strings.Contains(rerr.Message, "ooo.get: took more than timeout:300") || !strings.Contains(rerr.Message, "refused") {
		t.Fatalf("ooo.get answered only by a bad peer: %v, want the timeout and the refusal", err)
	}

	right := func(id string) []byte {
		if id == ids[2].String() {
			return raws[2]
		}
		return nil
	}
	fakePeer(t, ctx, caps, srv, addr, right)
	r, err := oooGet(ctx, local.Endpoint, ids[2], 20000)
	if err != nil {
		t.Fatalf("ooo.get with a good peer beside the bad one: %v", err)
	}
	if r.Key != ids[2].String() || !sameJSON(t, r.Value, raws[2]) {
		t.Errorf("ooo.get: %+v, want %s", r, raws[2])
	}
	// A second get is answered from what was fetched.
	if r, err := oooGet(ctx, local.Endpoint, ids[2], 1); err != nil || r.Key != ids[2].String() {
		t.Errorf("second ooo.get: %+v, %v", r, err)
	}
}

// ooo.get of an id that is not a message id fails at once.
func TestGetBadID(t *testing.T) {
	var caps [32]byte
	_, local, _ := goServer(t, caps)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := local.Async(ctx, muxrpc.Method{"ooo", "get"}, "%nope"); err == nil || !strings.Contains(err.Error(), "not a message id") {
		t.Errorf("ooo.get of %%nope: %v", err)
	}
}
