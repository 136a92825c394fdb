package natsbroker

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// streamNow returns the config of the broker's stream as an operator
// reads it now.
func streamNow(t *testing.T, js jetstream.JetStream) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().Config
}

// startSharing opens an instance with opts, a, has it take the stream
// created again, and waits until it has written the deleted stream's
// offset in the new one's metadata (share).
func startSharing(t *testing.T, ns *natsServer, opts Options) {
	t.Helper()
	a := newInstance(t, opts)
	recreateAndMoveOn(t, ns, a, opts)
	waitMetadata(t, ns, previousKey, "the deleted stream's offset in the new one's metadata")
}

// wipeSharedMetadata writes cfg, read before, as an operator or a stale
// instance would: without the deleted stream's offset an instance shared,
// and with the operator's own metadata, owner team-a.
func wipeSharedMetadata(t *testing.T, op jetstream.JetStream, cfg jetstream.StreamConfig) {
	t.Helper()
	cfg.Metadata = maps.Clone(cfg.Metadata)
	delete(cfg.Metadata, previousKey)
	cfg.Metadata["owner"] = "team-a"
	if _, err := op.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

// waitLimitsAndMetadata waits until the stream has max_msgs maxMsgs and
// both the deleted stream's offset and the operator's owner in its
// metadata, or fails the test after waitLimit, wanting also what.
func waitLimitsAndMetadata(t *testing.T, op jetstream.JetStream, maxMsgs int64, what string) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		cfg := streamNow(t, op)
		if cfg.MaxMsgs == maxMsgs && cfg.Metadata[previousKey] != "" && cfg.Metadata["owner"] == "team-a" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream's max_msgs %d, metadata %v: want b's %d, and %s", cfg.MaxMsgs, cfg.Metadata, maxMsgs, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// An instance writing what it knows in the stream's metadata (share)
// sends the whole config it read just before: the limits an instance
// starting meanwhile with others had set (findStream) were undone, and
// stayed so, the new instance unaware; NATS has no compare-and-set of a
// stream's config. The instance that set them sets them again, and the
// metadata written stays.
func TestLimitsUndoneByAMetadataWriteReadBeforeAreSetAgain(t *testing.T) {
	t.Parallel()
	ns, p, opts := startProxied(t)
	opts.PingInterval = metadataAskEvery
	opts.PublishTimeout = 5 * time.Second
	startSharing(t, ns, opts)
	op := ns.operator(t)

	// A's next write of its metadata, read before B sets its limits,
	// reaches the server after it.
	held, release := p.holdNext(t, "$JS.API.STREAM.UPDATE.")
	wipeSharedMetadata(t, op, streamNow(t, op))
	waitClosed(t, held, "a's write of its metadata again")
	newer := opts
	newer.URLs = []string{ns.ClientURL()}
	newer.HistorySize = 200
	newInstance(t, newer)
	if got := streamNow(t, op).MaxMsgs; got != 200 {
		t.Fatalf("b started with max_msgs %d on the stream, want 200", got)
	}
	release()
	waitMetadata(t, ns, previousKey, "a's metadata written")

	waitLimitsAndMetadata(t, op, 200, "the metadata kept")
}

// Limits set on purpose stay: those of the instance that started last,
// whichever ran before (no instance sets its own again at each question),
// and an operator's edit that keeps the metadata, whichever instance set
// them before.
func TestLimitsSetByTheLastInstanceOrAnOperatorStay(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PingInterval = metadataAskEvery
	a := newInstance(t, opts)
	newer := opts
	newer.HistorySize = 200
	b := newInstance(t, newer)
	stays := func(want int64, what string) {
		t.Helper()
		for _, in := range []*instance{a, b} {
			asked := in.broker.jsAnswers.Load()
			waitFor(t, "watch's questions", func() bool { return in.broker.jsAnswers.Load() >= asked+4 })
		}
		if got := streamNow(t, ns.operator(t)).MaxMsgs; got != want {
			t.Fatalf("max_msgs %d, want %s's %d", got, what, want)
		}
	}
	stays(200, "the last instance")
	op := ns.operator(t)
	edited := streamNow(t, op)
	edited.MaxMsgs = 300
	if _, err := op.UpdateStream(t.Context(), edited); err != nil {
		t.Fatal(err)
	}
	stays(300, "the operator")
}

// A NATS server without room for the stream's bytes refuses its creation
// or its limits' update with "insufficient storage resources available":
// the error names the limits asked for, which the operator compares with
// the server's JetStream storage.
func TestStreamLimitsRefusedAreNamed(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{maxStore: 1 << 20})
	opts := testBrokerOptions(ns)
	opts.HistoryMaxBytes = 2 << 20
	for _, exists := range []bool{false, true} {
		if exists {
			fits := opts
			fits.HistoryMaxBytes = 1 << 19
			createStream(t, ns, fits)
		}
		b, err := Open(t.Context(), opts)
		if b != nil {
			b.Close()
		}
		if err == nil || !strings.Contains(err.Error(), "max_bytes 2097152") || !strings.Contains(err.Error(), "insufficient storage") {
			t.Errorf("stream there %v: Open: %v, want the refusal with the max_bytes asked for", exists, err)
		}
	}
}

// The other way round: an instance setting its limits as it starts
// (findStream) sends the config it read just before, and undoes what
// another instance wrote in the metadata meanwhile. That one writes it
// again, with the new limits.
func TestMetadataUndoneByALimitsWriteReadBeforeIsWrittenAgain(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	pa, pb := startProxy(t, ns), startProxy(t, ns)
	opts := testBrokerOptions(ns)
	opts.URLs = []string{pa.url()}
	opts.PingInterval = metadataAskEvery
	opts.PublishTimeout = 5 * time.Second
	startSharing(t, ns, opts)
	op := ns.operator(t)

	heldA, releaseA := pa.holdNext(t, updateSubject)
	wipeSharedMetadata(t, op, streamNow(t, op))
	waitClosed(t, heldA, "a's write of its metadata")
	// B reads the config without the metadata, and sets its limits once
	// a has written it.
	heldB, releaseB := pb.holdNext(t, updateSubject)
	newer := opts
	newer.URLs = []string{pb.url()}
	newer.HistorySize = 200
	opened := make(chan error, 1)
	go func() {
		b, err := Open(t.Context(), newer)
		if b != nil {
			t.Cleanup(b.Close)
		}
		opened <- err
	}()
	waitClosed(t, heldB, "b's write of its limits")
	releaseA()
	waitMetadata(t, ns, previousKey, "a's metadata written")
	heldA, releaseA = pa.holdNext(t, updateSubject)
	releaseB()
	if err := <-opened; err != nil {
		t.Fatal(err)
	}
	if meta := streamNow(t, op).Metadata; meta[previousKey] != "" {
		t.Fatalf("b's write kept a's metadata: %v", meta)
	}
	waitClosed(t, heldA, "a's metadata written again")
	releaseA()

	waitLimitsAndMetadata(t, op, 200, "a's metadata")
}

// waitClosed waits for c to be closed, or fails the test after waitLimit.
func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(waitLimit):
		t.Fatal("timed out waiting for", what)
	}
}
