package natsbroker

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stream made beforehand that stores other messages than the events
// published, under their subjects, is a mismatch at start, as other
// settings are (ErrStreamMismatch).
//
// A subject transform stores the events under other subjects: the
// instance took the stream, and acknowledged every publish, which
// reached no subscriber (its consumer reads the hub's subjects).
//
// Subject delete markers: once max_age let go of the last event of a
// topic, the stream stored a marker under its subject, which every
// subscriber of the topic, and every resume from the stream, received as
// an event with no data that nobody published (seen with a max_age of 2
// minutes, the least a stream with the hub's duplicate window may have).
//
// A message counter (allow_msg_counter) refuses every message but a
// counter's increment: the instance took the stream, and answered every
// publish 503, "the event store is unreachable", while ready.
func TestStreamStoringOtherMessagesIsAMismatch(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, told string
		edit       func(*jetstream.StreamConfig)
	}{
		{"subject transform", "subject transform", func(cfg *jetstream.StreamConfig) {
			cfg.SubjectTransform = &jetstream.SubjectTransformConfig{Source: "ssehub.>", Destination: "moved.>"}
		}},
		{"subject delete markers", "subject_delete_marker_ttl", func(cfg *jetstream.StreamConfig) {
			cfg.MaxAge = 2 * time.Minute
			cfg.AllowMsgTTL = true
			cfg.SubjectDeleteMarkerTTL = time.Second
		}},
		{"message counter", "allow_msg_counter", func(cfg *jetstream.StreamConfig) {
			cfg.AllowMsgCounter = true
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := startNATS(t)
			opts := testBrokerOptions(ns)
			made := opts
			made.setDefaults()
			cfg := streamConfig(&made)
			c.edit(&cfg)
			createStreamAgain(t, ns, cfg)
			b, err := Open(t.Context(), opts)
			if b != nil {
				b.Close()
			}
			if !errors.Is(err, ErrStreamMismatch) || !strings.Contains(err.Error(), c.told) {
				t.Fatalf("Open: %v, want %v naming the %s", err, ErrStreamMismatch, c.told)
			}
		})
	}
}
