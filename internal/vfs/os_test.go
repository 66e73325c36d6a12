package vfs

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
)

// The differential test: a sequence of operations decoded from bytes runs
// on a MemFS and on the operating system's file system (OS, in a temporary
// directory); every result (bytes read, offsets, sizes, directory
// listings, and errors by their cause) must be the same.

var (
	diffNames = []string{"a", "b", "d", "d/a", "d/b", "d/e", "a/x"}
	diffFlags = []int{
		os.O_RDONLY,
		os.O_WRONLY,
		os.O_RDWR,
		os.O_RDWR | os.O_CREATE,
		os.O_RDWR | os.O_CREATE | os.O_EXCL,
		os.O_RDWR | os.O_CREATE | os.O_TRUNC,
		os.O_WRONLY | os.O_CREATE | os.O_APPEND,
		os.O_RDWR | os.O_APPEND,
		os.O_RDONLY | os.O_TRUNC,
		os.O_WRONLY | os.O_TRUNC,
	}
)

const diffSlots = 3 // open files at a time

// fsUnderTest is one side of the differential test.
type fsUnderTest struct {
	fs    FS
	root  string // prefix of names
	files [diffSlots]File
}

func (s *fsUnderTest) path(name string) string { return s.root + name }

// run decodes and applies operations to both sides, failing at the first
// result that differs. It returns the number of operations run.
func runDiff(t *testing.T, prog []byte) int {
	mem := &fsUnderTest{fs: NewMem(), root: "/"}
	osfs := &fsUnderTest{fs: OS{}, root: t.TempDir() + "/"}
	defer func() {
		for _, s := range []*fsUnderTest{mem, osfs} {
			for _, f := range s.files {
				if f != nil {
					f.Close()
				}
			}
		}
	}()
	next := func() int {
		if len(prog) == 0 {
			return 0
		}
		b := int(prog[0])
		prog = prog[1:]
		return b
	}
	ops := 0
	var trail []string
	for len(prog) > 0 && ops < 200 {
		ops++
		op, a, b, c := next()%16, next(), next(), next()
		name, name2 := diffNames[a%len(diffNames)], diffNames[b%len(diffNames)]
		slot := a % diffSlots
		data := bytes.Repeat([]byte{byte('a' + c%26)}, b%9)
		var desc string
		results := [2]string{}
		for i, s := range []*fsUnderTest{mem, osfs} {
			var r string
			switch op {
			case 0:
				flag := diffFlags[b%len(diffFlags)]
				desc = fmt.Sprintf("open %s flag=%#x into %d", name, flag, slot)
				if s.files[slot] != nil {
					s.files[slot].Close()
					s.files[slot] = nil
				}
				f, err := s.fs.OpenFile(s.path(name), flag, 0o644)
				if err == nil {
					s.files[slot] = f
				}
				r = result(0, err)
			case 1, 2, 3, 4, 5, 6, 7, 8:
				f := s.files[slot]
				if f == nil {
					desc, r = fmt.Sprintf("op %d on closed slot %d", op, slot), "no file"
					break
				}
				r, desc = fileOp(f, op, b, c, data)
			case 9:
				desc = fmt.Sprintf("rename %s %s", name, name2)
				r = result(0, s.fs.Rename(s.path(name), s.path(name2)))
			case 10:
				desc = "remove " + name
				r = result(0, s.fs.Remove(s.path(name)))
			case 11:
				desc = "mkdirall " + name
				r = result(0, s.fs.MkdirAll(s.path(name), 0o755))
			case 12:
				desc = "readdir " + name
				ents, err := s.fs.ReadDir(s.path(name))
				var names []string
				for _, e := range ents {
					names = append(names, fmt.Sprintf("%s:%v", e.Name(), e.IsDir()))
				}
				r = fmt.Sprintf("%v %s", names, result(0, err))
			case 13:
				desc = "stat " + name
				fi, err := s.fs.Stat(s.path(name))
				if err == nil {
					r = fmt.Sprintf("%s dir=%v", fi.Name(), fi.IsDir())
					if !fi.IsDir() {
						r += fmt.Sprintf(" size=%d", fi.Size())
					}
				}
				r += result(0, err)
			case 14:
				desc = "syncdir " + name
				r = result(0, s.fs.SyncDir(s.path(name)))
			case 15:
				desc = fmt.Sprintf("link %s %s", name, name2)
				r = result(0, s.fs.Link(s.path(name), s.path(name2)))
			}
			results[i] = r
		}
		trail = append(trail, fmt.Sprintf("%s [%d] → %s", desc, slot, results[1]))
		if results[0] != results[1] {
			t.Fatalf("operation %d, %s: MemFS gives %q, OS gives %q; operations:\n%s", ops, desc, results[0], results[1], strings.Join(trail, "\n"))
		}
	}
	return ops
}

