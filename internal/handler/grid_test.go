package handler

import (
	"fmt"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

func TestGrainOf(t *testing.T) {
	for _, tc := range []struct {
		period, want time.Duration
	}{
		{0, 0},
		{15 * time.Millisecond, 0},
		{16 * time.Millisecond, time.Millisecond},
		{50 * time.Millisecond, 2 * time.Millisecond},
		{time.Second, 50 * time.Millisecond},
		{1600 * time.Millisecond, 100 * time.Millisecond},
		{3 * time.Second, 100 * time.Millisecond},
		{15 * time.Second, 250 * time.Millisecond},
		{time.Hour, maxGrain},
	} {
		if got := grainOf(tc.period); got != tc.want {
			t.Errorf("grainOf(%v) = %v, want %v", tc.period, got, tc.want)
		}
	}
}

func TestOnGrid(t *testing.T) {
	at := func(ms int64) time.Time { return time.UnixMilli(1_700_000_000_000 + ms) } // a multiple of 50ms
	for _, tc := range []struct {
		now, d, grain, want time.Duration
	}{
		{13 * time.Millisecond, 3 * time.Second, 50 * time.Millisecond, 3037 * time.Millisecond},
		{31 * time.Millisecond, 3 * time.Second, 50 * time.Millisecond, 3019 * time.Millisecond},
		{0, 3 * time.Second, 50 * time.Millisecond, 3 * time.Second},                                // on the grid already
		{7 * time.Millisecond, 0, 50 * time.Millisecond, 0},                                         // due now: fires at once
		{7 * time.Millisecond, -5 * time.Millisecond, 50 * time.Millisecond, -5 * time.Millisecond}, // overdue: fires at once
		{13 * time.Millisecond, 3 * time.Second, 0, 3 * time.Second},                                // no grid
		{13*time.Millisecond + 1, 999 * time.Microsecond, time.Millisecond, 999999 * time.Nanosecond},
	} {
		got := onGrid(at(tc.now.Milliseconds()).Add(tc.now%time.Millisecond), tc.d, tc.grain)
		if got != tc.want {
			t.Errorf("onGrid(%v after a grid point, %v, %v) = %v, want %v", tc.now, tc.d, tc.grain, got, tc.want)
		}
	}
}

// Two streams opened 18ms apart, off the grid (a 100ms grain), send their
// next lines together, on the grid; never early, and at most a grain late.
func TestTickerTimersShareTheGrid(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := New(testOptions())
		defer h.Close()
		client := bubbleServer(t, h)
		start := time.Now() // the bubble's clock starts on a whole second
		arrivals := make(chan string, 8)
		open := func(name string, after time.Duration) {
			time.Sleep(after)
			resp, err := client.Get("http://ssehub/stream?count=3&interval=3s")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			p := stream.NewParser(resp.Body)
			for {
				ev, err := nextEvent(p)
				if err != nil || ev.Type == "close" {
					return
				}
				arrivals <- fmt.Sprintf("%s %s at %v", name, ev.ID, time.Since(start))
			}
		}
		go open("a", 13*time.Millisecond)
		go open("b", 31*time.Millisecond)
		var got []string
		for range 6 {
			got = append(got, <-arrivals)
		}
		want := []string{
			"a 0 at 13ms", "b 0 at 31ms",
			"a 1 at 3.1s", "b 1 at 3.1s",
			"a 2 at 6.1s", "b 2 at 6.1s",
		}
		slices.Sort(got) // lines due at one instant come in any order
		slices.Sort(want)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("lines:\n%v\nwant:\n%v", got, want)
		}
	})
}

// A heartbeat is due heartbeat_interval after the last write, rounded up
// to the grid; subscribers opened at different moments beat together.
func TestHeartbeatsShareTheGrid(t *testing.T) {
	skipOnNATS(t, synctestWhy)
	synctest.Test(t, func(t *testing.T) {
		opts, _ := hubOptions(t, stream.MemoryOptions{FirstID: 1})
		opts.Stream.HeartbeatInterval = 10 * time.Second // grain 250ms
		h := New(opts)
		defer h.Close()
		client := bubbleServer(t, h)
		start := time.Now()
		beats := make(chan string, 8)
		subscribe := func(name string, after time.Duration) {
			time.Sleep(after)
			resp, err := client.Get("http://ssehub/api/v1/events?topic=a")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			p := stream.NewParser(resp.Body)
			p.OnComment = func(string) { beats <- fmt.Sprintf("%s at %v", name, time.Since(start)) }
			for { // the position, then nothing until the test ends
				if _, err := nextEvent(p); err != nil {
					return
				}
			}
		}
		go subscribe("a", 2*time.Millisecond)
		go subscribe("b", 144*time.Millisecond)
		var got []string
		for range 4 {
			got = append(got, <-beats)
		}
		want := []string{"a at 10.25s", "a at 20.25s", "b at 10.25s", "b at 20.25s"}
		slices.Sort(got)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("heartbeats %v, want %v", got, want)
		}
	})
}
