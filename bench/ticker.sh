#!/usr/bin/env bash
# ticker.sh: issue 2's comparison, ssehub against the seed's FastAPI ticker,
# and issue 8's: both stream transports of ssehub against it, side by side.
#
# For each of RUNS rounds it runs every server of SERVERS once, in an order
# that rotates from round to round: it waits for a quiet machine (LOADMAX),
# starts the server on 127.0.0.1:PORT, warms it with one short stream, points
# `ssebench -scenario ticker` at it with -pid (CPU and RSS from /proc), saves
# the JSON report as OUT/<server>-<round>.json, and stops the server. Then
# bench/summarize.py prints the medians and the ratios of each ssehub
# server to the FastAPI seed (and to base, with BASE_REV; with neither, to
# the last server of SERVERS; a server alone gets its table and medians).
#
# SERVERS names the servers:
#   fastapi   the seed (bench/seed_fastapi.py under uvicorn)
#   ssehub    ssehub as configured by the environment
#   base      BASE_REV's ssehub, as configured by the environment
#   NAME      ssehub with SSEHUB_STREAM_TRANSPORT=NAME: gin or detached
# Other SSEHUB_* variables in the environment reach every ssehub server.
#
# With BASE_REV set (a commit), that commit's ssehub runs too ("base" is
# added to SERVERS), in the same rounds, so a change is measured against its
# baseline in one session.
#
# Run from the repository root:  bench/ticker.sh
# Knobs (environment): SERVERS="gin detached fastapi" N=2000 COUNT=10
#                      INTERVAL=3s RUNS=3 PORT=28111 OUT=bench/results/ticker
#                      PYTHON=/usr/bin/python3 LOADMAX=1.0 (wait for a quiet
#                      machine) BASE_REV=  (e.g. BASE_REV=HEAD~3)
# Needs Debian's python3-fastapi and python3-uvicorn for the seed server.
set -euo pipefail

SERVERS=${SERVERS:-gin detached fastapi}
N=${N:-2000}
COUNT=${COUNT:-10}
INTERVAL=${INTERVAL:-3s}
RUNS=${RUNS:-3}
PORT=${PORT:-28111}
OUT=${OUT:-bench/results/ticker}
PYTHON=${PYTHON:-/usr/bin/python3}
LOADMAX=${LOADMAX:-1.0}
URL="http://127.0.0.1:$PORT"

case " $SERVERS " in
*" fastapi "*)
	"$PYTHON" -c 'import fastapi, uvicorn' 2>/dev/null || {
		echo "ticker.sh: $PYTHON lacks fastapi/uvicorn: apt-get install python3-fastapi python3-uvicorn" >&2
		exit 1
	}
	;;
esac
mkdir -p bin "$OUT"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
go build -o bin/ssebench ./cmd/ssebench
if [ -n "${BASE_REV:-}" ]; then
	base_src=$(mktemp -d)
	trap 'rm -rf "$base_src"' EXIT # a revision that does not build ends the script here
	git archive "$BASE_REV" | tar -x -C "$base_src"
	(cd "$base_src" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub)
	cp "$base_src/bin/ssehub" bin/ssehub-base
	rm -rf "$base_src"
	trap - EXIT
	case " $SERVERS " in
	*" base "*) ;;
	*) SERVERS="$SERVERS base" ;;
	esac
fi
read -r -a servers <<<"$SERVERS"
[ ${#servers[@]} -gt 0 ] || { echo "ticker.sh: SERVERS is empty" >&2; exit 1; }

. bench/lib.sh # server_pid, stop_server (on exit), wait_quiet


start_server() { # name
	if ss -Hltn "sport = :$PORT" | grep -q .; then
		echo "ticker.sh: port $PORT is in use; set PORT" >&2
		exit 1
	fi
	case $1 in
	ssehub)
		SSEHUB_LOG_LEVEL=warn bin/ssehub --addr "127.0.0.1:$PORT" &
		;;
	base)
		SSEHUB_LOG_LEVEL=warn bin/ssehub-base --addr "127.0.0.1:$PORT" &
		;;
	fastapi)
		"$PYTHON" -m uvicorn --app-dir bench seed_fastapi:app --host 127.0.0.1 --port "$PORT" \
			--workers 1 --log-level warning --no-access-log &
		;;
	*)
		SSEHUB_STREAM_TRANSPORT=$1 SSEHUB_LOG_LEVEL=warn bin/ssehub --addr "127.0.0.1:$PORT" &
		;;
	esac
	server_pid=$!
	for _ in $(seq 100); do
		if curl -fsS -o /dev/null "$URL/stream?count=1&interval=0s" 2>/dev/null; then
			sleep 2 # let start-up work settle before the baseline
			return
		fi
		kill -0 "$server_pid" 2>/dev/null || { echo "ticker.sh: $1 did not start" >&2; exit 1; }
		sleep 0.1
	done
	echo "ticker.sh: $1 not answering on $URL" >&2
	exit 1
}

k=${#servers[@]}
for run in $(seq "$RUNS"); do
	for i in $(seq 0 $((k - 1))); do
		server=${servers[$(((i + run - 1) % k))]}
		wait_quiet
		start_server "$server"
		echo "round $run: $server (pid $server_pid, load $(cut -d' ' -f1 /proc/loadavg))" >&2
		run_ssebench -url "$URL" -scenario ticker -n "$N" -count "$COUNT" -interval "$INTERVAL" \
			-pid "$server_pid" -json -quiet >"$OUT/$server-$run.json" || {
			rc=$?
			[ "$rc" -eq 3 ] || exit "$rc"
			echo "ticker.sh: $server round $run: events missing at the end; summarize.py names the run" >&2
		}
		stop_server
	done
done

# files lists the reports of one server, in round order.
files() {
	for run in $(seq "$RUNS"); do echo "$OUT/$1-$run.json"; done
}
# label names a server in the tables.
label() {
	case $1 in
	fastapi) echo "FastAPI seed" ;;
	base) echo "base ($BASE_REV)" ;;
	ssehub) echo "ssehub" ;;
	*) echo "ssehub $1" ;;
	esac
}
# summary: every ssehub server against the last group (the reference).
summary() { # reference server
	local args=() labels=() s
	for s in "${servers[@]}"; do
		case $s in
		"$1" | fastapi) continue ;;
		esac
		labels+=("$(label "$s")")
		# shellcheck disable=SC2207
		args+=($(files "$s") --)
	done
	[ ${#labels[@]} -gt 0 ] || return 0
	labels+=("$(label "$1")")
	# shellcheck disable=SC2207
	args+=($(files "$1"))
	local IFS=,
	"$PYTHON" bench/summarize.py ticker "--labels=${labels[*]}" "${args[@]}"
}
echo "### ticker: $N clients, $COUNT events $INTERVAL apart, $RUNS rounds"
echo
if [ $k -eq 1 ]; then # one server: its table and medians
	echo "$(label "${servers[0]}"):"
	echo
	# shellcheck disable=SC2046
	"$PYTHON" bench/summarize.py hub $(files "${servers[0]}")
	exit 0
fi
case " $SERVERS " in
*" fastapi "*) summary fastapi ;;
esac
case " $SERVERS " in
*" base "*)
	echo
	summary base
	;;
esac
case " $SERVERS " in
*" fastapi "* | *" base "*) ;;
*) summary "${servers[-1]}" ;; # no seed, no base: the last server is the reference
esac
