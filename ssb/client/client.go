// Package client connects to a Secure Scuttlebutt peer (this project's
// server or JavaScript ssb-server) over TCP: secret handshake, box-stream,
// then muxrpc.
package client

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net"

	"github.com/scuttlego/scuttle/ssb/keys"
	"github.com/scuttlego/scuttle/ssb/muxrpc"
	"github.com/scuttlego/scuttle/ssb/shs"
)

// A Client is a connection to a peer. Call its methods through Endpoint;
// Close says goodbye.
type Client struct {
	*muxrpc.Endpoint
	served chan error
}

// Dial connects to addr, a server holding the key server on network
// (caps.shs), as the identity kp. Incoming calls from the peer go to h
// (nil refuses them all). The handshake is bounded by ctx.
func Dial(ctx context.Context, addr string, network [32]byte, kp *keys.KeyPair, server ed25519.PublicKey, h muxrpc.Handler) (*Client, error) {
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	conn, err := shs.ClientConn(ctx, raw, network, kp.Private, server)
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", addr, err)
	}
	c := &Client{Endpoint: muxrpc.NewEndpoint(conn, h), served: make(chan error, 1)}
	go func() { c.served <- c.Endpoint.Serve(context.Background()) }()
	return c, nil
}

// Close says goodbye and waits for the connection to end.
func (c *Client) Close() error {
	c.Endpoint.Close()
	return <-c.served
}
