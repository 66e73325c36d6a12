package vfs

import (
	"errors"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is a file system in memory that remembers what was synced: for
// each file, its contents as of its last Sync; for each directory, its
// entries as of its last sync. CrashClone returns the file system a crash
// would leave: only what was durable, as on ext4 or any POSIX file system
// that keeps only what fsync made durable. A new file, a rename or a
// removal survives a crash only if its directory was synced after it; a
// file's contents only up to its last Sync.
//
// Make one with NewMem. It has one root; relative names are relative to
// it. Its methods are safe for concurrent use. Permissions are kept but
// not enforced, and no umask applies. Errors are those of package os on
// Linux (the differential test, os_test.go, holds it to that).
type MemFS struct {
	mu       sync.Mutex
	root     *node
	injector func(op Op, name string) error
}

var _ FS = (*MemFS)(nil)

// node is a file or a directory.
type node struct {
	dir     bool
	mode    fs.FileMode // permission bits
	modTime time.Time

	data   []byte // file: contents now
	synced []byte // file: contents as of the last Sync

	children       map[string]*node // directory: entries now
	syncedChildren map[string]*node // directory: entries as of the last sync
}

func newDir(perm fs.FileMode) *node {
	return &node{dir: true, mode: perm.Perm(), modTime: time.Now(), children: map[string]*node{}, syncedChildren: map[string]*node{}}
}

// NewMem returns an empty MemFS: a root directory, durable.
func NewMem() *MemFS { return &MemFS{root: newDir(0o755)} }

// Op names an operation that changes a MemFS, for SetInjector.
type Op int

// Operations passed to an injector.
const (
	OpCreate   Op = iota // OpenFile with O_CREATE or O_TRUNC
	OpWrite              // File.Write, File.WriteAt
	OpSync               // File.Sync of a file
	OpSyncDir            // FS.SyncDir, or File.Sync of a directory
	OpTruncate           // File.Truncate
	OpRename             // FS.Rename
	OpRemove             // FS.Remove
	OpMkdir              // FS.MkdirAll
	OpChmod              // File.Chmod
	OpLink               // FS.Link (the name passed is the new one)
)

var opNames = [...]string{"create", "write", "sync", "syncdir", "truncate", "rename", "remove", "mkdir", "chmod", "link"}

func (op Op) String() string {
	if int(op) < len(opNames) {
		return opNames[op]
	}
	return "op"
}

// SetInjector sets a function called before each operation that changes
// the file system, with the operation and the name of the file (for
// Rename, the old name). If it returns an error, the operation fails with
// it and changes nothing. It runs without the MemFS's lock held, so it may
// call CrashClone: a crash test can take a clone before every operation.
// nil removes it.
func (m *MemFS) SetInjector(f func(op Op, name string) error) {
	m.mu.Lock()
	m.injector = f
	m.mu.Unlock()
}

// FailNth returns an injector that fails the nth call (from 1) of op with
// err and lets every other call through. It is safe for concurrent use.
func FailNth(op Op, n int, err error) func(Op, string) error {
	var mu sync.Mutex
	count := 0
	return func(o Op, _ string) error {
		if o != op {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		count++
		if count == n {
			return err
		}
		return nil
	}
}

// before runs the injector, if any.
func (m *MemFS) before(op Op, name string) error {
	m.mu.Lock()
	f := m.injector
	m.mu.Unlock()
	if f == nil {
		return nil
	}
	if err := f(op, name); err != nil {
		return &fs.PathError{Op: op.String(), Path: name, Err: err}
	}
	return nil
}

// CrashClone returns a new MemFS holding only what a crash now would
// leave: the entries of each directory as of its last sync, and the
// contents of each file as of its last Sync. The clone is durable as a
// whole and shares nothing with m.
func (m *MemFS) CrashClone() *MemFS {
	return m.crashClone(
		func(n *node) map[string]*node { return n.syncedChildren },
		func(n *node) []byte { return slices.Clone(n.synced) })
}

// CrashCloneTorn is CrashClone plus a random part of what was not yet
// durable, as a crash during writeback could leave, with keep(n) choosing
// an integer in [0, n):
//
//   - each directory keeps either its entries as of its last sync or its
//     entries now (a journal commit of its pending creations, renames and
//     removals, all of them, just before the crash);
//   - each file keeps its bytes now up to an offset chosen between its
//     synced length and its current one (both included), and its synced
//     bytes after that offset: writes reach the disk in file order, and an
//     append is cut anywhere, in the middle of a line too.
func (m *MemFS) CrashCloneTorn(keep func(n int) int) *MemFS {
	return m.crashClone(
		func(n *node) map[string]*node {
			if keep(2) == 1 {
				return n.children
			}
			return n.syncedChildren
		},
		func(n *node) []byte {
			lo := min(len(n.synced), len(n.data))
			off := lo + keep(len(n.data)-lo+1)
			out := slices.Clone(n.data[:off])
			if off < len(n.synced) {
				out = append(out, n.synced[off:]...)
			}
			return out
		})
}

// crashClone copies the tree of the entries each directory keeps, with the
// contents each file keeps; a node reached twice is copied once.
func (m *MemFS) crashClone(entries func(*node) map[string]*node, contents func(*node) []byte) *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	done := map[*node]*node{}
	var clone func(n *node) *node
	clone = func(n *node) *node {
		if c, ok := done[n]; ok {
			return c
		}
		c := &node{dir: n.dir, mode: n.mode, modTime: n.modTime}
		done[n] = c
		if n.dir {
			kept := entries(n)
			c.children = make(map[string]*node, len(kept))
			for _, name := range slices.Sorted(maps.Keys(kept)) { // in order: keep is deterministic
				c.children[name] = clone(kept[name])
			}
			c.syncedChildren = maps.Clone(c.children)
		} else {
			c.data = contents(n)
			c.synced = slices.Clone(c.data)
		}
		return c
	}
	return &MemFS{root: clone(m.root)}
}

// split cleans a name into its components below the root.
func split(name string) []string {
	name = strings.Trim(path.Clean("/"+name), "/")
	if name == "" {
		return nil
	}
	return strings.Split(name, "/")
}

// lookup returns the directory that holds name and name's last component
// ("" for the root). The lock is held.
func (m *MemFS) lookup(op, name string) (*node, string, error) {
	parts := split(name)
	if len(parts) == 0 {
		return nil, "", nil
	}
	dir := m.root
	for _, p := range parts[:len(parts)-1] {
		next := dir.children[p]
		switch {
		case next == nil:
			return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
		case !next.dir:
			return nil, "", &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		dir = next
	}
	return dir, parts[len(parts)-1], nil
}

// find returns the node at name. The lock is held.
func (m *MemFS) find(op, name string) (*node, error) {
	dir, base, err := m.lookup(op, name)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return m.root, nil
	}
	n := dir.children[base]
	if n == nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOENT}
	}
	return n, nil
}

