package natsbroker

import (
	"log/slog"
	"strings"
	"testing"
	"time"

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
	opts.PublishTimeout = 5 * time.Second
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
	const warning = "could not be written in its metadata"
	waitFor(t, "the warning", func() bool { return log.Count(warning) > 0 })
	for line := range strings.Lines(log.String()) {
		if strings.Contains(line, warning) && !strings.Contains(line, `Permissions Violation for Publish to \"$JS.API.STREAM.UPDATE.`) {
			t.Errorf("the warning does not name the permission: %s", line)
		}
	}
}
