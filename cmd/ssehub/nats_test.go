package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/internal/stream"
)

// Run on the NATS broker: an event published before a restart of ssehub
// (its process memory gone) is replayed from the stream after it.
func TestRunOnNATSResumesAcrossARestart(t *testing.T) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"tok"}
	onNATS := func(m *Main) {
		m.nats = &natsbroker.Options{URLs: []string{ns.ClientURL()}, ReconnectWait: 20 * time.Millisecond}
	}

	wantResumeAcrossARestart(t, cfg, onNATS)
}

// nats.publish_batching reaches the broker: true, the default, leaves
// the option at its zero value (batching on); false turns batching off.
func TestNATSOptionsPublishBatching(t *testing.T) {
	cfg := config.Default()
	if natsOptions(cfg, "nats://127.0.0.1:4222").DisablePublishBatching {
		t.Error("nats.publish_batching: true disables publish batching")
	}
	cfg.NATS.PublishBatching = false
	if !natsOptions(cfg, "nats://127.0.0.1:4222").DisablePublishBatching {
		t.Error("nats.publish_batching: false leaves publish batching on")
	}
}

// With nats.embedded the process runs its own NATS server, storing in
// nats.store_dir: a single instance keeps its history across restarts with
// nothing else to run.
func TestRunOnEmbeddedNATSResumesAcrossARestart(t *testing.T) {
	cfg := config.Default()
	cfg.Auth.PublishTokens = []string{"tok"}
	cfg.Hub.Broker = "nats"
	cfg.NATS.Embedded = true
	cfg.NATS.StoreDir = t.TempDir()
	wantResumeAcrossARestart(t, cfg)
}

// wantResumeAcrossARestart publishes two events, restarts ssehub, resumes
// after the first and wants the second, replayed from the stream.
func wantResumeAcrossARestart(t *testing.T, cfg config.Config, hooks ...func(*Main)) {
	t.Helper()
	url, stop := startMain(t, cfg, hooks...)
	first := publishTo(t, url, "a", "before")
	second := publishTo(t, url, "a", "missed")
	stop()

	url, _ = startMain(t, cfg, hooks...)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/api/v1/events?topic=a", nil)
	req.Header.Set("Last-Event-ID", first)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := stream.NewParser(resp.Body)
	for {
		ev, err := p.Next()
		if err != nil {
			t.Fatal(err)
		}
		if ev.ID == "" && ev.Type == "" {
			continue
		}
		if ev.ID != second || ev.Data != "missed" {
			t.Fatalf("after the restart: %+v, want id %s", ev, second)
		}
		return
	}
}

func publishTo(t *testing.T, url, topic, data string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "POST", url+"/api/v1/topics/"+topic+"/events", strings.NewReader(`{"data": "`+data+`"}`))
	req.Header.Set("Authorization", "Bearer tok")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ ID string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated || out.ID == "" {
		t.Fatalf("publish: %d %+v %v", resp.StatusCode, out, err)
	}
	return out.ID
}