// OpenFile opens a file with the flags of package os.
func (m *MemFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	writes := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		if err := m.before(OpCreate, name); err != nil {
			return nil, err
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	var n *node
	if dir == nil {
		n = m.root
	} else {
		n = dir.children[base]
	}
	switch {
	case n == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.ENOENT}
	case n == nil:
		n = &node{mode: perm.Perm(), modTime: time.Now()}
		dir.children[base] = n
	case flag&(os.O_CREATE|os.O_EXCL) == os.O_CREATE|os.O_EXCL:
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EEXIST}
	case n.dir && (writes || flag&os.O_TRUNC != 0):
		return nil, &fs.PathError{Op: "open", Path: name, Err: syscall.EISDIR}
	}
	if flag&os.O_TRUNC != 0 { // as Linux does, even without write access
		n.data = nil
		n.modTime = time.Now()
	}
	return &memFile{
		fs:     m,
		n:      n,
		name:   name,
		read:   flag&os.O_WRONLY == 0,
		write:  writes,
		append: flag&os.O_APPEND != 0,
	}, nil
}

// Open opens a file or a directory for reading.
func (m *MemFS) Open(name string) (File, error) { return m.OpenFile(name, os.O_RDONLY, 0) }

// Rename renames a file or a directory, as os.Rename does: it replaces a
// file at newname, never a directory.
func (m *MemFS) Rename(oldname, newname string) error {
	if err := m.before(OpRename, oldname); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fail := func(err error) error { return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err} }
	odir, obase, err := m.lookup("rename", oldname)
	if err != nil {
		return fail(err.(*fs.PathError).Err)
	}
	ndir, nbase, err := m.lookup("rename", newname)
	if err != nil {
		return fail(err.(*fs.PathError).Err)
	}
	if odir == nil || ndir == nil {
		return fail(syscall.EBUSY)
	}
	n := odir.children[obase]
	old := ndir.children[nbase]
	switch {
	case n == nil:
		return fail(syscall.ENOENT)
	case old != nil && old.dir:
		return fail(syscall.EEXIST)
	case n.dir && isUnder(ndir, n):
		return fail(syscall.EINVAL)
	case old != nil && n.dir:
		return fail(syscall.ENOTDIR)
	}
	delete(odir.children, obase)
	ndir.children[nbase] = n
	return nil
}

