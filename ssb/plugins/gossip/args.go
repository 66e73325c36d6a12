package gossip

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/ssb/refs"
	"github.com/scuttlego/scuttle/ssb/server"
)

// feedArg reads a feed id given as a string.
func feedArg(arg json.RawMessage) (refs.Feed, bool) {
	var s string
	if json.Unmarshal(arg, &s) != nil {
		return refs.Feed{}, false
	}
	f, err := refs.ParseFeed(s)
	return f, err == nil
}

// peerArg reads a peer as ssb-gossip's get does: a feed id, or an object
// whose key is one. Anything else is ssb-gossip's error, "must provide
// id:" and the argument as JSON.
func peerArg(arg json.RawMessage) (refs.Feed, error) {
	if f, ok := feedArg(arg); ok {
		return f, nil
	}
	var o struct {
		Key json.RawMessage `json:"key"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(arg), []byte("{")) && json.Unmarshal(arg, &o) == nil {
		if f, ok := feedArg(o.Key); ok {
			return f, nil
		}
	}
	return refs.Feed{}, fmt.Errorf("must provide id:%s", compact(arg))
}

// compact is arg as JSON.stringify prints it ("undefined" when absent).
func compact(arg json.RawMessage) string {
	if len(bytes.TrimSpace(arg)) == 0 {
		return "undefined"
	}
	var b bytes.Buffer
	if json.Compact(&b, arg) != nil {
		return string(arg)
	}
	return b.String()
}

// addressString reads a multiserver address given as a string.
func addressString(arg json.RawMessage) (string, error) {
	var addr string
	if err := json.Unmarshal(arg, &addr); err != nil {
		return "", err
	}
	if _, _, err := server.ParseAddress(addr); err != nil {
		return "", err
	}
	return addr, nil
}

// addressArg reads a multiserver address given as a string, as
// {address}, or as {host, port, key} (ssb-gossip's coearseAddress:
// net:HOST:PORT~shs:KEY, onion for a .onion host, which we cannot dial).
func addressArg(arg json.RawMessage) (string, error) {
	if addr, err := addressString(arg); err == nil {
		return addr, nil
	}
	var o struct {
		Address json.RawMessage `json:"address"`
		Host    string          `json:"host"`
		Port    json.RawMessage `json:"port"`
		Key     string          `json:"key"`
	}
	if bytes.HasPrefix(bytes.TrimSpace(arg), []byte("{")) && json.Unmarshal(arg, &o) == nil {
		if addr, err := addressString(o.Address); err == nil {
			return addr, nil
		}
		if addr, ok := legacyAddress(o.Host, o.Port, o.Key); ok {
			return addr, nil
		}
	}
	return "", fmt.Errorf("not a valid address:%s", compact(arg))
}

// hostPortGiven reports whether arg is an address given as {host, port,
// key} (with no address field).
func hostPortGiven(arg json.RawMessage) bool {
	var o struct {
		Address json.RawMessage `json:"address"`
		Host    string          `json:"host"`
	}
	return bytes.HasPrefix(bytes.TrimSpace(arg), []byte("{")) && json.Unmarshal(arg, &o) == nil && o.Address == nil && o.Host != ""
}

// legacyAddress is {host, port, key} as a multiserver address.
func legacyAddress(host string, port json.RawMessage, key string) (string, bool) {
	var p string
	if json.Unmarshal(port, &p) != nil {
		var n json.Number
		if json.Unmarshal(port, &n) != nil {
			return "", false
		}
		p = n.String()
	}
	if _, err := strconv.ParseUint(p, 10, 16); err != nil || host == "" || strings.HasSuffix(host, ".onion") {
		return "", false
	}
	f, err := refs.ParseFeed(key)
	if err != nil {
		return "", false
	}
	addr := "net:" + host + ":" + p + "~shs:" + base64.StdEncoding.EncodeToString(f.PublicKey())
	if _, _, err := server.ParseAddress(addr); err != nil {
		return "", false
	}
	return addr, true
}

// typeArg reads the gossip type of enable and disable as ssb-gossip
// does: type || 'global', another value as JavaScript's String prints it.
func typeArg(arg json.RawMessage) string {
	var v any
	if json.Unmarshal(arg, &v) != nil {
		return "global"
	}
	switch v := v.(type) {
	case nil:
		return "global"
	case string:
		if v == "" {
			return "global"
		}
	case bool:
		if !v {
			return "global"
		}
	case float64:
		if v == 0 {
			return "global"
		}
	}
	return jsString(v)
}

// jsString is JavaScript's String(v) of a JSON value.
func jsString(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return v
	case bool:
		return strconv.FormatBool(v)
	case float64:
		return string(jsjson.AppendFloat(nil, v))
	case []any: // Array.prototype.join: null and undefined print as ""
		parts := make([]string, len(v))
		for i, e := range v {
			if e != nil {
				parts[i] = jsString(e)
			}
		}
		return strings.Join(parts, ",")
	}
	return "[object Object]"
}
