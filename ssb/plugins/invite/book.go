package invite

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// maxOpen bounds the invites that are not used up; create refuses more.
const maxOpen = 10000

// Errors of invite.use, with ssb-invite's words where it has some.
var (
	ErrUnknown = errors.New("invite: no invite for this key")
	ErrExpired = errors.New("invite has expired")
	ErrTooMany = fmt.Errorf("invite: %d invites are open: no more until some are used", maxOpen)
)

// A record is one invite the pub created, as kept in <path>/invites.json:
// ssb-invite's id, total, used and note.
type record struct {
	ID      string          `json:"id"` // the invite's key (the guest's feed id)
	Total   int             `json:"total"`
	Used    int             `json:"used"`
	Note    json.RawMessage `json:"note,omitempty"`
	Created int64           `json:"created"` // Unix milliseconds
}

// book holds the open invites in memory and in <path>/invites.json, which
// is rewritten atomically (temporary file, fsync, rename, fsync of the
// directory) before each change is acted on. An invite that is used up is
// removed: its key is then a stranger's, as in ssb-invite.
type book struct {
	path string

	mu   sync.Mutex
	open map[refs.Feed]record
}

func openBook(dir string) (*book, error) {
	b := &book{path: filepath.Join(dir, "invites.json"), open: make(map[refs.Feed]record)}
	data, err := os.ReadFile(b.path)
	if errors.Is(err, fs.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invite: %w", err)
	}
	var list map[string]record
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("invite: %s: %w", b.path, err)
	}
	for id, r := range list {
		f, err := refs.ParseFeed(id)
		if err != nil || r.Used >= r.Total {
			continue
		}
		b.open[f] = r
	}
	return b, nil
}

// valid reports whether id is the key of an invite that is not used up.
func (b *book) valid(id refs.Feed) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	_, ok := b.open[id]
	return ok
}

// add records a new invite.
func (b *book) add(id refs.Feed, r record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.open) >= maxOpen {
		return ErrTooMany
	}
	b.open[id] = r
	if err := b.saveLocked(); err != nil {
		delete(b.open, id)
		return err
	}
	return nil
}

// take counts one use of invite id and returns it as it was before.
func (b *book) take(id refs.Feed) (record, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, ok := b.open[id]
	if !ok {
		return record{}, ErrUnknown
	}
	if r.Used >= r.Total {
		return record{}, ErrExpired
	}
	next := r
	next.Used++
	b.put(id, next)
	if err := b.saveLocked(); err != nil {
		b.open[id] = r
		return record{}, err
	}
	return r, nil
}

// giveBack undoes a take whose follow could not be published.
func (b *book) giveBack(id refs.Feed, r record) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.open[id] = r
	return b.saveLocked()
}

// put sets id's record, removing it when it is used up.
func (b *book) put(id refs.Feed, r record) {
	if r.Used >= r.Total {
		delete(b.open, id)
		return
	}
	b.open[id] = r
}

func (b *book) saveLocked() error {
	list := make(map[string]record, len(b.open))
	for id, r := range b.open {
		list[id.String()] = r
	}
	data, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	if err := writeAtomic(b.path, data); err != nil {
		return fmt.Errorf("invite: %w", err)
	}
	return nil
}

// writeAtomic replaces path with data: a temporary file beside it,
// fsynced, renamed over it, then the directory fsynced.
func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
