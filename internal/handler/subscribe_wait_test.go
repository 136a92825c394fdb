package handler

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// waitingBroker is a memory broker that takes the context of its
// subscriptions' waits, as the NATS broker does (contextSubscriber).
type waitingBroker struct{ *stream.Memory }

func (b waitingBroker) SubscribeContext(_ context.Context, patterns []string, last string) (stream.Subscription, error) {
	return b.Subscribe(patterns, last)
}

// A stream's end leaves nothing tied to the request's or the stream's
// context: a tie left behind would run on a goroutine of its own when
// that context ends, once per stream, as a crowd leaves together.
func TestBrokerWaitEndUnties(t *testing.T) {
	h := New(Options{
		Logger: slog.New(slog.DiscardHandler),
		Stream: StreamOptions{HeartbeatInterval: time.Minute, WriteTimeout: time.Second, Detached: true},
		Hub:    HubOptions{Broker: waitingBroker{stream.NewMemory(stream.MemoryOptions{})}},
	})
	defer h.Close()
	for _, detach := range []bool{false, true} {
		req, cancel := context.WithCancel(context.Background())
		ctx, w := h.brokerWait(req)
		streamCtx, endStream := context.WithCancel(context.Background())
		if detach {
			w.follow(streamCtx)
		}
		w.end()
		if ctx.Err() == nil {
			t.Errorf("detached %v: the wait's context goes on after end", detach)
		}
		if w.stop() {
			t.Errorf("detached %v: after end, a context still ends the wait's", detach)
		}
		cancel()
		endStream()
	}
}
