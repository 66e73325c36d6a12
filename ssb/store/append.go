package store

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/scuttlego/scuttle/ssb/message"
	"github.com/scuttlego/scuttle/ssb/refs"
)

// An AppendError reports the message that made Append, AppendMessages or
// Publish store nothing of its batch.
type AppendError struct {
	Index    int          // the message's position in the batch
	Key      refs.Message // its id; zero if it could not be read
	Author   refs.Feed    // its author; zero if it could not be read
	Sequence int64        // its sequence; 0 if it could not be read
	// Err says why. It wraps a sentinel of package message (ErrSignature,
	// ErrShape, ErrSequence with a *message.SequenceError, ErrFork, ...)
	// or ErrDuplicate.
	Err error
}

func (e *AppendError) Error() string {
	if e.Author.IsZero() {
		return fmt.Sprintf("store: append: message %d: %v", e.Index, e.Err)
	}
	return fmt.Sprintf("store: append: message %d (%s, %s sequence %d): %v", e.Index, e.Key, e.Author, e.Sequence, e.Err)
}

func (e *AppendError) Unwrap() error { return e.Err }

// A request is one Append, AppendMessages or Publish call on its way to
// the committer.
type request struct {
	ctx  context.Context
	msgs []*message.Message
	// create, for Publish, makes msgs[0] in the committer from the feed's
	// head.
	feed   refs.Feed
	create func(prev message.FeedState) (*message.Message, error)
	// del, for Delete, says what to delete; the committer runs it in a
	// transaction of its own.
	del   *deletion
	bytes int
	done  chan error // buffered; receives exactly one reply
	// replied is set by the committer once done has the reply.
	replied bool
}

// Append validates raws, messages as JSON (compact or not, as received
// from a peer), and stores them in one atomic step: all of them or, with
// an error, none. It returns the messages as stored (their Raw is the
// compact form) once they are durable, that is fsynced.
//
// Validation follows ssb-validate@4.1.4 in two halves. Everything but the
// chain (shape, content, size, signature with the WithHMACKey key) is
// checked here, in the caller's goroutine, each message against the chain
// position it claims, so that many goroutines verify signatures in
// parallel. The chain is checked by the committer against the persisted
// feed heads (and the earlier messages of the batch and of the same
// transaction), so concurrent appends to one feed cannot fork it: a
// message must have sequence = latest+1 (else a *message.SequenceError, or
// ErrDuplicate for a message already stored) and previous = the latest
// message's id (else an error wrapping message.ErrFork). A batch may mix
// feeds; the messages of one feed must be in order.
//
// A message already stored fails the batch with ErrDuplicate; a different
// message with a sequence the feed already has fails it with an error
// wrapping both message.ErrFork and message.ErrSequence (it proves a fork).
// The error is an *AppendError naming the message. A message whose
// previous is not a plain message id (ssb-validate's loose equality would
// accept ["%…"]) is treated as not matching: a fork.
//
// The context bounds validation and the wait for a place in the queue
// (WithQueue). A call whose context ends before the committer takes it
// stores nothing; once the committer has taken it, Append waits for the
// outcome, so an error always means nothing was stored and nil means all
// is durable.
func (s *Store) Append(ctx context.Context, raws ...[]byte) ([]*message.Message, error) {
	msgs, err := s.Verify(ctx, raws...)
	if err != nil {
		return nil, err
	}
	if err := s.AppendMessages(ctx, msgs...); err != nil {
		return nil, err
	}
	return msgs, nil
}

