package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"slices"
)

// This file reads a bbolt file without bbolt: its meta pages, its freelist
// and the B+trees of its buckets, with every offset checked against the
// page it is in and every page id against the file. bbolt itself trusts
// its file (it follows page ids and element offsets into its memory map
// without bounds checks, and panics or faults on a damaged page), so the
// store checks the file with this reader before bbolt maps it (verifyFile)
// and salvages a damaged file with it (Repair). It reads with pread, never
// through a memory map: a truncated or damaged file gives errors, not
// faults.
//
// The on-disk format is bbolt's (go.etcd.io/bbolt/internal/common), in the
// machine's byte order:
//
//	page header  id u64 ‖ flags u16 ‖ count u16 ‖ overflow u32       (16 bytes)
//	meta         magic u32 ‖ version u32 ‖ page size u32 ‖ flags u32 ‖
//	             root bucket (root u64 ‖ sequence u64) ‖ freelist u64 ‖
//	             high-water pgid u64 ‖ txid u64 ‖ checksum u64 (FNV-64a of the rest)
//	leaf element  flags u32 ‖ pos u32 ‖ ksize u32 ‖ vsize u32 (pos from the element)
//	branch element pos u32 ‖ ksize u32 ‖ pgid u64
//	bucket value  root u64 ‖ sequence u64 ‖ inline page when root is 0

const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	elementSize      = 16
	bucketHeaderSize = 16
	metaSize         = 64 // magic through checksum
	noFreelist       = ^uint64(0)

	branchPage   = 0x01
	leafPage     = 0x02
	metaPage     = 0x04
	freelistPage = 0x10

	bucketLeafFlag = 0x01

	// maxTreeDepth bounds the recursion of a walk: a B+tree of 4 KiB
	// pages is a handful of levels deep; a deeper one is a cycle.
	maxTreeDepth = 32
	// minPageSize and maxPageSize bound the page sizes a meta page may
	// claim (bbolt probes 1 KiB to 16 MiB).
	minPageSize = 1 << 10
	maxPageSize = 1 << 24
)

var ne = binary.NativeEndian

// boltMeta is a decoded meta page.
type boltMeta struct {
	pageSize uint32
	root     uint64 // root bucket's root page
	freelist uint64
	pgid     uint64 // high-water mark: pages [0, pgid) are in use or free
	txid     uint64
}

// parseMeta decodes and validates the meta page in b (a page with its
// header).
func parseMeta(b []byte) (boltMeta, error) {
	if len(b) < pageHeaderSize+metaSize+8 {
		return boltMeta{}, errors.New("short meta page")
	}
	if flags := ne.Uint16(b[8:]); flags != metaPage {
		return boltMeta{}, fmt.Errorf("page flags %#x, not a meta page", flags)
	}
	m := b[pageHeaderSize:]
	if ne.Uint32(m) != boltMagic {
		return boltMeta{}, errors.New("not a bbolt file (bad magic)")
	}
	if v := ne.Uint32(m[4:]); v != boltVersion {
		return boltMeta{}, fmt.Errorf("bbolt format version %d, want %d", v, boltVersion)
	}
	h := fnv.New64a()
	h.Write(m[:56])
	if h.Sum64() != ne.Uint64(m[56:]) {
		return boltMeta{}, errors.New("meta page checksum mismatch")
	}
	return boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}, nil
}

// A boltFile is a bbolt file opened for checked reading.
type boltFile struct {
	r    io.ReaderAt
	size int64
	meta boltMeta
	ps   int64 // page size
}

// openBoltFile reads the meta pages of the file r of size bytes and picks
// the one bbolt would: the valid one with the higher transaction id. It
// checks that the file holds every page the meta page counts (a shorter
// file is truncated: bbolt would fault on the missing pages).
func openBoltFile(r io.ReaderAt, size int64) (*boltFile, error) {
	return readBoltFile(r, size, false)
}

// openBoltFileLax is openBoltFile for a truncated file: it leaves the
// page count as the meta page has it.
func openBoltFileLax(r io.ReaderAt, size int64) (*boltFile, error) {
	return readBoltFile(r, size, true)
}

