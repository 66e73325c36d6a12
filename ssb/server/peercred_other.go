//go:build !linux

package server

import "net"

// sameUser relies on the permissions of the socket and of the data
// directory where the kernel keeps no peer credentials that Go exposes.
func sameUser(net.Conn) error { return nil }
