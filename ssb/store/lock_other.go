//go:build !unix

package store

import (
	"os"
	"time"
)

// lockFile does nothing where flock is missing: bbolt locks the file
// itself once it opens it, and Repair then relies on the caller to have
// stopped the server.
func lockFile(*os.File, time.Duration) error { return nil }

func unlockFile(*os.File) error { return nil }
