package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/ssehub/ssehub/config"
)

// healthcheck asks the server at server.addr for /healthz and fails unless
// it answers 200. Container images without a shell or curl run it as their
// HEALTHCHECK. With server.tls set it asks over HTTPS (see healthClient).
// With port 0 in server.addr it fails, saying it cannot know the port.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	cfg, err := config.LoadContext(ctx, args, getenv)
	if err != nil {
		return err
	}
	if _, port, err := net.SplitHostPort(cfg.Server.Addr); err == nil && strings.Trim(port, "0") == "" {
		// The server picked a free port at start, which only its log
		// says: dialling port 0 would fail as a refused connection.
		return fmt.Errorf("healthcheck: server.addr %q has port 0, so the server listens on a port it picked at start, which the check cannot know: set server.addr (SSEHUB_SERVER_ADDR, --addr) to the port it listens on", cfg.Server.Addr)
	}
	client, scheme, err := healthClient(ctx, cfg.Server.TLS)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer client.CloseIdleConnections()
	url := scheme + "://" + loopbackAddr(cfg.Server.Addr) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: %s answered %s", url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// loopbackAddr turns a listen address into one to dial on this host: an
// empty or unspecified host becomes 127.0.0.1.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// healthClient returns the client and scheme to ask this host's server
// with. Over TLS the check dials server.addr's host, or 127.0.0.1 for none
// (loopbackAddr), which a certificate for a public name may not cover, so the usual verification would fail:
// instead the server must present exactly the certificate in
// server.tls.cert_file. After a renewal on disk the server presents the
// new certificate from its first handshake that finds a check of the
// files due (see certReloader), often the check's own: the check can fail
// only when run less than certCheckInterval after the files changed, and
// passes at the next run. A pair on disk that does not load fails it
// until a good one replaces it. So does a certificate that has expired,
// or is not valid yet: every client refuses the server then, and the
// pin alone passed the check, showing the container healthy through the
// outage. Its reads of the files stop waiting for a lease another
// process holds on one when ctx is done.
func healthClient(ctx context.Context, c config.TLSConfig) (*http.Client, string, error) {
	if !c.Enabled() {
		return &http.Client{Transport: &http.Transport{}}, "http", nil
	}
	// Read as the configuration's check and the server read them: a file
	// replaced since by a FIFO is refused, not waited on, one grown past
	// config.MaxPEMFileBytes is not read whole, and a wait for a lease
	// on one ends with ctx.
	certPEM, err := config.ReadPEMFileContext(ctx, c.CertFile)
	if err != nil {
		return nil, "", fmt.Errorf("server.tls.cert_file %q: %w", c.CertFile, err)
	}
	keyPEM, err := config.ReadPEMFileContext(ctx, c.KeyFile)
	if err != nil {
		return nil, "", fmt.Errorf("server.tls.key_file %q: %w", c.KeyFile, err)
	}
	want, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, "", err
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, want.Certificate[0]) {
				return errors.New("the server does not present the certificate in server.tls.cert_file")
			}
			return checkValidity(cs.PeerCertificates[0], time.Now())
		},
	}}
	return &http.Client{Transport: tr}, "https", nil
}

// checkValidity fails when cert, the one the server presents, has expired
// at now, or is not valid yet.
func checkValidity(cert *x509.Certificate, now time.Time) error {
	const fix = "every client refuses it; put a valid pair in server.tls's files, which the server loads without a restart"
	switch {
	case now.After(cert.NotAfter):
		return fmt.Errorf("the server's certificate (server.tls.cert_file) expired at %s: %s", cert.NotAfter.UTC().Format(time.RFC3339), fix)
	case now.Before(cert.NotBefore):
		return fmt.Errorf("the server's certificate (server.tls.cert_file) is not valid until %s (is the clock right?): %s", cert.NotBefore.UTC().Format(time.RFC3339), fix)
	}
	return nil
}
