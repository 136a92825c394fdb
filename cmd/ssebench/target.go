package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Errors about the -url flag.
var (
	// ErrRemoteTarget refuses a host that is not on this machine: load
	// tests are aimed at a remote deployment only on purpose.
	ErrRemoteTarget = errors.New("host is not a loopback address; pass -allow-remote to load a deployment elsewhere")
	// ErrBadURL reports a URL ssebench cannot use.
	ErrBadURL = errors.New("want http:// or https:// with a host")
)

// target is the server under test: where to dial and what to put in each
// request line and Host header. It is read-only once built and safe for
// concurrent use.
type target struct {
	base   *url.URL
	addr   string // host:port to dial
	host   string // Host header
	prefix string // path prefix of the deployment, without a trailing slash
	tls    *tls.Config
	dialer net.Dialer
}

// parseTarget checks the -url value. A host that is not loopback
// (localhost, 127.0.0.0/8, ::1) is refused unless allowRemote is set.
// insecure skips TLS certificate checks for https.
func parseTarget(raw string, allowRemote, insecure bool) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("-url %q: %w: %w", raw, ErrBadURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
		return nil, fmt.Errorf("-url %q: %w", raw, ErrBadURL)
	}
	if !allowRemote && !isLoopbackHost(u.Hostname()) {
		return nil, fmt.Errorf("-url %q: %w", raw, ErrRemoteTarget)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	t := &target{
		base:   u,
		addr:   net.JoinHostPort(u.Hostname(), port),
		host:   u.Host,
		prefix: strings.TrimSuffix(u.EscapedPath(), "/"),
	}
	if u.Scheme == "https" {
		t.tls = &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: insecure} //nolint:gosec // opt-in flag for self-signed test deployments
	}
	return t, nil
}

// isLoopbackHost reports whether host names this machine: "localhost"
// or a loopback IP. Other names are not resolved: they count as remote.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// url returns the absolute URL of path (which may hold a query) on the
// target, for the standard HTTP client.
func (t *target) url(path string) string {
	return t.base.Scheme + "://" + t.host + t.prefix + path
}

// dial opens a connection to the target, with TLS when it is https.
func (t *target) dial(ctx context.Context) (net.Conn, error) {
	conn, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if t.tls == nil {
		return conn, nil
	}
	tc := tls.Client(conn, t.tls)
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("tls: %w", err)
	}
	return tc, nil
}

// header is one request header line.
type header struct{ name, value string }

// appendRequest appends an HTTP/1.1 request for path (with its query) to
// dst, with a Host header, the given headers and, when body is not nil,
// a Content-Length and the body.
func (t *target) appendRequest(dst []byte, method, path string, body []byte, headers ...header) []byte {
	dst = append(dst, method...)
	dst = append(dst, ' ')
	dst = append(dst, t.prefix...)
	dst = append(dst, path...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, t.host...)
	dst = append(dst, "\r\nUser-Agent: ssebench\r\n"...)
	for _, h := range headers {
		if h.value == "" {
			continue
		}
		dst = append(dst, h.name...)
		dst = append(dst, ": "...)
		dst = append(dst, h.value...)
		dst = append(dst, "\r\n"...)
	}
	if body != nil {
		dst = append(dst, "Content-Length: "...)
		dst = strconv.AppendInt(dst, int64(len(body)), 10)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "\r\n"...)
	return append(dst, body...)
}

// bearer returns the Authorization value for token, empty without one.
func bearer(token string) string {
	if token == "" {
		return ""
	}
	return "Bearer " + token
}
