package natsbroker

import (
	"log/slog"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/testlog"
)

// metadataAskEvery is the PingInterval of the tests of the metadata:
// watch asks its question, which writes the metadata again, each
// PingInterval, and nats.go leaves a connection whose server has not
// answered two of its pings. At 100 ms (and 50 ms) a loaded machine
// that held the process back some 200 ms (100 ms) dropped the
// connection: a publish or a subscription of the test was answered 503,
// or Open's creation of the stream failed.
const metadataAskEvery = 500 * time.Millisecond

// metadataWarning is in the warning that an instance could not write
// the stream's metadata.
const metadataWarning = "could not be written in its metadata"

// takeRecreated creates the stream again with the settings of opts, and
// waits until a has taken it.
func takeRecreated(t *testing.T, ns *natsServer, a *instance, opts Options) {
	t.Helper()
	prev := a.broker.cur.Load()
	recreateStream(t, ns, opts)
	waitNewHistory(t, a, prev, "the new stream taken")
}

// What an instance wrote in the stream's metadata, wiped by another
// instance that wrote the stream's config from a copy read before (one
// starting meanwhile with other limits, findStream, or another's share),
// is written again by the instances that know it: nothing else wrote it
// again, and an instance started since resumed an id of the deleted
// stream as one of another history. The operator's own metadata stays.
func TestSharedMetadataWipedByAStaleConfigIsWrittenAgain(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PingInterval = metadataAskEvery
	a := newInstance(t, opts)
	old, fresh := recreateAndMoveOn(t, ns, a, opts)
	st := waitMetadata(t, ns, previousKey, "the deleted stream's offset in the new one's metadata")
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	stale := info.Config
	stale.MaxMsgs = 50
	wipeSharedMetadata(t, ns.operator(t), stale)
	var meta map[string]string
	waitFor(t, "the deleted stream's offset written again", func() bool {
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		meta = info.Config.Metadata
		return meta[previousKey] != ""
	})
	if meta["owner"] != "team-a" {
		t.Fatalf("the operator's metadata is gone: %v", meta)
	}
	b := newInstance(t, opts)
	receives(t, b.subscribe(t, "topic=t", old), []string{fresh})
}

// A NATS user without the permission to update the stream cannot write
// the metadata: the instance warns once, and its watch does not try
// again at each of its questions, each waiting PublishTimeout for an
// answer that never comes, with a warning each.
func TestSharedMetadataNotWrittenAgainWithoutThePermission(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.UPDATE." + DefaultStream}})
	opts := testBrokerOptions(ns)
	opts.URLs = []string{ns.restrictedURL()}
	opts.PingInterval = metadataAskEvery
	opts.PublishTimeout = 500 * time.Millisecond
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	a := newInstance(t, opts)
	takeRecreated(t, ns, a, opts)
	waitFor(t, "the warning", func() bool { return log.Count(metadataWarning) > 0 })
	asked := a.broker.jsAnswers.Load()
	waitFor(t, "watch's questions", func() bool { return a.broker.jsAnswers.Load() >= asked+4 })
	if n := log.Count(metadataWarning); n != 1 {
		t.Fatalf("%d warnings that the metadata could not be written, want 1", n)
	}
}
