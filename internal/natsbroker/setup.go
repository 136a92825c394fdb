package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// ErrStreamMismatch reports a stream that exists with subjects or storage
// other than the options ask for, or that does not keep its events up to
// its limits (retention, discard policy, max_msgs_per_subject), store
// them (allow_msg_counter) and acknowledge them (no_ack), or store them
// alone under the subjects they were published to (a subject transform,
// subject delete markers).
// Start-up stops rather than change them: another deployment may own it.
var ErrStreamMismatch = errors.New("stream exists with other settings")

// errNoJetStream says why a JetStream request failed when noJetStream.
var errNoJetStream = errors.New("no JetStream answered: is it enabled on the NATS server (-js), and for the account connected with?")

// noJetStream reports whether err, a JetStream request's, says that the
// NATS server has no JetStream for the connection's account: none
// answered (no -js), or it says so.
func noJetStream(err error) bool {
	return errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount)
}

// streamConfig is the stream the options ask for.
func streamConfig(o *Options) jetstream.StreamConfig {
	storage := jetstream.FileStorage
	if o.Storage == "memory" {
		storage = jetstream.MemoryStorage
	}
	maxBytes := o.HistoryMaxBytes
	switch {
	case maxBytes <= 0:
		maxBytes = -1
	case o.MaxEventBytes > 0:
		// The stream lets go of its oldest events, the new one
		// included, until it holds MaxBytes: an event that takes more
		// alone was acknowledged, then gone with every event before it.
		// It holds the largest one, as the local history keeps its
		// newest whatever its size.
		maxBytes = max(maxBytes, maxStoredBytes(o.MaxEventBytes))
	}
	return jetstream.StreamConfig{
		Name:        o.Stream,
		Description: "ssehub events",
		Subjects:    []string{o.SubjectPrefix + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardOld,
		Storage:     storage,
		Replicas:    o.Replicas,
		MaxMsgs:     int64(o.HistorySize),
		MaxBytes:    maxBytes,
		// How long a publish's idempotency key (its Nats-Msg-Id) is
		// remembered: JetStream's default, set so that it stays the
		// hub's.
		Duplicates: stream.IdempotencyWindow,
	}
}

// updateSubject, createSubject and infoSubject are the subjects of a
// stream's update, creation and info, its name appended: the NATS user
// needs the permission to publish there to set the stream's limits and
// write its metadata, to create it, and to check it.
const (
	updateSubject = "$JS.API.STREAM.UPDATE."
	createSubject = "$JS.API.STREAM.CREATE."
	infoSubject   = "$JS.API.STREAM.INFO."
)

// updateStream updates b's stream to cfg, as unlessDenied asks.
func (b *Broker) updateStream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	return unlessDenied(ctx, b, updateSubject+b.opts.Stream, func(ctx context.Context) (jetstream.Stream, error) {
		return b.js.UpdateStream(ctx, cfg)
	})
}

// unlessDenied asks ask, a request to subject. The server does not answer
// a NATS user without the permission, and tells of the violation apart:
// that is the error then, at once, rather than ctx's end.
func unlessDenied[T any](ctx context.Context, b *Broker, subject string, ask func(context.Context) (T, error)) (T, error) {
	asking, stop := b.untilDenied(ctx, subject)
	defer stop()
	v, err := ask(asking)
	if cause := context.Cause(asking); err != nil && errors.Is(cause, nats.ErrPermissionViolation) {
		var zero T
		return zero, cause
	}
	return v, err
}

// limitsText names the limits of cfg, a stream's config, for an error:
// a NATS server may refuse them ("insufficient storage resources
// available", "replicas > 1 not supported in non-clustered mode")
// without saying which.
func limitsText(cfg jetstream.StreamConfig) string {
	return fmt.Sprintf("max_msgs %d, max_bytes %d, replicas %d, duplicate window %s", cfg.MaxMsgs, cfg.MaxBytes, cfg.Replicas, cfg.Duplicates)
}

// maxStoredBytes bounds what the stream stores for an event whose
// publish body had maxEventBytes: its data, up to 3 times as many bytes
// (each invalid UTF-8 byte becomes U+FFFD), its subject (at most 511
// bytes), its headers (type and idempotency key, under 500) and the
// store's own bytes for a message.
func maxStoredBytes(maxEventBytes int) int64 {
	return 3*int64(maxEventBytes) + 2048
}

// errCodeStreamCreate is nats-server's error code for a stream creation
// that failed for a reason it has no code of its own for
// (JSStreamCreateErrF, its description the reason); nats.go names none.
const errCodeStreamCreate jetstream.ErrorCode = 10049

