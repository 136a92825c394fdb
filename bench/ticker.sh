#!/usr/bin/env bash
# ticker.sh: issue 2's comparison, ssehub against the seed's FastAPI ticker.
#
# For each of RUNS rounds it starts one server at a time on 127.0.0.1:PORT,
# warms it with one short stream, points `ssebench -scenario ticker` at it
# with -pid (CPU and RSS from /proc), saves the JSON report, and stops the
# server. Then bench/summarize.py prints the medians and the ratios.
#
# With BASE_REV set (a commit), that commit's ssehub runs too, in the same
# rounds, so a change is measured against its baseline in one session.
#
# Run from the repository root:  bench/ticker.sh
# Knobs (environment): N=2000 COUNT=10 INTERVAL=3s RUNS=3 PORT=28111
#                      OUT=bench/results/ticker  PYTHON=/usr/bin/python3
#                      BASE_REV=  (e.g. BASE_REV=HEAD~3)
# Needs Debian's python3-fastapi and python3-uvicorn for the seed server.
set -euo pipefail

N=${N:-2000}
COUNT=${COUNT:-10}
INTERVAL=${INTERVAL:-3s}
RUNS=${RUNS:-3}
PORT=${PORT:-28111}
OUT=${OUT:-bench/results/ticker}
PYTHON=${PYTHON:-/usr/bin/python3}
URL="http://127.0.0.1:$PORT"

"$PYTHON" -c 'import fastapi, uvicorn' 2>/dev/null || {
	echo "ticker.sh: $PYTHON lacks fastapi/uvicorn: apt-get install python3-fastapi python3-uvicorn" >&2
	exit 1
}
mkdir -p bin "$OUT"
CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub
go build -o bin/ssebench ./cmd/ssebench
SERVERS="ssehub fastapi"
if [ -n "${BASE_REV:-}" ]; then
	base_src=$(mktemp -d)
	git archive "$BASE_REV" | tar -x -C "$base_src"
	(cd "$base_src" && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o bin/ssehub ./cmd/ssehub)
	cp "$base_src/bin/ssehub" bin/ssehub-base
	rm -rf "$base_src"
	SERVERS="ssehub base fastapi"
fi

server_pid=
stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
trap stop_server EXIT

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

for run in $(seq "$RUNS"); do
	for server in $SERVERS; do
		start_server "$server"
		echo "run $run: $server (pid $server_pid)" >&2
		bin/ssebench -url "$URL" -scenario ticker -n "$N" -count "$COUNT" -interval "$INTERVAL" \
			-pid "$server_pid" -json -quiet >"$OUT/$server-$run.json"
		stop_server
	done
done
"$PYTHON" bench/summarize.py ticker "$OUT"/ssehub-*.json -- "$OUT"/fastapi-*.json
if [ -n "${BASE_REV:-}" ]; then
	echo
	"$PYTHON" bench/summarize.py ticker "--labels=base ($BASE_REV),FastAPI seed" "$OUT"/base-*.json -- "$OUT"/fastapi-*.json
	echo
	"$PYTHON" bench/summarize.py ticker "--labels=ssehub,base ($BASE_REV)" "$OUT"/ssehub-*.json -- "$OUT"/base-*.json
fi
