package persist

import (
	"bytes"
	"errors"
	"hash/fnv"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt/model"
)

var fuzzSeeds = []string{
	`{"id":"A","clock":{"A":1795315732794,"OTHER":5}}` + "\n" + `[["z",3],5,"OTHER"]` + "\n" + `[["x",1],1795315732793,"A"]` + "\n" + `[["y",2],1795315732794,"A"]` + "\n" + `"SYNC"` + "\n",
	`{"id":"A","clock":{}}` + "\n" + `[["k",1],5,"A"]` + "\n" + `[["j",`,
	`{"id":"A","clock":{}}` + "\r\n" + `[["k","h\u00e9"],5,"A","sig"]` + "\r\n",
	"[[\"k\u00e9\",\"\u20ac\U0001F600\"],5,\"\u00fc\"]\n",
	`[["k",1],5,"A"]` + "\n" + "garbage\n" + `[["j",2],6,"A"]` + "\n",
	`[["k",1],5,"A"]` + "\n\x00\x00\x00\n\x00",
	"null\n5\ntrue\n\"other\"\n{\"x\":1}\n[]\n[1,2]\n[[\"a\",1],\"5\",\"A\"]\n[[\"a\",1],5,\"__proto__\"]\n",
	`[["k",2],6,"A"]` + "\n" + `[["k",1],5,"A"]` + "\n" + `[["k",9],6,"A"]` + "\n" + `[["k",3],1e400,"A"]` + "\n",
	`{"id":"A","clock":{}}` + "\n" + `"SYNC"` + "\n" + `[["k",3],7,"A"]` + "\n" + `"SYNC"` + "\n",
	"\n",
	"",
	"\"SYNC\"\n",
	"hello",
}

// FuzzLoad loads arbitrary bytes as a persisted file: Load must not panic,
// must fail only with ErrCorrupt or ErrTorn, and what it loads must save
// and load again to the same history. Cutting the input inside its last
// line (a torn write) must load the lines before it, never half a line.
func FuzzLoad(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m := model.New("F")
		err := Load(bytes.NewReader(data), m.Replica)
		if err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTorn) {
			t.Fatalf("Load = %v, want nil, ErrCorrupt or ErrTorn", err)
		}
		var saved bytes.Buffer
		if err := Save(&saved, m.Replica); err != nil {
			t.Fatal(err)
		}
		again := model.New("F")
		if err := Load(&saved, again.Replica); err != nil {
			t.Fatalf("loading what Save wrote: %v\n%s", err, saved.Bytes())
		}
		if w, g := historyLines(m.Replica), historyLines(again.Replica); !slices.Equal(w, g) {
			t.Fatalf("Save and Load changed the history: %q to %q", w, g)
		}
		if err != nil || len(data) == 0 || data[len(data)-1] != '\n' {
			return
		}
		start := bytes.LastIndexByte(data[:len(data)-1], '\n') + 1
		h := fnv.New64a()
		h.Write(data)
		cut := start + int(h.Sum64()%uint64(len(data)-start))
		before := model.New("F")
		if err := Load(bytes.NewReader(data[:start]), before.Replica); err != nil {
			t.Fatalf("the lines before the last: %v", err)
		}
		torn := model.New("F")
		err = Load(bytes.NewReader(data[:cut]), torn.Replica)
		if err != nil && !errors.Is(err, ErrTorn) {
			t.Fatalf("cut inside the last line: Load = %v, want nil or ErrTorn", err)
		}
		g := historyLines(torn.Replica)
		if !slices.Equal(g, historyLines(before.Replica)) && !slices.Equal(g, historyLines(m.Replica)) {
			t.Fatalf("cut at %d inside the last line: history %q is neither the lines before it nor the whole", cut, g)
		}
	})
}

// FuzzOpen opens arbitrary bytes as a durable log: Open must not panic; it
// fails only with ErrCorrupt and then leaves the file alone; otherwise the
// file becomes a prefix of the input made of whole lines (or a header, if
// none is kept), the replica holds exactly what that prefix loads to, and the log
// then appends and closes into a file that loads cleanly.
func FuzzOpen(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "fuzz.log")
		if err := os.WriteFile(path, data, 0o666); err != nil {
			t.Fatal(err)
		}
		m := model.New("F")
		l, err := Open(path, m.Replica, Options{CompactMinSize: 512})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Open = %v, want nil or ErrCorrupt", err)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, data) {
				t.Fatal("a failed Open changed the file")
			}
			return
		}
		kept, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case string(kept) == `{"id":"F","clock":{}}`+"\n":
			// Nothing was kept (an empty file, only "SYNC"): a new header.
		case !bytes.HasPrefix(data, kept) || len(kept) == 0 || kept[len(kept)-1] != '\n':
			t.Fatalf("Open left %q of %q: want a prefix of whole lines", kept, data)
		}
		want := model.New("F")
		if err := Load(bytes.NewReader(kept), want.Replica); err != nil {
			t.Fatalf("the kept prefix does not load: %v", err)
		}
		if w, g := historyLines(want.Replica), historyLines(m.Replica); !slices.Equal(w, g) {
			t.Fatalf("Open loaded %q, the kept prefix holds %q", g, w)
		}
		if err := m.Set("fuzz", "ü"); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		again := model.New("F")
		if err := LoadFile(path, again.Replica); err != nil {
			t.Fatalf("the closed log does not load: %v", err)
		}
		if v, ok := again.Get("fuzz"); !ok || string(v) != `"\u00fc"` {
			t.Fatalf("the change made after Open is not in the file: %s", v)
		}
	})
}
