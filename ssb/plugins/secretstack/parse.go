package secretstack

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/plugins/db"
	"github.com/scuttlego/scuttle/ssb/server"
)

// parse answers multiserver.parse: the address as secret-stack parses it
// with ssb-server@16's incoming transports, in their order: net~shs,
// ws~shs, unix~noauth. Like multiserver, it parses the i-th
// ';'-separated address with the i-th transport (so "net:…;net:…" gives
// [parsed, null]), gives null for an address its transport does not
// understand, and fails as JavaScript throws for a fourth address, a part
// beyond a transport's, or an argument that is not a string.
func parse(ctx context.Context, _ *server.Conn, req *muxrpc.Request) {
	out, err := Parse(db.FirstArg(req))
	if err != nil {
		req.Fail(err)
		return
	}
	req.ReturnRaw(muxrpc.JSON, out)
}

// JavaScript's TypeErrors, as the JSON argument can raise them.
var (
	errUndefined = errors.New("Cannot read properties of undefined (reading 'split')")
	errNotString = errors.New("str.split is not a function")
	errNoPlugin  = errors.New("Cannot read properties of undefined (reading 'parse')")
	errBufferArg = errors.New(`The first argument must be of type string or an instance of Buffer, ArrayBuffer, or Array or an Array-like Object. Received undefined`)
)

// A part parser is one transport or transform's parse: the JSON of what it
// understood, or nil for null.
type partParser func(s string) ([]byte, error)

// transports are ssb-server@16's incoming multiserver plugs, in order.
var transports = [][]partParser{
	{parseNet, parseSHS},
	{parseWS, parseSHS},
	{parseUnix, parseNoauth},
}

// Parse is multiserver.parse of a JSON argument: the JSON answer, or the
// error JavaScript would throw.
func Parse(arg json.RawMessage) ([]byte, error) {
	var v any
	if len(arg) == 0 || json.Unmarshal(arg, &v) != nil {
		return nil, errUndefined
	}
	s, ok := v.(string)
	if !ok {
		if v == nil {
			return nil, errors.New("Cannot read properties of null (reading 'split')")
		}
		return nil, errNotString
	}
	addrs := strings.Split(s, ";")
	out := []byte{'['}
	for i, a := range addrs {
		if i >= len(transports) {
			return nil, errNoPlugin
		}
		if i > 0 {
			out = append(out, ',')
		}
		b, err := parseComposed(transports[i], a)
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}

// parseComposed is multiserver's compose parse: split on '~' (with '!'
// escaping), each part by its plug; null if any part is not understood.
func parseComposed(plugs []partParser, s string) ([]byte, error) {
	parts := splitEscaped(s)
	out := []byte{'['}
	for i, part := range parts {
		if i >= len(plugs) {
			return nil, errNoPlugin
		}
		b, err := plugs[i](part)
		if err != nil {
			return nil, err
		}
		if b == nil {
			return []byte("null"), nil
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, b...)
	}
	return append(out, ']'), nil
}

// splitEscaped is separator-escape's parse with '~' and '!'.
func splitEscaped(s string) []string {
	var parts []string
	var cur []byte
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '!' && i+1 < len(s):
			i++
			cur = append(cur, s[i])
		case s[i] == '~':
			parts = append(parts, string(cur))
			cur = cur[:0]
		default:
			cur = append(cur, s[i])
		}
	}
	return append(parts, string(cur))
}

// parseNet is multiserver's net parse: {name, host, port}.
func parseNet(s string) ([]byte, error) {
	ary := strings.Split(s, ":")
	if len(ary) < 3 || ary[0] != "net" {
		return nil, nil
	}
	port := jsNumber(ary[len(ary)-1])
	if math.IsNaN(port) {
		return nil, nil
	}
	host := strings.Join(ary[1:len(ary)-1], ":")
	if host == "" {
		host = "localhost"
	}
	out := append([]byte(`{"name":"net","host":`), jsjson.AppendString(nil, host)...)
	out = append(out, `,"port":`...)
	if math.IsInf(port, 0) {
		out = append(out, "null"...) // JSON.stringify(Infinity)
	} else {
		out = jsjson.AppendFloat(out, port)
	}
	return append(out, '}'), nil
}

