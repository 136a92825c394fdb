package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssehub/ssehub/config"
)

// TestReadmeListsEveryMetric keeps the README's Metrics table in step
// with what /metrics exposes: every ssehub_ metric it names, with its
// labels, is exposed, and every one exposed is named. The hub runs on the
// embedded NATS server, so that the NATS gauges are there too.
func TestReadmeListsEveryMetric(t *testing.T) {
	documented := readmeMetrics(t)

	cfg := config.Default()
	cfg.Hub.Broker = "nats"
	cfg.NATS.Embedded = true
	cfg.NATS.StoreDir = filepath.Join(t.TempDir(), "data/nats")
	base, _ := startMain(t, cfg)
	// A stream that ends, so that the series counted at a stream's end exist.
	res, err := http.Get(base + "/stream?count=1&interval=0s")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()

	// The server counts the stream on its own time: a detached stream's
	// request once the handler that handed it over returns, its end once
	// its connection is closed; either may come after the client has read
	// the response's end. /metrics is read until both are counted, 10s at
	// most.
	var body []byte
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		res, err = http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err = io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		counted := strings.Contains(string(body), "\nssehub_streams_ended_total{") &&
			strings.Contains(string(body), `method="GET",route="/stream"}`)
		if counted || time.Now().After(deadline) {
			break
		}
	}
	exposed := map[string][]string{}
	reasons := map[string][]string{}
	sample := regexp.MustCompile(`^(ssehub_[a-z_]+)(?:\{([^}]*)\})? `)
	for line := range strings.SplitSeq(string(body), "\n") {
		m := sample.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var labels []string
		for pair := range strings.SplitSeq(m[2], ",") {
			if name, value, ok := strings.Cut(pair, "="); ok {
				labels = append(labels, name)
				if name == "reason" {
					reasons[m[1]] = append(reasons[m[1]], strings.Trim(value, `"`))
				}
			}
		}
		slices.Sort(labels)
		exposed[m[1]] = labels
	}

	for name, labels := range documented {
		got, ok := exposed[name]
		switch {
		case !ok:
			t.Errorf("README lists %s, which /metrics does not expose", name)
		case !slices.Equal(got, labels):
			t.Errorf("README gives %s the labels %v, /metrics %v", name, labels, got)
		}
	}
	for name := range exposed {
		if _, ok := documented[name]; !ok {
			t.Errorf("/metrics exposes %s, which the README's Metrics table does not list", name)
		}
	}
	// The values of a reason label, every one exposed from the start.
	documentedReasons := readmeMetricReasons(t)
	for name, got := range reasons {
		slices.Sort(got)
		if want := documentedReasons[name]; !slices.Equal(got, want) {
			t.Errorf("README gives %s the reasons %v, /metrics %v", name, want, got)
		}
	}
	for name := range documentedReasons {
		if _, ok := reasons[name]; !ok {
			t.Errorf("README gives %s reasons, /metrics none", name)
		}
	}
}

// readmeMetricReasons returns, for each metric of the README's Metrics
// table with a reason label, the reasons its row names: the words in
// backticks in lower snake case that are neither a metric nor a key.
func readmeMetricReasons(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(data), "\n### Metrics\n")
	section, _, _ = strings.Cut(section, "\n#")
	row := regexp.MustCompile("(?m)^\\| `(ssehub_[a-z_]+)\\{reason\\}` \\| (.*)$")
	word := regexp.MustCompile("`([a-z][a-z_]*)`")
	reasons := map[string][]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		var names []string
		for _, w := range word.FindAllStringSubmatch(m[2], -1) {
			if !strings.HasPrefix(w[1], "ssehub_") && !slices.Contains(names, w[1]) {
				names = append(names, w[1])
			}
		}
		slices.Sort(names)
		reasons[m[1]] = names
	}
	if len(reasons) == 0 {
		t.Fatal("README's Metrics table has no metric with a reason label: update this test with the README")
	}
	return reasons
}

// readmeMetrics returns the ssehub_ metrics the README's Metrics table
// names, each with its labels, sorted.
func readmeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n### Metrics\n")
	if !ok {
		t.Fatal("README has no Metrics section")
	}
	section, _, _ = strings.Cut(section, "\n#")
	metrics := map[string][]string{}
	name := regexp.MustCompile("`(ssehub_[a-z_]+)(?:\\{([^}]*)\\})?`")
	for line := range strings.SplitSeq(section, "\n") {
		if !strings.HasPrefix(line, "| `ssehub_") {
			continue
		}
		first, _, _ := strings.Cut(strings.TrimPrefix(line, "| "), " |")
		for _, m := range name.FindAllStringSubmatch(first, -1) {
			var labels []string
			for l := range strings.SplitSeq(m[2], ",") {
				if l = strings.TrimSpace(l); l != "" {
					labels = append(labels, l)
				}
			}
			slices.Sort(labels)
			metrics[m[1]] = labels
		}
	}
	if len(metrics) == 0 {
		t.Fatal("README's Metrics table names no metric")
	}
	return metrics
}
