package main

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/config"
)

func TestNATSServers(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	cfg.Hub.Broker = "nats"
	cfg.NATS.URL = []string{"nats://a.test:4222", "nats://b.test:4222"}
	url, stop, err := natsServers(cfg, log)
	if err != nil || url != "nats://a.test:4222,nats://b.test:4222" {
		t.Errorf("nats.url: %q, %v", url, err)
	}
	stop()

	cfg.NATS.Embedded = true
	cfg.NATS.StoreDir = filepath.Join(t.TempDir(), "data/nats")
	var logged bytes.Buffer
	url, stop, err = natsServers(cfg, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	token, hostPort, _ := strings.Cut(strings.TrimPrefix(url, "nats://"), "@")
	if token == "" || !strings.HasPrefix(hostPort, "127.0.0.1:") {
		t.Errorf("embedded server at %q, want loopback, with a token", url)
	}
	// The token stays out of the log, which names the server.
	if line := logged.String(); strings.Contains(line, token) || !strings.Contains(line, "url=nats://"+hostPort) {
		t.Errorf("start-up log %q: want the URL without the token", line)
	}
	nc := connectNATS(t, url)
	defer nc.Close()
	if want := int64(natsPayload(cfg.Hub.MaxEventBytes)); nc.MaxPayload() != want {
		t.Errorf("max payload %d, want %d", nc.MaxPayload(), want)
	}
}

func TestNATSPayload(t *testing.T) {
	for in, want := range map[int]int32{1: 1 << 20, 65536: 1 << 20, 1 << 20: 4 << 20, 16 << 20: 64 << 20} {
		if got := natsPayload(in); got != want {
			t.Errorf("natsPayload(%d) = %d, want %d", in, got, want)
		}
	}
}

// A store directory that cannot be made or opened stops start-up with a
// message naming nats.store_dir, as other keys' bad values do.
func TestRunNamesTheStoreDirItCannotUse(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{
		"SSEHUB_HUB_BROKER":     "nats",
		"SSEHUB_NATS_EMBEDDED":  "true",
		"SSEHUB_NATS_STORE_DIR": filepath.Join(file, "nats"),
	}
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--config", os.DevNull, "--addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "nats.store_dir") {
		t.Errorf("exit %d, stderr %q: want exit 1 naming nats.store_dir", code, stderr.String())
	}
}
