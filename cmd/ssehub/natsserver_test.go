package main

import (
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
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
	url, stop, err = natsServers(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Errorf("embedded server at %q, want loopback", url)
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
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