// storeFailed reports whether err is JetStream's answer that it failed
// to create the stream's store ("error creating store for stream: ..."),
// the one reason under errCodeStreamCreate that asking again may change.
func storeFailed(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamCreate &&
		strings.HasPrefix(apiErr.Description, "error creating store for stream")
}

// errCodeNoPeers is nats-server's error code for a stream it finds no
// servers enough to place on (JSClusterNoPeersErrF); nats.go names none.
const errCodeNoPeers jetstream.ErrorCode = 10005

// peersOffline reports whether err is JetStream's answer that it finds no
// servers enough to place the stream on, one of them offline ("no
// suitable peers for placement, peer offline"): so a cluster's meta
// leader refuses an R3 stream's creation from the moment a server that
// restarts has its routes back until its first statistics reach it
// (about 300 ms), and while it has not heard from a server since it was
// elected. Its other reasons (tags, storage, too few servers) stay.
func peersOffline(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeNoPeers && strings.Contains(apiErr.Description, "peer offline")
}

// errCodeStreamOffline is nats-server's error code for a stream whose
// servers are all offline (JSStreamOfflineErr); nats.go names none.
const errCodeStreamOffline jetstream.ErrorCode = 10118

// streamOffline reports whether err is JetStream's answer that the
// stream is offline: so a cluster's meta leader answers a stream's
// lookup while every server of the stream is away, an R1 stream's one
// server restarting. A stream offline for a reason (10194: a server too
// old for it) is not.
func streamOffline(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == errCodeStreamOffline
}

// storeErrorWait is the pause before a stream's creation is asked again
// after a store error (ensureStream).
const storeErrorWait = 50 * time.Millisecond

// ensureStream returns the stream, created if missing, else as
// findStream does (so too when the creation finds it there after all).
// Just after a stream of its name was deleted,
// nats-server 2.15 may fail to create the new one's store (10049, "error
// creating store for stream") while it still removes the old one's, and
// then succeeds when asked again: the creation is asked again, for
// askWait at most. Any other failure under that code fails at once. Taking the first answer, an instance that started then
// failed to. A creation left unanswered (a cluster's meta leader busy,
// or changing) is asked again each askEvery, as a lookup is: it waited
// for the whole start, and the start failed
// (TestOpenCreatesTheStreamAgainWhenItsCreationIsUnanswered). A NATS user
// without the permission to create it gets the permissions violation as
// the error, at once.
func (b *Broker) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	js, o := b.js, &b.opts
	st, err := b.findStream(ctx)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		want := streamConfig(o)
		want.Metadata = map[string]string{limitsKey: newLimitsMark()}
		retry, cancel := context.WithTimeout(ctx, askWait)
		defer cancel()
		for {
			st, err = unlessDenied(ctx, b, createSubject+o.Stream, func(ctx context.Context) (jetstream.Stream, error) {
				// Asked again while unanswered: JetStream answers a
				// repeat with the stream the first one created.
				return askAgain(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.CreateStream(ctx, want) })
			})
			if !storeFailed(err) || pause(retry, storeErrorWait) != nil {
				break
			}
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			// Created since it was found missing (by another instance
			// that started with other limits), or there all along (a
			// JetStream that had not taken it back yet answered "not
			// found"): checked and its limits set, as one found.
			return b.findStream(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("nats: create stream %q with %s: %w", o.Stream, limitsText(want), err)
		}
		o.Logger.Info("nats stream created", "stream", o.Stream, "subjects", want.Subjects, "storage", o.Storage)
		return st, nil
	}
	return st, err
}

