package links

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"slices"

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
	return index.Spec{Name: viewName, Version: viewVersion, Update: func(tx *bolt.Tx, items []store.Item) error {
		return update(tx, items, unbox)
	}}
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

func seqValue(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

type entry struct{ key, seq []byte }

// enc is one item of a key, encoded; join makes the key of items so
// encoded (cwKey of the items).
func enc(v jsv) []byte { return storedItem(nil, v) }

func join(items ...[]byte) []byte {
	n := len(items)
	for _, it := range items {
		n += len(it)
	}
	key := make([]byte, 0, n)
	for i, it := range items {
		if i > 0 {
			key = append(key, '"')
		}
		key = append(key, it...)
	}
	return append(key, '!')
}

func update(tx *bolt.Tx, items []store.Item, unbox Unboxer) error {
	var link, back, srd, drs, rds, dta []entry
	for _, it := range items {
		d, ok := decode(it, unbox)
		if !ok {
			continue
		}
		sv := seqValue(it.Seq)
		author, _ := get(d.value, "author")
		seqV, _ := get(d.value, "sequence")
		// Each item is encoded once; keys are joined from the encodings.
		a, sq := enc(jsStr(author.Str())), enc(jsNum(seqV.Number()))
		for _, l := range dbLinks(d.value) {
			rel, ln := enc(jsStr(l.rel)), enc(jsStr(l.link))
			link = append(link, entry{join(a, rel, ln, sq), sv})
			back = append(back, entry{join(ln, rel, a, sq), sv})
		}
		rs := enc(jsNum(float64(it.Seq)))
		ts := enc(jsNum(it.Timestamp))
		for _, r := range links2Records(d.value, it.Timestamp) {
			s, dst, rel := enc(jsStr(r.source)), enc(jsStr(r.dest)), enc(r.rel)
			srd = append(srd, entry{join(s, rel, dst, ts, rs), sv})
			drs = append(drs, entry{join(dst, rel, s, ts, rs), sv})
			rds = append(rds, entry{join(rel, dst, s, ts, rs), sv})
		}
		content, _ := get(d.value, "content")
		claimed, _ := get(d.value, "timestamp")
		cts := enc(jsNum(claimed.Number()))
		for _, dest := range backlinkDests(content) {
			dta = append(dta, entry{join(enc(jsStr(dest)), cts, rs), sv})
		}
	}
	for i, es := range [][]entry{link, back, srd, drs, rds, dta} {
		b, err := tx.CreateBucketIfNotExists(allViews[i])
		if err != nil {
			return fmt.Errorf("links: %w", err)
		}
		slices.SortFunc(es, func(x, y entry) int { return bytes.Compare(x.key, y.key) })
		for _, e := range es {
			if err := b.Put(e.key, e.seq); err != nil {
				return fmt.Errorf("links: %w", err)
			}
		}
	}
	return nil
}
