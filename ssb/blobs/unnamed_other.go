//go:build !linux

package blobs

import (
	"errors"
	"os"
)

// openUnnamed is not available here: adds use named temporary files.
func openUnnamed(dir string) (*os.File, error) { return nil, errors.ErrUnsupported }

func linkUnnamed(f *os.File, path string) error { return errors.ErrUnsupported }
