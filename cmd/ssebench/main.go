// Command ssebench puts Server-Sent Events load on an ssehub server from
// one process: many lean raw-socket subscribers read through
// internal/stream's spec parser, keep-alive publishers stamp each event
// with a sequence number and the time it was due, and the server's RSS and CPU
// are read from /proc/PID or its /metrics. Run `ssebench -h` for the
// scenarios and flags.
//
// It targets loopback addresses only, unless -allow-remote is given, and
// every run ends by itself.
//
// The exit code is 0 when the run completed, 1 when it was cut short (by
// -timeout, a signal, or no subscriber connecting) or a replay subscriber
// lacked events at the end of -drain, 2 on bad flags, and 3 when the run
// completed but events were missing at its end (the report's "failed"
// says how many): its figures are a run's, of a server that lost events.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "ssebench:", err)
		return 2
	}
	t, err := parseTarget(o.url, o.allowRemote, o.insecure)
	if err != nil {
		fmt.Fprintln(stderr, "ssebench:", err)
		return 2
	}
	targets := []*target{t}
	for _, u := range o.subURLs {
		st, err := parseTarget(u, o.allowRemote, o.insecure)
		if err != nil {
			fmt.Fprintln(stderr, "ssebench: -sub-urls:", err)
			return 2
		}
		targets = append(targets, st)
	}
	if o.pid > 0 {
		// A typo, or a server that already exited: the run would have
		// none of the server's figures.
		if _, _, err := readProc(o.pid); err != nil {
			fmt.Fprintf(stderr, "ssebench: -pid %d: %v\n", o.pid, err)
			return 2
		}
	}
	limit, err := raiseFileLimit()
	if err != nil {
		fmt.Fprintln(stderr, "ssebench: raising the open-file limit:", err)
	}
	if need := uint64(o.subscribers + o.publishers + 64); limit > 0 && need > limit {
		fmt.Fprintf(stderr, "ssebench: warning: %d connections need about %d open files; the limit is %d\n", o.subscribers, need, limit)
	}

	if o.cpuProfile != "" {
		stop, err := startCPUProfile(o.cpuProfile)
		if err != nil {
			fmt.Fprintln(stderr, "ssebench:", err)
			return 2
		}
		defer stop()
	}
	ctx, cancel := context.WithTimeoutCause(ctx, o.timeout, fmt.Errorf("-timeout %s reached", o.timeout))
	defer cancel()
	b := newBench(o, t, stderr)
	if len(targets) > 1 {
		b.spread = newSpread(targets)
	}
	rep := b.run(ctx)
	rep.Client.FileLimit = limit
	if o.json {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "ssebench:", err)
		return 1
	}
	switch {
	case rep.Aborted != "":
		return 1
	case rep.Failed != "":
		return exitFailed
	}
	return 0
}

// exitFailed is the exit code of a run that completed with events missing.
const exitFailed = 3

// startCPUProfile profiles ssebench itself into path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("-cpuprofile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}, nil
}
