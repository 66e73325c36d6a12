package query

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"

	mfr "github.com/scuttlego/scuttle/ssb/query"

	"github.com/scuttlego/scuttle/ssb/index"
	"github.com/scuttlego/scuttle/ssb/store"
)

// The channel view (<data>/indexes/query-cha.bolt) is ssb-query's cha
// index for the store's messages that are not encrypted: one entry per
// message whose content.channel is a string of at most MaxChannel bytes,
// keyed by the channel (its length, then its bytes) and the receive
// sequence, so that one channel's messages are one range, in receive
// order. Our private messages are merged in at read time, as for the
// type index.
var (
	chaSpecName   = "query-cha"
	chaVersion    = uint32(1)
	bucketChannel = []byte("cha")
)

// MaxChannel is the longest channel the view holds (in bytes, as UTF-8
// or WTF-8); reads of a longer one scan the log.
const MaxChannel = 1024

func channelKey(dst []byte, channel string, seq uint64) []byte {
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(channel)))
	dst = append(dst, channel...)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// updateChannels writes the entries of a batch of messages.
func updateChannels(tx *bolt.Tx, items []store.Item) error {
	b, err := tx.CreateBucketIfNotExists(bucketChannel)
	if err != nil {
		return fmt.Errorf("query: channel view: %w", err)
	}
	var key []byte
	for _, it := range items {
		ch, ok := mfr.RawChannel(it.Value)
		if !ok || len(ch) > MaxChannel {
			continue
		}
		key = channelKey(key[:0], ch, it.Seq)
		if err := b.Put(key, nil); err != nil {
			return fmt.Errorf("query: channel view: %w", err)
		}
	}
	return nil
}

// Run opens the channel view, keeps it up with the log until ctx ends,
// then closes it.
func (p *Plugin) Run(ctx context.Context) error {
	v, err := index.Open(p.store, p.dir, index.Spec{Name: chaSpecName, Version: chaVersion, Update: updateChannels}, p.log)
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	p.view = v
	close(p.opened)
	err = v.Run(ctx)
	if cerr := v.Close(); err == nil && !errors.Is(cerr, index.ErrClosed) {
		err = cerr
	}
	return err
}

// channelView returns the view once Run has opened it, and has seen every
// message up to receive sequence top.
func (p *Plugin) channelView(ctx context.Context, top uint64) (*index.View, error) {
	select {
	case <-p.opened:
	case <-ctx.Done():
		return nil, fmt.Errorf("query: the channel index is not open: %w", ctx.Err())
	}
	if err := p.view.Wait(ctx, top); err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	return p.view, nil
}

// chaChunk is how many entries of the view one read transaction takes.
const chaChunk = 256

// byChannel reads one channel's messages from the view, and our private
// messages, which it lacks, in receive order (or reversed).
func (r *reader) byChannel(ctx context.Context, channel string, push func(store.Item) error) (uint64, error) {
	st := r.p.store
	top := st.Durable()
	v, err := r.p.channelView(ctx, top)
	if err != nil {
		return 0, err
	}
	ours, err := r.ours(ctx, top)
	if err != nil {
		return 0, err
	}
	prefix := channelKey(nil, channel, 0)
	prefix = prefix[:len(prefix)-8]
	var (
		chunk []uint64
		last  []byte
		done  bool
	)
	next := func() (uint64, bool, error) {
		for len(chunk) == 0 && !done {
			if err := ctx.Err(); err != nil {
				return 0, false, err
			}
			chunk, last, done, err = readChannel(v, prefix, last, r.plan.Reverse, top)
			if err != nil {
				return 0, false, err
			}
		}
		if len(chunk) == 0 {
			return 0, false, nil
		}
		s := chunk[0]
		chunk = chunk[1:]
		return s, true, nil
	}
	return top, r.merge(ctx, next, ours, push)
}

// readChannel reads up to chaChunk receive sequences (at most top) of the
// entries with prefix after the key last (before it, reversed).
func readChannel(v *index.View, prefix, last []byte, reverse bool, top uint64) (seqs []uint64, next []byte, done bool, err error) {
	done = true
	err = v.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChannel)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		var k []byte
		switch {
		case last != nil && !reverse:
			if k, _ = c.Seek(last); bytes.Equal(k, last) {
				k, _ = c.Next()
			}
		case last != nil:
			c.Seek(last)
			k, _ = c.Prev()
		case !reverse:
			k, _ = c.Seek(prefix)
		default:
			end := binary.BigEndian.AppendUint64(bytes.Clone(prefix), ^uint64(0))
			if k, _ = c.Seek(end); k == nil || !bytes.Equal(k, end) {
				if k == nil {
					k, _ = c.Last()
				} else {
					k, _ = c.Prev()
				}
			}
		}
		for ; k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k = step(c, reverse) {
			next = append(next[:0], k...)
			if s := binary.BigEndian.Uint64(k[len(prefix):]); s <= top {
				seqs = append(seqs, s)
			}
			if len(seqs) >= chaChunk {
				done = false
				return nil
			}
		}
		return nil
	})
	return seqs, next, done, err
}

func step(c *bolt.Cursor, reverse bool) []byte {
	if reverse {
		k, _ := c.Prev()
		return k
	}
	k, _ := c.Next()
	return k
}

// ours returns the receive sequences (at most top) of our private
// messages, in the plan's order: the indexes of encrypted content lack
// them.
func (r *reader) ours(ctx context.Context, top uint64) ([]uint64, error) {
	priv := r.p.private()
	if priv == nil {
		return nil, nil
	}
	all, err := priv.Ours(ctx)
	if err != nil {
		return nil, fmt.Errorf("query: %w", err)
	}
	var ours []uint64
	for _, s := range all {
		if s <= top {
			ours = append(ours, s)
		}
	}
	if r.plan.Reverse {
		for i, j := 0, len(ours)-1; i < j; i, j = i+1, j-1 {
			ours[i], ours[j] = ours[j], ours[i]
		}
	}
	return ours, nil
}

// merge pushes the messages of two sources of receive sequences in the
// plan's order: next's, and ours.
func (r *reader) merge(ctx context.Context, next func() (uint64, bool, error), ours []uint64, push func(store.Item) error) error {
	before := func(a, b uint64) bool { return a < b != r.plan.Reverse }
	s, ok, err := next()
	for i := 0; err == nil && (ok || len(ours) > 0); i++ {
		if i%64 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		var seq uint64
		if ok && (len(ours) == 0 || before(s, ours[0])) {
			seq = s
			s, ok, err = next()
		} else {
			if ok && s == ours[0] {
				s, ok, err = next()
			}
			seq, ours = ours[0], ours[1:]
		}
		it, gerr := r.p.store.GetSeq(seq)
		switch {
		case errors.Is(gerr, store.ErrNotFound):
			continue // deleted since
		case gerr != nil:
			return fmt.Errorf("query: %w", gerr)
		}
		if perr := push(it); perr != nil {
			return perr
		}
	}
	return err
}

// Rebuild drops the channel view and indexes the log again; it returns
// when the view has caught up with the store (db's rebuild calls it).
func (p *Plugin) Rebuild(ctx context.Context) error {
	select {
	case <-p.opened:
	case <-ctx.Done():
		return fmt.Errorf("query: the channel index is not open: %w", ctx.Err())
	}
	return p.view.Rebuild(ctx)
}
