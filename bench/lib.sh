# lib.sh: what the benchmark scripts share. Source it from the repository
# root after setting LOADMAX; it sets the EXIT trap that stops the server.

# server_pid is the server under test, started by the script; stop_server
# stops it, and runs when the script exits.
server_pid=
stop_server() {
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
trap stop_server EXIT

# wait_quiet waits (at most two minutes) for the one-minute load average
# to fall below LOADMAX: other work on the machine skews CPU and latency.
wait_quiet() {
	for _ in $(seq 60); do
		awk -v max="$LOADMAX" '{ exit !($1 < max) }' /proc/loadavg && return
		sleep 2
	done
	echo "$(basename "$0"): load still $(cut -d' ' -f1 /proc/loadavg); running anyway" >&2
}