// Verify is the first half of Append: it validates raws as Append does
// (everything but the chain, on every core) and stores nothing. Its
// messages, given to AppendMessages, are stored exactly as Append would
// store raws; its error is Append's for the same raws when a message is
// invalid (an *AppendError naming its index), or an error wrapping the
// context's. A caller can so verify one batch while the previous one
// commits.
func (s *Store) Verify(ctx context.Context, raws ...[]byte) ([]*message.Message, error) {
	msgs := make([]*message.Message, len(raws))
	// Signatures are independent of each other: a large batch is verified
	// on every core. Each worker stops at its first invalid message; the
	// lowest failing index is the error, and all messages before it were
	// verified by then.
	workers := min(runtime.GOMAXPROCS(0), len(raws)/minPerWorker)
	if workers < 1 {
		workers = 1
	}
	errs := make([]error, len(raws))
	per := (len(raws) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := w*per, min((w+1)*per, len(raws))
		wg.Go(func() {
			for i := lo; i < hi; i++ {
				if (i-lo)%64 == 0 && ctx.Err() != nil {
					errs[i] = ctx.Err()
					return
				}
				m, err := verify(raws[i], s.cfg.hmacKey)
				if err != nil {
					errs[i] = err
					return
				}
				msgs[i] = m
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
			return nil, fmt.Errorf("store: append: %w", err)
		default:
			return nil, &AppendError{Index: i, Err: err}
		}
	}
	return msgs, nil
}

// minPerWorker is the smallest share of a batch worth a goroutine.
const minPerWorker = 16

// AppendMessages is Append for messages the caller has validated already:
// made by message.Create, or returned by message.Validate, ValidateValue
// or ValidateOOO. The store trusts their signatures (and their Raw, Key,
// Author, Sequence, Previous, Timestamp and Type fields) and checks only
// the chain, as Append does. Use it when verification is done elsewhere,
// for example by a replication worker pool.
func (s *Store) AppendMessages(ctx context.Context, msgs ...*message.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	r := &request{msgs: msgs}
	for i, m := range msgs {
		if err := sane(m); err != nil {
			return &AppendError{Index: i, Err: err}
		}
		r.bytes += len(m.Raw)
	}
	return s.submit(ctx, r)
}

// Publish appends the next message of feed, made by create from the
// feed's latest state as the store holds it (the zero FeedState for an
// empty feed): typically
//
//	s.Publish(ctx, kp.ID, func(prev message.FeedState) (*message.Message, error) {
//		return message.Create(kp, hmacKey, &prev, now, content)
//	})
//
// create runs in the committer goroutine, in the transaction that stores
// its message, so concurrent Publish calls on one feed each get the head
// their predecessor wrote and never fork the feed (go-ssb's publish bug).
// It must be quick (a signature, ~25 µs) and must not call the Store.
// Publish returns the message once it is durable.
func (s *Store) Publish(ctx context.Context, feed refs.Feed, create func(prev message.FeedState) (*message.Message, error)) (*message.Message, error) {
	if create == nil {
		return nil, errors.New("store: publish: nil create function")
	}
	r := &request{feed: feed, create: create, msgs: make([]*message.Message, 1)}
	if err := s.submit(ctx, r); err != nil {
		return nil, err
	}
	return r.msgs[0], nil
}

// submit hands r to the committer and waits for its outcome.
func (s *Store) submit(ctx context.Context, r *request) error {
	op := "append"
	if r.del != nil {
		op = "delete"
	}
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return fmt.Errorf("store: %s: %w", op, ErrClosed)
	case s.damaged != nil:
		err := s.damaged
		s.mu.Unlock()
		return fmt.Errorf("store: %s: %w", op, err)
	case s.failed != nil:
		err := s.failed
		s.mu.Unlock()
		return fmt.Errorf("store: %s: %w: %w", op, ErrFailed, err)
	}
	s.senders.Add(1)
	s.mu.Unlock()
	defer s.senders.Done()

	r.ctx = ctx
	r.done = make(chan error, 1)
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return fmt.Errorf("store: %s: %w", op, ctx.Err())
	}
	return <-r.done
}

// sane rejects what no validator returns, so that a hand-made Message
// cannot break the indexes.
func sane(m *message.Message) error {
	switch {
	case m == nil:
		return errors.New("store: nil message")
	case len(m.Raw) == 0 || m.Raw[0] != '{':
		return fmt.Errorf("store: %w: message %s has no JSON object in Raw", message.ErrShape, m.Key)
	case m.Author.IsZero() || m.Key.IsZero():
		return fmt.Errorf("store: %w: message without author or key", message.ErrShape)
	case m.Sequence < 1 || m.Sequence > int64(maxSequence):
		return fmt.Errorf("store: %w: sequence %d is out of range", message.ErrShape, m.Sequence)
	case len(m.Type) > maxTypeLen:
		return fmt.Errorf("store: %w: type of %d bytes", message.ErrContent, len(m.Type))
	}
	return nil
}

// verify checks everything of raw but its place in the feed: it validates
// raw with message.ValidateValue against the state its own sequence and
// previous claim (so the result is exactly ssb-validate's, given a feed
// whose head is that state), leaving the committer to compare the claim
// with the stored head. A message whose previous is not a message id
// cannot extend any feed; it is checked out of order (signature and all),
// so that the committer reports the fork it is.
func verify(raw, hmacKey []byte) (*message.Message, error) {
	v, err := message.Parse(raw)
	if err != nil {
		return nil, err
	}
	seqV, _ := v.Get("sequence")
	seq := seqV.Number()
	if seqV.Kind() != message.Number || seq <= 1 || seq > float64(maxSequence) || seq != float64(int64(seq)) {
		// The first message, or a sequence Validate rejects as it should.
		return message.ValidateValue(nil, v, hmacKey)
	}
	prevV, _ := v.Get("previous")
	if prevV.Kind() == message.String {
		if id, err := refs.ParseMessage(prevV.Str()); err == nil && id.String() == prevV.Str() {
			return message.ValidateValue(&message.FeedState{ID: id, Sequence: int64(seq) - 1}, v, hmacKey)
		}
	}
	return message.ValidateOOO(raw, hmacKey)
}
