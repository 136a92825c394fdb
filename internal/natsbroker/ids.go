package natsbroker

import "time"

// ids turns stream sequences into event ids and back. An id is the
// sequence plus the stream's creation time in microseconds, as the memory
// broker's ids start at its boot time: an id below the offset comes from
// another history (the memory broker's, or a stream deleted and created
// again), and such ids have 16 digits and stay below 2^53, exact in
// JavaScript numbers. An id at or above the offset is taken for this
// history's: so it is unless the NATS server's clock went back, before
// this stream's creation, below an earlier history's creation time plus
// its last sequence (in microseconds). Ids of the two then overlap, and
// nothing in an id tells them apart (see the README's Operations).
type ids struct{ offset uint64 }

func newIDs(created time.Time) ids {
	return ids{offset: uint64(max(created.UnixMicro(), 0))}
}

// id is the event id of sequence seq.
func (x ids) id(seq uint64) uint64 { return x.offset + seq }

// seq is the sequence of event id id, or false when id is below the
// offset (sequence 0, before the first event, is valid).
func (x ids) seq(id uint64) (uint64, bool) {
	if id < x.offset {
		return 0, false
	}
	return id - x.offset, true
}
