package ebt

import (
	"crypto/ed25519"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// The scenario files in testdata/scenarios/ are the specification of EBT here: each
// step is an event given to the machine, followed by what it asks to be
// done. Feeds and peers are named; a note's values read:
//
//	alice=10    I have alice up to 10; do not send it to me
//	alice=10+   I have alice up to 10; send me what follows
//	alice=-1    I do not replicate alice
//
// Commands:
//
//	new self=me [wanted=a,b] [clock=a:5,b:3] [stall=3s] [reask=250ms] [reasks=3] [save=10s]
//	open s=1 peer=bob [responder] [clock=a:5,b:-1]
//	note s=1 alice=10+ bob=3 carol=-1
//	message s=1 alice 11          -> append | drop
//	take alice 11                 -> append | drop (legacy: no session)
//	untake alice                  (its append failed)
//	appended alice 12
//	deleted alice 4               (alice is now stored up to 4)
//	failed s=1 alice order|invalid
//	close s=1
//	want alice,bob                (our own feed is always wanted)
//	exclude alice bob on|off      (alice's messages are kept from bob)
//	tick 1s                       (virtual time moves on)
//	stats
//
// After each command come the notes, sends and clocks of Ready:
//
//	note s1: alice=10+ bob=3
//	send s1: alice 4..10
//	stop s1: alice
//	clock bob: alice:10 me:3
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		h := &harness{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := h.run(d)
			if err != nil {
				d.Fatalf(t, "%v", err)
			}
			return out
		})
	})
}

type harness struct {
	m   *Machine
	now time.Time
}

// feed names a feed: its key is the name's bytes, so that the machine's
// order (by key) is the names' order.
func feed(name string) refs.Feed {
	var key [32]byte
	copy(key[:], name)
	f, err := refs.NewFeed(ed25519.PublicKey(key[:]))
	if err != nil {
		panic(err)
	}
	return f
}

func name(f refs.Feed) string {
	k := f.PublicKey()
	return strings.TrimRight(string(k), "\x00")
}

func (h *harness) run(d *datadriven.TestData) (string, error) {
	var b strings.Builder
	switch d.Cmd {
	case "new":
		var cfg Config
		self := "me"
		var wanted []refs.Feed
		clock := map[refs.Feed]int64{}
		for _, a := range d.CmdArgs {
			v := strings.Join(a.Vals, ",")
			var err error
			switch a.Key {
			case "self":
				self = v
			case "wanted":
				wanted = feeds(v)
			case "clock":
				clock, err = parseClock(v)
			case "stall":
				cfg.Stall, err = time.ParseDuration(v)
			case "reask":
				cfg.ReaskBackoff, err = time.ParseDuration(v)
			case "reasks":
				cfg.MaxReasks, err = strconv.Atoi(v)
			case "save":
				cfg.ClockSaveEvery, err = time.ParseDuration(v)
			default:
				return "", fmt.Errorf("new: unknown argument %s", a.Key)
			}
			if err != nil {
				return "", err
			}
		}
		h.now = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
		h.m = New(cfg, feed(self), clock, h.now)
		h.m.SetWanted(wanted)
		h.m.Tick(h.now)
	case "open":
		var (
			id        SessionID
			peer      string
			responder bool
			clock     map[refs.Feed]int64
		)
		for _, a := range d.CmdArgs {
			v := strings.Join(a.Vals, ",")
			var err error
			switch a.Key {
			case "s":
				var n uint64
				n, err = strconv.ParseUint(v, 10, 64)
				id = SessionID(n)
			case "peer":
				peer = v
			case "responder":
				responder = true
			case "clock":
				clock, err = parseClock(v)
			default:
				return "", fmt.Errorf("open: unknown argument %s", a.Key)
			}
			if err != nil {
				return "", err
			}
		}
		h.m.Open(id, feed(peer), clock, responder)
	case "note":
		id, rest, err := sessionArg(d.CmdArgs)
		if err != nil {
			return "", err
		}
		n := make(map[refs.Feed]int64)
		for _, a := range rest {
			if len(a.Vals) != 1 {
				return "", fmt.Errorf("note: %s needs a value", a.Key)
			}
			v := a.Vals[0]
			rx := strings.HasSuffix(v, "+")
			seq, err := strconv.ParseInt(strings.TrimSuffix(v, "+"), 10, 64)
			if err != nil {
				return "", err
			}
			if seq < 0 {
				n[feed(a.Key)] = seq
			} else {
				n[feed(a.Key)] = Value(seq, rx)
			}
		}
		h.m.Note(id, n)
	case "message":
		id, rest, err := sessionArg(d.CmdArgs)
		if err != nil || len(rest) != 2 {
			return "", fmt.Errorf("message s=N FEED SEQ: %v", err)
		}
		seq, err := strconv.ParseInt(rest[1].Key, 10, 64)
		if err != nil {
			return "", err
		}
		if h.m.Message(id, feed(rest[0].Key), seq) {
			b.WriteString("append\n")
		} else {
			b.WriteString("drop\n")
		}
	case "appended":
		if len(d.CmdArgs) != 2 {
			return "", fmt.Errorf("appended FEED SEQ")
		}
		seq, err := strconv.ParseInt(d.CmdArgs[1].Key, 10, 64)
		if err != nil {
			return "", err
		}
		h.m.Appended(feed(d.CmdArgs[0].Key), seq)
	case "take":
		if len(d.CmdArgs) != 2 {
			return "", fmt.Errorf("take FEED SEQ")
		}
		seq, err := strconv.ParseInt(d.CmdArgs[1].Key, 10, 64)
		if err != nil {
			return "", err
		}
		if h.m.Take(feed(d.CmdArgs[0].Key), seq) {
			b.WriteString("append\n")
		} else {
			b.WriteString("drop\n")
		}
	case "untake":
		h.m.Untake(feed(d.CmdArgs[0].Key))
	case "deleted":
		if len(d.CmdArgs) != 2 {
			return "", fmt.Errorf("deleted FEED SEQ")
		}
		seq, err := strconv.ParseInt(d.CmdArgs[1].Key, 10, 64)
		if err != nil {
			return "", err
		}
		h.m.Deleted(feed(d.CmdArgs[0].Key), seq)
	case "failed":
		id, rest, err := sessionArg(d.CmdArgs)
		if err != nil || len(rest) != 2 {
			return "", fmt.Errorf("failed s=N FEED order|invalid: %v", err)
		}
		h.m.AppendFailed(id, feed(rest[0].Key), rest[1].Key == "order")
	case "close":
		id, _, err := sessionArg(d.CmdArgs)
		if err != nil {
			return "", err
		}
		h.m.Close(id)
	case "want":
		var fs []refs.Feed
		if len(d.CmdArgs) > 0 {
			fs = feeds(d.CmdArgs[0].Key)
		}
		h.m.SetWanted(fs)
	case "exclude":
		if len(d.CmdArgs) != 3 {
			return "", fmt.Errorf("exclude FEED PEER on|off")
		}
		h.m.Exclude(feed(d.CmdArgs[0].Key), feed(d.CmdArgs[1].Key), d.CmdArgs[2].Key == "on")
	case "tick":
		dur := time.Second
		if len(d.CmdArgs) > 0 {
			var err error
			if dur, err = time.ParseDuration(d.CmdArgs[0].Key); err != nil {
				return "", err
			}
		}
		h.now = h.now.Add(dur)
		h.m.Tick(h.now)
	case "stats":
		st := h.m.Stats()
		fmt.Fprintf(&b, "sessions=%d notes=%d noteFeeds=%d skipped=%d received=%d duplicates=%d stalls=%d reasks=%d broken=%d\n",
			st.Sessions, st.Notes, st.NoteFeeds, st.Skipped, st.Received, st.Duplicates, st.Stalls, st.Reasks, st.Broken)
		return b.String(), nil
	default:
		return "", fmt.Errorf("unknown command %q", d.Cmd)
	}
	b.WriteString(format(h.m.Ready()))
	return b.String(), nil
}

