package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/scuttlego/scuttle/ssb/server"
)

// A serverOption is a configuration flag, named as in ssb-server's config
// (and in the JSON file <path>/config). Like ssb-server, sbot takes them
// anywhere on the line, before or after the command.
type serverOption struct {
	name, arg, doc string
	set            func(c *server.Config, v string) error
}

// serverOptions are the configuration flags, in the order help lists them.
var serverOptions = []serverOption{
	{"path", "DIR", "data directory: identity (secret), store, local socket (default ~/.ssb-go)",
		func(c *server.Config, v string) error { c.Path = v; return nil }},
	{"host", "HOST", "address to listen on (default: every interface)",
		func(c *server.Config, v string) error { c.Host = v; return nil }},
	{"port", "N", "TCP port of the secret handshake, 0 for any (default 8008)",
		func(c *server.Config, v string) error { return atoi("port", v, &c.Port) }},
	{"caps.shs", "KEY", "network key, base64 of 32 bytes (default: the main network's)",
		func(c *server.Config, v string) error { c.Caps = v; return nil }},
	{"caps.sign", "KEY", "HMAC key of messages, base64 of 32 bytes (default: none)",
		func(c *server.Config, v string) error { c.Sign = v; return nil }},
	{"logging.level", "LEVEL", "debug, info, warn or error (default info)",
		func(c *server.Config, v string) error { c.LogLevel = v; return nil }},
	{"friends.hops", "N", "how far in the follow graph feeds are replicated (default 2)",
		func(c *server.Config, v string) error { return atoi("friends.hops", v, &c.Hops) }},
	{"timers.handshake", "MS", "time a peer has for the secret handshake, in ms (default 15000)",
		func(c *server.Config, v string) error { return millis("timers.handshake", v, &c.HandshakeTimeout) }},
	{"timers.inactivity", "MS", "close a peer silent this long, in ms (default 600000)",
		func(c *server.Config, v string) error {
			return millis("timers.inactivity", v, &c.Limits.IdleTimeout)
		}},
	// A switch (no arg): --local, --local=false, --no-local. It is the lan
	// plugin's, not server.Config's: runServer applies it (commandLine.local).
	{"local", "", "announce this server on the LAN by UDP broadcast and dial the peers found there, as ssb-local (default off; --no-local overrides the config)",
		func(c *server.Config, v string) error {
			if v != "true" && v != "false" {
				return fmt.Errorf("--local %q is not true or false", v)
			}
			return nil
		}},
}

func findOption(name string) *serverOption {
	for i := range serverOptions {
		if serverOptions[i].name == name {
			return &serverOptions[i]
		}
	}
	return nil
}

func atoi(name, v string, dst *int) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("--%s %q is not a whole number", name, v)
	}
	*dst = n
	return nil
}

func millis(name, v string, dst *time.Duration) error {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > int64(24*time.Hour/time.Millisecond) {
		return fmt.Errorf("--%s %q is not a number of milliseconds between 1 and 86400000", name, v)
	}
	*dst = time.Duration(n) * time.Millisecond
	return nil
}

// A commandLine is sbot's arguments sorted out: the command, the server
// options found anywhere, and the command's own arguments.
type commandLine struct {
	cmd     string
	options []setting // server options, in order
	rest    []string  // the command's arguments, for parseFlags
	help    bool      // -h, --help or the help command: print help, do nothing else
	topic   string    // the command help is about, if any
}

// A setting is one server option given on the line.
type setting struct {
	opt   *serverOption
	value string
}

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// parseLine sorts out args. It fails on a server option without a value,
// and on an option before the command that is not a server option (its
// value could not be told from the command).
func parseLine(args []string) (commandLine, error) {
	var l commandLine
	var err error
	for i := 0; i < len(args); i++ {
		a := args[i]
		if isHelp(a) {
			l.help = true
			continue
		}
		name, isFlag := strings.CutPrefix(a, "--")
		if !isFlag || name == "" {
			if l.cmd == "" {
				l.cmd = a
			} else {
				l.rest = append(l.rest, a)
			}
			continue
		}
		name, value, hasValue := strings.Cut(name, "=")
		opt := findOption(name)
		if neg, ok := strings.CutPrefix(name, "no-"); opt == nil && ok && !hasValue {
			if o := findOption(neg); o != nil && o.arg == "" { // --no-SWITCH
				opt, value, hasValue = o, "false", true
			}
		}
		switch {
		case opt == nil && l.cmd == "":
			err = errors.Join(err, fmt.Errorf("unknown option %s before the command (server options: %s; a command's own options go after it)", a, optionNames()))
		case opt == nil:
			l.rest = append(l.rest, a)
		case hasValue && value == "":
			err = errors.Join(err, fmt.Errorf("--%s needs a value: --%s=%s", name, name, opt.arg))
		case hasValue:
			l.options = append(l.options, setting{opt, value})
		case opt.arg == "": // a switch: true, unless true or false follows
			value = "true"
			if i+1 < len(args) && (args[i+1] == "true" || args[i+1] == "false") {
				value = args[i+1]
				i++
			}
			l.options = append(l.options, setting{opt, value})
		case i+1 < len(args) && !strings.HasPrefix(args[i+1], "--") && !isHelp(args[i+1]):
			l.options = append(l.options, setting{opt, args[i+1]})
			i++
		default:
			err = errors.Join(err, fmt.Errorf("--%s needs a value: --%s %s", name, name, opt.arg))
		}
	}
	if l.cmd == "help" {
		l.help, l.cmd = true, ""
		if len(l.rest) > 0 {
			l.topic = l.rest[0]
		}
	} else if l.help {
		l.topic = l.cmd
	}
	if l.help {
		return l, nil // help is printed whatever else is wrong
	}
	return l, err
}

func optionNames() string {
	names := make([]string, len(serverOptions))
	for i, o := range serverOptions {
		names[i] = "--" + o.name
	}
	return strings.Join(names, ", ")
}

// path returns the data directory the line selects: the last --path, or
// the default.
func (l *commandLine) path() string {
	path := ""
	for _, s := range l.options {
		if s.opt.name == "path" {
			path = s.value
		}
	}
	if path == "" {
		return server.DefaultPath()
	}
	return path
}

// local reports the last --local (or --no-local) of the line, if any.
func (l *commandLine) local() (on, given bool) {
	for _, s := range l.options {
		if s.opt.name == "local" {
			on, given = s.value == "true", true
		}
	}
	return on, given
}

// configure applies the line's server options to cfg and validates the
// result; nothing is written.
func (l *commandLine) configure(cfg *server.Config) error {
	var errs []error
	for _, s := range l.options {
		if s.opt.name == "path" {
			continue // chosen first (path), as it locates the config file
		}
		if err := s.opt.set(cfg, s.value); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return cfg.Validate()
}
