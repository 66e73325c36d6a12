package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"pgregory.net/rapid"
)

// TestCheckFindsDamage damages a good database in one way at a time, as
// a bug or a bad disk could, and checks that Check reports it.
func TestCheckFindsDamage(t *testing.T) {
	build := func(t *testing.T) string {
		dir := t.TempDir()
		s, err := Open(dir, WithLogger(quiet()))
		if err != nil {
			t.Fatal(err)
		}
		a, b := newAuthor(t, "a"), newAuthor(t, "b")
		for i := range 5 {
			mustAppend(t, s, a.post(t, float64(i)), b.post(t, float64(i)))
		}
		mustCheck(t, s)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	first := func(b *bolt.Bucket) []byte { k, _ := b.Cursor().First(); return k }
	tests := []struct {
		name   string
		damage func(tx *bolt.Tx) error
		want   string
	}{
		{"id entry lost", func(tx *bolt.Tx) error { return tx.Bucket(bucketID).Delete(first(tx.Bucket(bucketID))) }, "id index"},
		{"feed entry points elsewhere", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketFeed).Put(first(tx.Bucket(bucketFeed)), seqKey(7))
		}, "feed index"},
		{"claimed entry lost", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketClaimed).Delete(first(tx.Bucket(bucketClaimed)))
		}, "claimed index"},
		{"extra type entry", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketType).Put(putSeq(typePrefix(nil, "vote"), 3), noValue)
		}, "index type has 11 entries, want 10"},
		{"head behind", func(tx *bolt.Tx) error {
			h := tx.Bucket(bucketHead)
			k, v := h.Cursor().First()
			v = append([]byte(nil), v...)
			v[3]-- // sequence
			return h.Put(append([]byte(nil), k...), v)
		}, "head of"},
		{"message lost from the log", func(tx *bolt.Tx) error { return tx.Bucket(bucketLog).Delete(seqKey(4)) }, "log key"},
		{"record bytes changed", func(tx *bolt.Tx) error {
			l := tx.Bucket(bucketLog)
			v := append([]byte(nil), l.Get(seqKey(5))...)
			i := strings.Index(string(v), "message 3")
			v[i+8] = '4'
			return l.Put(seqKey(5), v)
		}, "is stored as"},
		{"deleted messages miscounted", func(tx *bolt.Tx) error {
			meta := tx.Bucket(bucketMeta)
			if err := meta.Put(metaVersion, []byte{0, 0, 0, formatDeleted}); err != nil {
				return err
			}
			return meta.Put(metaDeleted, putSeq(nil, 1))
		}, "log keys do not add up"},
		{"deletions in the old format", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaTop, append(seqKey(10), make([]byte, 8)...))
		}, "format"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := build(t)
			db, err := bolt.Open(filepath.Join(dir, FileName), 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tt.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			s, err := Open(dir, WithLogger(quiet()))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			err = s.Check(context.Background())
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Check: %v; want ErrCorrupt mentioning %q", err, tt.want)
			}
		})
	}
}

// TestOrderedFloat checks that the key encoding of timestamps sorts as
// the numbers do, and decodes back.
func TestOrderedFloat(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a, b := rapid.Float64().Draw(t, "a"), rapid.Float64().Draw(t, "b")
		ea, eb := orderedFloat(a), orderedFloat(b)
		if (a < b) != (ea < eb) || (a == b) != (ea == eb) {
			t.Fatalf("%v vs %v encode to %x vs %x", a, b, ea, eb)
		}
		if back := unorderFloat(ea); back != a {
			t.Fatalf("%v decodes back to %v", a, back)
		}
	})
}