// findStream returns the stream, or an error wrapping
// jetstream.ErrStreamNotFound when it is missing. It must have the
// subjects, storage, retention and discard policy asked for, no limit per
// subject, no subject transform nor subject delete markers, and store and
// acknowledge the events published (not a message counter), else
// ErrStreamMismatch; its limits, replicas and duplicate window are
// updated to the options', with a new mark of that write in its metadata,
// which b keeps (limits.go), when the metadata has room for it; an
// update left unanswered is asked again each askEvery. A NATS
// user without the permission to read the stream's info, or to update it,
// gets the permissions violation as the error, at once.
func (b *Broker) findStream(ctx context.Context) (jetstream.Stream, error) {
	js, o := b.js, &b.opts
	want := streamConfig(o)
	st, err := unlessDenied(ctx, b, infoSubject+o.Stream, func(ctx context.Context) (jetstream.Stream, error) {
		return askAgain(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, o.Stream) })
	})
	if noJetStream(err) {
		return nil, fmt.Errorf("nats: stream %q: %w %w", o.Stream, errNoJetStream, err)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: stream %q: %w", o.Stream, err)
	}
	have := st.CachedInfo().Config
	switch {
	case !slices.Equal(have.Subjects, want.Subjects):
		return nil, fmt.Errorf("nats stream %q has subjects %v, not %v (the subject prefix): %w", o.Stream, have.Subjects, want.Subjects, ErrStreamMismatch)
	case have.Storage != want.Storage:
		return nil, fmt.Errorf("nats stream %q has %s storage, not %s (nats.storage): %w", o.Stream, have.Storage, want.Storage, ErrStreamMismatch)
	case have.Retention != want.Retention:
		// Interest: each event is gone once every instance's consumer
		// has read it. WorkQueue: no consumer without acknowledgements.
		return nil, fmt.Errorf("nats stream %q has %s retention, not %s (the hub keeps its events up to its limits): %w", o.Stream, have.Retention, want.Retention, ErrStreamMismatch)
	case have.Discard != want.Discard:
		// DiscardNew: full, it refuses every publish.
		return nil, fmt.Errorf("nats stream %q has discard policy %s, not %s (the hub lets go of its oldest events): %w", o.Stream, have.Discard, want.Discard, ErrStreamMismatch)
	case have.NoAck:
		return nil, fmt.Errorf("nats stream %q has no_ack set: it acknowledges no publish: %w", o.Stream, ErrStreamMismatch)
	case have.AllowMsgCounter:
		// It refuses every message but a counter's increment: every
		// publish was answered 503, "unreachable".
		return nil, fmt.Errorf("nats stream %q has allow_msg_counter set: it stores counters' increments only, not events: %w", o.Stream, ErrStreamMismatch)
	case have.SubjectTransform != nil && (have.SubjectTransform.Source != "" || have.SubjectTransform.Destination != ""):
		// The events stored under other subjects than they were
		// published to: the consumer, reading the hub's, got none.
		return nil, fmt.Errorf("nats stream %q has a subject transform (%q to %q): the hub reads its events under the subjects they were published to: %w",
			o.Stream, have.SubjectTransform.Source, have.SubjectTransform.Destination, ErrStreamMismatch)
	case have.SubjectDeleteMarkerTTL > 0:
		// A topic's last event let go of by max_age leaves a marker
		// under its subject: an event with no data nobody published.
		return nil, fmt.Errorf("nats stream %q has subject_delete_marker_ttl %s: the stream would store messages nobody published, under the topics' subjects: %w", o.Stream, have.SubjectDeleteMarkerTTL, ErrStreamMismatch)
	case have.MaxMsgsPerSubject > 0:
		// Deleted from within, a topic's older events would be ids with
		// no event to every resume: gaps no client is told of.
		return nil, fmt.Errorf("nats stream %q has max_msgs_per_subject %d: the hub keeps a topic's events up to the stream's limits: %w", o.Stream, have.MaxMsgsPerSubject, ErrStreamMismatch)
	}
	if sameLimits(have, want) {
		b.adoptLimits(st.CachedInfo())
		return st, nil
	}
	set := &limitsSet{created: st.CachedInfo().Created, mark: newLimitsMark(), replaced: have.Metadata[limitsKey]}
	have.MaxMsgs, have.MaxBytes, have.Replicas, have.Duplicates = want.MaxMsgs, want.MaxBytes, want.Replicas, want.Duplicates
	if meta := withMark(have.Metadata, set); metadataSize(meta) <= maxMetadataSize {
		have.Metadata = meta
	} else {
		// No room for the mark (an operator's metadata near the cap):
		// the limits are set, not kept (limits.go).
		have.Metadata = maps.Clone(have.Metadata)
		delete(have.Metadata, limitsKey)
		delete(have.Metadata, replacedKey)
		set = nil
	}
	// Asked again while unanswered (a cluster's meta leader busy, or
	// changing), as the creation is: asked once, it waited for the
	// whole start and failed it
	// (TestOpenUpdatesTheStreamAgainWhenItsUpdateIsUnanswered).
	// JetStream answers a repeat of the same config as the first; one
	// handled after another instance's write is the latest write, as a
	// late first one would be (limits.go).
	st, err = unlessDenied(ctx, b, updateSubject+o.Stream, func(ctx context.Context) (jetstream.Stream, error) {
		return askAgain(ctx, func(ctx context.Context) (jetstream.Stream, error) { return js.UpdateStream(ctx, have) })
	})
	if err != nil {
		return nil, fmt.Errorf("nats: update stream %q limits to %s: %w", o.Stream, limitsText(want), err)
	}
	b.limits.Store(set)
	o.Logger.Info("nats stream limits updated", "stream", o.Stream, "max_msgs", want.MaxMsgs, "max_bytes", want.MaxBytes, "replicas", want.Replicas, "duplicate_window", want.Duplicates)
	return st, nil
}
