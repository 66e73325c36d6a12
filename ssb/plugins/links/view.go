package links

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"runtime"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/store"
)

// The view "links" (<data>/indexes/links.bolt) holds, in one file, the
// indexes of the three JavaScript modules, one bucket each, keyed by the
// charwise encoding of the JavaScript index key without its name (so each
// bucket sorts as the JavaScript index does), the value being the
// message's receive sequence (8 bytes, big-endian):
//
//	bucket  key                                          module
//	link    [author, rel, link, sequence]                ssb-db links
//	_link   [link, rel, author, sequence]                ssb-db links
//	SRD     [source, rel, dest, ts, seq]                 ssb-links
//	DRS     [dest, rel, source, ts, seq]                 ssb-links
//	RDS     [rel, dest, source, ts, seq]                 ssb-links
//	DTA     [dest, value.timestamp, seq]                 ssb-backlinks
//
// (sequence is the message's, seq its receive sequence, ts its receive
// time, value.timestamp the time it claims.) ssb-db's keys end with the
// message id, which never decides their order (an author's sequence names
// one message): it is left out, and read with the message. Each batch's keys are sorted
// per bucket before they are written: bbolt inserts in order much faster. Private messages we can open are indexed by their
// plaintext, as ssb-db 20's views see them.
const (
	viewName    = "links"
	viewVersion = 2
)

var (
	bLink    = []byte("link")
	bBack    = []byte("_link")
	bSRD     = []byte("SRD")
	bDRS     = []byte("DRS")
	bRDS     = []byte("RDS")
	bDTA     = []byte("DTA")
	allViews = [][]byte{bLink, bBack, bSRD, bDRS, bRDS, bDTA}
)

// Unboxer opens a private message for us in ssb-db's shape (the private
// plugin's UnboxItem).
type Unboxer interface {
	UnboxItem(it store.Item) (store.Item, bool)
}

// Spec returns the view's spec; unbox (may be nil) opens private messages.
func Spec(unbox Unboxer) index.Spec {
	return index.Spec{
		Name: viewName, Version: viewVersion,
		Prepare: func(items []store.Item) (any, error) { return entries(items, unbox), nil },
		Write:   write,
	}
}

// decoded is a message as the views see it.
type decoded struct {
	value  message.Value // plaintext when ours
	item   store.Item    // opened when ours
	stored store.Item    // as stored
}

// decode parses an item's value, opening it when it is a private message
// for us. ok is false for a value that does not parse (never stored).
func decode(it store.Item, unbox Unboxer) (decoded, bool) {
	v, err := message.Parse(it.Value)
	if err != nil {
		return decoded{}, false
	}
	if c, ok := get(v, "content"); ok && c.Kind() == message.String && unbox != nil {
		if open, ok := unbox.UnboxItem(it); ok {
			if pv, err := message.Parse(open.Value); err == nil {
				return decoded{value: pv, item: open, stored: it}, true
			}
		}
	}
	return decoded{value: v, item: it, stored: it}, true
}

type entry struct{ key, seq []byte }

// A slab holds many small byte strings in a few large allocations (the
// garbage collector has fewer objects to track): a part's keys.
type slab struct{ buf []byte }

const slabSize = 64 << 10

// alloc returns n bytes of the slab.
func (s *slab) alloc(n int) []byte {
	if cap(s.buf)-len(s.buf) < n {
		s.buf = make([]byte, 0, max(slabSize, n))
	}
	start := len(s.buf)
	s.buf = s.buf[:start+n]
	return s.buf[start : start+n : start+n]
}

// join makes, in the slab, the key of items each encoded by storedItem
// (cwKey of the items).
func (s *slab) join(items ...[]byte) []byte {
	n := len(items)
	for _, it := range items {
		n += len(it)
	}
	key := s.alloc(n)[:0]
	for i, it := range items {
		if i > 0 {
			key = append(key, '"')
		}
		key = append(key, it...)
	}
	return append(key, '!')
}

// batchEntries are index entries, per bucket (allViews' order), each
// bucket's sorted: bbolt inserts in order much faster.
type batchEntries [6][]entry

// Size is the bytes the entries hold (index.Sizer).
func (es *batchEntries) Size() int {
	n := 0
	for _, b := range es {
		for _, e := range b {
			n += len(e.key) + len(e.seq) + 48 // the entry's slice headers
		}
	}
	return n
}