// parseSHS is multiserver's shs parse: {key, seed} as Node's Buffers
// print in JSON; keys are decoded as Node's base64 decodes.
func parseSHS(s string) ([]byte, error) {
	ary := strings.Split(s, ":")
	if ary[0] != "shs" {
		return nil, nil
	}
	var seed []byte
	if len(ary) > 2 {
		if seed = nodeBase64(ary[2]); len(seed) != 32 {
			return nil, nil
		}
	}
	if len(ary) < 2 {
		return nil, errBufferArg
	}
	key := nodeBase64(ary[1])
	if len(key) != 32 {
		return nil, nil
	}
	out := append([]byte(`{"key":`), bufferJSON(key)...)
	if seed != nil {
		out = append(append(out, `,"seed":`...), bufferJSON(seed)...)
	}
	return append(out, '}'), nil
}

// parseUnix is multiserver's unix socket parse: {name: "", path}.
func parseUnix(s string) ([]byte, error) {
	path, ok := strings.CutPrefix(s, "unix:")
	if !ok {
		return nil, nil
	}
	return append(append([]byte(`{"name":"","path":`), jsjson.AppendString(nil, path)...), '}'), nil
}

// parseNoauth is multiserver's noauth parse: always {}.
func parseNoauth(string) ([]byte, error) { return []byte("{}"), nil }

// parseWS is multiserver's ws parse, Node's url.parse of a ws: or wss:
// URL. The forms "ws://host…" and "ws:path" are parsed as Node does,
// except that a backslash anywhere, or in a ws://… URL a bracket (IPv6
// hosts), whitespace or a character Node escapes, gives null here where
// Node answers an object.
func parseWS(s string) ([]byte, error) {
	s = strings.TrimFunc(s, isJSSpace)
	proto, rest, ok := strings.Cut(s, ":")
	proto = strings.ToLower(proto)
	if !ok || proto != "ws" && proto != "wss" || strings.Contains(rest, "\\") {
		return nil, nil
	}
	if strings.HasPrefix(rest, "//") {
		if strings.ContainsAny(rest, " \t\r\n<>\"'`{}|^[]") {
			return nil, nil
		}
	} else {
		rest = autoEscape.Replace(rest)
	}
	u := wsURL{protocol: proto + ":"}
	rest, u.hash = cutFrom(rest, "#")
	rest, u.search = cutFrom(rest, "?")
	if u.search != nil {
		q := (*u.search)[1:]
		u.query = &q
	}
	if after, ok := strings.CutPrefix(rest, "//"); ok {
		u.slashes = true
		hostPart, pathname := after, ""
		if i := strings.Index(after, "/"); i >= 0 {
			hostPart, pathname = after[:i], after[i:]
		}
		if i := strings.LastIndex(hostPart, "@"); i >= 0 {
			auth, err := url.PathUnescape(hostPart[:i])
			if err != nil {
				return nil, nil
			}
			u.auth, hostPart = &auth, hostPart[i+1:]
		}
		host := strings.ToLower(hostPart)
		hostname := host
		if i := strings.LastIndex(host, ":"); i >= 0 {
			port := host[i+1:]
			if port == "" || strings.Trim(port, "0123456789") != "" {
				return nil, nil // Node keeps odd ports in the hostname its own way
			}
			hostname, u.port = host[:i], &port
		}
		u.host, u.hostname = &host, &hostname
		if pathname == "" && (host != "" || u.search != nil || u.hash != nil) {
			pathname = "/"
		}
		if pathname != "" {
			u.pathname = &pathname
		}
	} else if rest != "" {
		u.pathname = &rest
	}
	return u.json(), nil
}

// autoEscape is the escaping Node's url.parse applies to a URL's path.
var autoEscape = strings.NewReplacer(" ", "%20", "\t", "%09", "\r", "%0D", "\n", "%0A", "<", "%3C", ">", "%3E",
	"\"", "%22", "'", "%27", "`", "%60", "{", "%7B", "}", "%7D", "|", "%7C", "^", "%5E")

