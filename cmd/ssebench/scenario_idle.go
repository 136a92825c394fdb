package main

import (
	"context"
	"net/url"
	"time"
)

// settlePoll is how often the idle scenario samples the server while
// waiting for it to return to its baseline.
const settlePoll = 100 * time.Millisecond

// idle runs the idle scenario: open the subscribers, hold them, then
// disconnect them all and time the server's return to its baseline.
func (b *bench) idle(ctx context.Context, rep *Report) error {
	subCtx, disconnect := context.WithCancel(ctx)
	defer disconnect()
	b.openSubscribers(subCtx, b.o.subscribers, subscribePath(b.o.topic), b.delivery.readEvents)
	connect := b.pool.ConnectReport()
	rep.Connect = &connect
	if connect.Connected == 0 {
		return errNoSubscribers
	}
	hold := time.NewTimer(b.o.hold)
	defer hold.Stop()
	select {
	case <-hold.C:
	case <-ctx.Done():
		return nil
	}
	held := b.mon.sample(ctx)
	base := b.mon.baseSample()
	rep.Delivery = b.delivery.Report(0, nil, 0)
	rep.Delivery.Dropped = b.pool.dropped.Load()
	rep.Delivery.DropErrors = b.pool.streamErr.top(5)
	idle := &IdleReport{Hold: Duration(b.o.hold), GoroutinesHeld: -1, GoroutinesPerConn: -1, SettleGoroutines: -1, SettleRSS: -1, RSSAfter: -1, GoroutinesAfter: -1}
	if held.goroutines >= 0 {
		idle.GoroutinesHeld = held.goroutines
	}
	if held.goroutines >= 0 && base.goroutines >= 0 {
		idle.GoroutinesPerConn = float64(held.goroutines-base.goroutines) / float64(connect.Connected)
	}
	rep.Idle = idle

	disconnect()
	b.pool.Wait()
	b.awaitSettle(ctx, idle, base)
	return nil
}

// awaitSettle samples the server until its goroutines (and
// ssehub_subscribers) and its RSS are back near base, or -settle passes.
// Goroutines are near when at most nearGoroutines(base) above it; RSS
// when less than a tenth of the increase the run caused is left. A figure
// the baseline had but a sample lacks (a read that failed) is waited for
// on the next sample.
func (b *bench) awaitSettle(ctx context.Context, idle *IdleReport, base serverSample) {
	start := time.Now()
	peak := b.mon.report(1).RSSPeak
	deadline := time.NewTimer(b.o.settle)
	defer deadline.Stop()
	tick := time.NewTicker(settlePoll)
	defer tick.Stop()
	for {
		s := b.mon.sample(ctx)
		if s.goroutines >= 0 {
			idle.GoroutinesAfter = s.goroutines
		}
		if s.rss >= 0 {
			idle.RSSAfter = s.rss
		}
		since := Duration(time.Since(start))
		if idle.SettleGoroutines < 0 && s.goroutines >= 0 && s.goroutines <= base.goroutines+nearGoroutines(base.goroutines) &&
			(s.subscribers < 0 || s.subscribers <= max(base.subscribers, 0)) {
			idle.SettleGoroutines = since
		}
		if idle.SettleRSS < 0 && s.rss >= 0 && base.rss >= 0 && s.rss-base.rss <= (peak-base.rss)/10 {
			idle.SettleRSS = since
		}
		doneG := idle.SettleGoroutines >= 0 || base.goroutines < 0
		doneR := idle.SettleRSS >= 0 || base.rss < 0
		if doneG && doneR {
			return
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		}
	}
}

// nearGoroutines is how many goroutines above its baseline still count as
// back to it: the server may run a few background ones at any moment.
func nearGoroutines(base int64) int64 {
	return max(5, base/10)
}

// subscribePath is the hub subscription for one topic.
func subscribePath(topic string) string {
	return "/api/v1/events?topic=" + url.QueryEscape(topic)
}