func sessionArg(args []datadriven.CmdArg) (SessionID, []datadriven.CmdArg, error) {
	if len(args) == 0 || args[0].Key != "s" || len(args[0].Vals) != 1 {
		return 0, nil, fmt.Errorf("the first argument must be s=N")
	}
	n, err := strconv.ParseUint(args[0].Vals[0], 10, 64)
	return SessionID(n), args[1:], err
}

func feeds(list string) []refs.Feed {
	var out []refs.Feed
	for n := range strings.SplitSeq(list, ",") {
		if n != "" {
			out = append(out, feed(n))
		}
	}
	return out
}

func parseClock(s string) (map[refs.Feed]int64, error) {
	c := make(map[refs.Feed]int64)
	for e := range strings.SplitSeq(s, ",") {
		if e == "" {
			continue
		}
		n, v, ok := strings.Cut(e, ":")
		seq, err := strconv.ParseInt(v, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("clock entry %q: want feed:seq", e)
		}
		c[feed(n)] = seq
	}
	return c, nil
}

func formatValue(v int64) string {
	if v < 0 {
		return strconv.FormatInt(v, 10)
	}
	s := strconv.FormatInt(v>>1, 10)
	if v&1 == 0 {
		s += "+"
	}
	return s
}

func sortedByName[V any](m map[refs.Feed]V) []refs.Feed {
	return slices.SortedFunc(maps.Keys(m), func(a, b refs.Feed) int { return strings.Compare(name(a), name(b)) })
}

func format(r Ready) string {
	var b strings.Builder
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note s%d:", n.Session)
		for _, f := range sortedByName(n.Feeds) {
			fmt.Fprintf(&b, " %s=%s", name(f), formatValue(n.Feeds[f]))
		}
		b.WriteString("\n")
	}
	for _, s := range r.Sends {
		if s.Stop {
			fmt.Fprintf(&b, "stop s%d: %s\n", s.Session, name(s.Feed))
		} else {
			fmt.Fprintf(&b, "send s%d: %s %d..%d\n", s.Session, name(s.Feed), s.From, s.To)
		}
	}
	for _, c := range r.Clocks {
		fmt.Fprintf(&b, "clock %s:", name(c.Peer))
		for _, f := range sortedByName(c.Feeds) {
			fmt.Fprintf(&b, " %s:%d", name(f), c.Feeds[f])
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "ok\n"
	}
	return b.String()
}
