#!/usr/bin/env bash
# nats.sh: issue 10's targets for hub.broker: nats, measured against the
# memory broker in the same run.
#
# Each of RUNS rounds runs both brokers, in an order that alternates from
# round to round:
#   memory  one ssehub on the memory broker (127.0.0.1:PORT_A);
#   nats    a fresh NATS server with JetStream (built from the module
#           github.com/nats-io/nats-server/v2, storing in a temporary
#           directory, 127.0.0.1:NATS_PORT) and two ssehub on it (PORT_A,
#           PORT_B).
# Against each, three ssebench scenarios, the JSON reports saved as
# OUT/<scenario>/<broker>-<round>.json:
#   publish  requests/s with PUBLISHERS connections to PORT_A for
#            PUBLISH_DURATION (on NATS each 201 waits for JetStream's ack);
#   fanout   2 × FANOUT_N subscribers (on NATS spread over both instances
#            with -sub-urls), EVENTS events at FANOUT_RATE/s published to PORT_A;
#   replay   REPLAY_EVENTS events published, then one client resumes after
#            the first with Last-Event-ID and times the rest.
# Each server's CPU seconds in a scenario go to OUT/<scenario>/<broker>-<round>.cpu
# (memory: ssehub; nats: NATS server, ssehub A, ssehub B), read from /proc.
# Then it prints the medians against the targets: publish rate on NATS
# >= 0.5 × memory, fan-out p99 on NATS <= memory's + 20 ms, replay < 1 s,
# and the publish scenario's CPU per accepted publish per process.
#
# Run from the repository root:  bench/nats.sh
# Knobs (environment): RUNS=3 SCENARIOS="publish fanout replay" FANOUT_N=2500
#   (per instance) FANOUT_RATE=20 EVENTS=100 FANOUT_PUBLISHERS=2 (each sends one
#   request at a time: on NATS a publish waits for JetStream's ack, so raise it
#   if the fan-out reports fewer than EVENTS accepted) PUBLISH_DURATION=10s
#   PUBLISHERS=16 REPLAY_EVENTS=10000 SIZE=256
#   PORT_A=28111 PORT_B=28112 NATS_PORT=28222 OUT=bench/results/nats LOADMAX=1.0
#   NATS_INSTANCE_PROCS=1 (GOMAXPROCS of each of the two NATS instances: they
#   share the machine's cores, so together they get as many Ps as the memory
#   run's one instance on 2 cores; empty: the Go default, all cores each)
set -euo pipefail

RUNS=${RUNS:-3}
SCENARIOS=${SCENARIOS:-publish fanout replay}
FANOUT_N=${FANOUT_N:-2500}
FANOUT_RATE=${FANOUT_RATE:-20}
EVENTS=${EVENTS:-100}
FANOUT_PUBLISHERS=${FANOUT_PUBLISHERS:-2}
DURATION=$(awk -v e="$EVENTS" -v r="$FANOUT_RATE" 'BEGIN { printf "%dms", (e - 0.5) * 1000 / r }')
PUBLISH_DURATION=${PUBLISH_DURATION:-10s}
PUBLISHERS=${PUBLISHERS:-16}
REPLAY_EVENTS=${REPLAY_EVENTS:-10000}
SIZE=${SIZE:-256}
PORT_A=${PORT_A:-28111}
PORT_B=${PORT_B:-28112}
NATS_PORT=${NATS_PORT:-28222}
OUT=${OUT:-bench/results/nats}
PYTHON=${PYTHON:-python3}
LOADMAX=${LOADMAX:-1.0}
NATS_INSTANCE_PROCS=${NATS_INSTANCE_PROCS-1}
URL_A="http://127.0.0.1:$PORT_A"
URL_B="http://127.0.0.1:$PORT_B"
TOKEN=ssebench-token

mkdir -p bin "$OUT"/publish "$OUT"/fanout "$OUT"/replay
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
go build -o bin/ssebench ./cmd/ssebench
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/nats-server github.com/nats-io/nats-server/v2

pids=()   # the servers, in the order started
starts=() # their start times (proc_start), which tell them from a later process with their pid
pid_a=
store=
. bench/lib.sh # wait_quiet, run_ssebench, cpu_ticks (its EXIT trap is replaced by stop_all's below)

stop_all() {
	stop_bench
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do # ssehub first, NATS last
		pid=${pids[$i]}
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	pids=()
	starts=()
	if [ -n "$store" ]; then
		rm -rf "$store" "$store.log"
		store=
	fi
}
trap stop_all EXIT


