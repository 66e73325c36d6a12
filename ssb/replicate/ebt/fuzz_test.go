package ebt

import (
	"testing"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// FuzzMachine drives a machine with any sequence of events, as hostile or
// broken peers and a racing driver could produce them (notes with any
// values, messages out of order or never asked for, sessions closed in
// the middle, blocks, deletions), and checks what must always hold:
//
//   - a feed is received from one open session at most, a session its
//     peer is not kept from, and only while it is wanted;
//   - a range sent is of feed messages that are stored here, from 1 up,
//     to a session that is open and that the feed is not kept from;
//   - notes carry -1 or a value of a sequence stored here, and no feed
//     kept from the peer is asked from it;
//   - a message is handed out to append at most once until an append
//     fails or a deletion lowers the feed.
func FuzzMachine(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15})
	f.Add([]byte{0, 0, 0, 8, 1, 3, 3, 3, 2, 1, 1, 6, 9, 5, 2, 2, 2, 2, 11, 0})
	f.Add([]byte{0, 1, 4, 1, 4, 7, 9, 2, 6, 4, 3, 12, 3, 3, 14, 1, 2, 2})
	f.Fuzz(func(t *testing.T, in []byte) {
		feeds := []refs.Feed{feed("me"), feed("a"), feed("b"), feed("c")}
		peers := []refs.Feed{feed("p"), feed("q"), feed("r")}
		now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
		m := New(Config{Stall: time.Second, ReaskBackoff: 100 * time.Millisecond}, feeds[0], map[refs.Feed]int64{feeds[0]: 3, feeds[1]: 5}, now)
		m.SetWanted(feeds[:3])
		open := map[SessionID]refs.Feed{}
		taken := map[refs.Feed]int64{} // the highest sequence handed out to append
		byte_ := func() int {
			if len(in) == 0 {
				return 0
			}
			b := int(in[0])
			in = in[1:]
			return b
		}
		for len(in) > 0 {
			op, a, b, c := byte_()%13, byte_(), byte_(), byte_()
			id := SessionID(a%4 + 1)
			fd := feeds[b%len(feeds)]
			switch op {
			case 0:
				if _, ok := open[id]; !ok {
					p := peers[a%len(peers)]
					open[id] = p
					m.Open(id, p, map[refs.Feed]int64{fd: int64(c%8) - 1}, b%2 == 0)
				}
			case 1, 2:
				v := int64(c%20) - 2 // -2 (ignored), -1, and values
				m.Note(id, map[refs.Feed]int64{fd: v})
			case 3, 4:
				seq := int64(c%10) + 1
				if m.Message(id, fd, seq) {
					if seq <= taken[fd] && seq <= m.ours[fd] {
						t.Fatalf("message %d of %s handed out again (taken %d, stored %d)", seq, name(fd), taken[fd], m.ours[fd])
					}
					taken[fd] = max(taken[fd], seq)
					if seq == m.ours[fd]+1 && c%3 != 0 {
						m.Appended(fd, seq)
					} else {
						m.AppendFailed(id, fd, c%2 == 0)
						taken[fd] = m.ours[fd]
					}
				}
			case 5:
				m.Appended(fd, m.ours[fd]+1) // published here
			case 6:
				m.Close(id)
				delete(open, id)
			case 7:
				m.Exclude(fd, peers[a%len(peers)], c%2 == 0)
			case 8:
				now = now.Add(time.Duration(c) * 20 * time.Millisecond)
				m.Tick(now)
			case 9:
				m.SetWanted(feeds[:1+c%len(feeds)])
			case 10:
				seq := int64(c % 6)
				m.Deleted(fd, seq)
				taken[fd] = min(taken[fd], seq)
			default:
				m.Tick(now)
			}
			check(t, m, open)
		}
	})
}

func check(t *testing.T, m *Machine, open map[SessionID]refs.Feed) {
	t.Helper()
	for f, id := range m.rxFrom {
		s := m.sessions[id]
		if s == nil {
			t.Fatalf("%s is received from session %d, which is closed", name(f), id)
		}
		if m.withheld(f, s.peer) {
			t.Fatalf("%s is received from %s, from which it is kept", name(f), name(s.peer))
		}
		if !m.wanted[f] {
			t.Fatalf("%s is received from session %d, but it is not wanted", name(f), id)
		}
	}
	r := m.Ready()
	for _, n := range r.Notes {
		p, ok := open[n.Session]
		if !ok {
			t.Fatalf("a note to session %d, which is closed", n.Session)
		}
		for f, v := range n.Feeds {
			if v < -1 {
				t.Fatalf("note %s=%d", name(f), v)
			}
			if v >= 0 && v>>1 > m.ours[f] {
				t.Fatalf("note %s=%s, but %d is stored", name(f), formatValue(v), m.ours[f])
			}
			if v >= 0 && v&1 == 0 && m.withheld(f, p) {
				t.Fatalf("%s asked of %s, from which it is kept", name(f), name(p))
			}
		}
	}
	for _, sd := range r.Sends {
		p, ok := open[sd.Session]
		if !ok {
			t.Fatalf("a send to session %d, which is closed", sd.Session)
		}
		if sd.Stop {
			continue
		}
		if sd.From < 1 || sd.From > sd.To || sd.To > m.ours[sd.Feed] {
			t.Fatalf("send %s %d..%d, stored %d", name(sd.Feed), sd.From, sd.To, m.ours[sd.Feed])
		}
		if m.withheld(sd.Feed, p) {
			t.Fatalf("%s sent to %s, from which it is kept", name(sd.Feed), name(p))
		}
	}
}
