package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"time"
)

// quietMax bounds the wait, at the end of a run, for the server's CPU
// time to stop rising; quietPoll is the step of that wait, whatever
// -sample is: it is quiet once it used less than a clock tick (10 ms, what
// /proc counts in) over a step, so a short step would take a server at
// work for a quiet one.
const (
	quietMax  = 5 * time.Second
	quietPoll = 250 * time.Millisecond
)

// bench is one run of one scenario: the target, the counters the
// scenario fills, and the progress line. It is built by newBench and used
// by one scenario.
type bench struct {
	o      options
	t      *target
	stderr io.Writer

	mon      *monitor
	spread   *spread // nil without -sub-urls
	pool     *pool
	delivery *delivery
	started  time.Time

	mu        sync.Mutex
	published *publisher // nil until the scenario publishes
}

func newBench(o options, t *target, stderr io.Writer) *bench {
	reader := &statsReader{pid: o.pid, client: &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: t.tls, MaxIdleConnsPerHost: 1, DisableCompression: true},
	}}
	needsGoroutines := o.scenario != scenarioTicker
	if !o.noMetrics && (o.pid == 0 || needsGoroutines) {
		reader.metricsURL = t.url("/metrics")
	}
	return &bench{o: o, t: t, stderr: stderr, mon: newMonitor(reader), pool: &pool{}, delivery: &delivery{event: o.event}}
}

// run runs the scenario and returns its report. ctx bounds the whole run.
func (b *bench) run(ctx context.Context) *Report {
	b.started = time.Now()
	defer b.mon.reader.close()
	rep := &Report{Scenario: b.o.scenario, URL: b.t.url(""), Started: b.started, Params: b.params(), Machine: machineStart()}
	b.mon.baseline(ctx)
	monCtx, stopMon := context.WithCancel(ctx)
	var bg sync.WaitGroup
	bg.Go(func() { b.mon.run(monCtx, b.o.sampleEvery) })
	if !b.o.quiet {
		bg.Go(func() { b.progress(monCtx) })
	}

	var err error
	switch b.o.scenario {
	case scenarioTicker:
		err = b.ticker(ctx, rep)
	case scenarioIdle:
		err = b.idle(ctx, rep)
	case scenarioReplay:
		err = b.replay(ctx, rep)
	default:
		err = b.hub(ctx, rep)
	}
	stopMon()
	bg.Wait()
	if ctx.Err() == nil {
		b.mon.quiet(ctx, quietPoll, quietMax)
	}
	switch {
	case err != nil:
		rep.Aborted = err.Error()
	case ctx.Err() != nil:
		rep.Aborted = fmt.Sprintf("%v (the -timeout or a signal ended the run)", context.Cause(ctx))
	case rep.Delivery != nil && rep.Delivery.Missing > 0:
		d := rep.Delivery
		rep.Failed = fmt.Sprintf("%d of %d events missing at the end (%d dropped streams)", d.Missing, d.Expected, d.Dropped)
	}
	rep.Elapsed = Duration(time.Since(b.started))
	rep.Server = b.mon.report(b.measuredConnections())
	rep.Client = clientUsage()
	rep.Machine.LoadEnd = loadAverage()
	return rep
}

// params lists the options that matter to the scenario, for the report.
func (b *bench) params() map[string]any {
	o := b.o
	p := map[string]any{"n": o.subscribers}
	switch o.scenario {
	case scenarioTicker:
		p["count"], p["interval"] = o.count, o.interval.String()
	case scenarioIdle:
		p["hold"], p["topic"] = o.hold.String(), o.topic
	default:
		p["rate"], p["size"], p["duration"] = o.rate, o.size, o.duration.String()
		p["publishers"], p["topic"] = o.publishers, o.topic
	}
	if o.scenario != scenarioIdle && o.scenario != scenarioTicker && o.events > 0 {
		p["events"] = o.events
	}
	if len(o.subURLs) > 0 {
		p["sub_urls"] = o.subURLs
	}
	if o.pid > 0 {
		p["pid"] = o.pid
	}
	return p
}

// errNoSubscribers stops a scenario that could not open a single stream.
var errNoSubscribers = errors.New("no subscriber could connect")

// openSubscribers connects n streams on path with the pool, each read by
// read until it ends, with the extra request headers. With -sub-urls the
// streams go round-robin to -url and those. It returns once every connect
// attempt is done.
func (b *bench) openSubscribers(ctx context.Context, n int, path string, read func(c *sseConn) error, extra ...header) {
	var h []header
	if b.o.subscribeToken != "" {
		h = append(h, header{"Authorization", bearer(b.o.subscribeToken)})
	}
	h = append(h, extra...)
	open := func(ctx context.Context) (*sseConn, error) {
		if b.spread != nil {
			return b.spread.open(ctx, path, b.o.connectTimeout, h...)
		}
		return openStream(ctx, b.t, path, b.o.connectTimeout, h...)
	}
	b.pool.connectAll(ctx, n, b.o.dialConcurrency, open, func(_ int, c *sseConn) {
		if err := read(c); err != nil {
			b.pool.streamEnded(ctx, err)
		}
	})
}

// measuredConnections is how many of the streams the server whose
// resources are read (-url's: -pid, /metrics) held: with -sub-urls, only
// the share opened on it, since the others' memory is not in its RSS.
func (b *bench) measuredConnections() int64 {
	if b.spread != nil {
		return b.spread.opened[0].Load()
	}
	return b.pool.connected.Load()
}

// setPublisher makes p visible to the progress line.
func (b *bench) setPublisher(p *publisher) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.published = p
}

// progress prints one status line on stderr at each -progress tick.
func (b *bench) progress(ctx context.Context) {
	t := time.NewTicker(b.o.progressEvery)
	defer t.Stop()
	tty := isTerminal(b.stderr)
	var lastDelivered, lastSent int64
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			if tty {
				fmt.Fprintln(b.stderr)
			}
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			line := fmt.Sprintf("[%5.1fs] open %d/%d", now.Sub(b.started).Seconds(), b.pool.open.Load(), b.o.subscribers)
			if f := b.pool.connectErr.total(); f > 0 {
				line += fmt.Sprintf(" (%d failed)", f)
			}
			d := b.delivery.delivered.Load()
			line += fmt.Sprintf("  events %d (%.0f/s)", d, float64(d-lastDelivered)/dt)
			lastDelivered = d
			if l := b.delivery.latency.Count(); l > 0 {
				line += fmt.Sprintf(" p99 %s", Duration(b.delivery.latency.Percentile(0.99)))
			}
			if dr := b.pool.dropped.Load(); dr > 0 {
				line += fmt.Sprintf("  dropped %d", dr)
			}
			b.mu.Lock()
			p := b.published
			b.mu.Unlock()
			if p != nil {
				s := p.sent.Load()
				line += fmt.Sprintf("  published %d (%.0f/s)", s, float64(s-lastSent)/dt)
				lastSent = s
			}
			line += b.serverStatus()
			if tty {
				fmt.Fprintf(b.stderr, "\r\x1b[K%s", line)
			} else {
				fmt.Fprintln(b.stderr, line)
			}
		}
	}
}

// serverStatus formats the latest server sample for the progress line.
func (b *bench) serverStatus() string {
	s := b.mon.latest()
	out := ""
	if s.rss >= 0 {
		out += "  server RSS " + mib(s.rss)
	}
	if s.goroutines >= 0 {
		out += fmt.Sprintf(" goroutines %d", s.goroutines)
	}
	return out
}

// isTerminal reports whether w is a character device, where the
// progress line rewrites itself.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
