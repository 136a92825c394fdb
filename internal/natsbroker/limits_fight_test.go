package natsbroker

import (
	"testing"
	"time"
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
			opts.PingInterval = 50 * time.Millisecond
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
