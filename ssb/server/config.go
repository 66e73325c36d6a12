package server

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/replicate/ebt"
)

// MainNetCaps is the network key of the main SSB network (ssb-caps
// caps.shs).
const MainNetCaps = "1KHLiKZvAvjbY1ziZEHMXawbCEIM6qwjCDm3VYRan/s="

// Config is what a server needs, with ssb-server's names: the JSON file
// <path>/config may set host, port, caps.shs, caps.sign, logging.level,
// friends.hops, timers.inactivity and timers.handshake (milliseconds), and
// flags override it.
type Config struct {
	// Path is the data directory: the identity (secret), the store, the
	// local socket. Default ~/.ssb-go.
	Path string
	// Host is the address to listen on ("" listens on every interface,
	// as ssb-server does). Default "".
	Host string
	// Port is the TCP port of the secret-handshake listener. Default 8008.
	Port int
	// Caps is the network key (caps.shs), base64 of 32 bytes. Default the
	// main network's.
	Caps string
	// Sign is the optional HMAC key of messages (caps.sign), base64 of 32
	// bytes; empty for none, as on the main network.
	Sign string
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// HandshakeTimeout bounds a peer's secret handshake. Default 15 s.
	HandshakeTimeout time.Duration
	// MaxConns bounds the authenticated connections from peers open at
	// once over TCP (handshakes in progress are bounded by
	// Limits.MaxHandshakes); Limits.ReservedConns of them are kept for the
	// owner and known peers. More are refused. Default 1024.
	MaxConns int
	// Hops is how far in the follow graph feeds are replicated
	// (friends.hops). Default 2.
	Hops int
	// Outbound is how many connections the scheduler keeps to known peers
	// (Server.AddPeer, Server.Connect). Default 3.
	Outbound int
	// NoEBT turns EBT off: replication uses legacy history streams only, and
	// peers asking for EBT get an error (so they fall back).
	NoEBT bool
	// EBT holds the settings of EBT's rules (how long a peer may stall,
	// re-asks, how often peers' clocks are saved); zero fields take the
	// defaults of package ebt.
	EBT ebt.Config
	// Limits bound what peers can make the server hold: idle and write
	// timeouts, streams, calls, packet sizes, buffers, and the part of
	// MaxConns kept for known peers. See Limits for each and its default.
	Limits Limits
}

// Defaults of Config.
const (
	DefaultPort     = 8008
	DefaultMaxConns = 1024
)

// DefaultPath returns ~/.ssb-go.
func DefaultPath() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".ssb-go"
	}
	return filepath.Join(home, ".ssb-go")
}

// fileConfig is the JSON of <path>/config.
type fileConfig struct {
	Host *string `json:"host"`
	Port *int    `json:"port"`
	Caps *struct {
		SHS  *string `json:"shs"`
		Sign *string `json:"sign"`
	} `json:"caps"`
	Logging *struct {
		Level *string `json:"level"`
	} `json:"logging"`
	Friends *struct {
		Hops *int `json:"hops"`
	} `json:"friends"`
	Timers *struct {
		Inactivity *int64 `json:"inactivity"` // ms: Limits.IdleTimeout
		Handshake  *int64 `json:"handshake"`  // ms: HandshakeTimeout
	} `json:"timers"`
}

// LoadConfig returns the configuration of the data directory path: the
// defaults, overridden by <path>/config when it exists.
func LoadConfig(path string) (Config, error) {
	if path == "" {
		path = DefaultPath()
	}
	cfg := Config{Path: path, Port: DefaultPort, Caps: MainNetCaps, LogLevel: "info"}
	b, err := os.ReadFile(filepath.Join(path, "config"))
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("server: config: %w", err)
	}
	var f fileConfig
	if err := json.Unmarshal(b, &f); err != nil {
		return cfg, fmt.Errorf("server: config %s: %w", filepath.Join(path, "config"), err)
	}
	if f.Host != nil {
		cfg.Host = *f.Host
	}
	if f.Port != nil {
		cfg.Port = *f.Port
	}
	if f.Caps != nil && f.Caps.SHS != nil {
		cfg.Caps = *f.Caps.SHS
	}
	if f.Caps != nil && f.Caps.Sign != nil {
		cfg.Sign = *f.Caps.Sign
	}
	if f.Logging != nil && f.Logging.Level != nil {
		cfg.LogLevel = *f.Logging.Level
	}
	if f.Friends != nil && f.Friends.Hops != nil {
		cfg.Hops = *f.Friends.Hops
	}
	if f.Timers != nil && f.Timers.Inactivity != nil {
		cfg.Limits.IdleTimeout = time.Duration(*f.Timers.Inactivity) * time.Millisecond
	}
	if f.Timers != nil && f.Timers.Handshake != nil {
		cfg.HandshakeTimeout = time.Duration(*f.Timers.Handshake) * time.Millisecond
	}
	return cfg, nil
}

// Validate reports what is wrong with the configuration, before anything
// is written to disk: the port, the keys, the log level, the counts and the
// limits. Zero values are valid (they take their defaults).
func (c Config) Validate() error {
	var errs []error
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("server: port %d is not in 0..65535", c.Port))
	}
	if _, err := c.networkKey(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.hmacKey(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Level(); err != nil {
		errs = append(errs, err)
	}
	if c.HandshakeTimeout < 0 {
		errs = append(errs, fmt.Errorf("server: handshake timeout %v is negative", c.HandshakeTimeout))
	}
	for name, v := range map[string]int{"connections (MaxConns)": c.MaxConns, "friends.hops": c.Hops, "outbound connections": c.Outbound} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("server: %s %d is negative", name, v))
		}
	}
	maxConns := c.MaxConns
	if maxConns == 0 {
		maxConns = DefaultMaxConns
	}
	if err := c.Limits.withDefaults(maxConns).validate(maxConns); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// networkKey decodes Caps.
func (c Config) networkKey() ([32]byte, error) {
	var k [32]byte
	if err := refs.DecodeBase64(k[:], c.Caps); err != nil {
		return k, fmt.Errorf("server: caps.shs %q: %w", c.Caps, err)
	}
	return k, nil
}

// hmacKey decodes Sign (nil when unset).
func (c Config) hmacKey() ([]byte, error) {
	if c.Sign == "" || c.Sign == "null" {
		return nil, nil
	}
	k, err := base64.StdEncoding.Strict().DecodeString(c.Sign)
	if err != nil || len(k) != 32 {
		return nil, fmt.Errorf("server: caps.sign must be base64 of 32 bytes")
	}
	return k, nil
}

// Level parses LogLevel.
func (c Config) Level() (slog.Level, error) {
	switch strings.ToLower(c.LogLevel) {
	case "", "info", "notice":
		return slog.LevelInfo, nil
	case "debug", "trace":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("server: unknown logging.level %q (debug, info, warn, error)", c.LogLevel)
}

// SocketPath is the local socket of the data directory, which gives the
// owner's rights without a handshake (ssb-server's noauth socket).
func SocketPath(path string) string { return filepath.Join(path, "socket") }
