package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestCrashScenarios runs the scenarios of testdata/crash: operations on a
// MemFS, and "crash", which replaces it with its CrashClone and prints what
// survived. Open files are named by the name they were opened with.
func TestCrashScenarios(t *testing.T) {
	s := &crashScenario{}
	datadriven.RunTest(t, "testdata/crash", s.step)
}

type crashScenario struct {
	fs    *MemFS
	files map[string]File
}

func (s *crashScenario) step(t *testing.T, td *datadriven.TestData) string {
	arg := func(i int) string {
		if i >= len(td.CmdArgs) {
			t.Fatalf("%s: %s needs %d arguments", td.Pos, td.Cmd, i+1)
		}
		return td.CmdArgs[i].Key
	}
	file := func() File {
		f := s.files[arg(0)]
		if f == nil {
			t.Fatalf("%s: %s is not open", td.Pos, arg(0))
		}
		return f
	}
	var err error
	switch td.Cmd {
	case "new":
		s.fs, s.files = NewMem(), map[string]File{}
	case "mkdir":
		err = s.fs.MkdirAll(arg(0), 0o755)
	case "create", "open":
		flag := os.O_RDWR
		if td.Cmd == "create" {
			flag |= os.O_CREATE | os.O_TRUNC
		}
		var f File
		if f, err = s.fs.OpenFile(arg(0), flag, 0o644); err == nil {
			s.files[arg(0)] = f
		}
	case "write":
		_, err = io.WriteString(file(), strings.TrimSuffix(td.Input, "\n"))
	case "truncate":
		var n int64
		td.ScanArgs(t, "size", &n)
		err = file().Truncate(n)
	case "sync":
		err = file().Sync()
	case "close":
		err = file().Close()
	case "syncdir":
		err = s.fs.SyncDir(arg(0))
	case "rename":
		err = s.fs.Rename(arg(0), arg(1))
	case "remove":
		err = s.fs.Remove(arg(0))
	case "tree":
		return tree(s.fs)
	case "crash":
		s.fs, s.files = s.fs.CrashClone(), map[string]File{}
		return tree(s.fs)
	default:
		t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
	}
	if err != nil {
		return "error: " + errName(err)
	}
	return ""
}

// errName names an error by its cause, the same for MemFS and OS.
func errName(err error) string {
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case errors.As(err, &pe):
		return pe.Err.Error()
	case errors.As(err, &le):
		return le.Err.Error()
	}
	return err.Error()
}

// tree prints every directory and file under the root, with each file's
// contents.
func tree(fsys FS) string {
	var b strings.Builder
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		ents, err := fsys.ReadDir(dir)
		if err != nil {
			fmt.Fprintf(&b, "%s%v\n", strings.Repeat("  ", depth), err)
			return
		}
		for _, e := range ents {
			name := strings.TrimSuffix(dir, "/") + "/" + e.Name()
			if e.IsDir() {
				fmt.Fprintf(&b, "%s%s/\n", strings.Repeat("  ", depth), e.Name())
				walk(name, depth+1)
				continue
			}
			data, err := ReadFile(fsys, name)
			if err != nil {
				fmt.Fprintf(&b, "%s%s: %v\n", strings.Repeat("  ", depth), e.Name(), err)
				continue
			}
			fmt.Fprintf(&b, "%s%s %q\n", strings.Repeat("  ", depth), e.Name(), data)
		}
	}
	walk("/", 0)
	if b.Len() == 0 {
		return "(empty)\n"
	}
	return b.String()
}