func readBoltFile(r io.ReaderAt, size int64, lax bool) (*boltFile, error) {
	if size < 2*minPageSize {
		return nil, fmt.Errorf("file is %d bytes, too short for a bbolt database", size)
	}
	// The page size is in the meta page. Read meta page 0; if it is
	// invalid, look for meta page 1 at each possible page size, as bbolt
	// does.
	read := func(pos int64) (boltMeta, error) {
		buf := make([]byte, pageHeaderSize+metaSize+8)
		if _, err := r.ReadAt(buf, pos); err != nil {
			return boltMeta{}, err
		}
		return parseMeta(buf)
	}
	var metas []boltMeta
	m0, err0 := read(0)
	if err0 == nil {
		metas = append(metas, m0)
		if ps := int64(m0.pageSize); ps >= minPageSize && ps <= maxPageSize && 2*ps <= size {
			if m1, err := read(ps); err == nil && m1.pageSize == m0.pageSize {
				metas = append(metas, m1)
			}
		}
	} else {
		for pos := int64(minPageSize); pos <= maxPageSize && 2*pos <= size; pos *= 2 {
			if m1, err := read(pos); err == nil && int64(m1.pageSize) == pos {
				metas = append(metas, m1)
				break
			}
		}
	}
	if len(metas) == 0 {
		return nil, fmt.Errorf("no valid meta page (meta page 0: %w)", err0)
	}
	m := metas[0]
	if len(metas) == 2 && metas[1].txid > m.txid {
		m = metas[1]
	}
	ps := int64(m.pageSize)
	switch {
	case ps < minPageSize || ps > maxPageSize || ps&(ps-1) != 0:
		return nil, fmt.Errorf("meta page claims a page size of %d", ps)
	case m.pgid < 4:
		return nil, fmt.Errorf("meta page counts %d pages, fewer than a database has", m.pgid)
	case m.pgid > uint64(size/ps) && !lax:
		return nil, fmt.Errorf("file is truncated: it is %d bytes, but its meta page (transaction %d) counts %d pages of %d bytes (%d bytes)",
			size, m.txid, m.pgid, ps, m.pgid*uint64(ps))
	case m.root < 2 || m.root >= m.pgid:
		return nil, fmt.Errorf("meta page names root page %d, outside [2, %d)", m.root, m.pgid)
	case m.freelist != noFreelist && (m.freelist < 2 || m.freelist >= m.pgid):
		return nil, fmt.Errorf("meta page names freelist page %d, outside [2, %d)", m.freelist, m.pgid)
	}
	return &boltFile{r: r, size: size, meta: m, ps: ps}, nil
}

// page reads page id with its overflow pages, checking its header.
func (f *boltFile) page(id uint64) ([]byte, error) { return f.readPage(id, nil) }

// readPage is page reading into buf when it is large enough.
func (f *boltFile) readPage(id uint64, buf []byte) ([]byte, error) {
	if id < 2 || id >= f.meta.pgid {
		return nil, fmt.Errorf("page %d is outside the file's pages [2, %d)", id, f.meta.pgid)
	}
	if int64(cap(buf)) < f.ps {
		buf = make([]byte, f.ps)
	}
	buf = buf[:f.ps]
	if _, err := f.r.ReadAt(buf, int64(id)*f.ps); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	if got := ne.Uint64(buf); got != id {
		return nil, fmt.Errorf("page %d identifies itself as page %d", id, got)
	}
	if over := uint64(ne.Uint32(buf[12:])); over > 0 {
		if over >= f.meta.pgid-id {
			return nil, fmt.Errorf("page %d claims %d overflow pages, past the file's %d pages", id, over, f.meta.pgid)
		}
		buf = slices.Grow(buf, int(int64(over)*f.ps))[:int64(over+1)*f.ps]
		if _, err := f.r.ReadAt(buf[f.ps:], int64(id+1)*f.ps); err != nil {
			return nil, fmt.Errorf("page %d overflow: %w", id, err)
		}
	}
	return buf, nil
}

// freelist reads the free page ids.
func (f *boltFile) freelist() (map[uint64]bool, error) {
	free := map[uint64]bool{}
	if f.meta.freelist == noFreelist {
		return free, nil
	}
	p, err := f.page(f.meta.freelist)
	if err != nil {
		return nil, fmt.Errorf("freelist: %w", err)
	}
	if flags := ne.Uint16(p[8:]); flags != freelistPage {
		return nil, fmt.Errorf("freelist page %d has flags %#x", f.meta.freelist, flags)
	}
	start, count := pageHeaderSize, uint64(ne.Uint16(p[10:]))
	if count == 0xFFFF {
		count = ne.Uint64(p[pageHeaderSize:])
		start += 8
	}
	if count > uint64(len(p)-start)/8 {
		return nil, fmt.Errorf("freelist page %d lists %d ids, more than it holds", f.meta.freelist, count)
	}
	for i := range count {
		id := ne.Uint64(p[start+int(i)*8:])
		switch {
		case id < 2 || id >= f.meta.pgid:
			return nil, fmt.Errorf("freelist page %d lists page %d, outside [2, %d)", f.meta.freelist, id, f.meta.pgid)
		case free[id]:
			return nil, fmt.Errorf("freelist page %d lists page %d twice", f.meta.freelist, id)
		case id >= f.meta.freelist && id < f.meta.freelist+uint64(len(p))/uint64(f.ps):
			return nil, fmt.Errorf("freelist page %d lists itself as free", f.meta.freelist)
		}
		free[id] = true
	}
	return free, nil
}

