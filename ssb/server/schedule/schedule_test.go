package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/scuttlego/scuttle/ssb/refs"
)

// The scenarios under testdata/ are the scheduler's specification: each
// step is an input and its output is what the scheduler asked of its
// driver (Ready), one action a line. Run with -rewrite to regenerate
// them, then read the diff.
//
// Peers are named by a word; the name is also its key (the name's bytes,
// then zeros), so keys compare as the names do. Times are virtual:
// at=DURATION is the time since the scenario's start, and next=DURATION
// in the output is a peer's NextTry the same way.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata", func(t *testing.T, path string) {
		h := &harness{}
		datadriven.RunTest(t, path, h.step)
	})
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// testFeed is the feed whose key is name's bytes then zeros.
func testFeed(name string) refs.Feed {
	var k [32]byte
	copy(k[:], name)
	f, err := refs.NewFeed(k[:])
	if err != nil {
		panic(err)
	}
	return f
}

func testAddr(name string) string { return "net:" + name + ".test:8008~shs:" + name }

type harness struct {
	s     *Scheduler
	names map[string]string    // address -> name
	feeds map[refs.Feed]string // feed -> name
	conns map[ConnID]refs.Feed
	up    map[refs.Feed]time.Time // when the feed's first open connection opened
	open  map[refs.Feed]int
}

func (h *harness) step(t *testing.T, td *datadriven.TestData) string {
	if td.Cmd != "new" && h.s == nil {
		t.Fatalf("%s: no scheduler: start with new", td.Pos)
	}
	var out string
	switch td.Cmd {
	case "new":
		h.init(t, td)
	case "add":
		out = h.add(t, td)
	case "remove":
		if err := h.s.Remove(testAddr(h.name(t, td))); err != nil {
			out = "error: " + err.Error() + "\n"
		}
	case "remove-feed":
		out = fmt.Sprintf("found %v\n", h.s.RemoveFeed(testFeed(h.name(t, td))))
	case "tick":
		h.s.Tick(h.at(t, td))
	case "dial-started":
		out = fmt.Sprintf("claimed %v\n", h.s.DialStarted(testAddr(h.name(t, td)), h.at(t, td)))
	case "dial-failed":
		out = h.dialFailed(t, td)
	case "dial-canceled":
		h.s.DialCanceled(testAddr(h.name(t, td)))
	case "connected":
		h.connected(t, td)
	case "disconnected":
		h.disconnected(t, td)
	case "enable":
		h.s.Enable(true)
	case "disable":
		h.s.Enable(false)
	case "peers":
		for _, p := range h.s.Peers() {
			out += h.peer(p) + "\n"
		}
		return out + h.ready()
	default:
		t.Fatalf("%s: unknown command %q", td.Pos, td.Cmd)
	}
	return out + h.ready()
}

func (h *harness) init(t *testing.T, td *datadriven.TestData) {
	cfg := Config{Seed: 1}
	var self string
	td.MaybeScanArgs(t, "self", &self)
	if self != "" {
		cfg.Self = testFeed(self)
	}
	td.MaybeScanArgs(t, "outbound", &cfg.Outbound)
	td.MaybeScanArgs(t, "failures", &cfg.MaxDialFailures)
	td.MaybeScanArgs(t, "pubs", &cfg.MaxPubPeers)
	td.MaybeScanArgs(t, "dropped-max", &cfg.DroppedMax)
	td.MaybeScanArgs(t, "seed", &cfg.Seed)
	for key, d := range map[string]*time.Duration{"min": &cfg.MinBackoff, "max": &cfg.MaxBackoff,
		"stable": &cfg.StableAfter, "dropped-for": &cfg.DroppedFor, "within": &cfg.CrossDialWithin} {
		if td.HasArg(key) {
			*d = h.duration(t, td, key)
		}
	}
	h.s = New(cfg)
	h.names, h.feeds = map[string]string{}, map[refs.Feed]string{}
	h.conns, h.up, h.open = map[ConnID]refs.Feed{}, map[refs.Feed]time.Time{}, map[refs.Feed]int{}
}

func (h *harness) duration(t *testing.T, td *datadriven.TestData, key string) time.Duration {
	var s string
	td.ScanArgs(t, key, &s)
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s: %s: %v", td.Pos, key, err)
	}
	return d
}

func (h *harness) at(t *testing.T, td *datadriven.TestData) time.Time {
	return epoch.Add(h.duration(t, td, "at"))
}

// name is the first bare argument: a peer's name.
func (h *harness) name(t *testing.T, td *datadriven.TestData) string {
	for _, a := range td.CmdArgs {
		if len(a.Vals) == 0 {
			return a.Key
		}
	}
	t.Fatalf("%s: %s needs a peer", td.Pos, td.Cmd)
	return ""
}

