package blobs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/keys"
)

// ssbKeysObject is a keypair as ssb-keys holds it in JavaScript.
func ssbKeysObject(kp *keys.KeyPair) map[string]string {
	return map[string]string{
		"curve":   "ed25519",
		"public":  base64.StdEncoding.EncodeToString(kp.Public) + ".ed25519",
		"private": base64.StdEncoding.EncodeToString(kp.Private) + ".ed25519",
		"id":      kp.ID.String(),
	}
}

// callJS runs interop/ssb-call.js (the real ssb-client 4.9.0) against the
// server, as kp (a new stranger when nil), and returns one result line per
// call.
func (s *testServer) callJS(t *testing.T, kp *keys.KeyPair, calls []map[string]any) []oracle.Msg {
	t.Helper()
	cfg := map[string]any{
		"host": "127.0.0.1", "port": s.addr.(*net.TCPAddr).Port,
		"key": s.ID().String(), "caps": s.caps, "calls": calls,
	}
	if kp != nil {
		cfg["keys"] = ssbKeysObject(kp)
	}
	b, _ := json.Marshal(cfg)
	js := oracle.Start(t, "ssb-call.js", string(b))
	end := js.WaitFor(func(m oracle.Msg) bool { return len(m.Fields["done"]) > 0 || m.Str("connectError") != "" })
	if e := end.Str("connectError"); e != "" {
		t.Fatalf("ssb-client could not connect: %s", e)
	}
	var results []oracle.Msg
	for _, m := range js.Events() {
		if m.Str("method") != "" {
			results = append(results, m)
		}
	}
	if len(results) != len(calls) {
		t.Fatalf("%d results for %d calls", len(results), len(calls))
	}
	return results
}

// binaryResult is a source of binary chunks as ssb-call.js reports it.
type binaryResult struct {
	Binary string
	Chunks []int
}

func (r binaryResult) bytes() []byte {
	b, _ := base64.StdEncoding.DecodeString(r.Binary)
	return b
}

