package main

import (
	"context"
	"log/slog"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/handler"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/internal/stream"
)

// The two brokers are the hub's; this says so where they are wired, so a
// change to either seam fails here.
var (
	_ hubBroker = (*stream.Memory)(nil)
	_ hubBroker = (*natsbroker.Broker)(nil)
)

// hubBroker is a broker the hub routes use and Run closes at shutdown.
type hubBroker interface {
	handler.Broker
	Close()
}

// natsOptions returns the NATS broker's connection and stream options when
// the config asks for the NATS broker, and nil for the memory broker.
// Today nothing asks for it: the config keys hub.broker and nats.* are
// not there yet.
func natsOptions(config.Config) *natsbroker.Options { return nil }

// openBroker opens the hub's broker: the memory broker, or with nats not
// nil the NATS JetStream broker, connected and its stream checked, both
// bounded by the hub's history and subscriber settings. ctx bounds the
// start only.
func openBroker(ctx context.Context, hub config.HubConfig, nats *natsbroker.Options, log *slog.Logger) (hubBroker, error) {
	if nats == nil {
		return stream.NewMemory(stream.MemoryOptions{
			HistorySize:      hub.HistorySize,
			SubscriberBuffer: hub.SubscriberBuffer,
			MaxSubscribers:   hub.MaxSubscribers,
		}), nil
	}
	o := *nats
	o.HistorySize = hub.HistorySize
	o.SubscriberBuffer = hub.SubscriberBuffer
	o.MaxSubscribers = hub.MaxSubscribers
	o.Logger = log
	b, err := natsbroker.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	return b, nil
}
