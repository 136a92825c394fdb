package natsbroker

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every instance knows a stream's ids from its creation time. What an
// instance learns of the stream's past while it runs, it writes in the
// stream's metadata, for the instances that did not see it (started
// since, or lagging): the id offset of the stream deleted before it
// (previousKey), so that an id of that one resumes from the stream's
// start on every instance, and the ids of events a restore lost (lostKey,
// lost.go). Each instance reads them as it takes the stream (newHistory),
// at each read of the stream's info by a resume (info) and at each of
// watch's questions, every PingInterval; there, finding the metadata
// without what it knows, it writes it again (shareAgain): the config has
// no version, and an instance that wrote it from a copy read before
// (findStream, starting with other limits) wiped it. The NATS user needs the
// permission to update the stream, as for its limits (findStream).
//
// The metadata read holds NATS's own keys too (_nats.ver, _nats.level,
// _nats.req.level), which every write here and in limits.go sends back:
// nats-server (2.11 on) drops the first two from an update and works the
// third out again, and counts them all in its cap as sent
// (metadataSize).

// previousKey is the key, in the stream's metadata, of the lowest id
// offset of a stream of its name deleted before it, in decimal.
const previousKey = "ssehub_previous_offset"

// learnPrevious has h take offset, an id offset of a history before it,
// when it is below h's own and the one h has. Safe for concurrent use.
func (h *history) learnPrevious(offset uint64) {
	for {
		have := h.prevFrom.Load()
		if offset == 0 || offset >= h.ids.offset || have != 0 && have <= offset {
			return
		}
		if h.prevFrom.CompareAndSwap(have, offset) {
			return
		}
	}
}

// learnShared has h learn what meta, its stream's metadata, holds.
func (h *history) learnShared(meta map[string]string) {
	if v, err := strconv.ParseUint(meta[previousKey], 10, 64); err == nil {
		h.learnPrevious(v)
	}
	h.learnLost(parseLost(meta)...)
}

// shared returns a copy of meta, the metadata of h's stream, with what h
// knows written in.
func (h *history) shared(meta map[string]string) map[string]string {
	out := maps.Clone(meta)
	if out == nil {
		out = map[string]string{}
	}
	if prev := h.prevFrom.Load(); prev != 0 {
		out[previousKey] = strconv.FormatUint(prev, 10)
	}
	if rs := h.lostRanges(); len(rs) > 0 {
		out[lostKey] = formatLost(rs)
	}
	return out
}

// shareRetry is how many PublishTimeouts share waits, after a write
// that went unanswered, before it writes again: tend, which asks for it
// at watch's questions, spends at most a fifth of its time on such
// writes, one at a time.
const shareRetry = 4

// share writes in the metadata of h's stream what h knows that it does
// not hold, with what it holds (learnt by h too), unless it is another
// stream. The stream's config has no version to update it against: it
// checks what it wrote, and writes again, twice at most, when another
// instance wrote meanwhile. Its write, of the config just read, may undo
// the limits another instance set meanwhile: that one sets them again
// (limits.go). It gives up within PublishTimeout, or once the server
// tells of a permissions violation for the update, which it never
// answers, and logs a warning: the other instances do not know. Denied,
// or refused by JetStream, it does not write again (unshared: each of
// watch's questions would warn). Unanswered (a NATS server busy, as just
// after a restart or a restore, when it learns the most), it does not
// write again for shareRetry PublishTimeouts: tend, at each of watch's
// questions, would write on, a write waiting PublishTimeout after
// another.
func (b *Broker) share(ctx context.Context, h *history) {
	if h.prevFrom.Load() == 0 && len(h.lostRanges()) == 0 || time.Now().UnixNano() < h.shareAt.Load() {
		return
	}
	ask, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	for range 3 {
		info, err := h.stream.Info(ask)
		if err == nil && !info.Created.Equal(h.created) {
			return
		}
		if err == nil {
			h.learnShared(info.Config.Metadata)
			cfg := info.Config
			if cfg.Metadata = h.shared(info.Config.Metadata); maps.Equal(cfg.Metadata, info.Config.Metadata) {
				return
			}
			_, err = b.updateStream(ask, cfg)
		}
		if err != nil {
			if ctx.Err() == nil { // not Close
				retry := "never"
				var refused *jetstream.APIError
				if errors.Is(err, nats.ErrPermissionViolation) || errors.As(err, &refused) && !unavailable(err) {
					h.unshared.Store(true)
				} else {
					wait := shareRetry * b.opts.PublishTimeout
					h.shareAt.Store(time.Now().Add(wait).UnixNano())
					retry = wait.String()
				}
				b.opts.Logger.Warn("nats stream: what this instance knows of its past could not be written in its metadata for the other instances",
					"stream", b.opts.Stream, "err", err, "retry_in", retry)
			}
			return
		}
	}
}
