package blobs

// A Subscription receives the blobs added to the store after it was made
// (blobs.changes, and the live part of blobs.ls).
//
// Each subscription buffers a bounded number of changes (see
// WithSubscriberBuffer). A subscriber that falls further behind is dropped,
// not waited for: its channel is closed and Err reports ErrSlow, so a slow
// reader can neither grow memory nor slow adds down; it may subscribe again
// and List to catch up.
type Subscription struct {
	s   *Store
	c   chan Info
	err error // why c was closed; guarded by s.mu
}

// Subscribe returns a subscription to the blobs added from now on. The
// caller must Close it when done.
func (s *Store) Subscribe() *Subscription {
	sub := &Subscription{s: s, c: make(chan Info, s.subBuf)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		sub.err = ErrClosed
		close(sub.c)
		return sub
	}
	s.subs[sub] = struct{}{}
	return sub
}

// Subscribers returns how many subscriptions are live (a test waits on it
// to know that a stream of changes is open before it adds).
func (s *Store) Subscribers() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// C returns the channel of added blobs. It is closed when the
// subscription ends; Err then says why.
func (sub *Subscription) C() <-chan Info { return sub.c }

// Err returns nil while the subscription is live or after Close, ErrSlow
// if it was dropped for falling behind, and ErrClosed if the store closed.
func (sub *Subscription) Err() error {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	return sub.err
}

// Close ends the subscription and closes its channel. It is idempotent.
func (sub *Subscription) Close() {
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	if _, ok := sub.s.subs[sub]; ok {
		sub.s.dropLocked(sub, nil)
	}
}

// dropLocked ends sub with err; s.mu is held.
func (s *Store) dropLocked(sub *Subscription, err error) {
	delete(s.subs, sub)
	sub.err = err
	close(sub.c)
}

// publish tells every subscriber of a new blob, dropping those whose
// buffer is full.
func (s *Store) publish(info Info) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for sub := range s.subs {
		select {
		case sub.c <- info:
		default:
			s.log.Warn("blobs: dropping slow subscriber", "buffer", cap(sub.c))
			s.dropLocked(sub, ErrSlow)
		}
	}
}

func (s *Store) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}
