// Package natsserver runs a NATS server with JetStream inside the ssehub
// process (nats.embedded: true), so a single instance keeps the hub's
// history across restarts with nothing else to install. It is the only
// package that imports nats-server; the broker connects to it as to any
// other NATS server, through the URL Start returns.
package natsserver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// lockFile is the store's lock (lockStore), beside JetStream's own
// directory in it.
const lockFile = "ssehub.lock"

// errStoreInUse is a store another server holds: two servers on one
// store each acknowledged the same sequences with other events, and a
// restart kept one of them.
var errStoreInUse = errors.New("in use by another NATS server (another ssehub with nats.embedded on this store?)")

// defaultReadyTimeout bounds how long Start waits for the server to accept
// connections when Options.ReadyTimeout is zero. Recovering a large store
// happens before that wait starts, inside the server's Start.
const defaultReadyTimeout = 10 * time.Second

// Options configures Start. Only StoreDir is required; every other zero
// value means the default its comment names.
type Options struct {
	// StoreDir is JetStream's store, a directory created (0700) if
	// missing. Streams kept there (with file storage) outlive the process.
	StoreDir string
	// Logger receives the server's warnings and errors, and its notices
	// and debug lines at debug level (its start-up banner is 30 lines),
	// but for a slow consumer's, a warning.
	// Nil: nothing is logged.
	Logger *slog.Logger
	// MaxPayload is the largest message the server accepts, in bytes.
	// Zero: NATS's default, 1 MiB.
	MaxPayload int32
	// ReadyTimeout bounds the wait for the server to accept connections.
	// Zero: 10s.
	ReadyTimeout time.Duration
}

// Start starts a NATS server with JetStream on, storing in o.StoreDir and
// listening on a random port of 127.0.0.1 only, and waits until it accepts
// connections. It returns the URL to connect to (nats://TOKEN@127.0.0.1:PORT)
// and stop, which shuts the server down, closing its clients'
// connections, and returns once every goroutine of the server has ended
// and its store is flushed and closed. stop may be called more than once
// and from any goroutine.
//
// The server installs no signal handler: the process's own shutdown calls
// stop. It locks the store until stop has returned: a second Start on it,
// in this process or another, fails (errStoreInUse).
func Start(o Options) (clientURL string, stop func(), err error) {
	if o.StoreDir == "" {
		return "", nil, errors.New("embedded NATS server: no store directory")
	}
	if err := os.MkdirAll(o.StoreDir, 0o700); err != nil {
		return "", nil, fmt.Errorf("embedded NATS server: store directory: %w", err)
	}
	unlock, err := lockStore(o.StoreDir)
	if err != nil {
		return "", nil, fmt.Errorf("embedded NATS server: store directory %s: %w", o.StoreDir, err)
	}
	ready := o.ReadyTimeout
	if ready == 0 {
		ready = defaultReadyTimeout
	}
	// The loopback address is reached by every process of the machine
	// (of a pod's containers, of a container on the host's network): a
	// client without this token, made anew at each start and known to
	// the URL returned only, is refused. It could read every event
	// whatever the subscribe tokens, and store events whatever the
	// publish tokens.
	var secret [32]byte
	_, _ = rand.Read(secret[:]) // never fails (crypto/rand)
	token := hex.EncodeToString(secret[:])
	s, err := server.NewServer(&server.Options{
		ServerName:    "ssehub-embedded",
		Host:          "127.0.0.1",
		Port:          server.RANDOM_PORT,
		Authorization: token,
		JetStream:     true,
		StoreDir:      o.StoreDir,
		MaxPayload:    o.MaxPayload,
		NoSigs:        true,
	})
	if err != nil {
		unlock()
		return "", nil, fmt.Errorf("embedded NATS server: %w", err)
	}
	log := newLogger(o.Logger)
	s.SetLoggerV2(log, log.debug, false, false)
	stop = sync.OnceFunc(func() {
		s.Shutdown()
		s.WaitForShutdown()
		unlock()
	})
	s.Start()
	if fatal := log.fatal(); fatal != "" {
		stop()
		return "", nil, fmt.Errorf("embedded NATS server: %s", fatal)
	}
	if !s.ReadyForConnections(ready) {
		stop()
		return "", nil, fmt.Errorf("embedded NATS server: not accepting connections after %v", ready)
	}
	if !s.JetStreamEnabled() {
		stop()
		return "", nil, errors.New("embedded NATS server: JetStream did not start")
	}
	return "nats://" + token + "@" + strings.TrimPrefix(s.ClientURL(), "nats://"), stop, nil
}
