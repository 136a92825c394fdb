# lib.sh: what the benchmark scripts share. Source it from the repository
# root after setting LOADMAX; it sets the EXIT trap that stops the server
# and ssebench, and makes INT, TERM and HUP exit the script.

# bench_pid is the ssebench run under way. run_ssebench runs bin/ssebench
# with its arguments in the background and waits for it: bash acts on a
# signal during a wait, but not while a command runs in the foreground,
# and a foreground ssebench outlived a script that a signal ended.
bench_pid=
run_ssebench() {
	bin/ssebench "$@" &
	bench_pid=$!
	local rc=0
	wait "$bench_pid" || rc=$?
	bench_pid=
	return "$rc"
}
stop_bench() {
	if [ -n "$bench_pid" ]; then
		kill "$bench_pid" 2>/dev/null || true
		wait "$bench_pid" 2>/dev/null || true
		bench_pid=
	fi
}

# server_pid is the server under test, started by the script; stop_server
# stops it (and a run of ssebench under way), and runs when the script
# exits.
server_pid=
stop_server() {
	stop_bench
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
		server_pid=
	fi
}
trap stop_server EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_quiet waits (at most two minutes) for the one-minute load average
# to fall below LOADMAX: other work on the machine skews CPU and latency.
wait_quiet() {
	for _ in $(seq 60); do
		awk -v max="$LOADMAX" '{ exit !($1 < max) }' /proc/loadavg && return
		sleep 2
	done
	echo "$(basename "$0"): load still $(cut -d' ' -f1 /proc/loadavg); running anyway" >&2
}

# proc_start prints the start time of process $1 (field 22 of
# /proc/PID/stat, in clock ticks after boot), nothing when there is none.
# Once a process exited and was reaped, the kernel may give its pid to a
# later process: the start time tells them apart.
proc_start() {
	awk '{ sub(/^.*\) /, ""); print $20 }' "/proc/$1/stat" 2>/dev/null || true
}

# cpu_ticks PID START [PID START...] prints the CPU time (user + system, in
# clock ticks) of each process, one a line; -1 for one that is gone, or
# whose pid a later process (another START) has now.
cpu_ticks() {
	while [ $# -ge 2 ]; do
		awk -v start="$2" '{ sub(/^.*\) /, ""); print ($20 == start ? $12 + $13 : -1) }' "/proc/$1/stat" 2>/dev/null || echo -1
		shift 2
	done
}