// cutFrom splits s before the first sep: what precedes it, and the rest
// from sep on (nil when there is no sep).
func cutFrom(s, sep string) (string, *string) {
	i := strings.Index(s, sep)
	if i < 0 {
		return s, nil
	}
	rest := s[i:]
	return s[:i], &rest
}

// wsURL is Node's legacy Url object; nil fields print as null.
type wsURL struct {
	protocol                      string
	slashes                       bool
	auth, host, port, hostname    *string
	hash, search, query, pathname *string
}

func (u wsURL) json() []byte {
	var path *string
	if u.pathname != nil || u.search != nil {
		p := deref(u.pathname) + deref(u.search)
		path = &p
	}
	href := u.protocol
	if u.slashes {
		href += "//"
	}
	if u.auth != nil {
		href += *u.auth + "@"
	}
	href += deref(u.host) + deref(u.pathname) + deref(u.search) + deref(u.hash)
	var slashes any
	if u.slashes {
		slashes = true
	}
	fields := []struct {
		k string
		v any
	}{
		{"protocol", u.protocol}, {"slashes", slashes}, {"auth", u.auth}, {"host", u.host}, {"port", u.port},
		{"hostname", u.hostname}, {"hash", u.hash}, {"search", u.search}, {"query", u.query},
		{"pathname", u.pathname}, {"path", path}, {"href", href},
	}
	out := []byte{'{'}
	for i, f := range fields {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(jsjson.AppendString(out, f.k), ':')
		b, _ := jsjson.Marshal(f.v)
		out = append(out, b...)
	}
	return append(out, '}')
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// bufferJSON is a Node Buffer's JSON: {"type":"Buffer","data":[…]}.
func bufferJSON(b []byte) []byte {
	out := []byte(`{"type":"Buffer","data":[`)
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	return append(out, "]}"...)
}

// nodeBase64 decodes as Node's Buffer.from(s, 'base64'): the standard and
// URL-safe alphabets both, other characters skipped, stopping at '=';
// trailing bits that do not fill a byte are dropped.
func nodeBase64(s string) []byte {
	var out []byte
	var acc uint32
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '=' {
			break
		}
		v, ok := sextet(c)
		if !ok {
			continue
		}
		acc = acc<<6 | uint32(v)
		if n++; n%4 == 0 {
			out = append(out, byte(acc>>16), byte(acc>>8), byte(acc))
			acc = 0
		}
	}
	switch n % 4 {
	case 2:
		out = append(out, byte(acc>>4))
	case 3:
		out = append(out, byte(acc>>10), byte(acc>>2))
	}
	return out
}

func sextet(c byte) (byte, bool) {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A', true
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26, true
	case '0' <= c && c <= '9':
		return c - '0' + 52, true
	case c == '+' || c == '-':
		return 62, true
	case c == '/' || c == '_':
		return 63, true
	}
	return 0, false
}

var (
	decimalNumber = regexp.MustCompile(`^[+-]?(Infinity|[0-9]+\.?[0-9]*([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?)$`)
	radixNumber   = regexp.MustCompile(`^0([xX][0-9a-fA-F]+|[oO][0-7]+|[bB][01]+)$`)
)

// jsNumber is JavaScript's Number(s) of a string: whitespace trimmed,
// "" is 0, decimal and 0x/0o/0b literals, ±Infinity; NaN otherwise.
func jsNumber(s string) float64 {
	s = strings.TrimFunc(s, isJSSpace)
	switch {
	case s == "":
		return 0
	case radixNumber.MatchString(s):
		base := map[byte]int{'x': 16, 'o': 8, 'b': 2}[s[1]|0x20]
		n, _ := new(big.Int).SetString(s[2:], base)
		f, _ := new(big.Float).SetInt(n).Float64()
		return f
	case decimalNumber.MatchString(s):
		if strings.HasSuffix(s, "Infinity") {
			if s[0] == '-' {
				return math.Inf(-1)
			}
			return math.Inf(1)
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return math.NaN()
		}
		return f
	}
	return math.NaN()
}

// isJSSpace is JavaScript's WhiteSpace and LineTerminator.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return 0x2000 <= r && r <= 0x200a
}
