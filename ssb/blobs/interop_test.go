package blobs

import (
	"bytes"
	"encoding/base64"
	"testing"

	"github.com/scuttlego/scuttle/internal/oracle"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// jsBlob is an item of the script's ls.
type jsBlob struct {
	ID   string `json:"id"`
	Size int64  `json:"size"`
}

// TestJavaScriptStore checks the on-disk layout against the real thing:
// the blob store of ssb-server 16 (ssb-blobs/create.js over multiblob, run
// by interop/blobs-store.js). Blobs JavaScript adds are read here by id, and
// blobs added here lie where JavaScript looks for them and read back there.
func TestJavaScriptStore(t *testing.T) {
	js := oracle.Start(t, "blobs-store.js")
	sizes := []int{1, 5, ChunkSize + 1, 1 << 20}

	// JavaScript writes, Go reads.
	jsDir := t.TempDir()
	want := map[refs.Blob][]byte{}
	for i, n := range sizes {
		data := randBytes(uint64(100+i), n)
		r := js.Do(oracle.Cmd{"op": "add", "dir": jsDir, "b64": base64.StdEncoding.EncodeToString(data)})
		id, err := ParseID(r.Str("id"))
		if err != nil || id != idOf(data) {
			t.Fatalf("JavaScript added %d bytes as %q (%v), want %s", n, r.Str("id"), err, idOf(data))
		}
		want[id] = data
	}
	s, err := Open(jsDir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for id, data := range want {
		rc, size, err := s.Get(id)
		if got := readAll(t, rc, err); !bytes.Equal(got, data) || size != int64(len(data)) {
			t.Fatalf("%s added by JavaScript: read %d bytes (size %d), not the ones added", id, len(got), size)
		}
	}
	if got := listAll(t, s); len(got) != len(want) {
		t.Fatalf("list of the JavaScript folder: %d blobs, want %d", len(got), len(want))
	}

	// Go writes, JavaScript reads.
	goDir := t.TempDir()
	g, err := Open(goDir, WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ours := map[string]int64{}
	for i, n := range sizes {
		data := randBytes(uint64(200+i), n)
		id, _, err := g.Add(t.Context(), bytes.NewReader(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		ours[id.String()] = int64(n)
		if p := js.Do(oracle.Cmd{"op": "path", "dir": goDir, "id": id.String()}).Str("path"); p != g.Path(id) {
			t.Fatalf("JavaScript resolves %s to %s, we store it at %s", id, p, g.Path(id))
		}
		var has bool
		if err := js.Do(oracle.Cmd{"op": "has", "dir": goDir, "id": id.String()}).Decode("has", &has); err != nil || !has {
			t.Fatalf("JavaScript has(%s) = %v (%v), want true", id, has, err)
		}
		var jsSize int64
		if err := js.Do(oracle.Cmd{"op": "size", "dir": goDir, "id": id.String()}).Decode("size", &jsSize); err != nil || jsSize != int64(n) {
			t.Fatalf("JavaScript size(%s) = %d (%v), want %d", id, jsSize, err, n)
		}
		got, err := base64.StdEncoding.DecodeString(js.Do(oracle.Cmd{"op": "get", "dir": goDir, "id": id.String()}).Str("b64"))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("JavaScript reads %d bytes for %s (%v), not the %d we added", len(got), id, err, n)
		}
	}
	var items []jsBlob
	if err := js.Do(oracle.Cmd{"op": "ls", "dir": goDir}).Decode("items", &items); err != nil {
		t.Fatal(err)
	}
	if len(items) != len(ours) {
		t.Fatalf("JavaScript lists %d blobs in our folder, want %d: %v", len(items), len(ours), items)
	}
	for _, it := range items {
		if ours[it.ID] != it.Size {
			t.Errorf("JavaScript lists %s with size %d, we added %d", it.ID, it.Size, ours[it.ID])
		}
	}
}
