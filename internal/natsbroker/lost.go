package natsbroker

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// A stream restored from a backup (`nats stream restore`, or a store put
// back while NATS was stopped), or put back by a NATS server that lost its
// last writes, keeps its creation time and so its ids: the events it lost
// had ids that the new events stored under their sequences take again. A
// client whose last event id is of a lost event has seen events that are
// gone and maybe not those stored in their place; resumed after its id,
// it would pass over them without a word. An instance that had handed out
// such events, delivered by its consumer or read from the stream's pages
// by a resume ahead of it (history.reached), or their ids as a position
// before it delivered any (history.start), finds them when it takes the
// restored stream (next): the last sequence the stream kept (keptUpTo)
// and the last it had handed out bound a lostRange. It remembers the
// range in its history, and
// writes it in the stream's metadata, where every instance reads it
// (metadata.go). A resume from an id in a range starts with a reset
// at the last event kept, and replays every event stored after it
// (resume). The instance tells the restore by the stream's last sequence,
// below the last it handed out (history.is), or by another message under
// the last sequence its consumer delivered (deliver, once the consumer is
// made again; a replay read from the stream before that: storedAsDelivered).
//
// What no instance can tell: a restore that no instance which had
// delivered lost events saw (each of them stopped meanwhile); lost events
// past the last one that the instances which noticed had delivered (a
// faster instance delivered them, and stopped before it noticed); and new
// events stored with earlier times than the lost ones (the NATS server's
// clock set back). Restored again from a backup without the metadata, the
// stream loses the ranges, which the running instances write again when
// they take it.

// lostKey is the key, in the stream's metadata, of the ranges of ids it
// lost: "after-upTo" pairs of ids, separated by spaces.
const lostKey = "ssehub_lost_ids"

// maxLost bounds the ranges a history keeps and the stream's metadata
// holds: those with the newest ids are kept. A range is one restore.
const maxLost = 32

// lostRange is the ids of events that a stream lost (history.lost): those
// above after up to upTo. The stream holds the events up to after still
// (or let them go as its limits say), and may hold others under the
// sequences above.
type lostRange struct{ after, upTo uint64 }

// lostAt returns the id of the last event h's stream kept before the one
// of id, when id is of an event it lost (h.lost: the lowest of the ranges
// that hold id, as a later restore may keep less, or another instance
// have delivered less); a resume from id replays from there, with a
// reset. Safe for concurrent use.
func (h *history) lostAt(id uint64) (after uint64, ok bool) {
	for _, r := range h.lostRanges() {
		if r.after < id && id <= r.upTo && (!ok || r.after < after) {
			after, ok = r.after, true
		}
	}
	return after, ok
}

// lostRanges returns h's ranges of lost ids, not to be modified.
func (h *history) lostRanges() []lostRange {
	if p := h.lost.Load(); p != nil {
		return *p
	}
	return nil
}

// learnLost adds rs to h's ranges of lost ids, but those of another
// creation time (below h's offset), and keeps the maxLost newest. Safe for
// concurrent use.
func (h *history) learnLost(rs ...lostRange) {
	for {
		p := h.lost.Load()
		var have []lostRange
		if p != nil {
			have = *p
		}
		all := slices.Clone(have)
		for _, r := range rs {
			if r.after >= h.ids.offset && r.after < r.upTo && !slices.Contains(all, r) {
				all = append(all, r)
			}
		}
		if len(all) == len(have) {
			return
		}
		slices.SortFunc(all, func(x, y lostRange) int {
			if x.upTo != y.upTo {
				return cmp.Compare(x.upTo, y.upTo)
			}
			return cmp.Compare(x.after, y.after)
		})
		all = all[max(len(all)-maxLost, 0):]
		if h.lost.CompareAndSwap(p, &all) {
			return
		}
	}
}

// parseLost returns the ranges of lost ids that meta, a stream's
// metadata, holds (lostKey, as formatLost writes them); what does not
// parse is left out.
func parseLost(meta map[string]string) []lostRange {
	var rs []lostRange
	for field := range strings.FieldsSeq(meta[lostKey]) {
		a, b, ok := strings.Cut(field, "-")
		after, err1 := strconv.ParseUint(a, 10, 64)
		upTo, err2 := strconv.ParseUint(b, 10, 64)
		if ok && err1 == nil && err2 == nil {
			rs = append(rs, lostRange{after, upTo})
		}
	}
	return rs
}

// formatLost is rs as the stream's metadata holds them (lostKey).
func formatLost(rs []lostRange) string {
	fields := make([]string, len(rs))
	for i, r := range rs {
		fields[i] = strconv.FormatUint(r.after, 10) + "-" + strconv.FormatUint(r.upTo, 10)
	}
	return strings.Join(fields, " ")
}

// keptUpTo returns the last sequence, up to delivered, under which st,
// the stream of old's name with old's creation time but not old's
// (restored, or its last writes lost: next), holds the event that old
// handed out (by its consumer, a resume's page or as a position:
// lastHanded), found by
// the time events were stored: those it kept were stored by the time of
// the last old handed out, those it stored
// since the restore after. A consumer from that time (its stream sequence
// found by the server) tells the first one stored after. With nothing
// handed out (no client got an id of old's), or the server not answering
// (logged), it returns delivered: no event is taken as lost. The one case
// it cannot tell: new events stored with earlier times than the last
// delivered (the NATS server's clock set back).
func (b *Broker) keptUpTo(ctx context.Context, st jetstream.Stream, old *history, delivered uint64) uint64 {
	last := old.lastHanded()
	if last == nil {
		return delivered
	}
	from := last.at.Add(time.Nanosecond)
	ctx, cancel := context.WithTimeout(ctx, b.opts.PublishTimeout)
	defer cancel()
	cons, err := st.CreateConsumer(ctx, jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartTimePolicy,
		OptStartTime:      &from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: b.opts.PublishTimeout,
		MemoryStorage:     true,
	})
	if err != nil {
		b.opts.Logger.Warn("nats stream restored: the events it lost could not be found; a resume from one of them may pass over events",
			"stream", b.opts.Stream, "err", err)
		return delivered
	}
	info := cons.CachedInfo()
	_ = st.DeleteConsumer(ctx, info.Name)
	return min(info.Delivered.Stream, delivered)
}
