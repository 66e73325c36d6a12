//go:build unix

package lan

import "syscall"

// broadcastControl sets SO_REUSEADDR and SO_BROADCAST on a socket before
// it is bound, as Node's dgram does for broadcast-stream (reuseAddr,
// setBroadcast).
func broadcastControl(_, _ string, c syscall.RawConn) error {
	var err error
	cerr := c.Control(func(fd uintptr) {
		err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
		if err == nil {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}
