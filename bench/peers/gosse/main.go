// Command gosse is a benchmark peer: the hub part of ssehub's API served
// by tmaxmax/go-sse's Server with its default provider, Joe, so that
// cmd/ssebench's fanout scenario drives ssehub and go-sse the same way.
//
//	GET  /api/v1/events?topic=T[&topic=U]  subscribe; a topic is a go-sse topic of the same name
//	POST /api/v1/topics/{topic}/events     publish {"event": "...", "data": ...}; 201 {"id": "N", "topic": "T"}
//	GET  /readyz                           200 once the server listens
//	GET  /metrics                          go_goroutines, in Prometheus text, for ssebench
//
// Usage: gosse -addr 127.0.0.1:8111 -token secret
//
// It is a module of its own, so that ssehub's build and tests never see
// go-sse.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8111", "listen `address`")
	token := flag.String("token", "", "publish `token`, required as Authorization: Bearer (empty: publishing is open)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(ctx, *addr, *token); err != nil {
		log.Error("gosse", "error", err)
		os.Exit(1)
	}
}

// run serves on addr until ctx is done.
func run(ctx context.Context, addr, token string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	p := newPeer(token)
	srv := &http.Server{Handler: p.routes(), ReadHeaderTimeout: 10 * time.Second}
	// Open streams never go idle: end them when the server shuts down.
	srv.RegisterOnShutdown(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.sse.Shutdown(ctx)
	})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
