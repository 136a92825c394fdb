package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Duration is a time.Duration that JSON encodes as milliseconds.
type Duration time.Duration

// MarshalJSON writes the duration in milliseconds, to the microsecond. A
// negative duration, which the report uses for "did not happen", is -1.
func (d Duration) MarshalJSON() ([]byte, error) {
	if d < 0 {
		return []byte("-1"), nil
	}
	return strconv.AppendFloat(nil, float64(time.Duration(d).Microseconds())/1000, 'f', -1, 64), nil
}

// UnmarshalJSON reads milliseconds, so reports can be read back.
func (d *Duration) UnmarshalJSON(b []byte) error {
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	*d = Duration(ms * float64(time.Millisecond))
	if ms < 0 {
		*d = -1
	}
	return nil
}

// String formats the duration for the table.
func (d Duration) String() string {
	v := time.Duration(d)
	switch {
	case v >= time.Second:
		return v.Round(time.Millisecond).String()
	case v >= time.Millisecond:
		return v.Round(10 * time.Microsecond).String()
	default:
		return v.Round(time.Microsecond).String()
	}
}

// Report is everything one run measured. Fields that do not apply to the
// scenario are left out of the JSON; server figures are -1 when unknown.
type Report struct {
	Scenario string         `json:"scenario"`
	URL      string         `json:"url"`
	Params   map[string]any `json:"params"`
	Started  time.Time      `json:"started"`
	Elapsed  Duration       `json:"elapsed_ms"`
	// Aborted says why the run stopped early, if it did.
	Aborted string `json:"aborted,omitempty"`
	// Failed says why a run that was not cut short failed: events that
	// did not arrive by its end. Its figures are a run's, unlike an
	// aborted run's.
	Failed   string          `json:"failed,omitempty"`
	Connect  *ConnectReport  `json:"connect,omitempty"`
	Delivery *DeliveryReport `json:"delivery,omitempty"`
	Publish  *PublishReport  `json:"publish,omitempty"`
	Idle     *IdleReport     `json:"idle,omitempty"`
	Replay   *ReplayReport   `json:"replay,omitempty"`
	Server   ServerReport    `json:"server"`
	Client   ClientReport    `json:"client"`
	Machine  MachineReport   `json:"machine"`
}

// MachineReport describes the machine during the run: other load on it
// skews every figure, latency most.
type MachineReport struct {
	CPUs      int     `json:"cpus"`
	LoadStart float64 `json:"load1_start"`
	LoadEnd   float64 `json:"load1_end"`
}

// ErrorCount is one kind of error and how often it happened.
type ErrorCount struct {
	Error string `json:"error"`
	Count int64  `json:"count"`
}

// ConnectReport describes opening the subscribers. Time is from dial to
// the response head; Wall from the first dial to the last connect.
type ConnectReport struct {
	Attempted int64        `json:"attempted"`
	Connected int64        `json:"connected"`
	Failed    int64        `json:"failed"`
	Errors    []ErrorCount `json:"errors,omitempty"`
	Time      Summary      `json:"time"`
	Wall      Duration     `json:"wall_ms"`
}

// DeliveryReport describes the events the subscribers received.
// Expected is events × subscribers connected when they were published;
// Delivered is how many of those arrived, Missing how many never did.
// Unaccepted counts deliveries of events whose publish failed (the server
// sent them on, but did not answer 201): they are not in Delivered. Duplicates and OutOfOrder
// are counted per subscriber. Dropped counts streams that ended before
// the run ended them (a slow-consumer drop shows here). PerSecond is
// Delivered over the time from the start of publishing (of the resume, in
// replay) to the last event's arrival: a wait for events that never came
// is no part of it. Other counts events that are not the run's: another
// name, data without its sequence number, or a sequence number it did not
// publish.
type DeliveryReport struct {
	Expected   int64        `json:"expected"`
	Delivered  int64        `json:"delivered"`
	Missing    int64        `json:"missing"`
	Unaccepted int64        `json:"unaccepted"`
	Duplicates int64        `json:"duplicates"`
	OutOfOrder int64        `json:"out_of_order"`
	Dropped    int64        `json:"dropped_streams"`
	DropErrors []ErrorCount `json:"drop_errors,omitempty"`
	Resets     int64        `json:"resets"`
	Other      int64        `json:"other_events"`
	Heartbeats int64        `json:"heartbeats"`
	PerSecond  float64      `json:"per_second"`
	Latency    *Summary     `json:"latency,omitempty"`
}

// PublishReport describes the publishing side.
type PublishReport struct {
	Sent      int64        `json:"sent"`
	OK        int64        `json:"ok"`
	Failed    int64        `json:"failed"`
	Errors    []ErrorCount `json:"errors,omitempty"`
	PerSecond float64      `json:"per_second"`
	Latency   Summary      `json:"latency"`
	Elapsed   Duration     `json:"elapsed_ms"`
}

// IdleReport describes the idle scenario's hold and the return to the
// baseline after the disconnect. A settle time of -1 means the server did
// not get there within -settle.
type IdleReport struct {
	Hold              Duration `json:"hold_ms"`
	GoroutinesHeld    int64    `json:"goroutines_held"`
	GoroutinesPerConn float64  `json:"goroutines_per_conn"`
	SettleGoroutines  Duration `json:"settle_goroutines_ms"`
	SettleRSS         Duration `json:"settle_rss_ms"`
	RSSAfter          int64    `json:"rss_after_bytes"`
	GoroutinesAfter   int64    `json:"goroutines_after"`
}

// ReplayReport describes the replay scenario's resume: Events is how many
// each subscriber was owed (all but the first published), Complete how
// many subscribers got them all, and Time, per such subscriber, the time
// from the resume (before the dial) to the last of them.
type ReplayReport struct {
	Events   int64   `json:"events"`
	Complete int64   `json:"complete"`
	Time     Summary `json:"time"`
}

