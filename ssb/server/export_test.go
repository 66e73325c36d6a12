package server

import "github.com/scuttlego/scuttle/ssb/muxrpc"

// What the external tests (package server_test) look into.

// SameUser is sameUser.
var SameUser = sameUser

// SetSocketHook sets the hook told of each step of creating the local
// socket. Call it before Serve.
func SetSocketHook(s *Server, hook func(stage, name string)) { s.socketHook = hook }

// Network returns the server's network key.
func Network(s *Server) [32]byte { return s.network }

// Handlers returns the handler slots of all connections.
func Handlers(s *Server) *muxrpc.Budget { return s.handlers }
