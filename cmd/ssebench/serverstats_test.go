package main

import (
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 2043
go_goroutines_extra 1
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.23456789e+08
ssehub_subscribers 2000
ssehub_events_delivered_total{topic="a"} 5
garbage line
`
	s := unknownSample(time.Now())
	if err := parseMetrics(strings.NewReader(text), &s); err != nil {
		t.Fatal(err)
	}
	if s.goroutines != 2043 || s.cpu != 12500*time.Millisecond || s.rss != 123456789 || s.subscribers != 2000 {
		t.Errorf("sample = %+v", s)
	}
}

func TestParseMetricsLeavesMissingUnknown(t *testing.T) {
	s := unknownSample(time.Now())
	if err := parseMetrics(strings.NewReader("go_goroutines 7\n"), &s); err != nil {
		t.Fatal(err)
	}
	if s.goroutines != 7 || s.rss != -1 || s.cpu != -1 || s.subscribers != -1 {
		t.Errorf("sample = %+v, want only goroutines known", s)
	}
}

func TestParseStatCPU(t *testing.T) {
	// The command name may hold spaces and parentheses.
	stat := "4242 (my (odd) srv) S 1 4242 4242 0 -1 4194560 500 0 0 0 150 75 0 0 20 0 8 0 100 1000000 300"
	got, err := parseStatCPU(stat)
	if err != nil || got != 2250*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v; want 2.25s (150+75 ticks)", got, err)
	}
	if _, err := parseStatCPU("4242 (x) S 1 2"); err == nil {
		t.Error("short stat parsed without error")
	}
}

func TestReadProcSelf(t *testing.T) {
	rss, cpu, err := readProc(os.Getpid())
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	if rss < 1<<20 || cpu < 0 {
		t.Errorf("own RSS %d bytes, CPU %v: want at least 1 MiB and a non-negative time", rss, cpu)
	}
}

// A server that died but was not yet reaped by its parent is a zombie:
// /proc still has its files, with an RSS of 0. That is no reading of a
// server: readProc fails as for a server that is gone, rather than report
// an end RSS of 0 (and, in the idle scenario, a server back to its
// baseline at once).
func TestReadProcOfADeadServerFails(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if _, _, err := readProc(pid); err != nil {
		t.Fatalf("readProc of a running process: %v", err)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Until Wait reaps it, the killed child stays a zombie: wait for the
	// kernel to make it one.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != nil {
		t.Fatal(err)
	}
	rss, cpu, err := readProc(pid)
	_ = cmd.Wait()
	if !errors.Is(err, errProcessGone) {
		t.Errorf("readProc of a dead process = RSS %d, CPU %s, error %v; want errProcessGone", rss, cpu, err)
	}
}

// A server that exited and was reaped leaves its pid free, and the kernel
// gives it to a later process: /proc/PID is then that process's. Its RSS
// and CPU time are no server's, so a reading of it fails as for a server
// that is gone. The test makes the kernel reuse a pid in a pid namespace
// of its own (unshare, as root), where it sets the next pid.
func TestStatsOfAReusedPIDFail(t *testing.T) {
	if os.Getenv("SSEBENCH_PIDNS") == "" {
		unshare, err := exec.LookPath("unshare")
		if err != nil || os.Geteuid() != 0 {
			t.Skip("needs unshare and root for a pid namespace")
		}
		cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc",
			os.Args[0], "-test.run=^TestStatsOfAReusedPIDFail$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "SSEBENCH_PIDNS=1")
		out, err := cmd.CombinedOutput()
		switch {
		case err != nil && !strings.Contains(string(out), "=== RUN"):
			t.Skipf("no pid namespace here: %v: %s", err, out)
		case err != nil:
			t.Fatalf("in a pid namespace: %v\n%s", err, out)
		case strings.Contains(string(out), "--- SKIP"):
			t.Skipf("in a pid namespace:\n%s", out)
		}
		return
	}
	if os.Getpid() != 1 {
		// Not the first process of a pid namespace of its own: setting
		// the next pid would set the machine's.
		t.Skip("SSEBENCH_PIDNS is set outside a pid namespace")
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	server := start()
	pid := server.Process.Pid
	r := &statsReader{pid: pid}
	if s, err := r.read(t.Context()); err != nil || s.cpu < 0 {
		t.Fatalf("reading the server: %+v, %v", s, err)
	}
	_ = server.Process.Kill()
	_ = server.Wait()
	// The next process gets pid, unless a thread of this one took it
	// first: try again then.
	var other *exec.Cmd
	for range 10 {
		if err := os.WriteFile("/proc/sys/kernel/ns_last_pid", []byte(strconv.Itoa(pid-1)), 0o644); err != nil {
			t.Skipf("setting the next pid: %v", err)
		}
		c := start()
		if c.Process.Pid == pid {
			other = c
			break
		}
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	if other == nil {
		t.Skipf("no process got pid %d again", pid)
	}
	defer func() {
		_ = other.Process.Kill()
		_ = other.Wait()
	}()
	s, err := r.read(t.Context())
	if !errors.Is(err, errProcessGone) || s.rss >= 0 || s.cpu >= 0 {
		t.Errorf("reading a later process with the server's pid = RSS %d, CPU %s, error %v; want unknown, errProcessGone", s.rss, s.cpu, err)
	}
}
