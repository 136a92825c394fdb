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

// TestListeningLineStatesAuth: the start-up line says how many static
// tokens guard publishing and subscribing and whether JWTs are taken,
// never the tokens: with tokens set, nothing at start said so (the
// warnings of an open hub are only there when it is open), and an
// instance that missed its SSEHUB_AUTH_SUBSCRIBE_TOKENS could only be
// told by the warning's presence.
func TestListeningLineStatesAuth(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"pub-s3cret-1", "pub-s3cret-2"}
	cfg.Auth.SubscribeTokens = []string{"sub-s3cret"}
	var logs lockedBuffer
	_, stop := startMainLogging(t, cfg, slog.New(slog.NewTextHandler(&logs, nil)))
	stop()
	line := grepLine(logs.String(), "msg=listening")
	for _, want := range []string{"publish_tokens=2", "subscribe_tokens=1", "jwt=false"} {
		if !strings.Contains(line, want) {
			t.Errorf("listening line %q does not say %s", line, want)
		}
	}
	if strings.Contains(logs.String(), "s3cret") {
		t.Errorf("the log holds a token:\n%s", logs.String())
	}
}