// ServerReport holds the server's resources over the run. RSSPerConn is
// 0 when no connection opened.
type ServerReport struct {
	Source         string       `json:"source"`
	RSSIdle        int64        `json:"rss_idle_bytes"`
	RSSPeak        int64        `json:"rss_peak_bytes"`
	RSSEnd         int64        `json:"rss_end_bytes"`
	RSSPerConn     int64        `json:"rss_per_conn_bytes"`
	CPUSeconds     float64      `json:"cpu_seconds"`
	GoroutinesIdle int64        `json:"goroutines_idle"`
	GoroutinesPeak int64        `json:"goroutines_peak"`
	SubscribersMax int64        `json:"subscribers_max"`
	SampleErrors   []ErrorCount `json:"sample_errors,omitempty"`
}

// ClientReport holds ssebench's own resources: it shares the machine.
type ClientReport struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	MaxRSS     int64   `json:"max_rss_bytes"`
	FileLimit  uint64  `json:"file_limit"`
}

// WriteJSON writes r as one indented JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes r as an aligned table for people.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, format string, a ...any) { fmt.Fprintf(tw, "%s\t"+format+"\n", append([]any{k}, a...)...) }
	row("scenario", "%s  %s", r.Scenario, r.URL)
	row("params", "%s", formatParams(r.Params))
	row("elapsed", "%s", r.Elapsed)
	if r.Aborted != "" {
		row("ABORTED", "%s", r.Aborted)
	}
	if r.Failed != "" {
		row("FAILED", "%s", r.Failed)
	}
	if c := r.Connect; c != nil {
		row("connect", "%d/%d connected, %d failed in %s", c.Connected, c.Attempted, c.Failed, c.Wall)
		row("  connect time", "%s", formatSummary(c.Time))
		writeErrors(row, "  connect error", c.Errors)
	}
	if d := r.Delivery; d != nil {
		row("delivered", "%d/%d (%s), %.0f events/s", d.Delivered, d.Expected, percent(d.Delivered, d.Expected), d.PerSecond)
		row("  missing", "%d", d.Missing)
		if d.Unaccepted > 0 {
			row("  unaccepted", "%d (their publish failed)", d.Unaccepted)
		}
		row("  duplicates", "%d", d.Duplicates)
		row("  out of order", "%d", d.OutOfOrder)
		row("  dropped streams", "%d", d.Dropped)
		writeErrors(row, "  drop cause", d.DropErrors)
		if d.Resets > 0 || d.Other > 0 {
			row("  resets, other", "%d, %d", d.Resets, d.Other)
		}
		if d.Latency != nil {
			row("  latency", "%s", formatSummary(*d.Latency))
		}
	}
	if p := r.Publish; p != nil {
		row("published", "%d/%d ok, %d failed, %.0f/s over %s", p.OK, p.Sent, p.Failed, p.PerSecond, p.Elapsed)
		row("  request time", "%s", formatSummary(p.Latency))
		writeErrors(row, "  publish error", p.Errors)
	}
	if rp := r.Replay; rp != nil {
		row("replay", "%d events to %d subscribers complete", rp.Events, rp.Complete)
		row("  time to the last", "%s", formatSummary(rp.Time))
	}
	s := r.Server
	row("server", "source %s", s.Source)
	row("  RSS", "idle %s, peak %s, end %s", mib(s.RSSIdle), mib(s.RSSPeak), mib(s.RSSEnd))
	if s.RSSPerConn != 0 {
		row("  RSS per connection", "%s", kib(s.RSSPerConn))
	}
	if s.CPUSeconds >= 0 {
		row("  CPU", "%.2f s", s.CPUSeconds)
	}
	if s.GoroutinesIdle >= 0 {
		row("  goroutines", "idle %d, peak %d", s.GoroutinesIdle, s.GoroutinesPeak)
	}
	if s.SubscribersMax >= 0 {
		row("  ssehub_subscribers", "max %d", s.SubscribersMax)
	}
	writeErrors(row, "  sample error", s.SampleErrors)
	if i := r.Idle; i != nil {
		row("idle hold", "%s, %d goroutines held (%.2f per connection)", i.Hold, i.GoroutinesHeld, i.GoroutinesPerConn)
		row("  after disconnect", "goroutines %d back in %s; RSS %s, back in %s", i.GoroutinesAfter, settle(i.SettleGoroutines), mib(i.RSSAfter), settle(i.SettleRSS))
	}
	row("client", "CPU %.2f s, max RSS %s, file limit %d", r.Client.CPUSeconds, mib(r.Client.MaxRSS), r.Client.FileLimit)
	row("machine", "%d CPUs, load average %.2f at start, %.2f at end", r.Machine.CPUs, r.Machine.LoadStart, r.Machine.LoadEnd)
	return tw.Flush()
}

func writeErrors(row func(k, format string, a ...any), key string, errs []ErrorCount) {
	for _, e := range errs {
		row(key, "%d× %s", e.Count, e.Error)
	}
}

func formatSummary(s Summary) string {
	if s.Count == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (n=%d)", s.P50, s.P90, s.P99, s.Max, s.Count)
}

func formatParams(p map[string]any) string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%v", k, p[k])
	}
	return strings.Join(parts, " ")
}

func percent(n, of int64) string {
	if of == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f%%", 100*float64(n)/float64(of))
}

func settle(d Duration) string {
	if d < 0 {
		return "not within -settle"
	}
	return d.String()
}

func mib(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func kib(b int64) string {
	if b < 0 {
		return "?"
	}
	return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
}
