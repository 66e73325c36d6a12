package persist

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/scuttlebutt/events"
	"github.com/scuttlego/scuttle/scuttlebutt/model"
	"github.com/scuttlego/scuttle/scuttlebutt/value"
)

// Save writes what npm scuttlebutt's createReadStream({tail:false})
// writes: the header with id and clock, the history in (timestamp, source)
// order, then "SYNC" (spec A6).
func TestSaveFormat(t *testing.T) {
	m := model.New("A")
	if err := m.Set("x", 1); err != nil {
		t.Fatal(err)
	}
	if err := m.Set("y", 2); err != nil {
		t.Fatal(err)
	}
	m.Apply(scuttlebutt.Update{Change: json.RawMessage(`["z",3]`), Timestamp: 5, Source: "OTHER"})
	var buf bytes.Buffer
	if err := Save(&buf, m.Replica); err != nil {
		t.Fatal(err)
	}
	hist := historyLines(m.Replica)
	if len(hist) != 3 || !strings.HasPrefix(hist[1], `[["x",1],`) || !strings.HasPrefix(hist[2], `[["y",2],`) {
		t.Fatalf("history %q", hist)
	}
	want := `{"id":"A","clock":{"A":` + jsNum(m.Clock()["A"]) + `,"OTHER":5}}` + "\n" +
		`[["z",3],5,"OTHER"]` + "\n" + hist[1] + "\n" + hist[2] + "\n" + `"SYNC"` + "\n"
	if buf.String() != want {
		t.Fatalf("saved:\n%s\nwant:\n%s", buf.String(), want)
	}
}

