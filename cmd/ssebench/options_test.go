package main

import (
	"errors"
	"io"
	"testing"
	"time"
)

func TestParseOptionsScenarioDefaults(t *testing.T) {
	o, err := parseOptions([]string{"-scenario", "sustained"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.subscribers != 1000 || o.rate != 200 || o.duration != 30*time.Second || o.publishers != 4 || o.topic == "" {
		t.Errorf("sustained defaults = n %d rate %g duration %s publishers %d topic %q", o.subscribers, o.rate, o.duration, o.publishers, o.topic)
	}
	o, err = parseOptions([]string{"-scenario", "sustained", "-n", "5", "-rate", "1.5", "-duration", "2s", "-publishers", "1"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.subscribers != 5 || o.rate != 1.5 || o.duration != 2*time.Second || o.publishers != 1 {
		t.Errorf("given flags lost: n %d rate %g duration %s publishers %d", o.subscribers, o.rate, o.duration, o.publishers)
	}
}

func TestParseOptionsRejects(t *testing.T) {
	for _, args := range [][]string{
		{"-scenario", "storm"},
		{"-scenario", "fanout", "-rate", "0"},
		{"-scenario", "fanout", "-rate", "NaN"},
		{"-scenario", "fanout", "-rate", "Inf"},
		{"-scenario", "sustained", "-rate", "-5"},
		{"-scenario", "publish", "-rate", "-5"},
		{"-scenario", "publish", "-rate", "NaN"},
		{"-scenario", "replay", "-rate", "-1"},
		{"-scenario", "fanout", "-events", "-1"},
		{"-scenario", "replay", "-events", "1"},
		{"-scenario", "fanout", "-size", "10"},
		{"-scenario", "idle", "-n", "0"},
		{"-scenario", "ticker", "-count", "0"},
		// A connection and a goroutine each, opened at once: a slip of
		// the keyboard would take the machine's memory and ports.
		{"-scenario", "publish", "-publishers", "2000000"},
		{"-dial-concurrency", "0"},
		{"-timeout", "0s"},
		{"-sample", "0s"},
		// Each sample may be a /metrics request: without a bound below,
		// ssebench would hammer the server it measures.
		{"-sample", "1ns"},
		{"-progress", "1us"},
		{"extra"},
	} {
		if _, err := parseOptions(args, io.Discard); !errors.Is(err, ErrUsage) {
			t.Errorf("parseOptions(%q) = %v, want ErrUsage", args, err)
		}
	}
	if _, err := parseOptions([]string{"-n", "many"}, io.Discard); err == nil {
		t.Error("-n many parsed")
	}
}
