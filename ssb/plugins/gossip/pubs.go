package gossip

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/scuttlego/scuttle/ssb/server"
	"github.com/scuttlego/scuttle/ssb/store"
)

// Run adds the addresses of the pub messages in the store, and of those
// that arrive, to the known peers (source "pub"), as ssb-gossip does
// unless the config says "gossip": {"pub": false} or {"autoPopulate":
// false}. Addresses that do not parse, and our own, are ignored; the
// server bounds and drops pubs that cannot be reached.
func (p *Plugin) Run(ctx context.Context) error {
	if !enabled(p.section["pub"]) || !enabled(p.section["autoPopulate"]) {
		return nil
	}
	f := false
	it, err := p.srv.Store().Type(ctx, store.TypeQuery{Type: "pub", Live: true, Keys: &f})
	if err != nil {
		return err
	}
	defer it.Close()
	for {
		item, err := it.Next(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, store.ErrClosed) {
				return nil
			}
			return err
		}
		addr, ok := pubAddress(item.Value)
		if !ok {
			continue
		}
		if _, feed, _ := server.ParseAddress(addr); feed == p.srv.ID() {
			continue
		}
		if err := p.srv.AddPeerFrom(addr, server.SourcePub); err != nil {
			p.srv.Logger().Debug("gossip: pub not added", "address", addr, "err", err)
		}
	}
}

// pubAddress reads the address of a pub message (its value): content
// {"type":"pub","address":…} where the address is {host, port, key}, a
// multiserver address, or HOST:PORT:@KEY.ed25519 (ssb-ref's isAddress).
func pubAddress(value []byte) (string, bool) {
	var v struct {
		Content struct {
			Type    string          `json:"type"`
			Address json.RawMessage `json:"address"`
		} `json:"content"`
	}
	if json.Unmarshal(value, &v) != nil || v.Content.Type != "pub" || len(v.Content.Address) == 0 {
		return "", false
	}
	raw := v.Content.Address
	var s string
	if json.Unmarshal(raw, &s) == nil && !strings.Contains(s, "~") {
		i := strings.LastIndexByte(s, ':')
		if i < 0 {
			return "", false
		}
		j := strings.LastIndexByte(s[:i], ':')
		if j < 0 {
			return "", false
		}
		port, _ := json.Marshal(s[j+1 : i])
		return legacyAddress(s[:j], port, s[i+1:])
	}
	addr, err := addressArg(raw)
	return addr, err == nil
}
