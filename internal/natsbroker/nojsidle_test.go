package natsbroker

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// TestIdleInstanceUnreadyWhileNATSIsBackWithoutJetStream: a NATS server
// that comes back without JetStream counts as unreachable for /readyz on
// an instance that nobody publishes through as well (one serving only
// subscriptions, its publishes sent to another): only a publish's
// refusal told it, and it answered 200 while its subscribers got no event
// and its resumes from the stream 503. Once JetStream is back, it is
// ready again and its subscribers get the events.
func TestIdleInstanceUnreadyWhileNATSIsBackWithoutJetStream(t *testing.T) {
	ns := startNATS(t)
	a := newInstance(t, testBrokerOptions(ns))
	live := a.subscribe(t, "topic=t", "")
	ns.stop()
	ns.noJetStream = true
	ns.start(t)
	waitFor(t, "the instance to reconnect", a.broker.Connected)
	// Unready first for its stream in doubt, while the question of its
	// stream is unanswered (Ready says "being checked" meanwhile), then
	// for want of JetStream once the server answered: the test read Ready
	// once, as soon as it failed, and on a loaded machine found it still
	// in doubt (1 run in 4).
	var err error
	waitFor(t, "the instance unready for want of JetStream", func() bool {
		err = a.broker.Ready()
		return strings.Contains(fmt.Sprint(err), "no JetStream answered")
	})
	if !errors.Is(err, stream.ErrUnavailable) || errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("Ready without JetStream: %v, want stream.ErrUnavailable saying no JetStream answered", err)
	}
	if resp := a.readyz(t); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz without JetStream: %v, want 503", resp.Status)
	}
	ns.stop()
	ns.noJetStream = false
	ns.start(t)
	waitFor(t, "the instance to be ready again", func() bool { return settled(a.broker) })
	id := publishUntilAccepted(t, a, "t", "after")
	if got := live.next(t); got.ID != id {
		t.Fatalf("with JetStream back: %+v, want id %s", got, id)
	}
}