// A walker walks the B+trees of a bbolt file, checking each page, and
// hands the entries of the buckets it is asked for to visit. A damaged
// page is recorded as a problem and its subtree skipped; the walk goes on
// with its siblings, so a walk salvages every entry it can reach.
type walker struct {
	f     *boltFile
	free  map[uint64]bool
	seen  []uint64 // bitset of the pages reached
	pages int      // pages read

	// want selects the top-level buckets to walk (nil: all) and visit
	// receives their entries in key order; k and v are valid during the
	// call only. Nested buckets are walked and checked, not visited.
	want  func(name []byte) bool
	visit func(bucket, k, v []byte) error

	bufs     [][]byte // a page buffer per depth, reused
	problems []string // the first maxProblems problems
	nproblem int
	page     uint64 // the page of the entry visit receives (0: inline)
}

func newWalker(f *boltFile, free map[uint64]bool) *walker {
	return &walker{f: f, free: free, seen: make([]uint64, (f.meta.pgid+63)/64)}
}

func (w *walker) problem(format string, args ...any) {
	w.nproblem++
	if len(w.problems) < maxProblems {
		w.problems = append(w.problems, fmt.Sprintf(format, args...))
	}
}

// run walks the root bucket, whose entries are the top-level buckets. An
// error is one of visit's.
func (w *walker) run() error {
	return w.tree(nil, w.f.meta.root, nil, nil, 0)
}

// tree walks the subtree of page id, whose keys must be in [lo, hi) (nil
// bounds are open). bucket is the bucket's name, nil for the root bucket.
func (w *walker) tree(bucket []byte, id uint64, lo, hi []byte, depth int) error {
	if depth > maxTreeDepth {
		w.problem("%s: page %d is deeper than %d levels: a cycle", bucketName(bucket), id, maxTreeDepth)
		return nil
	}
	for len(w.bufs) <= depth {
		w.bufs = append(w.bufs, nil)
	}
	p, err := w.f.readPage(id, w.bufs[depth])
	if err != nil {
		w.problem("%s: %v", bucketName(bucket), err)
		return nil
	}
	w.bufs[depth] = p
	for i := id; i < id+uint64(len(p))/uint64(w.f.ps); i++ {
		if w.seen[i/64]&(1<<(i%64)) != 0 {
			w.problem("%s: page %d is referenced twice", bucketName(bucket), i)
			return nil
		}
		w.seen[i/64] |= 1 << (i % 64)
		if w.free[i] {
			w.problem("%s: page %d is in use and in the freelist", bucketName(bucket), i)
		}
	}
	w.pages++
	return w.node(bucket, id, p, lo, hi, depth)
}

