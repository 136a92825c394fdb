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
// (limitsKey), with the mark it replaced (replacedKey), which every other
// write carries on as it read them: a write of a copy read before the
// limits were set carries the mark they replaced. The instance that set
// them, and every instance whose limits they are (adoptLimits), finding
// that mark at watch's question (every PingInterval), sets them again
// (keepLimits), with the same mark: once the instance that set them has
// stopped, the others of the same options keep them; an instance that
// finds another mark (limits set since) no longer keeps its own. Such
// writes end: each one leaves a mark newer than the one it answers. A
// write of them again that NATS leaves unanswered is tried again,
// shareRetry PublishTimeouts later. An operator's edit of the limits
// carries the mark on, and stays; so does one that writes the config
// whole with no metadata (a provisioning tool's), when the limits
// replaced had no mark either: a write of an instance's copy read before
// holds what it knows of the stream's past (metadata.go), which such an
// edit does not, and the instance that set them, finding it at watch's
// question, no longer sets them again.
//
// What remains, with no version to compare in NATS's stream config: for
// up to PingInterval the stream keeps the limits undone (smaller ones let
// go of the events past them at once, for good); an operator's write of a
// config saved before the limits were set, with its metadata, is a stale
// copy's, and undone; limits that replaced no mark (set on a stream
// without one) are kept by the instance that set them only, and none
// after a write of them again was denied or refused, nor when the
// stream's metadata had no room for the mark (findStream writes none);
// two instances that set theirs from the same copy, both undone before
// the one whose write came first found the other's mark at watch's
// question, each set theirs again, the last one staying; and an edit with
// no metadata that another instance, knowing the stream's past, wrote
// back in before that question, is taken for an instance's write, and
// undone.

// limitsKey is the key, in the stream's metadata, of the mark of the
// last write of its limits by an instance: the time it was set, and a
// random suffix.
const limitsKey = "ssehub_limits_set"

// replacedKey is the key, in the stream's metadata, of the mark the last
// write of its limits by an instance replaced (limitsKey's before), when
// there was one: with it, every instance whose limits are the stream's
// knows what a stale copy's write would bring back (adoptLimits).
const replacedKey = "ssehub_limits_replaced"

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

// withMark returns a copy of meta, a stream's metadata, with set's mark
// as its limitsKey, and the one it replaced as its replacedKey (none
// when set replaced none).
func withMark(meta map[string]string, set *limitsSet) map[string]string {
	out := maps.Clone(meta)
	if out == nil {
		out = map[string]string{}
	}
	out[limitsKey] = set.mark
	if set.replaced != "" {
		out[replacedKey] = set.replaced
	} else {
		delete(out, replacedKey)
	}
	return out
}

// sameLimits reports whether the stream config have has the limits of
// want.
func sameLimits(have, want jetstream.StreamConfig) bool {
	return have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes && have.Replicas == want.Replicas && have.Duplicates == want.Duplicates
}

// adoptLimits has b keep the limits of the stream of info as though it
// had set them, when they are the options' and their mark names the one
// it replaced (replacedKey), unless b keeps that mark already: the
// instance that set them may stop, and the instances of the same limits
// set them again as it would have (keepLimits). Limits whose mark
// replaced none (set on a stream created with them, or on one without a
// mark) are kept by the instance that set them only: a stream without a
// mark may be an operator's write.
func (b *Broker) adoptLimits(info *jetstream.StreamInfo) {
	meta := info.Config.Metadata
	mark, replaced := meta[limitsKey], meta[replacedKey]
	if mark == "" || replaced == "" || !sameLimits(info.Config, streamConfig(&b.opts)) {
		return
	}
	if set := b.limits.Load(); set != nil && set.created.Equal(info.Created) && set.mark == mark {
		return
	}
	b.limits.Store(&limitsSet{created: info.Created, mark: mark, replaced: replaced})
}

// keepLimits sets the options' limits again on the stream of info, read
// just before by watch, when a write of a copy read before b (or the
// instance whose limits b adopted) set them undid them: the stream has
// the mark they replaced, and other limits. Finding another mark, b no
// longer keeps them.
// A write denied or refused is not tried again; one left unanswered (a
// NATS server busy, as just after a restart) is, at watch's first
// question shareRetry PublishTimeouts later, as share's writes are:
// tend, at each of watch's questions, would write on, a write waiting
// PublishTimeout after another. It runs on tend's goroutine.
func (b *Broker) keepLimits(info *jetstream.StreamInfo) {
	b.adoptLimits(info)
	set := b.limits.Load()
	meta := info.Config.Metadata
	if set == nil || !info.Created.Equal(set.created) || meta[limitsKey] == set.mark {
		return
	}
	if meta[limitsKey] != set.replaced {
		// Another mark: limits another instance (or an operator) set
		// since, from a copy read before b's were, or after. They are
		// the latest: b no longer keeps its own. (Kept, b set them again
		// after a stale copy undid both, last if its write came last.)
		b.limits.CompareAndSwap(set, nil)
		return
	}
	if time.Now().UnixNano() < set.retryAt.Load() {
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
	if sameLimits(cfg, want) {
		return
	}
	undone := []any{"max_msgs", cfg.MaxMsgs, "max_bytes", cfg.MaxBytes, "replicas", cfg.Replicas, "duplicate_window", cfg.Duplicates}
	cfg.MaxMsgs, cfg.MaxBytes, cfg.Replicas, cfg.Duplicates = want.MaxMsgs, want.MaxBytes, want.Replicas, want.Duplicates
	cfg.Metadata = withMark(cfg.Metadata, set)
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
