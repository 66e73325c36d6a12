package server

import (
	"fmt"
	"net"
	"os"
	"syscall"
)

// sameUser checks that the process at the other end of a local socket
// connection runs as this server's user (or root), from the kernel's
// record of it (SO_PEERCRED): the local socket gives the owner's rights,
// so no other user may use it, whatever the permissions of the file.
func sameUser(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return fmt.Errorf("server: local connection of type %T", c)
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("server: local connection: %w", err)
	}
	var cred *syscall.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("server: local connection: %w", err)
	}
	if credErr != nil {
		return fmt.Errorf("server: local connection: peer credentials: %w", credErr)
	}
	if uid := int(cred.Uid); uid != os.Getuid() && uid != 0 {
		return fmt.Errorf("server: local connection from user %d (pid %d), not this server's user %d", uid, cred.Pid, os.Getuid())
	}
	return nil
}
