package main

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/config"
)

// TestListeningLineStatesBrokerAndTransport: the start-up line says which
// hub broker and which stream transport serve, beside the address and
// TLS: an operator reading the log of an instance started with the wrong
// SSEHUB_HUB_BROKER (the memory broker, whose history dies with it, where
// NATS was meant) or stream.transport could not tell from it.
func TestListeningLineStatesBrokerAndTransport(t *testing.T) {
	var logs lockedBuffer
	_, stop := startMainLogging(t, config.Default(), slog.New(slog.NewTextHandler(&logs, nil)))
	stop()
	line := grepLine(logs.String(), "msg=listening")
	for _, want := range []string{"broker=memory", "transport=" + testTransport} {
		if !strings.Contains(line, want) {
			t.Errorf("listening line %q does not say %s", line, want)
		}
	}
}
