// Package vfs is the file system seam of the durable code: an FS interface
// with just the operations that code needs, OS (the default, over package
// os) and MemFS, an in-memory file system that remembers what was synced
// and can produce the state a crash would leave (MemFS.CrashClone), in the
// style of pebble's vfs.
//
// Code that must survive crashes does its file work through an FS; its
// crash tests run it on a MemFS, take crash clones at any moment, reopen
// from a clone and check that everything acknowledged is there. A missing
// fsync of a file or of a directory then loses data in the test, as it
// would on a real machine losing power.
package vfs

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is a file system. Names use the operating system's separator ("/" on
// the systems we run on).
type FS interface {
	// OpenFile opens a file as os.OpenFile does, with the flags of package
	// os (O_RDONLY, O_WRONLY, O_RDWR, O_CREATE, O_EXCL, O_TRUNC, O_APPEND).
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Open opens a file or a directory for reading.
	Open(name string) (File, error)
	// Rename renames a file or a directory, replacing newname if it is a
	// file.
	Rename(oldname, newname string) error
	// Link creates newname as a hard link to the file oldname.
	Link(oldname, newname string) error
	// Remove removes a file or an empty directory.
	Remove(name string) error
	// MkdirAll creates a directory and its missing parents.
	MkdirAll(name string, perm fs.FileMode) error
	// ReadDir returns a directory's entries sorted by name.
	ReadDir(name string) ([]fs.DirEntry, error)
	// Stat describes a file or a directory.
	Stat(name string) (fs.FileInfo, error)
	// SyncDir fsyncs a directory, which makes durable the creations,
	// renames and removals of its entries done before the call.
	SyncDir(name string) error
}

// File is an open file. *os.File implements it.
type File interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.WriterAt
	io.Seeker
	io.Closer
	// Name is the name the file was opened with.
	Name() string
	Stat() (fs.FileInfo, error)
	// Sync makes the file's contents durable (fsync). On a directory it
	// makes its entries durable, as FS.SyncDir does.
	Sync() error
	Truncate(size int64) error
	Chmod(mode fs.FileMode) error
}

// OS is the FS of the operating system: each method calls package os.
type OS struct{}

var _ FS = OS{}

// Default is the FS that code uses unless a test gives it another one.
var Default FS = OS{}

// OpenFile calls os.OpenFile.
func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Open calls os.Open.
func (OS) Open(name string) (File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Rename calls os.Rename.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Link calls os.Link.
func (OS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

// Remove calls os.Remove.
func (OS) Remove(name string) error { return os.Remove(name) }

// MkdirAll calls os.MkdirAll.
func (OS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }

// ReadDir calls os.ReadDir.
func (OS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// Stat calls os.Stat.
func (OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// SyncDir opens the directory and fsyncs it.
func (OS) SyncDir(name string) error { return syncDir(OS{}, name) }

// syncDir opens a directory through fsys and fsyncs it.
func syncDir(fsys FS, name string) error {
	d, err := fsys.Open(name)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Create creates or truncates a file for writing and reading, as os.Create.
func Create(fsys FS, name string) (File, error) {
	return fsys.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// ReadFile returns a file's contents, as os.ReadFile.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFile replaces name with data atomically and durably: it writes a
// temporary file beside it (name + ".tmp"), fsyncs it, renames it over name
// and fsyncs the directory. After a crash name holds the old contents or
// the new, whole. Calls for the same name must not run concurrently.
func WriteFile(fsys FS, name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, name)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return fsys.SyncDir(filepath.Dir(name))
}
