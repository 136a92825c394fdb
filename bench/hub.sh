#!/usr/bin/env bash
# hub.sh: issue 3's hub measurements with ssebench against a fresh ssehub.
#
# For each scenario named on the command line (default: idle fanout
# sustained publish) and each of RUNS rounds it starts bin/ssehub on
# 127.0.0.1:PORT with a publish token, waits until /readyz answers,
# runs ssebench with -pid (RSS and CPU from /proc; goroutines and
# ssehub_subscribers from /metrics), saves the JSON report, and stops the
# server. Then bench/summarize.py prints a table per scenario with the
# medians. Each run is bounded well under two minutes.
#
# Run from the repository root:  bench/hub.sh [scenario...]
# Knobs (environment): RUNS=3 PORT=28111 OUT=bench/results/hub
#   IDLE_N=10000 IDLE_HOLD=20s   FANOUT_N=10000 FANOUT_RATE=5
#   SUSTAINED_N=1000 SUSTAINED_RATE=200   DURATION=30s   PUBLISH_DURATION=10s
#   PUBLISHERS (publish scenario, default 16)   LOADMAX=1.0 (wait for a quiet machine)
set -euo pipefail

RUNS=${RUNS:-3}
PORT=${PORT:-28111}
OUT=${OUT:-bench/results/hub}
PYTHON=${PYTHON:-python3}
URL="http://127.0.0.1:$PORT"
TOKEN=ssebench-token
LOADMAX=${LOADMAX:-1.0}
scenarios=("$@")
[ ${#scenarios[@]} -gt 0 ] || scenarios=(idle fanout sustained publish)

mkdir -p bin "$OUT"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
go build -o bin/ssebench ./cmd/ssebench

. bench/lib.sh # server_pid, stop_server (on exit), wait_quiet


start_server() {
	if ss -Hltn "sport = :$PORT" | grep -q .; then
		echo "hub.sh: port $PORT is in use; set PORT" >&2
		exit 1
	fi
	SSEHUB_LOG_LEVEL=warn SSEHUB_AUTH_PUBLISH_TOKENS=$TOKEN bin/ssehub --addr "127.0.0.1:$PORT" &
	server_pid=$!
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
			sleep 2
			return
		fi
		sleep 0.1
	done
	echo "hub.sh: ssehub not answering on $URL" >&2
	exit 1
}

args_for() {
	case $1 in
	idle) echo "-n ${IDLE_N:-10000} -hold ${IDLE_HOLD:-20s} -settle 15s" ;;
	fanout) echo "-n ${FANOUT_N:-10000} -rate ${FANOUT_RATE:-5} -size 256 -duration ${DURATION:-30s} -publishers 2" ;;
	sustained) echo "-n ${SUSTAINED_N:-1000} -rate ${SUSTAINED_RATE:-200} -size 256 -duration ${DURATION:-30s} -publishers 4" ;;
	publish) echo "-n 0 -rate 0 -size 100 -duration ${PUBLISH_DURATION:-10s} -publishers ${PUBLISHERS:-16}" ;;
	*) echo "hub.sh: unknown scenario $1" >&2; exit 1 ;;
	esac
}

for scenario in "${scenarios[@]}"; do
	args=$(args_for "$scenario")
	# This invocation's reports only: OUT may hold an earlier one's with
	# more rounds (bench/results/hub holds a session's).
	reports=()
	for run in $(seq "$RUNS"); do
		reports+=("$OUT/$scenario-$run.json")
		wait_quiet
		start_server
		echo "$scenario run $run (pid $server_pid, load $(cut -d' ' -f1 /proc/loadavg)): ssebench $args" >&2
		# shellcheck disable=SC2086 # args is a list of flags
		run_ssebench -url "$URL" -scenario "$scenario" $args -token "$TOKEN" -pid "$server_pid" \
			-timeout 2m -json -quiet >"$OUT/$scenario-$run.json" || true
		stop_server
	done
	echo "### $scenario"
	"$PYTHON" bench/summarize.py hub "${reports[@]}"
	echo
done
