package natsbroker

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// holdingLog is a slog handler that, at the first record of msg, closes
// held and waits until released: logged from a nats.go handler, it holds
// nats.go's one goroutine for callbacks, as a slow log write or any
// callback queued before would.
type holdingLog struct {
	msg   string
	once  *sync.Once
	held  chan struct{}
	until chan struct{}
}

func (l holdingLog) Enabled(context.Context, slog.Level) bool { return true }
func (l holdingLog) WithAttrs([]slog.Attr) slog.Handler       { return l }
func (l holdingLog) WithGroup(string) slog.Handler            { return l }

func (l holdingLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message == l.msg {
		l.once.Do(func() {
			close(l.held)
			<-l.until
		})
	}
	return nil
}

// The connection drops while nats.go's callbacks are held up (here the
// reconnect handler's log line of the reconnect before): Ready and
// Connected answer that NATS is not connected once the connection's
// status says so, not once its disconnect handler, queued behind, runs.
// Set by the handlers, they answered nil, and /readyz 200, while
// publishes failed for want of a connection, for as long as the callbacks
// before took.
func TestReadyFollowsTheConnectionBehindItsHandlers(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	log := holdingLog{msg: "nats reconnected", once: new(sync.Once), held: make(chan struct{}), until: make(chan struct{})}
	opts.Logger = slog.New(log)
	a := newInstance(t, opts)
	release := sync.OnceFunc(func() { close(log.until) })
	t.Cleanup(release) // before the instance's close
	b := a.broker

	ns.stop()
	waitFor(t, "the connection lost", func() bool { return b.nc.Status() != nats.CONNECTED })
	ns.start(t)
	select {
	case <-log.held:
	case <-time.After(waitLimit):
		t.Fatal("the connection did not come back")
	}
	waitFor(t, "Connected after the reconnect", b.Connected)

	ns.stop() // the disconnect handler waits behind the reconnect's
	waitFor(t, "the connection lost again", func() bool { return b.nc.Status() != nats.CONNECTED })
	waitFor(t, "Connected to answer false", func() bool { return !b.Connected() })
	if err := b.Ready(); err == nil {
		t.Fatal("ready while the connection is down")
	}
	ns.start(t)
	waitFor(t, "Connected once back", func() bool { return b.nc.Status() == nats.CONNECTED && b.Connected() })
	release()
}