// fileOp runs an operation on an open file and returns its result.
func fileOp(f File, op, b, c int, data []byte) (string, string) {
	switch op {
	case 1:
		n, err := f.Write(data)
		return result(n, err), fmt.Sprintf("write %q", data)
	case 2:
		n, err := f.WriteAt(data, int64(c%12))
		return result(n, err), fmt.Sprintf("writeat %q %d", data, c%12)
	case 3:
		p := make([]byte, b%10)
		n, err := f.ReadAt(p, int64(c%12))
		return fmt.Sprintf("%q %s", p[:n], result(n, err)), fmt.Sprintf("readat %d %d", len(p), c%12)
	case 4:
		p := make([]byte, b%10)
		n, err := f.Read(p)
		return fmt.Sprintf("%q %s", p[:n], result(n, err)), fmt.Sprintf("read %d", len(p))
	case 5:
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return "", "seek on a directory (depends on the file system)"
		}
		off, err := f.Seek(int64(c%12)-2, b%3)
		return result(int(off), err), fmt.Sprintf("seek %d %d", c%12-2, b%3)
	case 6:
		return result(0, f.Truncate(int64(c%12))), fmt.Sprintf("truncate %d", c%12)
	case 7:
		return result(0, f.Sync()), "sync"
	default:
		fi, err := f.Stat()
		if err != nil {
			return result(0, err), "stat"
		}
		if fi.IsDir() {
			return "dir", "stat"
		}
		return fmt.Sprintf("size=%d", fi.Size()), "stat"
	}
}

func result(n int, err error) string {
	if err != nil {
		return fmt.Sprintf("%d error %s", n, errName(err))
	}
	return fmt.Sprint(n)
}

var diffSeeds = [][]byte{
	{0, 3, 3, 0, 1, 0, 5, 1, 7, 0, 0, 0, 0, 0, 8, 3, 3, 0, 4, 0, 9, 0},
	{11, 2, 0, 0, 0, 3, 5, 0, 1, 3, 8, 2, 12, 2, 0, 0, 9, 0, 3, 0, 9, 2, 0, 0, 10, 2, 0, 0},
	{0, 0, 6, 0, 1, 0, 4, 2, 2, 0, 3, 9, 5, 0, 2, 4, 3, 0, 9, 3, 6, 0, 0, 7, 13, 0, 0, 0},
	{11, 2, 0, 0, 0, 2, 0, 0, 4, 2, 5, 0, 3, 2, 5, 0, 6, 2, 0, 0, 1, 2, 3, 0, 14, 2, 0, 0},
	{0, 6, 4, 0, 0, 6, 8, 0, 6, 6, 0, 0, 9, 6, 0, 0, 10, 5, 0, 0, 11, 6, 0, 0},
	{0, 0, 5, 0, 1, 0, 4, 1, 15, 0, 1, 0, 10, 0, 0, 0, 13, 1, 0, 0, 15, 2, 4, 0, 15, 1, 1, 0},
	[]byte(strings.Repeat("\x00\x01\x05\x02\x01\x01\x07\x09\x02\x01\x03\x04\x09\x00\x04\x00", 4)),
}

// TestMemLikeOS runs the seeds and pseudo-random programs.
func TestMemLikeOS(t *testing.T) {
	for _, s := range diffSeeds {
		runDiff(t, s)
	}
	state := uint64(1)
	for range 300 {
		prog := make([]byte, 160)
		for i := range prog {
			state = state*6364136223846793005 + 1442695040888963407
			prog[i] = byte(state >> 56)
		}
		runDiff(t, prog)
	}
}

// FuzzMemLikeOS decodes arbitrary bytes as a program of file system
// operations and checks that MemFS gives the results the OS gives.
func FuzzMemLikeOS(f *testing.F) {
	for _, s := range diffSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		runDiff(t, prog)
	})
}
