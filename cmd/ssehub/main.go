// Command ssehub serves Server-Sent Events: the demo page and streams, and
// the pub/sub hub. `ssehub healthcheck` asks a running instance whether it
// is healthy, for container health checks; `ssehub token` mints a JSON Web
// Token for development from the configured HMAC secret.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/pflag"
	"github.com/ssehub/ssehub/config"
)

func main() {
	// A misspelt SSEHUB_ variable would otherwise be ignored without a word.
	// The help is printed whatever the environment holds: it is what a
	// user reads to put it right.
	if err := config.CheckEnv(os.Environ()); err != nil && !asksHelp(os.Args[1:]) {
		printProblems(os.Stderr, err)
		os.Exit(1)
	}
	// A log reader gone (journald restarted, the end of a `| tee`) must
	// not stop the server: a write to the broken stderr then fails, and
	// the line is lost, where SIGPIPE ended the process, every stream cut.
	signal.Ignore(syscall.SIGPIPE)
	// SIGHUP stops as SIGTERM does: ssehub reloads nothing, and a hang-up
	// (the terminal it ran in closed, a supervisor's reload signal) left
	// to the runtime would end the process mid-stream. Unless it was
	// ignored at start (nohup), as SIGINT is for a script's background
	// job: asked for, either would be ignored no more.
	signals := []os.Signal{syscall.SIGTERM}
	for _, sig := range []os.Signal{os.Interrupt, syscall.SIGHUP} {
		if !signal.Ignored(sig) {
			signals = append(signals, sig)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), signals...)
	defer stop()
	// The first signal starts the graceful shutdown; from then on the
	// signals are the runtime's again, so a second one (Ctrl-C pressed
	// again, or an orchestrator's next SIGTERM) ends the process at once
	// instead of waiting out server.shutdown_timeout.
	context.AfterFunc(ctx, stop)
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := serve
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			cmd, args = healthcheck, args[1:]
		case "token":
			cmd, args = token, args[1:]
		}
	}
	err := cmd(ctx, args, getenv, stdout, stderr)
	var help *config.HelpError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &help):
		fmt.Fprint(stdout, help.Usage)
		return 0
	case errors.As(err, new(loggedError)):
		return 1 // the JSON log has it
	default:
		printProblems(stderr, err)
		return 1
	}
}

// asksHelp reports whether args, as run reads them, ask for the help (-h
// or --help) of ssehub or of a subcommand, before any other problem of
// theirs: run then prints the help and reads nothing else.
func asksHelp(args []string) bool {
	if len(args) > 0 {
		switch args[0] {
		case "healthcheck":
			args = args[1:]
		case "token":
			flags := tokenFlags()
			own, rest := splitArgs(flags, args[1:])
			if err := flags.Parse(own); err != nil {
				return errors.Is(err, pflag.ErrHelp)
			}
			args = rest
		}
	}
	return config.AsksHelp(args)
}

// printProblems writes err to w one line per problem (config errors come
// joined), each saying whose it is.
func printProblems(w io.Writer, err error) {
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(w, "ssehub:", line)
	}
}

// loggedError is an error serve has written to the log already: with
// log.format json, as a JSON line, which a log pipeline reads where a
// plain "ssehub: ..." line would be lost.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }
