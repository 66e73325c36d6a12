package ebt

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// testdata/start: how replication starts on a connection, EBT or the
// fallback to legacy. Commands:
//
//	new dialer|dialed [noebt] [wait=2s]   -> the first action
//	called ebt|other                      -> the peer called a method
//	ended note|nonote                     -> our ebt.replicate session ended
//	tick 1s                               -> virtual time moves on
func TestStart(t *testing.T) {
	var (
		s   *Start
		now time.Time
	)
	datadriven.RunTest(t, "testdata/start", func(t *testing.T, d *datadriven.TestData) string {
		var a StartAction
		switch d.Cmd {
		case "new":
			now = time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
			wait := 2 * time.Second
			dialer, noEBT := false, false
			for _, arg := range d.CmdArgs {
				switch arg.Key {
				case "dialer":
					dialer = true
				case "dialed":
				case "noebt":
					noEBT = true
				case "wait":
					var err error
					if wait, err = time.ParseDuration(arg.Vals[0]); err != nil {
						d.Fatalf(t, "%v", err)
					}
				default:
					d.Fatalf(t, "unknown argument %s", arg.Key)
				}
			}
			s, a = NewStart(dialer, noEBT, now, wait)
		case "called":
			a = s.Called(d.CmdArgs[0].Key == "ebt")
		case "ended":
			a = s.SessionEnded(d.CmdArgs[0].Key == "note")
		case "tick":
			dur, err := time.ParseDuration(d.CmdArgs[0].Key)
			if err != nil {
				d.Fatalf(t, "%v", err)
			}
			now = now.Add(dur)
			a = s.Tick(now)
		default:
			d.Fatalf(t, "unknown command %s", d.Cmd)
		}
		return fmt.Sprintln(strings.TrimSpace(a.String()))
	})
}
