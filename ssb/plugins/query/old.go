package query

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	mfr "github.com/scuttlego/scuttle/ssb/query"

	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/store"
)

// old reads the messages stored when the read starts, in the plan's
// order, and returns the receive sequence they end at.
func (r *reader) old(ctx context.Context, run *mfr.Run, emit func(mfr.Value) error) (uint64, error) {
	push := func(it store.Item) error { return r.push(run, it, emit) }
	st := r.p.store
	plan := r.plan
	switch kind := r.strategy(); kind {
	case "scan", "log":
		q := store.LogQuery{Reverse: plan.Reverse}
		if kind == "log" {
			q.Gte, q.Lte = plan.NumberRange(0)
		}
		iter, top, err := r.at(func() (*store.Iterator, error) { return st.Log(ctx, q) })
		if err != nil {
			return 0, err
		}
		return top, drain(ctx, iter, push)
	case "history":
		author, _ := plan.Pinned(0)
		id, _ := refs.ParseFeed(author.Str())
		q := store.HistoryQuery{ID: id}
		if plan.Index.Key == "clk" {
			if lo, _ := plan.NumberRange(1); lo != nil && *lo > 1 {
				q.Seq = int64(min(math.Ceil(*lo), math.MaxInt32))
			}
		}
		if plan.Reverse {
			return r.historyReverse(ctx, q, push)
		}
		iter, top, err := r.at(func() (*store.Iterator, error) { return st.History(ctx, q) })
		if err != nil {
			return 0, err
		}
		return top, drain(ctx, iter, push)
	case "type":
		return r.byType(ctx, push)
	case "channel":
		ch, _ := plan.Pinned(0)
		return r.byChannel(ctx, ch.Str(), push)
	case "sorted":
		return r.sorted(ctx, push)
	}
	return r.receive(ctx, push)
}

// receive reads the log in the plan's direction: the plan's order, for an
// index whose order is the log's once its leading fields are held.
func (r *reader) receive(ctx context.Context, push func(store.Item) error) (uint64, error) {
	st, plan := r.p.store, r.plan
	iter, top, err := r.at(func() (*store.Iterator, error) { return st.Log(ctx, store.LogQuery{Reverse: plan.Reverse}) })
	if err != nil {
		return 0, err
	}
	return top, drain(ctx, iter, push)
}

// strategy says how the old messages are read: "scan" (no index), "log"
// (the log index: the store's log by receive time), "history" (one
// author's feed, for clk and aty, in either direction), "type" (the
// store's type index, for typ with one type), "channel" (the channel
// view, for cha with one channel), "receive" (an index whose order is the
// log's once its leading fields are held to one value: a filtered scan of
// the log), or "sorted" (the log's entries in range, sorted by their
// index keys).
func (r *reader) strategy() string {
	plan := r.plan
	if plan.Index == nil {
		return "scan"
	}
	n := len(plan.Index.Fields)
	pinned := func(k int) bool {
		for i := range k {
			if _, ok := plan.Pinned(i); !ok {
				return false
			}
		}
		return true
	}
	switch plan.Index.Key {
	case "log":
		return "log"
	case "clk":
		if !pinned(1) {
			return "sorted"
		}
		if a, _ := plan.Pinned(0); isFeed(a) {
			return "history"
		}
		return "receive"
	case "aty":
		if !pinned(n - 1) {
			return "sorted"
		}
		if a, _ := plan.Pinned(0); isFeed(a) {
			return "history"
		}
		return "receive"
	case "typ":
		if !pinned(n - 1) {
			return "sorted"
		}
		if t, _ := plan.Pinned(0); t.Kind() == mfr.String && t.Str() != "" && len(t.Str()) <= 255 {
			return "type"
		}
		return "receive"
	case "cha":
		if !pinned(n - 1) {
			return "sorted"
		}
		if c, _ := plan.Pinned(0); c.Kind() == mfr.String && c.Str() != "" && len(c.Str()) <= MaxChannel {
			return "channel"
		}
		return "receive"
	}
	return "sorted"
}

func isFeed(v mfr.Value) bool {
	if v.Kind() != mfr.String {
		return false
	}
	_, err := refs.ParseFeed(v.Str())
	return err == nil
}

// maxAttempts bounds the tries to open an iterator at a known sequence
// while the log grows.
const maxAttempts = 64

// at opens an iterator and returns the receive sequence its old messages
// end at: the store's iterators read up to the durable sequence when they
// open, so an open between two equal readings of it ends there.
func (r *reader) at(open func() (*store.Iterator, error)) (*store.Iterator, uint64, error) {
	st := r.p.store
	for range maxAttempts {
		before := st.Durable()
		iter, err := open()
		if err != nil {
			return nil, 0, fmt.Errorf("query: %w", err)
		}
		if st.Durable() == before {
			return iter, before, nil
		}
		iter.Close()
	}
	return nil, 0, fmt.Errorf("query: the log grew during %d attempts to start reading", maxAttempts)
}

