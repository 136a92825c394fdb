package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// ErrUsage reports bad command-line arguments; the message says which.
var ErrUsage = errors.New("usage")

// Scenario names.
const (
	scenarioIdle      = "idle"
	scenarioFanout    = "fanout"
	scenarioSustained = "sustained"
	scenarioTicker    = "ticker"
	scenarioPublish   = "publish"
	scenarioReplay    = "replay"
)

// options are ssebench's settings, from flags.
type options struct {
	url         string
	allowRemote bool
	insecure    bool
	scenario    string

	subscribers     int
	subURLs         []string // more base URLs the subscribers are spread over
	topic           string
	subscribeToken  string
	dialConcurrency int
	connectTimeout  time.Duration

	hold   time.Duration
	settle time.Duration

	rate       float64
	size       int
	duration   time.Duration
	publishers int
	token      string
	event      string
	drain      time.Duration

	count    int
	interval time.Duration

	events int // how many events to publish (0: no bound but -duration); replay: before the resume

	pid           int
	sampleEvery   time.Duration
	noMetrics     bool
	timeout       time.Duration
	json          bool
	quiet         bool
	progressEvery time.Duration
	cpuProfile    string
}

// scenarioDefaults are the values of flags a scenario changes unless
// they are given.
type scenarioDefaults struct {
	subscribers int
	rate        float64
	size        int
	duration    time.Duration
	publishers  int
	events      int
}

var defaultsByScenario = map[string]scenarioDefaults{
	scenarioIdle:      {subscribers: 10000},
	scenarioFanout:    {subscribers: 10000, rate: 5, size: 256, duration: 30 * time.Second, publishers: 2},
	scenarioSustained: {subscribers: 1000, rate: 200, size: 256, duration: 30 * time.Second, publishers: 4},
	scenarioTicker:    {subscribers: 2000},
	scenarioPublish:   {subscribers: 0, rate: 0, size: 100, duration: 10 * time.Second, publishers: 16},
	scenarioReplay:    {subscribers: 1, rate: 0, size: 256, duration: 2 * time.Minute, publishers: 4, events: 10000},
}

const usageText = `ssebench puts load on an ssehub server (or any SSE server, for the ticker
scenario) from one process and reports what it measured.

Usage: ssebench [flags]

Scenarios (-scenario):
  idle       open -n subscribers to -topic, hold them for -hold, then disconnect
             all and wait (up to -settle) for the server's goroutines and RSS to
             return to where they were. Reports connect time, server RSS per
             subscriber and goroutines. Goroutines come from /metrics.
  fanout     -n subscribers on one topic; publish -size byte events at -rate per
             second for -duration. Each event's JSON data holds a sequence number
             and the time it was due (latency counts a publisher falling behind):
             reports delivered/expected, duplicates, out of order, dropped
             streams, latency p50/p90/p99/max.
             With -events N it stops after N events (or at -duration).
             Defaults: -n 10000 -rate 5 -size 256 -duration 30s.
  sustained  fanout with a high rate. Defaults: -n 1000 -rate 200 -duration 30s.
  ticker     -n clients each GET /stream?count=C&interval=I until "event: close";
             reports delivered/expected and the server's CPU seconds and RSS.
             Works against any server with that endpoint (no hub needed).
  publish    publish as fast as the server answers (or at -rate) from
             -publishers connections for -duration (or -events events), with
             -n subscribers (default 0). Reports requests/s and request time.
  replay     publish -events events (one first, then the rest from -publishers
             connections, as fast as the server answers, within -duration),
             then open -n subscribers (default 1) that resume after the first
             with Last-Event-ID; reports the time from the resume until each
             has the -events - 1 others, and the delivery checks of fanout.
             A subscriber still without them all after -drain fails the run.

The server's RSS and CPU come from /proc/PID when -pid is given (the server
must run on this machine), else from its /metrics. With -pid, /metrics is
read only where the scenario needs goroutines (idle) unless -no-metrics.

-sub-urls spreads the subscribers round-robin over -url and more instances
of one hub (several ssehub processes on one NATS): publishing, /metrics and
-pid stay on -url; the wait for the subscriptions reads each instance's
ssehub_subscribers.

Only loopback hosts are accepted unless -allow-remote is given. Every run
ends by itself: -duration, -hold and -settle bound the phases and -timeout
bounds the whole run.

Flags:
`

