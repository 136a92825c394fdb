#!/usr/bin/env bash
# history.sh: issue 9's history byte-cap measurement with ssebench against a
# fresh ssehub: RSS after EVENTS publishes of SIZE bytes of data each.
#
# It starts BIN on 127.0.0.1:PORT with a publish token and
# hub.max_event_bytes raised to 70000 (64 KiB of data plus the JSON around
# it), waits until /readyz answers and two more seconds, reads the idle RSS,
# publishes EVENTS events at RATE per second from 4 connections with no
# subscriber (ssebench -scenario publish -pid), waits two seconds, reads the
# RSS and its high-water mark from /proc, stops the server and prints one
# line: events accepted, idle, after, peak, the byte cap, and whether
# after < 2 × cap + idle. The raw ssebench report goes to OUT/NAME.json and
# the line to OUT/NAME.txt. It runs about EVENTS/RATE + 10 seconds.
#
# Run from the repository root:  bench/history.sh
# Knobs (environment): NAME=capped BIN=bin/ssehub (built when it is the
#   default) PORT=28112 OUT=bench/results/history EVENTS=25000 RATE=600
#   SIZE=65536 HISTORY_MAX_BYTES (default: the hub's, 67108864); the
#   server inherits the environment, so GOMEMLIMIT or GOGC apply to it.
set -euo pipefail

NAME=${NAME:-capped}
BIN=${BIN:-bin/ssehub}
PORT=${PORT:-28112}
OUT=${OUT:-bench/results/history}
EVENTS=${EVENTS:-25000}
RATE=${RATE:-600}
SIZE=${SIZE:-65536}
CAP=${HISTORY_MAX_BYTES:-67108864}
URL="http://127.0.0.1:$PORT"
TOKEN=ssebench-token

mkdir -p bin "$OUT"
if [ "$BIN" = bin/ssehub ]; then
	CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
fi
go build -o bin/ssebench ./cmd/ssebench

. bench/lib.sh # server_pid, stop_server (on exit), wait_quiet

if ss -Hltn "sport = :$PORT" | grep -q .; then
	echo "history.sh: port $PORT is in use; set PORT" >&2
	exit 1
fi
SSEHUB_LOG_LEVEL=warn SSEHUB_AUTH_PUBLISH_TOKENS=$TOKEN SSEHUB_HUB_MAX_EVENT_BYTES=70000 \
	SSEHUB_HUB_HISTORY_MAX_BYTES=$CAP "$BIN" --addr "127.0.0.1:$PORT" &
server_pid=$!
for _ in $(seq 100); do
	curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null && break
	sleep 0.1
done
curl -fsS -o /dev/null "$URL/readyz"
sleep 2

status() { awk -v k="$1:" '$1 == k { print $2 * 1024 }' "/proc/$server_pid/status"; }
idle=$(status VmRSS)
# Event k is due k/rate seconds after the start: stopping half an interval
# after the last one sends exactly EVENTS (as fanout.sh does).
duration=$(awk -v n="$EVENTS" -v r="$RATE" 'BEGIN { printf "%.3fs", (n - 0.5) / r }')
echo "history.sh: $NAME (pid $server_pid, load $(cut -d' ' -f1 /proc/loadavg)): $EVENTS × $SIZE bytes at $RATE/s" >&2
run_ssebench -url "$URL" -scenario publish -n 0 -size "$SIZE" -rate "$RATE" -duration "$duration" \
	-publishers 4 -token "$TOKEN" -pid "$server_pid" -timeout 2m -json -quiet >"$OUT/$NAME.json"
sleep 2
after=$(status VmRSS)
peak=$(status VmHWM)
stop_server

accepted=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["publish"]["ok"])' "$OUT/$NAME.json")
awk -v name="$NAME${GOMEMLIMIT:+ (GOMEMLIMIT=$GOMEMLIMIT)}" -v n="$accepted" -v idle="$idle" -v after="$after" -v peak="$peak" -v cap="$CAP" 'BEGIN {
	mib = 1048576; limit = 2 * cap + idle
	printf "%s: %d events accepted; RSS idle %.1f MiB, after %.1f MiB, peak %.1f MiB; cap %.0f MiB; 2×cap+idle %.1f MiB: %s\n",
		name, n, idle / mib, after / mib, peak / mib, cap / mib, limit / mib, (after < limit ? "under" : "OVER")
}' | tee "$OUT/$NAME.txt"
