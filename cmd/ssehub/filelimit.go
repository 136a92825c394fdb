package main

import "log/slog"

// filesReserved is how many of the process's file descriptors are kept
// for what is not a stream: the listener, requests that are not streams
// (health checks, metrics, publishes), NATS connections, the embedded NATS
// server's store, certificate files. A process may open fewer than 256
// files only where someone chose so; it then keeps half.
const filesReserved = 128

// streamsWithin returns how many streams may be open at once: maxStreams
// (stream.max_streams), or fewer when the process may open only limit
// files (RLIMIT_NOFILE; 0 when unknown) and must keep filesReserved of
// them. Each stream holds its connection's descriptor; past the limit the
// server can accept no connection at all, health checks included, and
// every client waits in the listen queue. Within it, the streams past the
// cap get a clean 503 with Retry-After instead.
func streamsWithin(maxStreams int, limit uint64) int {
	if limit == 0 {
		return maxStreams
	}
	usable := limit - min(filesReserved, limit/2)
	if uint64(maxStreams) <= usable {
		return maxStreams
	}
	return int(usable)
}

// capStreams lowers maxStreams to what the process's open files limit
// allows (streamsWithin), and says so.
func capStreams(maxStreams int, log *slog.Logger) int {
	limit := openFilesLimit()
	n := streamsWithin(maxStreams, limit)
	if n < maxStreams {
		log.Warn("stream.max_streams lowered to what the process may open: raise its hard open files limit (ulimit -Hn, systemd's LimitNOFILE, docker's --ulimit nofile) to serve more",
			"max_streams", maxStreams, "open_files_limit", limit, "reserved", limit-uint64(n), "streams", n)
	}
	return n
}