// entries computes the index entries of a part of a batch: the messages
// are shared among the cores, then each bucket's entries sorted.
func entries(items []store.Item, unbox Unboxer) *batchEntries {
	workers := min(runtime.GOMAXPROCS(0), max(1, len(items)/64))
	parts := make([]batchEntries, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*len(items)/workers, (w+1)*len(items)/workers
		wg.Go(func() { itemEntries(&parts[w], items[lo:hi], unbox) })
	}
	wg.Wait()
	var out batchEntries
	for i := range out {
		n := 0
		for _, p := range parts {
			n += len(p[i])
		}
		out[i] = make([]entry, 0, n)
		for _, p := range parts {
			out[i] = append(out[i], p[i]...)
		}
	}
	for i := range out {
		wg.Go(func() { slices.SortFunc(out[i], func(x, y entry) int { return bytes.Compare(x.key, y.key) }) })
	}
	wg.Wait()
	return &out
}

// itemEntries appends the entries of items to es.
func itemEntries(es *batchEntries, items []store.Item, unbox Unboxer) {
	link, back, srd, drs, rds, dta := &es[0], &es[1], &es[2], &es[3], &es[4], &es[5]
	var keys slab
	var scratch []byte // a message's encoded items, till its keys are joined
	enc := func(v jsv) []byte {
		start := len(scratch)
		scratch = storedItem(scratch, v)
		return scratch[start:len(scratch):len(scratch)]
	}
	join := keys.join
	for _, it := range items {
		d, ok := decode(it, unbox)
		if !ok {
			continue
		}
		scratch = scratch[:0]
		sv := binary.BigEndian.AppendUint64(keys.alloc(8)[:0], it.Seq)
		author, _ := get(d.value, "author")
		seqV, _ := get(d.value, "sequence")
		content, _ := get(d.value, "content")
		// ssb-links walks the value's links, ssb-db the content's: the
		// same object unless the message is odd; walked once then.
		l2 := indexLinks(d.value)
		var db []found
		if content.Kind() == message.Object {
			if root := toMsgContent(content); sameObject(root, toMsgContent(d.value)) {
				db = l2
			} else {
				db = linksIn(root)
			}
		}
		// Each item is encoded once; keys are joined from the encodings.
		a, sq := enc(jsStr(author.Str())), enc(jsNum(seqV.Number()))
		for _, l := range db {
			rel, ln := enc(jsStr(l.rel)), enc(jsStr(l.link))
			*link = append(*link, entry{join(a, rel, ln, sq), sv})
			*back = append(*back, entry{join(ln, rel, a, sq), sv})
		}
		rs := enc(jsNum(float64(it.Seq)))
		ts := enc(jsNum(it.Timestamp))
		for _, r := range recordsOf(d.value, l2, it.Timestamp) {
			s, dst, rel := enc(jsStr(r.source)), enc(jsStr(r.dest)), enc(r.rel)
			*srd = append(*srd, entry{join(s, rel, dst, ts, rs), sv})
			*drs = append(*drs, entry{join(dst, rel, s, ts, rs), sv})
			*rds = append(*rds, entry{join(rel, dst, s, ts, rs), sv})
		}
		claimed, _ := get(d.value, "timestamp")
		cts := enc(jsNum(claimed.Number()))
		for _, dest := range backlinkDests(content) {
			*dta = append(*dta, entry{join(enc(jsStr(dest)), cts, rs), sv})
		}
	}
}

// write puts the entries of a batch's parts in their buckets, in key
// order (the parts' entries merged).
func write(tx *bolt.Tx, parts []any) error {
	for i := range allViews {
		b, err := tx.CreateBucketIfNotExists(allViews[i])
		if err != nil {
			return fmt.Errorf("links: %w", err)
		}
		runs := make([][]entry, 0, len(parts))
		for _, p := range parts {
			if es := p.(*batchEntries)[i]; len(es) > 0 {
				runs = append(runs, es)
			}
		}
		if err := putMerged(b, runs); err != nil {
			return fmt.Errorf("links: %w", err)
		}
	}
	return nil
}

// putMerged puts the entries of sorted runs in key order: a k-way merge,
// the runs in a heap by their first keys.
func putMerged(b *bolt.Bucket, runs [][]entry) error {
	h := runHeap(runs)
	heap.Init(&h)
	for len(h) > 0 {
		e := h[0][0]
		if err := b.Put(e.key, e.seq); err != nil {
			return err
		}
		if h[0] = h[0][1:]; len(h[0]) == 0 {
			heap.Pop(&h)
		} else {
			heap.Fix(&h, 0)
		}
	}
	return nil
}

// runHeap orders sorted runs of entries by their first keys.
type runHeap [][]entry

func (h runHeap) Len() int           { return len(h) }
func (h runHeap) Less(i, j int) bool { return bytes.Compare(h[i][0].key, h[j][0].key) < 0 }
func (h runHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *runHeap) Push(x any)        { *h = append(*h, x.([]entry)) }
func (h *runHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
