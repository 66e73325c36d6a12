package persist

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the crash test's child process when the test binary is
// re-executed as one (see crash_test.go), and otherwise fails the
// package's tests if any goroutine outlives them.
func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		os.Exit(crashChild())
	}
	goleak.VerifyTestMain(m)
}
