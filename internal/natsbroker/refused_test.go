package natsbroker

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/testlog"
)

// TestInstanceRidesOutARefusedReconnect: a NATS server that comes back
// refusing the instance's credentials for a while (restarted before its
// new token or credentials were in place, an operator's reload with a
// typo) is asked again until it takes them, as a server that is away is.
// nats.go closed the connection for good at the second refusal: the
// instance stayed unready, answering every publish 503 and delivering
// nothing, until it was restarted by hand (/healthz stayed 200).
func TestInstanceRidesOutARefusedReconnect(t *testing.T) {
	const token = "r1ghtT0ken"
	ns := startNATSWith(t, &natsServer{token: token})
	var logs testlog.Buffer
	opts := testBrokerOptions(ns)
	opts.URLs = []string{"nats://" + token + "@" + strings.TrimPrefix(ns.ClientURL(), "nats://")}
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	a := newInstance(t, opts)
	live := a.subscribe(t, "topic=t", "")
	first := a.publish(t, "t", "before")
	if got := live.next(t); got.ID != first {
		t.Fatalf("before the refusal: %+v, want id %s", got, first)
	}

	ns.stop()
	ns.token = "an0therT0ken"
	ns.start(t)
	// Each attempt to reconnect takes a connection (nats.go counts it
	// before the server refuses it): five refusals, one line.
	reconnects := a.broker.nc.Stats().Reconnects
	waitFor(t, "the server to refuse the instance five times", func() bool {
		return a.broker.nc.Stats().Reconnects >= reconnects+5
	})
	if a.broker.Ready() == nil {
		t.Fatal("ready while the server refuses the instance")
	}
	if n := logs.Count("uthorization"); n != 1 {
		t.Fatalf("%d log lines of the refusal, want 1:\n%s", n, logs.String())
	}
	ns.stop()
	ns.token = token
	ns.start(t)
	waitFor(t, "the instance to be ready again", func() bool { return settled(a.broker) })
	next := a.publish(t, "t", "after")
	if got := live.next(t); got.ID != next {
		t.Fatalf("once the server takes the instance again: %+v, want id %s", got, next)
	}
}
