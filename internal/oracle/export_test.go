package oracle

import "time"

// SetExitTimeout changes how long Close waits before and after killing a
// script, and returns a function that restores it.
func SetExitTimeout(d time.Duration) (restore func()) {
	old := exitTimeout
	exitTimeout = d
	return func() { exitTimeout = old }
}