// Link creates newname as a hard link to the file oldname: both names
// then refer to the same contents. The new entry is durable once its
// directory is synced.
func (m *MemFS) Link(oldname, newname string) error {
	if err := m.before(OpLink, newname); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	fail := func(err error) error { return &os.LinkError{Op: "link", Old: oldname, New: newname, Err: err} }
	n, err := m.find("link", oldname)
	if err != nil {
		return fail(err.(*fs.PathError).Err)
	}
	ndir, nbase, err := m.lookup("link", newname)
	switch {
	case err != nil:
		return fail(err.(*fs.PathError).Err)
	case ndir == nil || ndir.children[nbase] != nil:
		return fail(syscall.EEXIST)
	case n.dir:
		return fail(syscall.EPERM)
	}
	ndir.children[nbase] = n
	return nil
}

// isUnder tells whether dir is d or lies below it. The lock is held.
func isUnder(dir, d *node) bool {
	if dir == d {
		return true
	}
	for _, c := range d.children {
		if c.dir && isUnder(dir, c) {
			return true
		}
	}
	return false
}

// Remove removes a file or an empty directory.
func (m *MemFS) Remove(name string) error {
	if err := m.before(OpRemove, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookup("remove", name)
	if err != nil {
		return err
	}
	if dir == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.EBUSY}
	}
	n := dir.children[base]
	switch {
	case n == nil:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOENT}
	case n.dir && len(n.children) > 0:
		return &fs.PathError{Op: "remove", Path: name, Err: syscall.ENOTEMPTY}
	}
	delete(dir.children, base)
	return nil
}

// MkdirAll creates a directory and its missing parents. Each new
// directory's entry is durable once its parent is synced.
func (m *MemFS) MkdirAll(name string, perm fs.FileMode) error {
	if err := m.before(OpMkdir, name); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir := m.root
	for _, p := range split(name) {
		next := dir.children[p]
		switch {
		case next == nil:
			next = newDir(perm)
			dir.children[p] = next
		case !next.dir:
			return &fs.PathError{Op: "mkdir", Path: name, Err: syscall.ENOTDIR}
		}
		dir = next
	}
	return nil
}

// ReadDir returns a directory's entries sorted by name.
func (m *MemFS) ReadDir(name string) ([]fs.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("readdir", name)
	if err != nil {
		return nil, err
	}
	if !n.dir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	out := make([]fs.DirEntry, 0, len(n.children))
	for _, k := range slices.Sorted(maps.Keys(n.children)) {
		out = append(out, fs.FileInfoToDirEntry(n.children[k].info(k)))
	}
	return out, nil
}

// Stat describes a file or a directory.
func (m *MemFS) Stat(name string) (fs.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.find("stat", name)
	if err != nil {
		return nil, err
	}
	return n.info(path.Base(path.Clean("/" + name))), nil
}

// SyncDir makes a directory's entries durable.
func (m *MemFS) SyncDir(name string) error { return syncDir(m, name) }

func (n *node) info(name string) fs.FileInfo {
	fi := &fileInfo{name: name, size: int64(len(n.data)), mode: n.mode, modTime: n.modTime}
	if n.dir {
		fi.mode |= fs.ModeDir
		fi.size = 0
	}
	return fi
}

// fileInfo implements fs.FileInfo.
type fileInfo struct {
	name    string
	size    int64
	mode    fs.FileMode
	modTime time.Time
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.mode }
func (fi *fileInfo) ModTime() time.Time { return fi.modTime }
func (fi *fileInfo) IsDir() bool        { return fi.mode.IsDir() }
func (fi *fileInfo) Sys() any           { return nil }

