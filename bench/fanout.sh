#!/usr/bin/env bash
# fanout.sh: ssehub's hub fan-out against tmaxmax/go-sse's (bench/peers/gosse).
#
# Each of RUNS rounds runs every server of VARIANTS once, in an order that
# rotates from round to round: a fresh server on 127.0.0.1:PORT, /readyz
# answering, `ssebench -scenario fanout` with -pid (RSS and CPU from
# /proc), the JSON report saved as OUT/<server>-<round>.json, the server
# stopped. Then bench/summarize.py prints a table per server and the
# medians side by side with the ratios ssehub / go-sse (without gosse in
# VARIANTS, to the last variant).
#
# VARIANTS names the servers:
#   gosse     the go-sse peer, its default broker Joe (OUT/gosse-N.json)
#   default   ssehub as configured by the environment (OUT/ssehub-default-N.json)
#   NAME      ssehub with VARIANT_VAR=NAME added (OUT/ssehub-NAME-N.json), e.g.
#             VARIANTS="gin detached gosse" for SSEHUB_STREAM_TRANSPORT=gin and =detached
# Other SSEHUB_* variables in the environment reach every ssehub variant.
#
# Run from the repository root:  bench/fanout.sh
# Knobs (environment): VARIANTS="default gosse" VARIANT_VAR=SSEHUB_STREAM_TRANSPORT
#   RUNS=3 FANOUT_N=5000 FANOUT_RATE=20 EVENTS=100 (DURATION: default just under
#   EVENTS/FANOUT_RATE, so that exactly EVENTS go out) SIZE=256 PUBLISHERS=2
#   PORT=28111 OUT=bench/results/fanout-gosse LOADMAX=1.0 (wait for a quiet machine)
set -euo pipefail

VARIANTS=${VARIANTS:-default gosse}
VARIANT_VAR=${VARIANT_VAR:-SSEHUB_STREAM_TRANSPORT}
RUNS=${RUNS:-3}
FANOUT_N=${FANOUT_N:-5000}
FANOUT_RATE=${FANOUT_RATE:-20}
EVENTS=${EVENTS:-100}
# Event k is due k/rate seconds after the start: stopping half an interval
# after the last one sends exactly EVENTS.
DURATION=${DURATION:-$(awk -v e="$EVENTS" -v r="$FANOUT_RATE" 'BEGIN { printf "%dms", (e - 0.5) * 1000 / r }')}
SIZE=${SIZE:-256}
PUBLISHERS=${PUBLISHERS:-2}
PORT=${PORT:-28111}
OUT=${OUT:-bench/results/fanout-gosse}
PYTHON=${PYTHON:-python3}
LOADMAX=${LOADMAX:-1.0}
URL="http://127.0.0.1:$PORT"
TOKEN=ssebench-token
read -r -a variants <<<"$VARIANTS"
[ ${#variants[@]} -gt 0 ] || { echo "fanout.sh: VARIANTS is empty" >&2; exit 1; }

mkdir -p bin "$OUT"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
go build -o bin/ssebench ./cmd/ssebench
(cd bench/peers/gosse && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o ../../../bin/gosse-peer .)

. bench/lib.sh # server_pid, stop_server (on exit), wait_quiet


# label names a variant's server in file names and tables.
label() {
	case $1 in
	gosse) echo gosse ;;
	*) echo "ssehub-$1" ;;
	esac
}

start_server() { # variant
	if ss -Hltn "sport = :$PORT" | grep -q .; then
		echo "fanout.sh: port $PORT is in use; set PORT" >&2
		exit 1
	fi
	case $1 in
	gosse)
		bin/gosse-peer -addr "127.0.0.1:$PORT" -token "$TOKEN" &
		;;
	default)
		SSEHUB_LOG_LEVEL=warn SSEHUB_AUTH_PUBLISH_TOKENS=$TOKEN bin/ssehub --addr "127.0.0.1:$PORT" &
		;;
	*)
		env "$VARIANT_VAR=$1" SSEHUB_LOG_LEVEL=warn SSEHUB_AUTH_PUBLISH_TOKENS=$TOKEN \
			bin/ssehub --addr "127.0.0.1:$PORT" &
		;;
	esac
	server_pid=$!
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
			sleep 2 # let start-up work settle before the baseline
			return
		fi
		kill -0 "$server_pid" 2>/dev/null || { echo "fanout.sh: $(label "$1") did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "fanout.sh: $(label "$1") not answering on $URL" >&2
	exit 1
}

reports=()
k=${#variants[@]}
for run in $(seq "$RUNS"); do
	for i in $(seq 0 $((k - 1))); do
		v=${variants[$(((i + run - 1) % k))]}
		out="$OUT/$(label "$v")-$run.json"
		wait_quiet
		start_server "$v"
		echo "round $run: $(label "$v") (pid $server_pid, load $(cut -d' ' -f1 /proc/loadavg))" >&2
		run_ssebench -url "$URL" -scenario fanout -n "$FANOUT_N" -rate "$FANOUT_RATE" -size "$SIZE" \
			-duration "$DURATION" -publishers "$PUBLISHERS" -token "$TOKEN" -pid "$server_pid" \
			-timeout 2m -json -quiet >"$out" || {
			rc=$?
			case $rc in
			3) echo "fanout.sh: $(label "$v") round $run: events missing at the end; summarize.py names the run" >&2 ;;
			*) echo "fanout.sh: $(label "$v") round $run: ssebench exited $rc; summarize.py leaves an aborted run out" >&2 ;;
			esac
		}
		stop_server
		reports+=("$out")
	done
done
echo "### fanout: $FANOUT_N subscribers, $EVENTS events of $SIZE B at $FANOUT_RATE/s, $RUNS rounds"
echo
# The ratios are to go-sse, or without it to the last variant.
base=gosse
case " $VARIANTS " in
*" gosse "*) ;;
*) base=$(label "${variants[-1]}") ;;
esac
"$PYTHON" bench/summarize.py servers "--base=$base" "${reports[@]}"