func jsNum(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

// The example file of spec A6, as npm scuttlebutt wrote it, loads: values
// and clock come from the updates, not from the header's clock.
func TestLoadSpecExample(t *testing.T) {
	file := `{"id":"A","clock":{"A":1795315732794,"OTHER":5,"NOT-IN-FILE":7}}
[["z",3],5,"OTHER"]
[["x",1],1795315732793,"A"]
[["y",2],1795315732794,"A"]
"SYNC"
`
	m := model.New("B")
	if err := Load(strings.NewReader(file), m.Replica); err != nil {
		t.Fatal(err)
	}
	got, _ := m.MarshalJSON()
	if string(got) != `{"z":3,"x":1,"y":2}` {
		t.Fatalf("values %s", got)
	}
	if c := m.Clock(); !maps.Equal(c, scuttlebutt.Clock{"A": 1795315732794, "OTHER": 5}) {
		t.Fatalf("clock %v: want the updates' clock, without the header's extra source", c)
	}
}

// Save then Load gives a replica with the same history, clock and values,
// for each data type.
func TestSaveLoadRoundTrip(t *testing.T) {
	t.Run("Model", func(t *testing.T) {
		a := richModel(t, "A")
		var buf bytes.Buffer
		if err := Save(&buf, a.Replica); err != nil {
			t.Fatal(err)
		}
		if !isASCII(buf.Bytes()) {
			t.Fatal("saved file is not ASCII")
		}
		b := model.New("A")
		if err := Load(&buf, b.Replica); err != nil {
			t.Fatal(err)
		}
		sameState(t, a, b)
	})
	t.Run("Events", func(t *testing.T) {
		a := events.New("A")
		for i := range 5 {
			if err := a.Emit("msg", i, "ü😀"); err != nil {
				t.Fatal(err)
			}
		}
		a.Apply(scuttlebutt.Update{Change: json.RawMessage(`["other",{"k":null}]`), Timestamp: 3, Source: "Q"})
		var buf bytes.Buffer
		if err := Save(&buf, a.Replica); err != nil {
			t.Fatal(err)
		}
		b := events.New("B")
		var got []string
		b.On("msg", func(args []json.RawMessage) { got = append(got, string(args[0])) })
		if err := Load(&buf, b.Replica); err != nil {
			t.Fatal(err)
		}
		if w, g := historyLines(a.Replica), historyLines(b.Replica); !slices.Equal(w, g) {
			t.Fatalf("history: want %q, got %q", w, g)
		}
		if !slices.Equal(got, []string{"0", "1", "2", "3", "4"}) {
			t.Fatalf("listener saw %q", got)
		}
	})
	t.Run("Value", func(t *testing.T) {
		a := value.New("A")
		for _, v := range []any{1, "two", map[string]any{"three": 3}} {
			if err := a.Set(v); err != nil {
				t.Fatal(err)
			}
		}
		var buf bytes.Buffer
		if err := Save(&buf, a.Replica); err != nil {
			t.Fatal(err)
		}
		b := value.New("B")
		if err := Load(&buf, b.Replica); err != nil {
			t.Fatal(err)
		}
		got, ok := b.Get()
		if !ok || string(got) != `{"three":3}` {
			t.Fatalf("value %s, %v", got, ok)
		}
	})
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

// Load reads lines as npm scuttlebutt's write stream does: CRLF endings,
// raw UTF-8, JSON that is not an update (skipped), a last line without its
// newline; and it reports lines that are not JSON.
func TestLoadLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		want   string // the model's values after Load
		err    error
		nclock int
	}{
		{name: "CRLF", file: "{\"id\":\"A\",\"clock\":{}}\r\n[[\"k\",1],5,\"A\"]\r\n\"SYNC\"\r\n", want: `{"k":1}`, nclock: 1},
		{name: "UTF-8", file: "[[\"k\u00e9\",\"\u20ac\U0001F600\"],5,\"\u00fc\"]\n", want: `{"k\u00e9":"\u20ac\ud83d\ude00"}`, nclock: 1},
		{name: "ignored", file: "null\n5\ntrue\n\"other\"\n{\"x\":1}\n{\"id\":\"Q\",\"clock\":{\"Z\":1}}\n[]\n[1,2]\n[[\"a\",1],\"5\",\"A\"]\n[[\"a\",1],5,6]\n[[\"a\",1],5,\"__proto__\"]\n[[\"k\",2],6,\"A\"]\n", want: `{"k":2}`, nclock: 1},
		{name: "updates after SYNC", file: "{\"id\":\"A\",\"clock\":{}}\n\"SYNC\"\n[[\"k\",3],7,\"A\"]\n", want: `{"k":3}`, nclock: 1},
		{name: "stale and duplicate", file: "[[\"k\",2],6,\"A\"]\n[[\"k\",1],5,\"A\"]\n[[\"k\",9],6,\"A\"]\n", want: `{"k":2}`, nclock: 1},
		{name: "no final newline", file: "[[\"k\",1],5,\"A\"]\n[[\"j\",2],6,\"A\"]", want: `{"k":1,"j":2}`, nclock: 1},
		{name: "torn", file: "[[\"k\",1],5,\"A\"]\n[[\"j\",2],6,\"A", want: `{"k":1}`, err: ErrTorn, nclock: 1},
		{name: "garbage", file: "[[\"k\",1],5,\"A\"]\ngarbage\n[[\"j\",2],6,\"A\"]\n", want: `{"k":1}`, err: ErrCorrupt, nclock: 1},
		{name: "blank line", file: "[[\"k\",1],5,\"A\"]\n\n[[\"j\",2],6,\"A\"]\n", want: `{"k":1}`, err: ErrCorrupt, nclock: 1},
		{name: "empty", file: "", want: `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := model.New("M")
			err := Load(strings.NewReader(tc.file), m.Replica)
			if tc.err == nil && err != nil || tc.err != nil && !errors.Is(err, tc.err) {
				t.Fatalf("Load = %v, want %v", err, tc.err)
			}
			if got, _ := m.MarshalJSON(); string(got) != tc.want {
				t.Fatalf("values %s, want %s", got, tc.want)
			}
			if n := len(m.Clock()); n != tc.nclock {
				t.Fatalf("clock %v has %d sources, want %d", m.Clock(), n, tc.nclock)
			}
		})
	}
}

// SaveFile replaces a file atomically and leaves no temporary file;
// LoadFile and ReadID read it back.
func TestSaveFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doc.jsonl")
	if err := os.WriteFile(path, []byte("old contents\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	a := richModel(t, "A-é")
	if err := SaveFile(path, a.Replica); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(entries))
	}
	ref, err := os.Create(filepath.Join(t.TempDir(), "ref"))
	if err != nil {
		t.Fatal(err)
	}
	ref.Close()
	refInfo, _ := os.Stat(ref.Name())
	if fi, err := os.Stat(path); err != nil || fi.Mode() != refInfo.Mode() {
		t.Fatalf("saved file mode %v (%v), want os.Create's %v", fi.Mode(), err, refInfo.Mode())
	}
	b := model.New("B")
	if err := LoadFile(path, b.Replica); err != nil {
		t.Fatal(err)
	}
	if w, g := historyLines(a.Replica), historyLines(b.Replica); !slices.Equal(w, g) {
		t.Fatalf("history: want %q, got %q", w, g)
	}
	if id, err := ReadID(path); err != nil || id != "A-é" {
		t.Fatalf("ReadID = %q, %v", id, err)
	}
	if _, err := ReadID(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadID of a missing file = %v, want fs.ErrNotExist", err)
	}
	os.WriteFile(path, []byte("[[\"k\",1],5,\"A\"]\n"), 0o666)
	if _, err := ReadID(path); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("ReadID of a file without header = %v, want ErrCorrupt", err)
	}
	if err := LoadFile(filepath.Join(dir, "missing"), b.Replica); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("LoadFile of a missing file = %v", err)
	}
}