// node checks the elements of page p (page id, 0 for an inline page) and
// descends into its children.
func (w *walker) node(bucket []byte, id uint64, p []byte, lo, hi []byte, depth int) error {
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if flags != branchPage && flags != leafPage {
		w.problem("%s: page %d has flags %#x, neither branch nor leaf", bucketName(bucket), id, flags)
		return nil
	}
	if pageHeaderSize+count*elementSize > len(p) {
		w.problem("%s: page %d claims %d elements, more than it holds", bucketName(bucket), id, count)
		return nil
	}
	if count == 0 && flags == branchPage {
		w.problem("%s: branch page %d is empty", bucketName(bucket), id)
		return nil
	}
	keys := make([][]byte, count)
	for i := range count {
		e := pageHeaderSize + i*elementSize
		var pos, ksize, vsize uint64
		if flags == leafPage {
			pos, ksize, vsize = uint64(ne.Uint32(p[e+4:])), uint64(ne.Uint32(p[e+8:])), uint64(ne.Uint32(p[e+12:]))
		} else {
			pos, ksize = uint64(ne.Uint32(p[e:])), uint64(ne.Uint32(p[e+4:]))
		}
		if end := uint64(e) + pos + ksize + vsize; end > uint64(len(p)) || ksize == 0 {
			w.problem("%s: page %d element %d (key %d bytes, value %d bytes at +%d) is outside the page", bucketName(bucket), id, i, ksize, vsize, pos)
			return nil
		}
		k := p[uint64(e)+pos : uint64(e)+pos+ksize]
		switch {
		case i > 0 && bytes.Compare(keys[i-1], k) >= 0:
			w.problem("%s: page %d key %d (%x) is not after key %d (%x)", bucketName(bucket), id, i, k, i-1, keys[i-1])
			return nil
		case lo != nil && bytes.Compare(k, lo) < 0, hi != nil && bytes.Compare(k, hi) >= 0:
			w.problem("%s: page %d key %d (%x) is outside its parent's range", bucketName(bucket), id, i, k)
			return nil
		}
		keys[i] = k
	}
	for i, k := range keys {
		e := pageHeaderSize + i*elementSize
		if flags == branchPage {
			next := hi
			if i+1 < count {
				next = keys[i+1]
			}
			child := ne.Uint64(p[e+8:])
			if err := w.tree(bucket, child, maxKey(lo, k), next, depth+1); err != nil {
				return err
			}
			continue
		}
		pos, ksize, vsize := ne.Uint32(p[e+4:]), ne.Uint32(p[e+8:]), ne.Uint32(p[e+12:])
		v := p[e+int(pos)+int(ksize) : e+int(pos)+int(ksize)+int(vsize)]
		if ne.Uint32(p[e:])&bucketLeafFlag == 0 {
			if bucket == nil {
				w.problem("root bucket: page %d holds a key %q that is not a bucket", id, k)
				continue
			}
			if w.visit != nil {
				w.page = id
				if err := w.visit(bucket, k, v); err != nil {
					return err
				}
			}
			continue
		}
		if err := w.bucket(bucket, k, v, depth); err != nil {
			return err
		}
	}
	return nil
}

// bucketName names a bucket in a problem.
func bucketName(b []byte) string {
	if b == nil {
		return "root bucket"
	}
	return fmt.Sprintf("bucket %q", b)
}

// maxKey returns the larger of lo and k (lo may be nil).
func maxKey(lo, k []byte) []byte {
	if lo == nil || bytes.Compare(k, lo) > 0 {
		return k
	}
	return lo
}

// bucket walks the nested bucket named name whose header is v, within
// parent (nil for the root bucket).
func (w *walker) bucket(parent, name, v []byte, depth int) error {
	if len(v) < bucketHeaderSize {
		w.problem("%s: nested bucket %q has a %d-byte header", bucketName(parent), name, len(v))
		return nil
	}
	if parent == nil && w.want != nil && !w.want(name) {
		return nil
	}
	path := name
	if parent != nil {
		path = append(append(append([]byte(nil), parent...), '/'), name...)
	}
	root := ne.Uint64(v)
	if root != 0 {
		return w.tree(path, root, nil, nil, depth+1)
	}
	inline := v[bucketHeaderSize:]
	if len(inline) < pageHeaderSize {
		w.problem("%s: inline page of %d bytes", bucketName(path), len(inline))
		return nil
	}
	if depth > maxTreeDepth {
		w.problem("%s: nested deeper than %d levels", bucketName(path), maxTreeDepth)
		return nil
	}
	// Inline pages are leaves; element offsets are relative to the
	// elements, which node reads from its copy.
	return w.node(path, 0, inline, nil, nil, depth+1)
}

// verifyFile checks the bbolt file at path as far as bbolt needs it to
// open and read without faults or panics: the meta pages, the file's
// length against the meta page's page count, the freelist, and every page
// of every bucket's B+tree (headers, element offsets, key order, child page
// ids, no page reached twice or both reached and free). It does not read
// the values (Check does). A missing or empty file is a new database:
// nil. Problems come back as a *DamageError.
func verifyFile(path string) (pages int, err error) {
	fd, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: open %s: %w", path, err)
	}
	defer fd.Close()
	fi, err := fd.Stat()
	if err != nil {
		return 0, fmt.Errorf("store: open %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return 0, nil
	}
	f, err := openBoltFile(fd, fi.Size())
	if err != nil {
		return 0, &DamageError{Path: path, Problems: []string{err.Error()}}
	}
	free, err := f.freelist()
	if err != nil {
		return 0, &DamageError{Path: path, Problems: []string{err.Error()}}
	}
	w := newWalker(f, free)
	if err := w.run(); err != nil {
		return w.pages, err
	}
	if w.nproblem > 0 {
		return w.pages, &DamageError{Path: path, Problems: w.problems, More: w.nproblem - len(w.problems)}
	}
	return w.pages, nil
}
