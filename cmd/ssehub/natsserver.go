package main

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	"github.com/ssehub/ssehub/config"
	"github.com/ssehub/ssehub/internal/natsserver"
)

// maxNATSPayload is the largest max_payload a NATS server takes (64 MiB).
const maxNATSPayload = 64 << 20

// natsServers returns the NATS servers the NATS broker connects to, in
// nats.go's comma-separated form, and a stop to call once the broker is
// closed. With nats.embedded it starts a NATS server with JetStream in
// this process, storing in nats.store_dir, and returns its loopback URL
// and its stop; else it returns nats.url and a stop that does nothing.
func natsServers(cfg config.Config, log *slog.Logger) (url string, stop func(), err error) {
	if !cfg.NATS.Embedded {
		return strings.Join(cfg.NATS.URL, ","), func() {}, nil
	}
	url, stop, err = natsserver.Start(natsserver.Options{
		StoreDir:   cfg.NATS.StoreDir,
		Logger:     log,
		MaxPayload: natsPayload(cfg.Hub.MaxEventBytes),
	})
	if err != nil {
		if errors.As(err, new(*fs.PathError)) {
			// The store directory cannot be made or opened.
			err = fmt.Errorf("nats.store_dir: %w", err)
		}
		return "", nil, err
	}
	// Its URL holds the token a client needs: the log names the server
	// without it.
	_, hostPort, _ := strings.Cut(url, "@")
	log.Info("embedded NATS server started", "url", "nats://"+hostPort, "store_dir", cfg.NATS.StoreDir)
	return url, stop, nil
}

// natsPayload returns the max_payload for an embedded server: room for
// the largest event as stored (the data of a body of maxEventBytes may
// grow up to 3 times, each invalid UTF-8 byte becoming the three-byte
// U+FFFD; 4 times leaves room for the subject and headers), at least
// NATS's default 1 MiB, at most NATS's limit.
func natsPayload(maxEventBytes int) int32 {
	return int32(min(max(4*maxEventBytes, 1<<20), maxNATSPayload))
}
