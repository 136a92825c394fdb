package main

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// raiseFileLimit raises the soft limit on open files to the hard limit:
// every connection is a file. It returns the limit in force.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		want := l
		want.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return l.Cur, err
		}
		l = want
	}
	return l.Cur, nil
}

// clientUsage returns this process's CPU time and peak RSS so far.
func clientUsage() ClientReport {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		return ClientReport{CPUSeconds: -1, MaxRSS: -1}
	}
	cpu := float64(int64(u.Utime.Sec)+int64(u.Stime.Sec)) + float64(int64(u.Utime.Usec)+int64(u.Stime.Usec))/1e6
	return ClientReport{CPUSeconds: cpu, MaxRSS: int64(u.Maxrss) * 1024} // Maxrss is in KiB on Linux
}

// loadAverage returns the one-minute load average, -1 when unknown.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// machineStart describes the machine as a run starts.
func machineStart() MachineReport {
	return MachineReport{CPUs: runtime.NumCPU(), LoadStart: loadAverage()}
}
