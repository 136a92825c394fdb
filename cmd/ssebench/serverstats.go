package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is USER_HZ, the unit of CPU times in /proc/PID/stat. It is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// ErrProcFormat reports a /proc file ssebench cannot read.
var ErrProcFormat = errors.New("unexpected /proc format")

// serverSample is one reading of the server's resources. A field is -1
// when no source gave it.
type serverSample struct {
	at          time.Time
	rss         int64         // resident set, bytes
	cpu         time.Duration // user + system CPU time since the process started
	goroutines  int64
	subscribers int64 // ssehub_subscribers
}

func unknownSample(at time.Time) serverSample {
	return serverSample{at: at, rss: -1, cpu: -1, goroutines: -1, subscribers: -1}
}

// statsReader reads the server's resources: RSS and CPU from
// /proc/PID when pid is set, the rest (and RSS and CPU without a pid)
// from the Prometheus text at metricsURL when that is set. It is safe for
// concurrent use.
type statsReader struct {
	pid        int
	metricsURL string
	client     *http.Client

	mu   sync.Mutex
	proc *processHandle // process pid as the first reading found it; nil before
}

// source names where RSS and CPU come from, for the report.
func (r *statsReader) source() string {
	switch {
	case r.pid > 0:
		return fmt.Sprintf("/proc/%d", r.pid)
	case r.metricsURL != "":
		return "/metrics"
	default:
		return "none"
	}
}

// read takes one sample. Sources that fail leave their fields unknown;
// the first error is returned with the sample.
func (r *statsReader) read(ctx context.Context) (serverSample, error) {
	s := unknownSample(time.Now())
	var errs []error
	if r.metricsURL != "" {
		if err := r.readMetrics(ctx, &s); err != nil {
			errs = append(errs, err)
		}
	}
	if r.pid > 0 {
		rss, cpu, err := readProc(r.pid)
		if err == nil && r.pidReused() {
			err = fmt.Errorf("/proc/%d: the server exited and another process has its pid: %w", r.pid, errProcessGone)
		}
		if err != nil {
			errs = append(errs, err)
		} else {
			s.rss, s.cpu = rss, cpu
		}
	}
	return s, errors.Join(errs...)
}

// pidReused reports whether process pid is no longer the one of the
// first reading: once the server exited and was reaped, the kernel may
// give its pid to a new process, whose figures are no server's.
func (r *statsReader) pidReused() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc == nil {
		h := openProcess(r.pid)
		r.proc = &h
		return false
	}
	return r.proc.exited()
}

// close releases what the reader holds; it reads no more.
func (r *statsReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil {
		r.proc.close()
	}
}

func (r *statsReader) readMetrics(ctx context.Context, s *serverSample) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.metricsURL, nil)
	if err != nil {
		return err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("GET %s: status %d: %w", r.metricsURL, resp.StatusCode, ErrStatus)
	}
	return parseMetrics(resp.Body, s)
}

// parseMetrics fills s from Prometheus text: process_resident_memory_bytes,
// process_cpu_seconds_total, go_goroutines and ssehub_subscribers.
func parseMetrics(r io.Reader, s *serverSample) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		name, rest, ok := bytes.Cut(line, []byte(" "))
		if !ok {
			continue
		}
		value, _, _ := bytes.Cut(bytes.TrimSpace(rest), []byte(" "))
		v, err := strconv.ParseFloat(string(value), 64)
		if err != nil {
			continue
		}
		switch string(name) {
		case "process_resident_memory_bytes":
			s.rss = int64(v)
		case "process_cpu_seconds_total":
			s.cpu = time.Duration(v * float64(time.Second))
		case "go_goroutines":
			s.goroutines = int64(v)
		case "ssehub_subscribers":
			s.subscribers = int64(v)
		}
	}
	return sc.Err()
}

// readProc returns the resident set and the user + system CPU time of
// process pid, from /proc/PID/statm and /proc/PID/stat.
func readProc(pid int) (rss int64, cpu time.Duration, err error) {
	statm, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0, 0, err
	}
	f := strings.Fields(string(statm))
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("/proc/%d/statm: %w", pid, ErrProcFormat)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/statm: %w", pid, ErrProcFormat)
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	if state := statState(string(stat)); state == "Z" || state == "X" {
		// Dead, not yet reaped: its RSS reads 0.
		return 0, 0, fmt.Errorf("/proc/%d: %w", pid, errProcessGone)
	}
	cpu, err = parseStatCPU(string(stat))
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return pages * int64(os.Getpagesize()), cpu, nil
}

