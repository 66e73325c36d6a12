package lan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
)

// Defaults of Config, as the JavaScript peers have them.
const (
	// DefaultPort is ssb-local's UDP port when the server has no TCP port
	// of its own: ssb-local broadcasts on config.port, ssb-server's TCP
	// port (8008 unless set), and so does Config.Port by default.
	DefaultPort = 8008
	// DefaultLANPort is ssb-lan's port for its encrypted packets.
	DefaultLANPort = 26830
	// DefaultBroadcast is where announcements go (broadcast-stream's).
	DefaultBroadcast = "255.255.255.255"
	// DefaultInterval is ssb-local's announcement interval (ssb-lan: 2 s).
	DefaultInterval = time.Second
	// DefaultTimeout is ssb-local's: a peer silent this long is forgotten.
	DefaultTimeout = 10 * time.Second
	// DefaultMaxPeers bounds the peers known from the LAN at once.
	DefaultMaxPeers = 32
	// DefaultRate is how many packets per second are read from all senders.
	DefaultRate = 200
	// DefaultSourceRate is how many packets per second are read from one
	// sender address (a peer sends two per interval, one per mode).
	DefaultSourceRate = 20
)

// Config is the "local" section of <path>/config: `true`, `false`, or an
// object whose fields override the defaults. LAN discovery is off unless
// the section is true or an object without "enabled": false, because an
// announcement tells everyone on the network who this server is.
type Config struct {
	// Enabled turns discovery on: announcements out, peers in. Default
	// false.
	Enabled bool
	// Port is the UDP port of ssb-local's plain packets ("port"). Default:
	// the server's TCP port (as ssb-local, which uses config.port), or
	// DefaultPort if that is 0.
	Port int
	// Legacy sends and reads ssb-local's plain packets on Port ("legacy",
	// as ssb-lan names the mode). Default true.
	Legacy bool
	// LANPort is the UDP port of ssb-lan's packets, encrypted with the
	// network key and signed ("lanPort"); -1 turns the mode off. Default
	// DefaultLANPort.
	LANPort int
	// Broadcast is the IPv4 address announcements are sent to
	// ("broadcast"). Default 255.255.255.255: every host of the LAN.
	Broadcast netip.Addr
	// Interval is the time between announcements ("interval", ms).
	// Default 1 s. Shorter finds peers sooner and costs a packet per
	// interval and mode to every host of the LAN.
	Interval time.Duration
	// Timeout is how long a peer may be silent before it is forgotten
	// ("timeout", ms); it is looked for every Timeout/2, as ssb-local
	// does (10 s, every 5 s). Default 10 s.
	Timeout time.Duration
	// MaxPeers bounds the peers known from the LAN ("maxPeers");
	// announcements of new peers beyond it are dropped until one is
	// forgotten. Default 32.
	MaxPeers int
	// Rate is how many packets per second are read from all senders
	// together ("rate"), with a burst of one second's; more are dropped
	// unread. Default 200.
	Rate float64
	// SourceRate is the same for one sender address ("sourceRate").
	// Default 20.
	SourceRate float64
}

// DefaultConfig returns the defaults (discovery off).
func DefaultConfig() Config {
	return Config{
		Legacy: true, LANPort: DefaultLANPort, Broadcast: netip.MustParseAddr(DefaultBroadcast),
		Interval: DefaultInterval, Timeout: DefaultTimeout, MaxPeers: DefaultMaxPeers,
		Rate: DefaultRate, SourceRate: DefaultSourceRate,
	}
}

// configJSON is the section as an object.
type configJSON struct {
	Enabled    *bool    `json:"enabled"`
	Port       *int     `json:"port"`
	Legacy     *bool    `json:"legacy"`
	LANPort    *int     `json:"lanPort"`
	Broadcast  *string  `json:"broadcast"`
	Interval   *int64   `json:"interval"`
	Timeout    *int64   `json:"timeout"`
	MaxPeers   *int     `json:"maxPeers"`
	Rate       *float64 `json:"rate"`
	SourceRate *float64 `json:"sourceRate"`
}

// parseConfig reads the section into c.
func parseConfig(c *Config, section json.RawMessage) error {
	section = bytes.TrimSpace(section)
	if len(section) == 0 || string(section) == "null" {
		return nil
	}
	if section[0] != '{' {
		if err := json.Unmarshal(section, &c.Enabled); err != nil {
			return fmt.Errorf("lan: config: local is true, false or an object: %w", err)
		}
		return nil
	}
	var j configJSON
	dec := json.NewDecoder(bytes.NewReader(section))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return fmt.Errorf("lan: config: %w", err)
	}
	c.Enabled = j.Enabled == nil || *j.Enabled
	set(&c.Legacy, j.Legacy)
	set(&c.Port, j.Port)
	set(&c.LANPort, j.LANPort)
	set(&c.MaxPeers, j.MaxPeers)
	set(&c.Rate, j.Rate)
	set(&c.SourceRate, j.SourceRate)
	if j.Interval != nil {
		c.Interval = time.Duration(*j.Interval) * time.Millisecond
	}
	if j.Timeout != nil {
		c.Timeout = time.Duration(*j.Timeout) * time.Millisecond
	}
	if j.Broadcast != nil {
		a, err := netip.ParseAddr(*j.Broadcast)
		if err != nil {
			return fmt.Errorf("lan: config: broadcast: %w", err)
		}
		c.Broadcast = a
	}
	return c.validate()
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// validate reports a value out of range.
func (c Config) validate() error {
	switch {
	case c.Port < 0 || c.Port > 65535:
		return fmt.Errorf("lan: config: port %d is not in 0..65535", c.Port)
	case c.LANPort != -1 && (c.LANPort < 1 || c.LANPort > 65535):
		return fmt.Errorf("lan: config: lanPort %d is not -1 (off) or in 1..65535", c.LANPort)
	case !c.Broadcast.Is4():
		return fmt.Errorf("lan: config: broadcast %v is not an IPv4 address", c.Broadcast)
	case c.Interval < time.Millisecond || c.Interval > time.Hour:
		return fmt.Errorf("lan: config: interval %v is not between 1 ms and 1 h", c.Interval)
	case c.Timeout < 2*time.Millisecond || c.Timeout > 24*time.Hour:
		return fmt.Errorf("lan: config: timeout %v is not between 2 ms and 24 h", c.Timeout)
	case c.MaxPeers < 1 || c.MaxPeers > 4096:
		return fmt.Errorf("lan: config: maxPeers %d is not in 1..4096", c.MaxPeers)
	case !c.Legacy && c.LANPort == -1:
		return fmt.Errorf("lan: config: legacy is false and lanPort -1: no packets to send or read")
	case !(c.Rate >= 1 && c.Rate <= 1e6) || !(c.SourceRate >= 1 && c.SourceRate <= 1e6):
		return fmt.Errorf("lan: config: rate %v and sourceRate %v must be in 1..1e6", c.Rate, c.SourceRate)
	}
	return nil
}
