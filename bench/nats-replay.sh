#!/usr/bin/env bash
# nats-replay.sh: a resume that JetStream itself must serve. nats.sh's
# replay client resumes on the instance that was running while the events
# were published, so its local history (a cache of the stream's tail)
# serves the resume. Here a NATS server with JetStream and one ssehub (A)
# take EVENTS publishes of SIZE bytes of data (the first alone, for its
# id), then a second ssehub (B) starts. Since a NATS instance loads the
# stream's tail at start, B's local history holds the last hub.history_size
# events, so with EVENTS within it the resume is served from that loaded
# tail, not from JetStream (docs/BENCHMARKS.md, "A NATS instance loads the
# stream's tail at start"); with more, the part before the tail is read
# from the stream. The client times from
# its connect to the last of the EVENTS - 1 others, RUNS times, each on a
# fresh B. One line per run goes to OUT/jetstream-replay.txt, then the
# median of the runs that replayed every event.
#
# Run from the repository root:  bench/nats-replay.sh
# Knobs (environment): RUNS=3 EVENTS=10000 SIZE=256 PORT_A=28111
#   PORT_B=28112 NATS_PORT=28222 OUT=bench/results/nats
set -euo pipefail

RUNS=${RUNS:-3}
EVENTS=${EVENTS:-10000}
SIZE=${SIZE:-256}
PORT_A=${PORT_A:-28111}
PORT_B=${PORT_B:-28112}
NATS_PORT=${NATS_PORT:-28222}
OUT=${OUT:-bench/results/nats}
TOKEN=ssebench-token

mkdir -p bin "$OUT"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/nats-server github.com/nats-io/nats-server/v2

pids=()
store=
. bench/lib.sh # INT, TERM and HUP exit the script (its EXIT trap is replaced by stop_all's below)

# stop_all stops what the script started, the replay client first, and
# removes the NATS server's files.
stop_all() {
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill "${pids[$i]}" 2>/dev/null || true
		wait "${pids[$i]}" 2>/dev/null || true
	done
	pids=()
	[ -z "$store" ] || rm -rf "$store" "$store.log"
	store=
	rm -f "$OUT/jetstream-replay.txt.go"
}
trap stop_all EXIT

# port_free ends the script when something listens on port $1: a server
# of ours could not listen there, and the one that does would be measured.
port_free() {
	if ss -Hltn "sport = :$1" | grep -q .; then
		echo "nats-replay.sh: port $1 is in use; set PORT_A, PORT_B, NATS_PORT" >&2
		exit 1
	fi
}

start_ssehub() { # port
	port_free "$1"
	env SSEHUB_LOG_LEVEL=warn SSEHUB_AUTH_PUBLISH_TOKENS=$TOKEN SSEHUB_DEMO_ENABLED=false \
		SSEHUB_HUB_BROKER=nats SSEHUB_NATS_URL="nats://127.0.0.1:$NATS_PORT" \
		bin/ssehub --config /dev/null --addr "127.0.0.1:$1" &
	pids+=($!)
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$1/readyz" 2>/dev/null && return
		kill -0 "${pids[-1]}" 2>/dev/null || { echo "nats-replay.sh: ssehub on $1 did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "nats-replay.sh: ssehub not answering on $1" >&2
	exit 1
}

: >"$OUT/jetstream-replay.txt"
for run in $(seq "$RUNS"); do
	# The client creates this file once it has published. One left by an
	# invocation killed mid-run would start B before the publishes and be
	# removed before the client made its own, which would wait for ever.
	rm -f "$OUT/jetstream-replay.txt.go"
	for port in "$NATS_PORT" "$PORT_A" "$PORT_B"; do # B's before the publishing
		port_free "$port"
	done
	store=$(mktemp -d)
	bin/nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$store" >"$store.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
		sleep 0.1
	done
	start_ssehub "$PORT_A"
	python3 - "$PORT_A" "$PORT_B" "$EVENTS" "$SIZE" "$TOKEN" "$run" "$OUT/jetstream-replay.txt" <<'PY' &
import http.client, json, os, socket, subprocess, sys, time
port_a, port_b, events, size, token, run, out = sys.argv[1:8]
events, size = int(events), int(size)
topic = f"replay.r{run}"
hdr = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
a = http.client.HTTPConnection("127.0.0.1", int(port_a))
first = None
body_pad = "x" * max(0, size - 40)
for k in range(events):
    a.request("POST", f"/api/v1/topics/{topic}/events", json.dumps({"data": {"seq": k, "pad": body_pad}}), hdr)
    r = a.getresponse()
    b = r.read()
    if r.status != 201:
        sys.exit(f"publish {k}: {r.status} {b[:200]!r}")
    if first is None:
        first = json.loads(b)["id"]
print(f"published {events}; first id {first}", file=sys.stderr)
# the parent starts B once this file exists, and tells us it is ready
open(out + ".go", "w").close()
while os.path.exists(out + ".go"):
    time.sleep(0.05)
s = socket.create_connection(("127.0.0.1", int(port_b)))
start = time.monotonic()
s.sendall(f"GET /api/v1/events?topic={topic} HTTP/1.1\r\nHost: x\r\nLast-Event-ID: {first}\r\n\r\n".encode())
want, n, buf, last_seq, reset = events - 1, 0, b"", None, False
s.settimeout(10)
while n < want:
    chunk = s.recv(1 << 16)
    if not chunk:
        break
    buf += chunk
    lines = buf.split(b"\n")
    buf = lines.pop()
    for line in lines:
        if line.startswith(b"data: {"):
            n += 1
        elif line.startswith(b"event: reset"):
            reset = True
elapsed = time.monotonic() - start
s.close()
line = f"run {run}: {n} of {want} events replayed on a fresh instance in {elapsed * 1000:.1f} ms (from the connect){'; a reset event came' if reset else ''}"
print(line)
open(out, "a").write(line + "\n")
PY
	client=$!
	pids+=("$client")
	while [ ! -e "$OUT/jetstream-replay.txt.go" ]; do
		kill -0 "$client" 2>/dev/null || { echo "nats-replay.sh: publishing failed" >&2; exit 1; }
		sleep 0.1
	done
	start_ssehub "$PORT_B"
	sleep 1
	rm "$OUT/jetstream-replay.txt.go"
	wait "$client"
	curl -fsS "http://127.0.0.1:$PORT_B/metrics" | grep '^ssehub_replayed_events_total' || true
	stop_all
done

# The median of the runs, on stdout and in the file; a run that did not
# replay every event is left out of it, and named.
python3 - "$OUT/jetstream-replay.txt" <<'PY'
import re, statistics, sys
path = sys.argv[1]
runs = re.findall(r"^run (\d+): (\d+) of (\d+) events replayed .* in ([\d.]+) ms", open(path).read(), re.M)
times = [float(ms) for _, n, want, ms in runs if n == want]
left = [run for run, n, want, _ in runs if n != want]
line = f"median of {len(times)} runs: {statistics.median(times):.1f} ms" if times else "median: no run replayed every event"
if left:
    line += f"; left out, events missing: run {', '.join(left)}"
print(line)
open(path, "a").write(line + "\n")
PY
