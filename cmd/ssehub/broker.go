package main

import (
	"context"
	"log/slog"
	"strings"

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

// natsOptions returns the NATS broker's connection and stream options for
// hub.broker: nats, connecting to url (nats.url, or the embedded server's).
func natsOptions(cfg config.Config, url string) *natsbroker.Options {
	storage := "file"
	if cfg.NATS.MemoryStorage() {
		storage = "memory"
	}
	caFile, credsFile := cfg.NATS.CAFile, cfg.NATS.CredentialsFile
	if cfg.NATS.Embedded { // in the process, without TLS or credentials
		caFile, credsFile = "", ""
	}
	return &natsbroker.Options{
		URLs:                   strings.Split(url, ","),
		CredentialsFile:        credsFile,
		CAFile:                 caFile,
		Stream:                 cfg.NATS.Stream,
		SubjectPrefix:          cfg.NATS.SubjectPrefix,
		Replicas:               cfg.NATS.Replicas,
		Storage:                storage,
		DisablePublishBatching: !cfg.NATS.PublishBatching,
	}
}

// openBroker opens the hub's broker: the memory broker, or with nats not
// nil the NATS JetStream broker, connected and its stream checked, both
// bounded by the hub's history and subscriber settings. ctx bounds the
// start only.
func openBroker(ctx context.Context, hub config.HubConfig, nats *natsbroker.Options, log *slog.Logger) (hubBroker, error) {
	if nats == nil {
		return stream.NewMemory(stream.MemoryOptions{
			HistorySize:      hub.HistorySize,
			HistoryMaxBytes:  hub.HistoryMaxBytes,
			SubscriberBuffer: hub.SubscriberBuffer,
			MaxSubscribers:   hub.MaxSubscribers,
		}), nil
	}
	o := *nats
	o.HistorySize = hub.HistorySize
	o.HistoryMaxBytes = int64(hub.HistoryMaxBytes)
	o.SubscriberBuffer = hub.SubscriberBuffer
	o.MaxSubscribers = hub.MaxSubscribers
	o.MaxEventBytes = hub.MaxEventBytes
	o.Logger = log
	b, err := natsbroker.Open(ctx, o)
	if err != nil {
		return nil, err
	}
	return b, nil
}
