package main

import (
	"strconv"
	"strings"
)

// minPayloadBytes is the size of the smallest payload appendPayload
// writes: the sequence number and timestamp need room.
const minPayloadBytes = 64

// appendPayload appends the JSON data of published event seq to dst: a
// compact object {"seq":N,"ts":T,"pad":"xxx"} holding the sequence number
// and the send time in Unix nanoseconds, padded so that the whole object
// is size bytes (at least minPayloadBytes). Compact JSON reaches the
// subscriber's data line unchanged.
func appendPayload(dst []byte, seq, ts int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"seq":`...)
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, `,"ts":`...)
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, `,"pad":"`...)
	pad := max(size, minPayloadBytes) - (len(dst) - start) - len(`"}`)
	for range max(pad, 0) {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

// parsePayload finds the sequence number and send time in an event's data
// as written by appendPayload. The keys may come in any order and with
// spaces, as a hub that re-encodes the JSON might write them. It reports
// false when either is missing.
func parsePayload(data string) (seq, ts int64, ok bool) {
	seq, ok1 := intField(data, `"seq"`)
	ts, ok2 := intField(data, `"ts"`)
	return seq, ts, ok1 && ok2
}

// intField returns the non-negative integer after key and a colon.
func intField(data, key string) (int64, bool) {
	i := strings.Index(data, key)
	if i < 0 {
		return 0, false
	}
	rest := strings.TrimLeft(data[i+len(key):], " ")
	if !strings.HasPrefix(rest, ":") {
		return 0, false
	}
	rest = strings.TrimLeft(rest[1:], " ")
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	v, err := strconv.ParseInt(rest[:n], 10, 64)
	return v, err == nil
}