// add a [feed=b] [source=pub] at=T: the peer a, whose key is b's if
// given (another address of b).
func (h *harness) add(t *testing.T, td *datadriven.TestData) string {
	name := h.name(t, td)
	feedName, source := name, SourceManual
	td.MaybeScanArgs(t, "feed", &feedName)
	td.MaybeScanArgs(t, "source", &source)
	f := testFeed(feedName)
	h.names[testAddr(name)] = name
	if _, ok := h.feeds[f]; !ok {
		h.feeds[f] = feedName
	}
	added, err := h.s.Add(Peer{Addr: testAddr(name), Feed: f}, source, h.at(t, td))
	switch {
	case err != nil:
		return "error: " + err.Error() + "\n"
	case !added:
		return "known already\n"
	}
	return ""
}

// dial-failed a at=T [times=N]: N failures in a row at T (each with the
// peer's wait printed).
func (h *harness) dialFailed(t *testing.T, td *datadriven.TestData) string {
	name, at, times := h.name(t, td), h.at(t, td), 1
	td.MaybeScanArgs(t, "times", &times)
	if times == 1 {
		h.s.DialFailed(testAddr(name), errors.New("refused"), at)
		return ""
	}
	var b strings.Builder
	for i := 1; i <= times; i++ {
		h.s.DialFailed(testAddr(name), errors.New("refused"), at)
		p, ok := h.s.Peer(testAddr(name))
		if !ok {
			fmt.Fprintf(&b, "failure %d: dropped\n", i)
			break
		}
		fmt.Fprintf(&b, "failure %d: wait %v\n", i, p.NextTry.Sub(at))
		h.s.Ready() // the events of each failure are alike: shown for the last only
	}
	return b.String()
}

// connected a conn=N in|out at=T.
func (h *harness) connected(t *testing.T, td *datadriven.TestData) {
	name, at := h.name(t, td), h.at(t, td)
	var id int
	td.ScanArgs(t, "conn", &id)
	c := Conn{ID: ConnID(id), Feed: testFeed(name), Outbound: td.HasArg("out")}
	if c.Outbound {
		c.Addr = testAddr(name)
	}
	if !td.HasArg("out") && !td.HasArg("in") {
		t.Fatalf("%s: connected needs in or out", td.Pos)
	}
	if _, ok := h.feeds[c.Feed]; !ok {
		h.feeds[c.Feed] = name
	}
	h.conns[c.ID] = c.Feed
	if h.open[c.Feed]++; h.open[c.Feed] == 1 {
		h.up[c.Feed] = at
	}
	h.s.Connected(c, at)
}

// disconnected conn=N at=T: lasted is the time since the feed's first
// open connection opened, as the driver measures it.
func (h *harness) disconnected(t *testing.T, td *datadriven.TestData) {
	at := h.at(t, td)
	var id int
	td.ScanArgs(t, "conn", &id)
	f, ok := h.conns[ConnID(id)]
	if !ok {
		t.Fatalf("%s: no connection %d", td.Pos, id)
	}
	delete(h.conns, ConnID(id))
	lasted := at.Sub(h.up[f])
	h.open[f]--
	h.s.Disconnected(ConnID(id), lasted, at)
}

// ready prints the outputs, one a line.
func (h *harness) ready() string {
	r := h.s.Ready()
	var b strings.Builder
	for _, d := range r.Dials {
		fmt.Fprintf(&b, "dial %s\n", h.names[d.Addr])
	}
	for _, c := range r.Closes {
		fmt.Fprintf(&b, "close conn=%d (%s)\n", c.Conn, c.Reason)
	}
	for _, d := range r.Dropped {
		fmt.Fprintf(&b, "dropped %s\n", h.names[d.Addr])
	}
	for _, e := range r.Events {
		fmt.Fprintf(&b, "event %s %s\n", e.Type, h.peer(e.Peer))
	}
	if r.Save {
		b.WriteString("save\n")
	}
	return b.String()
}

// peer prints a peer's state: its name, and what differs from a new one.
func (h *harness) peer(p PeerState) string {
	f := []string{h.names[p.Addr], p.Source}
	if p.State != "" {
		f = append(f, p.State)
	}
	if p.Failures > 0 {
		f = append(f, "failures="+strconv.Itoa(p.Failures), "err="+p.LastError)
	}
	if !p.NextTry.IsZero() {
		f = append(f, "next="+p.NextTry.Sub(epoch).String())
	}
	if p.HasConnected {
		f = append(f, "client="+strconv.FormatBool(p.Client))
	}
	return strings.Join(slices.DeleteFunc(f, func(s string) bool { return s == "" }), " ")
}
