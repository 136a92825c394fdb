package natsbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"maps"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The stream's limits (max_msgs, max_bytes, replicas, duplicate window)
// are the options' of the instance that set them last: one that started,
// or took a new stream, with other limits (findStream). NATS updates a
// stream's config whole, with no version to compare and set, and every
// write of an instance is of a copy it read just before: its limits set
// (findStream), or what it knows written in the metadata (share). One
// read before another instance set its limits undid them, and they
// stayed undone, that instance unaware.
//
// So each write of the limits leaves a mark in the stream's metadata
// (limitsKey), which every other write carries on as it read it: a write
// of a copy read before the limits were set carries the mark they
// replaced. The instance that set them, finding that mark at watch's
// question (every PingInterval), sets them again (keepLimits). Such
// writes end: each one leaves a mark newer than the one it answers. An
// operator's edit of the limits carries the mark on, and stays; so does
// one that writes the config whole with no metadata (a provisioning
// tool's), when the limits replaced had no mark either: a write of an
// instance's copy read before holds what it knows of the stream's past
// (metadata.go), which such an edit does not, and the instance that set
// them, finding it at watch's question, no longer sets them again. What
// remains: for up to PingInterval the stream keeps the limits undone;
// once the instance that set them has stopped, none sets them again (an
// instance that found the stream with its limits wrote no mark), nor
// after a write of them again was denied or refused (one left unanswered
// is tried again), nor when the stream's metadata had no room for the
// mark (findStream writes none); two instances that set theirs from the
// same copy, both undone, each set theirs again, the last one staying;
// and an edit with no metadata that another instance, knowing the
// stream's past, wrote back in before that question, is taken for an
// instance's write, and undone.

// limitsKey is the key, in the stream's metadata, of the mark of the
// last write of its limits by an instance: the time it was set, and a
// random suffix.
const limitsKey = "ssehub_limits_set"

// maxMetadataSize is the size of a stream's metadata NATS takes at most,
// counted by metadataSize (nats-server's JSMaxMetadataLen).
const maxMetadataSize = 128 * 1024

// metadataSize is the size NATS counts of meta, a stream's metadata (as
// read, with the server's own keys, which it counts too): its keys' and
// values' bytes.
func metadataSize(meta map[string]string) int {
	n := 0
	for k, v := range meta {
		n += len(k) + len(v)
	}
	return n
}

// limitsSet is a write of the options' limits by an instance.
type limitsSet struct {
	created  time.Time // the stream's creation time
	mark     string    // the mark written with them
	replaced string    // the stream's mark before, "" for none

	// retryAt is when keepLimits may write them again after a write
	// left unanswered, in Unix nanoseconds; 0 before.
	retryAt atomic.Int64
}

// newLimitsMark returns a new mark for limitsKey.
func newLimitsMark() string {
	return time.Now().UTC().Format(time.RFC3339Nano) + "/" + rand.Text()[:8]
}

// withMark returns a copy of meta, a stream's metadata, with mark as its
// limitsKey.
func withMark(meta map[string]string, mark string) map[string]string {
	out := maps.Clone(meta)
	if out == nil {
		out = map[string]string{}
	}
	out[limitsKey] = mark
	return out
}

// keepLimits sets the options' limits again on the stream of info, read
// just before by watch, when a write of a copy read before b set them
// undid them: the stream has the mark they replaced, and other limits.
// A write denied or refused is not tried again; one left unanswered (a
// NATS server busy, as just after a restart) is, at watch's first
// question shareRetry PublishTimeouts later, as share's writes are:
// each of watch's questions would wait PublishTimeout.
func (b *Broker) keepLimits(info *jetstream.StreamInfo) {
	set := b.limits.Load()
	meta := info.Config.Metadata
	if set == nil || !info.Created.Equal(set.created) || meta[limitsKey] != set.replaced || time.Now().UnixNano() < set.retryAt.Load() {
		return
	}
	if _, known := meta[previousKey]; set.replaced == "" && !known && meta[lostKey] == "" {
		// Not an instance's write (share's holds one of them): an
		// operator's. Its limits stay, as the metadata written again
		// without the mark, when b knows the stream's past, would not.
		b.limits.CompareAndSwap(set, nil)
		return
	}
	cfg, want := info.Config, streamConfig(&b.opts)
	if cfg.MaxMsgs == want.MaxMsgs && cfg.MaxBytes == want.MaxBytes && cfg.Replicas == want.Replicas && cfg.Duplicates == want.Duplicates {
		return
	}
	undone := []any{"max_msgs", cfg.MaxMsgs, "max_bytes", cfg.MaxBytes, "replicas", cfg.Replicas, "duplicate_window", cfg.Duplicates}
	cfg.MaxMsgs, cfg.MaxBytes, cfg.Replicas, cfg.Duplicates = want.MaxMsgs, want.MaxBytes, want.Replicas, want.Duplicates
	cfg.Metadata = withMark(cfg.Metadata, set.mark)
	untilClose, cancel := b.untilClose()
	defer cancel()
	ctx, cancelAsk := context.WithTimeout(untilClose, b.opts.PublishTimeout)
	defer cancelAsk()
	if _, err := b.updateStream(ctx, cfg); err != nil {
		if untilClose.Err() == nil {
			retry := "never"
			var refused *jetstream.APIError
			if errors.Is(err, nats.ErrPermissionViolation) || errors.As(err, &refused) && !unavailable(err) {
				b.limits.CompareAndSwap(set, nil)
			} else {
				// Unanswered, or JetStream unavailable: tried again
				// later (the same mark: a write that was applied after
				// all leaves nothing to do).
				wait := shareRetry * b.opts.PublishTimeout
				set.retryAt.Store(time.Now().Add(wait).UnixNano())
				retry = wait.String()
			}
			b.opts.Logger.Warn("nats stream: another instance wrote the stream's config from a copy read before this instance set its limits, and they could not be set again",
				"stream", b.opts.Stream, "err", err, "retry_in", retry)
		}
		return
	}
	b.opts.Logger.Warn("nats stream limits set again: another instance had written the stream's config from a copy read before this instance set them",
		"stream", b.opts.Stream, "max_msgs", want.MaxMsgs, "max_bytes", want.MaxBytes, "replicas", want.Replicas, "duplicate_window", want.Duplicates,
		slog.Group("undone", undone...))
}
