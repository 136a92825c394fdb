package natsbroker

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/ssehub/ssehub/internal/testlog"
)

// A NATS user without the permission to update the stream is never
// answered its request to write the stream's metadata: the server tells
// of the violation apart, at once. The instance took a stream created
// again only once PublishTimeout had passed (5 s by default), and its
// warning said the wait ran out, not that the permission was missing.
func TestMetadataWriteDeniedIsToldAtOnce(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.UPDATE." + DefaultStream}})
	opts := testBrokerOptions(ns)
	opts.URLs = []string{ns.restrictedURL()}
	// Far past what the renewal takes (its missed heartbeats, 2 s, and
	// its questions): with 5 s, it took 5.09 s beside other packages'
	// tests under -race. Waited out, the write now fails waitNewHistory.
	opts.PublishTimeout = 30 * time.Second
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	a := newInstance(t, opts)
	prev := a.broker.cur.Load()
	recreateStream(t, ns, opts)
	start := time.Now()
	waitNewHistory(t, a, prev, "the new stream taken")
	if took := time.Since(start); took >= opts.PublishTimeout {
		t.Errorf("the new stream taken after %v, the metadata's write waited out PublishTimeout", took)
	}
	waitFor(t, "the warning", func() bool { return log.Count(metadataWarning) > 0 })
	for line := range strings.Lines(log.String()) {
		if strings.Contains(line, metadataWarning) && !strings.Contains(line, `Permissions Violation for Publish to \"$JS.API.STREAM.UPDATE.`) {
			t.Errorf("the warning does not name the permission: %s", line)
		}
	}
}

// A NATS user without the permission to update the stream cannot set its
// limits to the options': start-up stopped once JetStream's 5 s had run
// out, and an instance running when the stream was created again with
// other limits said, at each try, that the stream was gone or not
// answering, "context deadline exceeded". Each says so at once, naming
// the permission.
func TestLimitsUpdateDeniedIsToldAtOnce(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{denied: []string{updateSubject + DefaultStream}})
	opts := testBrokerOptions(ns)
	createStream(t, ns, opts)
	opts.URLs = []string{ns.restrictedURL()}
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	other := opts
	other.HistorySize = 50
	start := time.Now()
	b, err := Open(t.Context(), other)
	if b != nil {
		b.Close()
	}
	if took := time.Since(start); !errors.Is(err, nats.ErrPermissionViolation) || took >= 4*time.Second {
		t.Errorf("Open after %v: %v, want the permissions violation at once", took, err)
	}

	a := newInstance(t, opts)
	recreateStream(t, ns, other)
	const told = "update stream"
	waitFor(t, "the update's error logged", func() bool { return log.Count(told) > 0 })
	for line := range strings.Lines(log.String()) {
		if strings.Contains(line, told) && !strings.Contains(line, "Permissions Violation") {
			t.Errorf("the error does not name the permission: %s", line)
		}
	}
	if a.broker.Ready() == nil {
		t.Error("ready on a stream whose limits are not its own")
	}
}

// A write of the metadata that NATS left unanswered (busy, as just after
// a restart or a restore) was never tried again, as one denied: the
// other instances never learnt what this one knew. It is tried again
// later; one denied is not (TestSharedMetadataNotWrittenAgainWithoutThePermission).
func TestMetadataWriteUnansweredIsTriedAgain(t *testing.T) {
	t.Parallel()
	ns, p, opts := startProxied(t)
	opts.PingInterval = metadataAskEvery
	opts.PublishTimeout = 500 * time.Millisecond
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	a := newInstance(t, opts)
	swallowed := p.swallowRequests(updateSubject)
	takeRecreated(t, ns, a, opts)
	waitClosed(t, swallowed, "the metadata's write")
	waitFor(t, "the warning", func() bool { return log.Count(metadataWarning) > 0 })
	p.passRequests()
	waitMetadata(t, ns, previousKey, "the deleted stream's offset written once NATS answers")
}

// A write of the metadata JetStream refuses (here, an operator's own
// metadata leaves no room: a stream's is at most 128 KiB) is not tried
// again, as an unanswered one is: it would be refused, and warned of, at
// every try.
func TestMetadataWriteRefusedIsNotTriedAgain(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	// Not shorter: pings of 20 ms, with writes left after 100 ms,
	// dropped the connection, and left every write unanswered, on a
	// loaded machine.
	opts.PingInterval = 200 * time.Millisecond
	opts.PublishTimeout = time.Second
	a := newInstance(t, opts)
	prev := a.broker.cur.Load()
	deleteStream(t, ns, DefaultStream)
	cfg := streamConfig(&a.broker.opts)
	cfg.Metadata = map[string]string{"big": strings.Repeat("x", 128*1024-20)}
	createStreamAgain(t, ns, cfg)
	waitNewHistory(t, a, prev, "the new stream taken")
	// Refused (maybe once unanswered first, on a loaded machine: tried
	// again after shareRetry PublishTimeouts).
	waitFor(t, "the writes given up", func() bool { return a.broker.cur.Load().unshared.Load() })
}

// A NATS user without the permission to create the stream, which is
// missing, is never answered: start-up stopped once JetStream's 5 s had
// run out. It stops at once, naming the permission.
func TestStreamCreationDeniedIsToldAtOnce(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.CREATE." + DefaultStream}})
	opts := testBrokerOptions(ns)
	opts.URLs = []string{ns.restrictedURL()}
	start := time.Now()
	b, err := Open(t.Context(), opts)
	if b != nil {
		b.Close()
	}
	if took := time.Since(start); !errors.Is(err, nats.ErrPermissionViolation) || took >= 4*time.Second {
		t.Errorf("Open after %v: %v, want the permissions violation at once", took, err)
	}
}

// A NATS user without the permission to read the stream's info is never
// answered: start-up stopped once askWait (5 s) had run out, saying the
// wait ran out. It stops at once, naming the permission.
func TestStreamInfoDeniedIsToldAtOnce(t *testing.T) {
	t.Parallel()
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.INFO." + DefaultStream}})
	opts := testBrokerOptions(ns)
	createStream(t, ns, opts)
	opts.URLs = []string{ns.restrictedURL()}
	start := time.Now()
	b, err := Open(t.Context(), opts)
	if b != nil {
		b.Close()
	}
	if took := time.Since(start); !errors.Is(err, nats.ErrPermissionViolation) || took >= 4*time.Second {
		t.Errorf("Open after %v: %v, want the permissions violation at once", took, err)
	}
}
