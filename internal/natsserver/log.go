package natsserver

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
)

// logger adapts a *slog.Logger to nats-server's Logger interface. The
// server's notices, chatty at start and stop, go out at debug level; its
// warnings and errors at theirs. A fatal error is logged as an error and
// kept for Start to return: nats-server's own logger would exit the
// process, which only ssehub may decide to do.
type logger struct {
	log   *slog.Logger // nil: log nothing
	debug bool         // log's handler takes debug records

	mu         sync.Mutex
	firstFatal string
}

func newLogger(l *slog.Logger) *logger {
	return &logger{log: l, debug: l != nil && l.Enabled(context.Background(), slog.LevelDebug)}
}

// emit logs one line at level. The server calls it from many goroutines;
// slog handlers are safe for that.
func (l *logger) emit(level slog.Level, format string, v []any) {
	if l.log != nil {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats-server")
	}
}

// fatal returns the first fatal error logged, or "".
func (l *logger) fatal() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.firstFatal
}

// Noticef logs a notice at debug level, but for a client cut off as a
// slow consumer, a warning: the server says it in a notice, and the
// client is ssehub's own connection, whose broker warns that it was lost
// without knowing why.
func (l *logger) Noticef(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	level := slog.LevelDebug
	if strings.Contains(msg, slowConsumer) {
		level = slog.LevelWarn
	}
	l.emit(level, "%s", []any{msg})
}

// slowConsumer is in the server's notice of a client it cuts off for
// falling behind ("... - Slow Consumer Detected: MaxPending of ...
// Exceeded", or "WriteDeadline of ... exceeded").
const slowConsumer = "Slow Consumer Detected"

// Warnf logs a warning.
func (l *logger) Warnf(format string, v ...any) { l.emit(slog.LevelWarn, format, v) }

// Errorf logs an error.
func (l *logger) Errorf(format string, v ...any) { l.emit(slog.LevelError, format, v) }

// Debugf logs a debug line; the server calls it only when debug is on.
func (l *logger) Debugf(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }

// Tracef drops protocol traces: they are never turned on.
func (l *logger) Tracef(string, ...any) {}

// Fatalf logs an error and keeps it for Start; it does not exit.
func (l *logger) Fatalf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	l.mu.Lock()
	if l.firstFatal == "" {
		l.firstFatal = msg
	}
	l.mu.Unlock()
	l.emit(slog.LevelError, "%s", []any{msg})
}