// parseOptions reads the flags. A scenario's defaults apply to the flags
// that were not given.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("ssebench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8111", "base `URL` of the server; a path is a prefix for every route")
	fs.BoolVar(&o.allowRemote, "allow-remote", false, "allow a -url host that is not loopback (your own deployment only)")
	fs.BoolVar(&o.insecure, "insecure", false, "skip TLS certificate verification for https")
	fs.StringVar(&o.scenario, "scenario", scenarioTicker, "`name`: idle, fanout, sustained, ticker, publish or replay")
	fs.Func("sub-urls", "comma-separated base `URLs` of more instances of the same hub: subscribers are spread round-robin over -url and these", func(v string) error {
		for _, u := range strings.Split(v, ",") {
			if u = strings.TrimSpace(u); u != "" {
				o.subURLs = append(o.subURLs, u)
			}
		}
		return nil
	})
	subscribers := optional[int]{parse: strconv.Atoi}
	fs.Var(&subscribers, "n", "open `N` subscribers or ticker clients (default: per scenario: idle and fanout 10000, sustained 1000, ticker 2000, publish 0)")
	fs.StringVar(&o.topic, "topic", "", "topic to subscribe and publish to (default: ssebench.<unique>, so no history from an earlier run)")
	fs.StringVar(&o.subscribeToken, "subscribe-token", "", "subscribe `token`, sent as Authorization: Bearer")
	fs.IntVar(&o.dialConcurrency, "dial-concurrency", 200, "connections being opened at once")
	fs.DurationVar(&o.connectTimeout, "connect-timeout", 10*time.Second, "bound on one connect: dial, request, response head")
	fs.DurationVar(&o.hold, "hold", 10*time.Second, "idle: how long to hold the subscribers")
	fs.DurationVar(&o.settle, "settle", 15*time.Second, "idle: how long to wait for the server to return to baseline after the disconnect")
	rate := optional[float64]{parse: parseFloat}
	fs.Var(&rate, "rate", "publish `R` events per second; publish: 0 means as fast as possible (default: fanout 5, sustained 200, publish 0)")
	size := optional[int]{parse: strconv.Atoi}
	fs.Var(&size, "size", "`bytes` of JSON data per published event, at least 64 (default: 256, publish 100)")
	duration := optional[time.Duration]{parse: time.ParseDuration}
	fs.Var(&duration, "duration", "publish for this `duration` (default: fanout and sustained 30s, publish 10s)")
	publishers := optional[int]{parse: strconv.Atoi}
	fs.Var(&publishers, "publishers", "publish from `P` concurrent keep-alive connections (default: fanout 2, sustained 4, publish 16)")
	fs.StringVar(&o.token, "token", "", "publish `token`, sent as Authorization: Bearer")
	fs.StringVar(&o.event, "event", "", "event name for published events (default: none, i.e. message)")
	fs.DurationVar(&o.drain, "drain", 5*time.Second, "after publishing, how long to wait for the last events to arrive")
	fs.IntVar(&o.count, "count", 10, "ticker: events per stream (the seed's 10)")
	fs.DurationVar(&o.interval, "interval", 3*time.Second, "ticker: time between events (the seed's 3s)")
	events := optional[int]{parse: strconv.Atoi}
	fs.Var(&events, "events", "publish `N` events, then stop (-duration still bounds the publishing); replay: the events published before the subscribers resume after the first (default: replay 10000, else no bound)")
	fs.IntVar(&o.pid, "pid", 0, "`PID` of the server process on this machine: RSS and CPU from /proc/PID")
	fs.DurationVar(&o.sampleEvery, "sample", 250*time.Millisecond, "how often to sample the server's resources")
	fs.BoolVar(&o.noMetrics, "no-metrics", false, "never read /metrics (with -pid: goroutines stay unknown)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "hard bound on the whole run")
	fs.BoolVar(&o.json, "json", false, "print one JSON object instead of the table")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line on stderr")
	fs.DurationVar(&o.progressEvery, "progress", time.Second, "how often to print the progress line")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write ssebench's own CPU profile to `file` (to see what the client costs)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected argument %q: %w", fs.Arg(0), ErrUsage)
	}
	def, ok := defaultsByScenario[o.scenario]
	if !ok {
		return o, fmt.Errorf("-scenario %q: want idle, fanout, sustained, ticker, publish or replay: %w", o.scenario, ErrUsage)
	}
	o.subscribers = subscribers.or(def.subscribers)
	o.rate = rate.or(def.rate)
	o.size = size.or(def.size)
	o.duration = duration.or(def.duration)
	o.publishers = publishers.or(def.publishers)
	o.events = events.or(def.events)
	if o.topic == "" {
		o.topic = "ssebench." + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return o, o.validate()
}