// byType reads the type index, and our private messages, which it lacks
// (encrypted messages have no type there), in receive order.
func (r *reader) byType(ctx context.Context, push func(store.Item) error) (uint64, error) {
	plan := r.plan
	t, _ := plan.Pinned(0)
	q := store.TypeQuery{Type: t.Str(), Reverse: plan.Reverse}
	q.Gte, q.Lte = plan.NumberRange(1)
	iter, top, err := r.at(func() (*store.Iterator, error) { return r.p.store.Type(ctx, q) })
	if err != nil {
		return 0, err
	}
	defer iter.Close()
	var ours []uint64
	if priv := r.p.private(); priv != nil {
		all, err := priv.Ours(ctx)
		if err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		for _, s := range all {
			if s <= top {
				ours = append(ours, s)
			}
		}
		if plan.Reverse {
			slices.Reverse(ours)
		}
	}
	before := func(a, b uint64) bool { return a < b != plan.Reverse }
	next, err := nextOf(ctx, iter)
	for err == nil && (next != nil || len(ours) > 0) {
		if next != nil && (len(ours) == 0 || before(next.Seq, ours[0])) {
			if err = push(*next); err == nil {
				next, err = nextOf(ctx, iter)
			}
			continue
		}
		var it store.Item
		if it, err = r.p.store.GetSeq(ours[0]); err == nil {
			ours = ours[1:]
			err = push(it)
		}
	}
	return top, err
}

// nextOf returns an iterator's next item, or nil at its end.
func nextOf(ctx context.Context, iter *store.Iterator) (*store.Item, error) {
	it, err := iter.Next(ctx)
	if err != nil {
		if isEOF(err) {
			return nil, nil
		}
		return nil, err
	}
	return &it, nil
}

// An entry is a message's key in an index and its receive sequence.
type entry struct {
	key []byte
	seq uint64
}

// sorted reads the log, keeps the entries in the plan's range, sorts them
// by key as LevelDB holds them (a later message with the same key replaces
// the earlier, as a put does), and reads them in that order.
func (r *reader) sorted(ctx context.Context, push func(store.Item) error) (uint64, error) {
	iter, top, err := r.at(func() (*store.Iterator, error) { return r.p.store.Log(ctx, store.LogQuery{}) })
	if err != nil {
		return 0, err
	}
	var entries []entry
	err = drain(ctx, iter, func(it store.Item) error {
		v, _, err := r.item(r.unbox(it))
		if err != nil {
			return err
		}
		k, ok := r.plan.Key(v)
		if !ok || !r.plan.InRange(k) {
			return nil
		}
		if len(entries) >= maxSorted {
			return fmt.Errorf("%w (more than %d for index %s)", ErrTooMany, maxSorted, r.plan.Index.Key)
		}
		entries = append(entries, entry{k, it.Seq})
		return nil
	})
	if err != nil {
		return 0, err
	}
	slices.SortStableFunc(entries, func(a, b entry) int { return bytes.Compare(a.key, b.key) })
	kept := entries[:0]
	for i, e := range entries {
		if i+1 < len(entries) && bytes.Equal(e.key, entries[i+1].key) {
			continue
		}
		kept = append(kept, e)
	}
	if r.plan.Reverse {
		slices.Reverse(kept)
	}
	for i, e := range kept {
		if i%64 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		it, err := r.p.store.GetSeq(e.seq)
		if err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		if err := push(it); err != nil {
			return 0, err
		}
	}
	return top, nil
}

// historyReverse reads a feed newest first: the receive sequences of its
// messages (at most MaxSorted, or it reads the log backwards instead),
// then each message, from the last.
func (r *reader) historyReverse(ctx context.Context, q store.HistoryQuery, push func(store.Item) error) (uint64, error) {
	st := r.p.store
	no := false
	q.Keys, q.Values = &no, &no
	iter, top, err := r.at(func() (*store.Iterator, error) { return st.History(ctx, q) })
	if err != nil {
		return 0, err
	}
	var seqs []uint64
	err = drain(ctx, iter, func(it store.Item) error {
		if len(seqs) >= maxSorted {
			return ErrTooMany
		}
		seqs = append(seqs, it.Seq)
		return nil
	})
	if errors.Is(err, ErrTooMany) {
		return r.receive(ctx, push)
	}
	if err != nil {
		return 0, err
	}
	for i := len(seqs) - 1; i >= 0; i-- {
		if i%64 == 0 && ctx.Err() != nil {
			return 0, ctx.Err()
		}
		it, err := st.GetSeq(seqs[i])
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted since
		}
		if err != nil {
			return 0, fmt.Errorf("query: %w", err)
		}
		if err := push(it); err != nil {
			return 0, err
		}
	}
	return top, nil
}