// errProcessGone reports a server process that died.
var errProcessGone = errors.New("the process has exited")

// statState returns the state field (R, S, Z...) of /proc/PID/stat's text.
func statState(stat string) string {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(stat[i+1:])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// parseStatCPU returns utime + stime from the text of /proc/PID/stat. The
// command name in parentheses may hold spaces, so fields are counted from
// the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, ErrProcFormat
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, ErrProcFormat
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, ErrProcFormat
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// monitor samples the server at a steady pace and keeps the first
// sample, the latest and the peaks. It is safe for concurrent use.
type monitor struct {
	reader *statsReader

	mu       sync.Mutex
	base     serverSample
	last     serverSample
	peakRSS  int64
	peakGor  int64
	peakSubs int64
	errs     errorCounts
}

func newMonitor(r *statsReader) *monitor {
	now := time.Now()
	return &monitor{reader: r, base: unknownSample(now), last: unknownSample(now), peakRSS: -1, peakGor: -1, peakSubs: -1}
}

// baseline takes the sample the run's deltas start from.
func (m *monitor) baseline(ctx context.Context) serverSample {
	s := m.sample(ctx)
	m.mu.Lock()
	defer m.mu.Unlock()
	m.base = s
	m.peakRSS, m.peakGor, m.peakSubs = s.rss, s.goroutines, s.subscribers
	return s
}

// sample takes one sample and folds it into the peaks.
func (m *monitor) sample(ctx context.Context) serverSample {
	if m.reader.pid == 0 && m.reader.metricsURL == "" {
		return unknownSample(time.Now())
	}
	s, err := m.reader.read(ctx)
	if err != nil && ctx.Err() == nil {
		m.errs.add(err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.last = s
	m.peakRSS = max(m.peakRSS, s.rss)
	m.peakGor = max(m.peakGor, s.goroutines)
	m.peakSubs = max(m.peakSubs, s.subscribers)
	return s
}

// run samples every interval until ctx is done.
func (m *monitor) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.sample(ctx)
		}
	}
}

// quiet takes the run's last sample, then samples every interval until
// the server's CPU time stops rising (less than a clock tick over an
// interval), at most limit: the work a server does after its clients
// left, closing their streams, is part of what the run cost it. Those
// later samples end the CPU time and give the end RSS, but not the peaks,
// which stay the run's. Without a CPU figure it takes the one sample.
func (m *monitor) quiet(ctx context.Context, every, limit time.Duration) {
	prev := m.sample(ctx)
	deadline := time.Now().Add(limit)
	for prev.cpu >= 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		sleep(ctx, every)
		s, err := m.reader.read(ctx)
		if err != nil || s.cpu < 0 {
			return // the last sample that had a CPU time stands
		}
		m.mu.Lock()
		m.last = s
		m.mu.Unlock()
		if s.cpu-prev.cpu < time.Second/clockTicks {
			return
		}
		prev = s
	}
}

// baseSample returns the sample the run started from.
func (m *monitor) baseSample() serverSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.base
}

// latest returns the most recent sample.
func (m *monitor) latest() serverSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.last
}

// report returns the server figures of the run so far: n is the number of
// connections the RSS increase is shared by.
func (m *monitor) report(n int64) ServerReport {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := ServerReport{
		Source:         m.reader.source(),
		RSSIdle:        m.base.rss,
		RSSPeak:        m.peakRSS,
		RSSEnd:         m.last.rss,
		GoroutinesIdle: m.base.goroutines,
		GoroutinesPeak: m.peakGor,
		SubscribersMax: m.peakSubs,
		CPUSeconds:     -1,
		SampleErrors:   m.errs.top(3),
	}
	if m.base.cpu >= 0 && m.last.cpu >= 0 {
		r.CPUSeconds = (m.last.cpu - m.base.cpu).Seconds()
	}
	switch {
	case n > 0 && m.base.rss >= 0 && m.peakRSS >= 0:
		r.RSSPerConn = (m.peakRSS - m.base.rss) / n
	case n > 0:
		r.RSSPerConn = -1 // no RSS, or none before the first connect
	}
	return r
}
