package store

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain runs the crash test's child when the parent asks for it (see
// TestCrash), the deletion crash test's child (see TestCrashDelete), or
// the damage tests' child (see runDamageChild), and otherwise the tests,
// failing them if any goroutine outlives them.
func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		os.Exit(crashChild(dir))
	}
	if dir := os.Getenv(deleteChildEnv); dir != "" {
		os.Exit(deleteChild(dir))
	}
	if spec := os.Getenv(damageChildEnv); spec != "" {
		os.Exit(damageChild(spec))
	}
	goleak.VerifyTestMain(m)
}
