package natsbroker

import (
	"maps"
	"strings"
	"testing"
)

// A stream made beforehand without the mark (by an operator's tool, or a
// hub from before the mark), whose limits an instance set as it took it:
// the operator then applies the stream's config again as the tool keeps
// it, with other limits and no metadata (`nats stream add --config`, a
// provisioning tool), as NATS takes it: whole. The instance took the
// mark-less metadata for a write of a copy read before it set its
// limits, and set them again, at each of the tool's writes; so too once
// it had written back what it knows of the stream's past (a stream of
// its name deleted before), which the tool's write had wiped.
func TestLimitsAnOperatorWroteWithoutMetadataStay(t *testing.T) {
	t.Parallel()
	for _, past := range []bool{false, true} {
		name := "no past"
		if past {
			name = "a past known"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ns := startNATS(t)
			opts := testBrokerOptions(ns)
			opts.PingInterval = metadataAskEvery
			made := opts
			made.HistorySize = 300
			var a *instance
			if past {
				a = newInstance(t, opts)
				recreateAndMoveOn(t, ns, a, made)
				waitMetadata(t, ns, previousKey, "the deleted stream's offset in the new one's metadata")
			} else {
				createStream(t, ns, made)
				a = newInstance(t, opts)
			}
			op := ns.operator(t)
			if got := streamNow(t, op); got.MaxMsgs != 100 || got.Metadata[limitsKey] == "" {
				t.Fatalf("a took the stream: max_msgs %d, metadata %v, want its 100 and a mark", got.MaxMsgs, got.Metadata)
			}
			made.setDefaults()
			if _, err := op.UpdateStream(t.Context(), streamConfig(&made)); err != nil {
				t.Fatal(err)
			}
			if past {
				waitMetadata(t, ns, previousKey, "a's metadata written again")
			}
			asked := a.broker.jsAnswers.Load()
			waitFor(t, "watch's questions", func() bool { return a.broker.jsAnswers.Load() >= asked+4 })
			if got := streamNow(t, op).MaxMsgs; got != 300 {
				t.Fatalf("max_msgs %d, want the operator's 300", got)
			}
		})
	}
}

// A stream an operator made with metadata just below NATS's cap (128
// KiB), and other limits: the instance starting set its limits with the
// mark added, past the cap, and NATS refused the update, "stream
// metadata exceeds maximum size": start-up stopped, where the limits
// alone fit.
func TestLimitsSetOnAStreamWithMetadataNearTheCap(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	made := opts
	made.HistorySize = 300
	createStream(t, ns, made)
	op := ns.operator(t)
	cfg := streamNow(t, op)
	cfg.Metadata = maps.Clone(cfg.Metadata)
	cfg.Metadata["blob"] = ""
	cfg.Metadata["blob"] = strings.Repeat("x", 128*1024-20-metadataSize(cfg.Metadata))
	if _, err := op.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	newInstance(t, opts)
	if got := streamNow(t, op); got.MaxMsgs != 100 || len(got.Metadata["blob"]) != len(cfg.Metadata["blob"]) {
		t.Fatalf("max_msgs %d, blob of %d bytes: want the instance's 100, and the operator's metadata", got.MaxMsgs, len(got.Metadata["blob"]))
	}
}
