package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ssehub/ssehub/config"
)

// serverTLS returns the TLS configuration for server.tls, or nil for plain
// HTTP. config.Load has already checked the pair; reading it again here
// catches a file changed since, and names the keys. Handshakes then take
// the certificate from a certReloader checking the files at most every
// interval. The read stops waiting for a lease on a file when ctx is done.
func serverTLS(ctx context.Context, c config.TLSConfig, interval time.Duration, log *slog.Logger) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	certs, err := newCertReloader(ctx, c.CertFile, c.KeyFile, interval, log)
	if err != nil {
		return nil, err
	}
	return &tls.Config{GetCertificate: certs.GetCertificate}, nil
}

// serverProtocols returns what srv speaks besides its defaults: with
// server.h2c, cleartext HTTP/2 with prior knowledge beside HTTP/1.1; else
// nil, net/http's default (HTTP/1.1, and HTTP/2 over TLS, chosen by ALPN).
func serverProtocols(c config.ServerConfig) *http.Protocols {
	if !c.H2C {
		return nil
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &p
}

// serverHTTP2 returns the HTTP/2 settings: a connection to which nothing
// could be written for stream.write_timeout (a client that stopped
// reading all of it, not one stream) is closed, and its streams end with
// it. A stream's own write deadline resets that stream alone, and its
// RST_STREAM waits behind the bytes the connection cannot send: on a
// system without TCP_USER_TIMEOUT (see listen), the connection and all
// its streams were held until the client read again. A connection whose
// client sent no frame for stream.heartbeat_interval gets a PING, and is
// closed with its streams when no answer comes within
// stream.write_timeout: a client that vanished without a word (a laptop
// that slept, a NAT that dropped it) takes no byte less, its heartbeats
// fitting in the socket buffers, and was held, where no
// TCP_USER_TIMEOUT ends it, until the kernel gave up retransmitting.
func serverHTTP2(c config.StreamConfig) *http.HTTP2Config {
	return &http.HTTP2Config{
		WriteByteTimeout: c.WriteTimeout,
		SendPingTimeout:  c.HeartbeatInterval,
		PingTimeout:      c.WriteTimeout,
	}
}

// serveOn serves srv on ln: over TLS when srv has a TLS configuration.
// ServeTLS offers HTTP/2 by ALPN; srv's timeouts hold on both protocols,
// and the TLS handshake is bounded by the shortest of them.
func serveOn(srv *http.Server, ln net.Listener) error {
	if srv.TLSConfig != nil {
		return srv.ServeTLS(ln, "", "")
	}
	return srv.Serve(ln)
}
