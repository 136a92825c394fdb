package handler

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/natsbroker"
	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testpass"
)

// testBroker is what the hub tests do with the broker of their hub:
// everything the handler uses, and Close. stream.Memory and
// natsbroker.Broker both are one.
type testBroker interface {
	Broker
	Close()
}

// testNATS is the NATS server of the pass on the NATS broker, nil in the
// passes on the memory broker. Every test of that pass has a stream of
// its own on it (newNATSBroker).
var testNATS *natsServer

// natsWait bounds the NATS pass's waits for its server: start-up, the
// admin connection (not nats.go's 2 s, nats.DefaultTimeout, which the
// in-process server may take longer than on a loaded machine) and the
// admin's JetStream requests.
const natsWait = 10 * time.Second

// natsServer is a NATS server with JetStream in the test process, on a
// loopback port, storing in a temporary directory, and a connection that
// deletes the tests' streams.
type natsServer struct {
	*server.Server
	dir     string
	admin   *nats.Conn
	js      jetstream.JetStream
	streams atomic.Uint64 // streams created, for their names
}

// natsDirPrefix starts the name of startNATS's store folder in the
// temporary directory, followed by the pid of the test process that made
// it and a dash (testpass.MkdirOwned).
const natsDirPrefix = "ssehub-handler-nats-pid"

// removeStaleNATSDirs removes the store folders of startNATS in tmp whose
// test process is gone (testpass.RemoveStale): stop removes its own, but
// a test binary killed (by go test at its -timeout, by a signal) cannot,
// and left each one behind.
func removeStaleNATSDirs(tmp string) {
	testpass.RemoveStale(tmp, natsDirPrefix, os.RemoveAll)
}

// startNATS starts the server of the NATS pass.
func startNATS() (*natsServer, error) {
	dir, err := testpass.MkdirOwned(natsDirPrefix)
	if err != nil {
		return nil, err
	}
	ns := &natsServer{dir: dir}
	ns.Server, err = server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true,
	})
	if err != nil {
		ns.stop()
		return nil, err
	}
	go ns.Start()
	if !ns.ReadyForConnections(natsWait) {
		ns.stop()
		return nil, fmt.Errorf("nats server not ready")
	}
	if err := ns.connectAdmin(); err != nil {
		ns.stop()
		return nil, err
	}
	return ns, nil
}

// connectAdmin opens the connection that deletes the tests' streams, and
// creates one stream that is never deleted: the server removes its
// account's store directory, in a goroutine of its own, when the last
// stream goes, and a stream created meanwhile fails ("could not create
// storage directory").
func (ns *natsServer) connectAdmin() error {
	var err error
	if ns.admin, err = nats.Connect(ns.ClientURL(), nats.Timeout(natsWait)); err != nil {
		return err
	}
	if ns.js, err = jetstream.New(ns.admin, jetstream.WithDefaultTimeout(natsWait)); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsWait)
	defer cancel()
	_, err = ns.js.CreateStream(ctx, jetstream.StreamConfig{Name: "KEEP", Subjects: []string{"keep.>"}})
	return err
}

// stop shuts the server down and removes its store.
func (ns *natsServer) stop() {
	if ns.admin != nil {
		ns.admin.Close()
	}
	if ns.Server != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
	os.RemoveAll(ns.dir)
}

// newTestBroker is the broker of one test's hub, closed when the test
// ends: a memory broker with opts, or in the NATS pass a NATS broker with
// the settings of opts that it has too (all but FirstID: its ids are its
// stream's).
func newTestBroker(t testing.TB, opts stream.MemoryOptions) testBroker {
	t.Helper()
	if testNATS == nil {
		b := stream.NewMemory(opts)
		t.Cleanup(b.Close)
		return b
	}
	return testNATS.newBroker(t, opts)
}

// newBroker opens a NATS broker on a stream and subject prefix of the
// test's own, so that no test sees another's events; the stream is
// deleted when the test ends. Each of with changes the broker's options
// before it opens.
func (ns *natsServer) newBroker(t testing.TB, opts stream.MemoryOptions, with ...func(*natsbroker.Options)) *natsbroker.Broker {
	t.Helper()
	n := ns.streams.Add(1)
	name := fmt.Sprintf("T%d", n)
	o := natsbroker.Options{
		URLs:             []string{ns.ClientURL()},
		Stream:           name,
		SubjectPrefix:    fmt.Sprintf("t%d", n),
		HistorySize:      opts.HistorySize,
		HistoryMaxBytes:  int64(opts.HistoryMaxBytes),
		SubscriberBuffer: opts.SubscriberBuffer,
		MaxSubscribers:   opts.MaxSubscribers,
		Logger:           slog.New(slog.DiscardHandler),
	}
	for _, f := range with {
		f(&o)
	}
	b, err := natsbroker.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), natsWait)
		defer cancel()
		if err := ns.js.DeleteStream(ctx, name); err != nil {
			t.Errorf("delete stream %s: %v", name, err)
		}
	})
	return b
}

// skipOnNATS skips a test in the pass on the NATS broker, saying why.
func skipOnNATS(t *testing.T, why string) {
	t.Helper()
	if testNATS != nil {
		t.Skip("on the memory broker only: " + why)
	}
}

// synctestWhy is why the hub tests in a synctest bubble run on the memory
// broker only: a NATS connection's goroutines wait on real sockets, which
// the bubble's fake clock never sees as blocked, so synctest.Wait waits
// forever; and the broker's consumer outside a bubble may not send on the
// channels of subscriptions made in it.
const synctestWhy = "a synctest bubble cannot hold a real NATS connection"
