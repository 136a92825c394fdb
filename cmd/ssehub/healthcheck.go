package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/ssehub/ssehub/config"
)

// healthcheck asks the server at server.addr for /healthz and fails unless
// it answers 200. Container images without a shell or curl run it as their
// HEALTHCHECK.
func healthcheck(ctx context.Context, args []string, getenv func(string) string, stdout, _ io.Writer) error {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	url := "http://" + loopbackAddr(cfg.Server.Addr) + "/healthz"
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
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
