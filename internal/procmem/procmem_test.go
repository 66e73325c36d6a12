package procmem

import "testing"

func TestParse(t *testing.T) {
	got := parse("Name:\tsbot\nVmHWM:\t  443392 kB\nVmRSS:\t   30720 kB\nThreads:\t8\nRssAnon:\t 1 kB\n")
	want := map[string]uint64{"VmHWM": 443392 << 10, "VmRSS": 30720 << 10, "RssAnon": 1 << 10}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d", k, got[k], v)
		}
	}
}

func TestStatus(t *testing.T) {
	st, err := Status()
	if err != nil {
		t.Skip("no /proc here:", err)
	}
	if st["VmRSS"] == 0 || st["VmHWM"] < st["VmRSS"] {
		t.Fatalf("VmRSS %d, VmHWM %d: want 0 < VmRSS ≤ VmHWM", st["VmRSS"], st["VmHWM"])
	}
}
