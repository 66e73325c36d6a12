package gossip_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/scuttlego/scuttle/ssb/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// serve runs our server with the default plugins in dir until the test
// ends, and returns it and its owner's connection.
func serve(t *testing.T, dir string) (*server.Server, *client.Client) {
	t.Helper()
	var caps [32]byte
	rand.Read(caps[:])
	r := servertest.Start(t, server.Config{Path: dir, Caps: servertest.Caps(caps)}, all.Default()...)
	return r.Server, &client.Client{Endpoint: r.Owner(t)}
}

// pubFeed signs pub messages of author after prev, one per address.
func pubFeed(t *testing.T, author *keys.KeyPair, prev *message.FeedState, addrs []any) [][]byte {
	var raws [][]byte
	for _, a := range addrs {
		m, err := message.Create(author, nil, prev, float64(1e12+prev.Sequence), map[string]any{"type": "pub", "address": a})
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, m.Raw)
		*prev = m.State()
	}
	return raws
}

func pubPeers(t *testing.T, srv *server.Server) []string {
	var out []string
	for _, k := range srv.KnownPeers() {
		if k["source"] == server.SourcePub {
			out = append(out, k["address"].(string))
		}
	}
	slices.Sort(out)
	return out
}

func shs(kp *keys.KeyPair) string { return base64.StdEncoding.EncodeToString(kp.ID.PublicKey()) }

// The addresses of pub messages in the store, old and new, become known
// peers from source "pub"; forged ones and our own are ignored.
func TestPubMessagesAddPeers(t *testing.T) {
	srv, owner := serve(t, t.TempDir())
	author, _ := keys.Generate(nil)
	p1, p2, p3, own := mustKey(t), mustKey(t), mustKey(t), srv.Keys()
	addrs := []any{
		map[string]any{"host": "127.0.0.1", "port": 18001, "key": p1.ID.String()},
		"net:127.0.0.2:18002~shs:" + shs(p2),
		map[string]any{"host": "a b", "port": 1, "key": p1.ID.String()},
		map[string]any{"host": "127.0.0.1", "port": 0, "key": p1.ID.String()},
		map[string]any{"host": "127.0.0.1", "port": 99999, "key": p1.ID.String()},
		map[string]any{"host": "127.0.0.1", "port": 1, "key": "@forged.ed25519"},
		map[string]any{"host": "evil.onion", "port": 1, "key": p1.ID.String()},
		"net:127.0.0.1:1~shs:short",
		map[string]any{"host": "127.0.0.1", "port": 18009, "key": own.ID.String()},
		42, nil,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var prev message.FeedState
	if err := ssbtest.Load(ctx, owner, author.ID, pubFeed(t, author, &prev, addrs)); err != nil {
		t.Fatal(err)
	}
	want := []string{"net:127.0.0.1:18001~shs:" + shs(p1), "net:127.0.0.2:18002~shs:" + shs(p2)}
	waitPeers(t, srv, want)

	// A pub message that arrives later is added too.
	if err := loadMore(ctx, owner, author, pubFeed(t, author, &prev, []any{"10.0.0.3:18003:" + p3.ID.String()}), prev.Sequence); err != nil {
		t.Fatal(err)
	}
	waitPeers(t, srv, append(want, "net:10.0.0.3:18003~shs:"+shs(p3)))
}

// "gossip": {"pub": false} keeps pub messages out of the known peers.
func TestPubMessagesDisabled(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config"), []byte(`{"gossip":{"pub":false}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, owner := serve(t, dir)
	author, p1 := mustKey(t), mustKey(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var prev message.FeedState
	if err := ssbtest.Load(ctx, owner, author.ID, pubFeed(t, author, &prev, []any{"net:127.0.0.1:18001~shs:" + shs(p1)})); err != nil {
		t.Fatal(err)
	}
	// gossip.add still adds peers (source "manual").
	var ok any
	if err := owner.AsyncJSON(ctx, &ok, muxrpc.Method{"gossip", "add"}, "net:127.0.0.9:1~shs:"+shs(mustKey(t))); err != nil {
		t.Fatal(err)
	}
	if got := pubPeers(t, srv); len(got) != 0 {
		t.Errorf("pub peers with pub gossip off: %v", got)
	}
}

func waitPeers(t *testing.T, srv *server.Server, want []string) {
	t.Helper()
	slices.Sort(want)
	if err := oracle.Poll(10*time.Second, func() error {
		if got := pubPeers(t, srv); !slices.Equal(got, want) {
			return fmt.Errorf("pub peers %v, want %v", got, want)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

func mustKey(t *testing.T) *keys.KeyPair {
	kp, err := keys.Generate(nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// loadMore adds messages to a feed the server holds part of, and waits
// until it holds seq.
func loadMore(ctx context.Context, c *client.Client, author *keys.KeyPair, raws [][]byte, seq int64) error {
	for _, raw := range raws {
		if _, err := c.Async(ctx, muxrpc.Method{"add"}, json.RawMessage(raw)); err != nil {
			return err
		}
	}
	return ssbtest.WaitSeq(ctx, c, author.ID, seq)
}
