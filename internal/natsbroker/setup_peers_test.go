package natsbroker

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A start refused to the end because a server of the cluster is offline
// (10005, "peer offline"), as a cluster that still counts a server gone
// for good refuses an R3 stream, fails with JetStream's answer and what
// to do about it. It said "context deadline exceeded" and JetStream's
// answer, and nothing of what to do.
func TestOpenRefusedWhilePeersAreOfflineSaysWhatToDo(t *testing.T) {
	t.Parallel() // waits for its context, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{noPeers: -1, noPeersWhy: "no suitable peers for placement, peer offline"}
	opts.dial = d.Dial
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	b, err := Open(ctx, opts)
	if b != nil {
		b.Close()
		t.Fatal("Open succeeded on a JetStream that refused every creation")
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != errCodeNoPeers || !errors.Is(err, ctx.Err()) {
		t.Fatalf("Open: %v, want the context's end and JetStream's 10005 answer", err)
	}
	for _, want := range []string{"peer offline", "start it again", "nats server raft peer-remove", "nats.replicas"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v\nwant it to say %q", err, want)
		}
	}
}
