package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/static"
)

// The memory broker is the hub's broker; this says so where the two are
// wired, so a change to either seam fails here.
var _ handler.Broker = (*stream.Memory)(nil)

// serve loads the config and runs the server until ctx is done.
func serve(ctx context.Context, args []string, getenv func(string) string, _, stderr io.Writer) error {
	cfg, err := config.Load(args, getenv)
	if err != nil {
		return err
	}
	m := &Main{Config: cfg, Logger: newLogger(cfg.Log, stderr)}
	return m.Run(ctx)
}

// Main is one running ssehub server.
type Main struct {
	Config config.Config
	Logger *slog.Logger

	// ready, when not nil, receives the listening address once the
	// server accepts connections.
	ready chan<- net.Addr
	// connState, when not nil, is the server's http.Server.ConnState:
	// tests count the connections a proxy opens with it.
	connState func(net.Conn, http.ConnState)
}

// Run listens, serves until ctx is done, then shuts down: it stops
// accepting, ends every open stream at once, and waits at most
// server.shutdown_timeout for requests to finish.
func (m *Main) Run(ctx context.Context) error {
	ln, err := listen(ctx, m.Config.Server.Addr)
	if err != nil {
		return fmt.Errorf("server.addr: %w", err)
	}
	broker := stream.NewMemory(stream.MemoryOptions{
		HistorySize:      m.Config.Hub.HistorySize,
		SubscriberBuffer: m.Config.Hub.SubscriberBuffer,
		MaxSubscribers:   m.Config.Hub.MaxSubscribers,
	})
	h := handler.New(handlerOptions(m.Config, m.Logger, broker))
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.Logger.Handler(), slog.LevelWarn),
		ConnState:         m.connState,
	}
	srv.RegisterOnShutdown(func() {
		h.Close()
		broker.Close()
	})

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	m.Logger.Info("listening", "addr", ln.Addr().String(), "allowed_origins", m.Config.CORS.AllowedOrigins)
	if len(m.Config.Auth.PublishTokens) == 0 {
		m.Logger.Warn("publishing is off: set auth.publish_tokens (SSEHUB_AUTH_PUBLISH_TOKENS) to publish to the hub")
	}
	if m.ready != nil {
		m.ready <- ln.Addr()
	}

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	m.Logger.Info("shutting down", "timeout", m.Config.Server.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), m.Config.Server.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	// Shutdown does not wait for streams taken over from net/http.
	if werr := h.Wait(sctx); err == nil && werr != nil {
		err = werr
	}
	if serveErr := <-served; !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", serveErr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	m.Logger.Info("stopped")
	return nil
}

// listen opens the server's socket. Its connections get no TCP keep-alive
// probes: every stream sends a heartbeat, and the server closes idle
// connections itself (IdleTimeout), so probes would find nothing those
// miss, and setting them up costs four system calls per connection.
func listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

// handlerOptions copies what the HTTP layer needs out of the config.
func handlerOptions(cfg config.Config, log *slog.Logger, broker handler.Broker) handler.Options {
	return handler.Options{
		Logger: log,
		CORS: handler.CORSOptions{
			AllowOrigin:      cfg.CORS.AllowOrigin,
			AllowCredentials: cfg.CORS.AllowCredentials,
			AllowedHeaders:   cfg.CORS.AllowedHeaders,
			ExposedHeaders:   cfg.CORS.ExposedHeaders,
			MaxAge:           cfg.CORS.MaxAge,
		},
		Stream: handler.StreamOptions{
			HeartbeatInterval: cfg.Stream.HeartbeatInterval,
			Retry:             cfg.Stream.Retry,
			WriteTimeout:      cfg.Stream.WriteTimeout,
			Detached:          cfg.Stream.Detached(),
			MaxStreams:        cfg.Stream.MaxStreams,
		},
		Demo: handler.DemoOptions{
			Enabled:        cfg.Demo.Enabled,
			TickerCount:    cfg.Demo.TickerCount,
			TickerInterval: cfg.Demo.TickerInterval,
			MaxDuration:    cfg.Demo.MaxDuration,
			MaxTokens:      cfg.Demo.MaxTokens,
		},
		Hub: handler.HubOptions{
			Broker:                   broker,
			MaxEventBytes:            cfg.Hub.MaxEventBytes,
			MaxTopicsPerSubscription: cfg.Hub.MaxTopicsPerSubscription,
			PublishTokens:            cfg.Auth.PublishTokens,
			SubscribeTokens:          cfg.Auth.SubscribeTokens,
		},
		TrustedProxies: cfg.Server.TrustedProxies,
		Static:         static.FS,
	}
}

// newLogger builds the process logger from log.level and log.format.
func newLogger(c config.LogConfig, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.SlogLevel()}
	if c.JSON() {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