// optional is a flag value that remembers whether it was given, so that
// the scenario's default applies when it was not.
type optional[T any] struct {
	v     T
	set   bool
	parse func(string) (T, error)
}

// String returns the value given, empty when none was.
func (f *optional[T]) String() string {
	if f == nil || !f.set {
		return ""
	}
	return fmt.Sprint(f.v)
}

// Set parses a value given on the command line.
func (f *optional[T]) Set(s string) error {
	v, err := f.parse(s)
	if err != nil {
		return err
	}
	f.v, f.set = v, true
	return nil
}

// or returns the value given, else def.
func (f *optional[T]) or(def T) T {
	if f.set {
		return f.v
	}
	return def
}

func parseFloat(s string) (float64, error) {
	return strconv.ParseFloat(s, 64)
}

// minTick bounds -sample and -progress from below: /proc counts CPU time
// in ticks of 10 ms.
const minTick = 10 * time.Millisecond

// maxRate bounds -rate: far above what one process can publish, and low
// enough that the schedule's due times stay exact.
const maxRate = 1e9

func (o *options) validate() error {
	hubScenario := o.scenario != scenarioTicker
	publishes := o.scenario == scenarioFanout || o.scenario == scenarioSustained || o.scenario == scenarioPublish || o.scenario == scenarioReplay
	switch {
	case o.subscribers < 0 || o.subscribers > 1_000_000:
		return fmt.Errorf("-n %d: want 0 to 1000000: %w", o.subscribers, ErrUsage)
	case o.subscribers == 0 && o.scenario != scenarioPublish:
		return fmt.Errorf("-n 0: the %s scenario needs subscribers: %w", o.scenario, ErrUsage)
	case o.dialConcurrency < 1:
		return fmt.Errorf("-dial-concurrency %d: want at least 1: %w", o.dialConcurrency, ErrUsage)
	case o.connectTimeout <= 0 || o.timeout <= 0:
		return fmt.Errorf("-connect-timeout and -timeout must be positive: %w", ErrUsage)
	case o.sampleEvery < minTick || o.progressEvery < minTick:
		// Shorter, the samples (each a /metrics request without -pid)
		// and the progress lines would keep the server and ssebench busy.
		return fmt.Errorf("-sample %s -progress %s: want at least %s: %w", o.sampleEvery, o.progressEvery, minTick, ErrUsage)
	case o.hold < 0 || o.settle < 0 || o.drain < 0:
		return fmt.Errorf("-hold, -settle and -drain must not be negative: %w", ErrUsage)
	case publishes && o.duration <= 0:
		return fmt.Errorf("-duration %s: want a positive duration: %w", o.duration, ErrUsage)
	case publishes && o.scenario != scenarioPublish && o.scenario != scenarioReplay && !(o.rate > 0 && o.rate <= maxRate):
		return fmt.Errorf("-rate %g: want events per second above 0, at most %g: %w", o.rate, float64(maxRate), ErrUsage)
	case publishes && !(o.rate >= 0 && o.rate <= maxRate):
		return fmt.Errorf("-rate %g: want events per second from 0 (as fast as the server answers) to %g: %w", o.rate, float64(maxRate), ErrUsage)
	case publishes && (o.publishers < 1 || o.publishers > 1_000_000):
		return fmt.Errorf("-publishers %d: want 1 to 1000000: %w", o.publishers, ErrUsage)
	case publishes && (o.size < minPayloadBytes || o.size > 16<<20):
		return fmt.Errorf("-size %d: want %d to %d bytes: %w", o.size, minPayloadBytes, 16<<20, ErrUsage)
	case o.scenario == scenarioTicker && (o.count < 1 || o.interval < 0):
		return fmt.Errorf("-count %d -interval %s: want a count of at least 1 and a non-negative interval: %w", o.count, o.interval, ErrUsage)
	case hubScenario && o.topic == "":
		return fmt.Errorf("-topic: must not be empty: %w", ErrUsage)
	case publishes && o.events < 0:
		return fmt.Errorf("-events %d: want 0 (no bound) or more: %w", o.events, ErrUsage)
	case o.scenario == scenarioReplay && o.events < 2:
		return fmt.Errorf("-events %d: replay needs at least 2: %w", o.events, ErrUsage)
	case len(o.subURLs) > 0 && (o.scenario == scenarioTicker || o.scenario == scenarioIdle):
		return fmt.Errorf("-sub-urls: only for the hub scenarios that publish: %w", ErrUsage)
	case o.pid < 0:
		return fmt.Errorf("-pid %d: %w", o.pid, ErrUsage)
	}
	return nil
}