// memFile is an open file of a MemFS. It keeps its node after a rename or
// a removal, as an open file descriptor does.
type memFile struct {
	fs                  *MemFS
	n                   *node
	name                string
	pos                 int64
	read, write, append bool
	closed              bool
}

// check returns the error Linux gives for op on this file, if any: the
// file is closed, or it is not open for a read or a write, or it is a
// directory read. The lock is held.
func (f *memFile) check(op string, write bool) error {
	read := op == "read" || op == "readat"
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case write && !f.write, read && !f.read:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EBADF}
	case read && f.n.dir:
		return &fs.PathError{Op: op, Path: f.name, Err: syscall.EISDIR}
	}
	return nil
}

func (f *memFile) Name() string { return f.name }

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if len(p) == 0 && !f.closed { // as os.File: no system call
		return 0, nil
	}
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[f.pos:])
	f.pos += int64(k)
	return k, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if off < 0 && !f.closed {
		return 0, &fs.PathError{Op: "readat", Path: f.name, Err: errors.New("negative offset")}
	}
	if len(p) == 0 && !f.closed { // as os.File: no system call
		return 0, nil
	}
	if err := f.check("readat", false); err != nil {
		return 0, err
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	k := copy(p, f.n.data[off:])
	if k < len(p) {
		return k, io.EOF
	}
	return k, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	if err := f.fs.before(OpWrite, f.name); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if f.append {
		f.pos = int64(len(f.n.data))
	}
	f.n.writeAt(p, f.pos)
	f.pos += int64(len(p))
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.before(OpWrite, f.name); err != nil {
		return 0, err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.append && !f.closed {
		return 0, errWriteAtInAppendMode
	}
	if off < 0 && !f.closed {
		return 0, &fs.PathError{Op: "writeat", Path: f.name, Err: errors.New("negative offset")}
	}
	if len(p) == 0 && !f.closed { // as os.File: no system call
		return 0, nil
	}
	if err := f.check("writeat", true); err != nil {
		return 0, err
	}
	f.n.writeAt(p, off)
	return len(p), nil
}

// errWriteAtInAppendMode is the error of os.File.WriteAt on a file opened
// with O_APPEND.
var errWriteAtInAppendMode = errors.New("os: invalid use of WriteAt on file opened with O_APPEND")

// writeAt writes p at off, filling a gap with zeros (writing nothing
// does not extend the file). The lock is held.
func (n *node) writeAt(p []byte, off int64) {
	if len(p) == 0 {
		return
	}
	if end := off + int64(len(p)); end > int64(len(n.data)) {
		n.data = append(n.data, make([]byte, end-int64(len(n.data)))...)
	}
	copy(n.data[off:], p)
	n.modTime = time.Now()
}

func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("seek", false); err != nil {
		return 0, err
	}
	switch whence {
	case io.SeekCurrent:
		offset += f.pos
	case io.SeekEnd:
		offset += int64(len(f.n.data))
	}
	if offset < 0 || whence < io.SeekStart || whence > io.SeekEnd {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	f.pos = offset
	return offset, nil
}

func (f *memFile) Stat() (fs.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(path.Clean("/" + f.name))), nil
}

// Sync makes the file's contents durable; on a directory, its entries.
func (f *memFile) Sync() error {
	op := OpSync
	if f.n.dir {
		op = OpSyncDir
	}
	if err := f.fs.before(op, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	if f.n.dir {
		f.n.syncedChildren = maps.Clone(f.n.children)
	} else {
		f.n.synced = append(f.n.synced[:0], f.n.data...)
	}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	if err := f.fs.before(OpTruncate, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", false); err != nil {
		return err
	}
	if size < 0 || f.n.dir || !f.write {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size:size]
	} else {
		f.n.data = append(f.n.data, make([]byte, size-int64(len(f.n.data)))...)
	}
	f.n.modTime = time.Now()
	return nil
}

// Chmod sets the permission bits. They count as durable at once: no crash
// test depends on them.
func (f *memFile) Chmod(mode fs.FileMode) error {
	if err := f.fs.before(OpChmod, f.name); err != nil {
		return err
	}
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("chmod", false); err != nil {
		return err
	}
	f.n.mode = mode.Perm()
	return nil
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}
