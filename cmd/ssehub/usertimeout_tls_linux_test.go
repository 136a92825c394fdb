package main

import (
	"crypto/tls"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testpki"
)

// Over TLS (HTTP/1.1) too, a hub subscriber that stops reading, whose
// connection the kernel ended before a write blocked, counts as slow.
func TestUserTimeoutCountsASlowSubscriberOverTLS(t *testing.T) {
	pki := testpki.New(t)
	cfg := tlsTestConfig(pki)
	cfg.Stream.WriteTimeout = time.Second
	base, _ := startMain(t, cfg)
	client := testClient(t, pki.Roots, (*http.Protocols).SetHTTP1)
	raw := dialSmallWindow(t, strings.Replace(base, "https://", "http://", 1))
	conn := tls.Client(raw, &tls.Config{RootCAs: pki.Roots, ServerName: "localhost", NextProtos: []string{"http/1.1"}})
	subscribeRaw(t, conn)
	waitStreams(t, client, base, 1)
	publishUntilStreamEnded(t, client, base, 20*cfg.Stream.WriteTimeout)
	if got := metricWith(t, client, base, "ssehub_slow_subscribers_dropped_total"); got != 1 {
		t.Errorf("ssehub_slow_subscribers_dropped_total %v, want 1: the client stopped reading (client_gone %v, write_failed %v)", got,
			metricWith(t, client, base, `ssehub_streams_ended_total{reason="client_gone"}`),
			metricWith(t, client, base, `ssehub_streams_ended_total{reason="write_failed"}`))
	}
}