port_free() {
	if ss -Hltn "sport = :$1" | grep -q .; then
		echo "nats.sh: port $1 is in use; set PORT_A, PORT_B, NATS_PORT" >&2
		exit 1
	fi
}

start_ssehub() { # port [env...]
	local port=$1
	shift
	port_free "$port"
	env SSEHUB_LOG_LEVEL=warn SSEHUB_AUTH_PUBLISH_TOKENS=$TOKEN SSEHUB_DEMO_ENABLED=false "$@" \
		bin/ssehub --config /dev/null --addr "127.0.0.1:$port" &
	pids+=($!)
	starts+=("$(proc_start $!)")
	[ "$port" != "$PORT_A" ] || pid_a=$!
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && return
		kill -0 "${pids[-1]}" 2>/dev/null || { echo "nats.sh: ssehub on $port did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "nats.sh: ssehub not answering on $port" >&2
	exit 1
}

start_servers() { # broker
	case $1 in
	memory)
		start_ssehub "$PORT_A"
		;;
	nats)
		port_free "$NATS_PORT"
		store=$(mktemp -d)
		bin/nats-server -a 127.0.0.1 -p "$NATS_PORT" -js -sd "$store" >"$store.log" 2>&1 &
		pids+=($!)
		starts+=("$(proc_start $!)")
		for _ in $(seq 100); do
			(exec 3<>"/dev/tcp/127.0.0.1/$NATS_PORT") 2>/dev/null && break
			sleep 0.1
		done
		procs=()
		[ -z "$NATS_INSTANCE_PROCS" ] || procs=(GOMAXPROCS="$NATS_INSTANCE_PROCS")
		start_ssehub "$PORT_A" "${procs[@]}" SSEHUB_HUB_BROKER=nats SSEHUB_NATS_URL="nats://127.0.0.1:$NATS_PORT"
		start_ssehub "$PORT_B" "${procs[@]}" SSEHUB_HUB_BROKER=nats SSEHUB_NATS_URL="nats://127.0.0.1:$NATS_PORT"
		;;
	esac
	sleep 2 # let start-up work settle
}

# server_ticks prints the CPU time (user + system, in clock ticks) of each
# of the servers started, in the order started: ssehub, or NATS and ssehub
# A, B; -1 for one that is gone (its pid possibly another process's now).
server_ticks() {
	local args=() i
	for i in "${!pids[@]}"; do
		args+=("${pids[$i]}" "${starts[$i]}")
	done
	cpu_ticks "${args[@]}"
}

bench() { # broker round scenario flags...
	local broker=$1 round=$2 scenario=$3
	shift 3
	case " $SCENARIOS " in *" $scenario "*) ;; *) return 0 ;; esac
	echo "round $round: $broker $scenario (load $(cut -d' ' -f1 /proc/loadavg))" >&2
	local before
	before=$(server_ticks)
	run_ssebench -url "$URL_A" -scenario "$scenario" -token "$TOKEN" -pid "$pid_a" \
		-timeout 3m -json -quiet "$@" >"$OUT/$scenario/$broker-$round.json" || true
	# Each server's CPU seconds in the scenario, as NATS A B or A alone; -1
	# for one that was gone (summarize.py leaves the run out of the CPU
	# per request).
	paste <(echo "$before") <(server_ticks) | awk -v hz="$(getconf CLK_TCK)" '{ printf "%s%.2f", (NR > 1 ? " " : ""), ($1 < 0 || $2 < 0 ? -1 : ($2 - $1) / hz) } END { print "" }' \
		>"$OUT/$scenario/$broker-$round.cpu"
}

brokers=(memory nats)
for run in $(seq "$RUNS"); do
	for i in 0 1; do
		broker=${brokers[$(((i + run - 1) % 2))]}
		spread=()
		[ "$broker" = nats ] && spread=(-sub-urls "$URL_B")
		wait_quiet
		start_servers "$broker"
		bench "$broker" "$run" publish -n 0 -size 100 -duration "$PUBLISH_DURATION" -publishers "$PUBLISHERS"
		bench "$broker" "$run" fanout -n $((2 * FANOUT_N)) -rate "$FANOUT_RATE" -size "$SIZE" \
			-duration "$DURATION" -publishers "$FANOUT_PUBLISHERS" "${spread[@]}"
		bench "$broker" "$run" replay -events "$REPLAY_EVENTS" -size "$SIZE" "${spread[@]}"
		stop_all
	done
done

echo "### hub.broker nats against memory: $RUNS rounds, medians"
echo
"$PYTHON" bench/summarize.py nats "$OUT" "$RUNS" "$EVENTS" "$SCENARIOS"
