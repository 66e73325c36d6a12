package store

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/scuttlego/scuttle/ssb/message"
)

// OnAppend tells, after each commit, the new head of every feed it
// advanced (appends and publishes), once the messages are readable; OnDelete
// tells each deletion; both stop once unregistered.
func TestHooks(t *testing.T) {
	s := openStore(t)
	a, b := generated(t), generated(t)
	var mu sync.Mutex
	var heads []FeedHead
	var dels []Deletion
	removeA := s.OnAppend(func(hs []FeedHead) {
		for _, h := range hs {
			if _, err := s.Latest(h.Feed); err != nil {
				t.Errorf("head %v told before it is readable: %v", h, err)
			}
		}
		mu.Lock()
		heads = append(heads, hs...)
		mu.Unlock()
	})
	removeD := s.OnDelete(func(d Deletion) {
		mu.Lock()
		dels = append(dels, d)
		mu.Unlock()
	})
	mustAppend(t, s, a.posts(t, 3, 1)...)
	mustAppend(t, s, b.posts(t, 2, 1)...)
	if _, err := s.Publish(context.Background(), b.id(), func(prev message.FeedState) (*message.Message, error) {
		return message.Create(b.kp, nil, &prev, 10, map[string]any{"type": "post"})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeleteFeed(context.Background(), a.id()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	want := []FeedHead{{a.id(), 3}, {b.id(), 2}, {b.id(), 3}}
	if !slices.Equal(heads, want) {
		t.Errorf("OnAppend told %v, want %v", heads, want)
	}
	if len(dels) != 1 || dels[0].Feed != a.id() || len(dels[0].Keys) != 3 || dels[0].Head.Sequence != 0 {
		t.Errorf("OnDelete told %+v", dels)
	}
	mu.Unlock()
	removeA()
	removeD()
	mustAppend(t, s, generated(t).posts(t, 1, 20)[0])
	mu.Lock()
	defer mu.Unlock()
	if len(heads) != 3 {
		t.Errorf("an unregistered hook was told %v", heads[3:])
	}
}