// The real client of ssb-server 16 adds, reads, checks and lists blobs on
// our server as the owner; the ids are the ones JavaScript's blob store
// computes, and the folder reads back with JavaScript's blob store. A
// stranger may has and get, and is refused add with ssb-server's error.
func TestInteropClient(t *testing.T) {
	oracle.Require(t)
	s := startServer(t, "")
	data := randomBytes(200_000)
	small := []byte("a small blob from JavaScript")

	// The ids JavaScript's store (ssb-blobs/create.js over multiblob)
	// computes for these bytes.
	store := oracle.Start(t, "blobs-store.js")
	jsDir := t.TempDir()
	jsID := func(b []byte) string {
		return store.Do(oracle.Cmd{"op": "add", "dir": jsDir, "b64": base64.StdEncoding.EncodeToString(b)}).Str("id")
	}
	id, smallID := jsID(data), jsID(small)
	missing := jsID([]byte("only in JavaScript's folder"))

	dataFile := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(dataFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	// A sink's callback fires once the client has written its end, not when
	// the server has stored: wait for the server's own account of each add.
	res := s.callJS(t, s.Keys(), []map[string]any{
		{"method": "blobs.add", "type": "sink", "inputFile": dataFile},
		{"method": "blobs.add", "type": "sink", "args": []any{smallID}, "input": base64.StdEncoding.EncodeToString(small)},
	})
	for _, r := range res {
		if e := r.Str("error"); e != "" {
			t.Fatalf("%s: %s", r.Str("method"), e)
		}
	}
	var added []string
	for range 2 {
		r := s.nextAdd(t)
		if r.err != nil {
			t.Fatalf("an add of JavaScript's failed: %v", r.err)
		}
		added = append(added, r.id.String())
	}
	slices.Sort(added)
	want := []string{id, smallID}
	slices.Sort(want)
	if !slices.Equal(added, want) {
		t.Fatalf("JavaScript added %v, want %v", added, want)
	}

	res = s.callJS(t, s.Keys(), []map[string]any{
		{"method": "blobs.get", "type": "source", "args": []any{id}},
		{"method": "blobs.get", "type": "source", "args": []any{map[string]any{"key": smallID, "size": len(small)}}},
		{"method": "blobs.has", "type": "async", "args": []any{id}},
		{"method": "blobs.has", "type": "async", "args": []any{[]string{smallID, missing}}},
		{"method": "blobs.ls", "type": "source"},
		{"method": "blobs.ls", "type": "source", "args": []any{map[string]any{"long": true}}},
		{"method": "blobs.size", "type": "async", "args": []any{id}},
		{"method": "blobs.has", "type": "async", "args": []any{"&not-an-id"}},
	})
	var got binaryResult
	res[0].Decode("result", &got)
	if !bytes.Equal(got.bytes(), data) || !slices.Equal(got.Chunks, []int{65536, 65536, 65536, 200_000 - 3*65536}) {
		t.Errorf("blobs.get from JavaScript: %d bytes in chunks %v, error %q; want the %d added in chunks of 64 KiB", len(got.bytes()), got.Chunks, res[0].Str("error"), len(data))
	}
	res[1].Decode("result", &got)
	if !bytes.Equal(got.bytes(), small) {
		t.Errorf("blobs.get {key, size}: %q, error %q", got.bytes(), res[1].Str("error"))
	}
	var has bool
	var hasMany []bool
	if res[2].Decode("result", &has); !has {
		t.Errorf("blobs.has: %s", res[2].Fields["result"])
	}
	if res[3].Decode("result", &hasMany); !slices.Equal(hasMany, []bool{true, false}) {
		t.Errorf("blobs.has of an array: %v %q", hasMany, res[3].Str("error"))
	}
	var ls []string
	res[4].Decode("result", &ls)
	if slices.Sort(ls); !slices.Equal(ls, want) {
		t.Errorf("blobs.ls: %v, want %v", ls, want)
	}
	var long []meta
	res[5].Decode("result", &long)
	sizes := map[string]int64{}
	for _, m := range long {
		sizes[m.ID] = m.Size
	}
	if len(long) != 2 || sizes[id] != int64(len(data)) || sizes[smallID] != int64(len(small)) {
		t.Errorf("blobs.ls long: %+v", long)
	}
	var size int64
	if res[6].Decode("result", &size); size != int64(len(data)) {
		t.Errorf("blobs.size: %s", res[6].Fields["result"])
	}
	if e := res[7].Str("error"); e != "invalid id:&not-an-id" {
		t.Errorf("blobs.has of a malformed id: error %q, want JavaScript's invalid id:&not-an-id", e)
	}

	// A stranger reads, and may not add, ls or size. (A sink's callback
	// fires once its end is written, before the server's answer: ssb-client
	// reports the refused add as done, with ssb-server as with us. The
	// server refuses it before the plugin sees it, and nothing is stored.)
	stranger := []byte("a stranger's")
	res = s.callJS(t, nil, []map[string]any{
		{"method": "blobs.has", "type": "async", "args": []any{smallID}},
		{"method": "blobs.get", "type": "source", "args": []any{smallID}},
		{"method": "blobs.ls", "type": "source"},
		{"method": "blobs.size", "type": "async", "args": []any{smallID}},
		{"method": "blobs.add", "type": "sink", "input": base64.StdEncoding.EncodeToString(stranger)},
		{"method": "blobs.has", "type": "async", "args": []any{blobID(stranger)}},
		{"method": "blobs.want", "type": "async", "args": []any{smallID}},
		{"method": "blobs.push", "type": "async", "args": []any{smallID}},
	})
	if res[0].Decode("result", &has); !has {
		t.Errorf("stranger's blobs.has: %s %q", res[0].Fields["result"], res[0].Str("error"))
	}
	if res[1].Decode("result", &got); !bytes.Equal(got.bytes(), small) {
		t.Errorf("stranger's blobs.get: %q %q", got.bytes(), res[1].Str("error"))
	}
	if res[5].Decode("result", &has); has {
		t.Error("a stranger's blobs.add was stored")
	}
	for _, i := range []int{2, 3, 6, 7} {
		if e := res[i].Str("error"); !strings.Contains(e, "is not in list of allowed methods") {
			t.Errorf("stranger's %s: error %q, want ssb-server's permission error", res[i].Str("method"), e)
		}
	}
	if n := len(s.added); n != 0 {
		t.Errorf("the stranger's add reached the store (%d adds)", n)
	}

	// Our folder, read by JavaScript's blob store.
	r := store.Do(oracle.Cmd{"op": "get", "dir": s.blobs.Store().Dir(), "id": id})
	if b, _ := base64.StdEncoding.DecodeString(r.Str("b64")); !bytes.Equal(b, data) {
		t.Errorf("JavaScript's store read %d bytes of %s in our folder, want the %d added", len(b), id, len(data))
	}
}
