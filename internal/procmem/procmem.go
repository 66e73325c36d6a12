// Package procmem reads this process's memory figures from
// /proc/self/status, for the programs under bench/.
package procmem

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Status returns the fields of /proc/self/status measured in kB (VmRSS,
// VmHWM, RssAnon, RssFile...), in bytes.
func Status() (map[string]uint64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, fmt.Errorf("procmem: %w", err)
	}
	return parse(string(b)), nil
}

func parse(status string) map[string]uint64 {
	out := make(map[string]uint64)
	for line := range strings.Lines(status) {
		name, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			continue
		}
		if v, err := strconv.ParseUint(num, 10, 64); err == nil {
			out[name] = v << 10
		}
	}
	return out
}
