package ebtsim

import (
	"testing"
	"time"
)

// Every peer ends with every message of every feed it wants, through a
// split of the network and restarts, and the messages sent stay close to
// the minimum: EBT asks each feed of one peer at a time.
func TestConverges(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"small", Config{Peers: 50, Pubs: 2, Duration: 20 * time.Second}},
		{"churn", Config{Peers: 200, Pubs: 3, Duration: 30 * time.Second, Restarts: 40, Publish: 2000, Seed: 7}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Run(tc.cfg)
			t.Log(r)
			if r.Missing != 0 {
				t.Errorf("%d wanted messages missing after %v of quiet", r.Missing, r.Converged)
			}
			if ratio := float64(r.Messages) / float64(r.Needed); ratio > 1.5 {
				t.Errorf("sent %d messages for %d needed (%.2fx)", r.Messages, r.Needed, ratio)
			}
		})
	}
}

// The same configuration gives the same run.
func TestDeterministic(t *testing.T) {
	cfg := Config{Peers: 40, Pubs: 2, Duration: 10 * time.Second, Restarts: 5, Seed: 3}
	if a, b := Run(cfg), Run(cfg); a != b {
		t.Errorf("two runs differ:\n%v\n%v", a, b)
	}
}
