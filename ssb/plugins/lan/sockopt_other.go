//go:build !unix

package lan

import (
	"errors"
	"syscall"
)

// broadcastControl refuses: sharing the port and broadcasting are set up
// for Unix systems only.
func broadcastControl(_, _ string, _ syscall.RawConn) error {
	return errors.New("lan: LAN discovery needs a Unix system")
}
