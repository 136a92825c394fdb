package main

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"
)

// replay runs the replay scenario: publish -events events to a fresh
// topic (the first alone, so that every other has a later id), then open
// -n subscribers that resume after the first with Last-Event-ID, and time
// from the resume until each has the -events - 1 others.
func (b *bench) replay(ctx context.Context, rep *Report) error {
	p := newPublisher(b.t, b.o.topic, b.o.token, b.o.event, b.o.size)
	b.setPublisher(p)
	firstID, err := p.publishFirst(ctx)
	if err != nil {
		rep.Publish = p.Report()
		return fmt.Errorf("publishing the first event: %w", err)
	}
	p.from, p.limit = 1, int64(b.o.events)
	p.run(ctx, 0, b.o.duration, b.o.publishers)
	rep.Publish = p.Report()
	if ok := p.ok.Load(); ok != int64(b.o.events) {
		return fmt.Errorf("%d of %d events published within -duration %s", ok, b.o.events, b.o.duration)
	}

	want := int64(b.o.events - 1)
	b.delivery.seqLimit.Store(int64(b.o.events)) // the run's events, 0 to -events - 1
	var times Histogram                          // from the resume to each subscriber's last event
	var complete atomic.Int64
	subCtx, disconnect := context.WithCancel(ctx)
	defer disconnect()
	start := time.Now()
	read := func(c *sseConn) error {
		s := b.delivery.newState()
		s.mark(0) // the resume is after it: a copy of it is a duplicate, not one owed
		for n := int64(0); n < want; {
			ev, err := c.Next()
			if err != nil {
				return err
			}
			if b.delivery.onEvent(s, ev, time.Now()) {
				n++
			}
		}
		times.Record(time.Since(start))
		complete.Add(1)
		return nil
	}
	b.openSubscribers(subCtx, b.o.subscribers, subscribePath(b.o.topic), read, header{"Last-Event-ID", firstID})
	connect := b.pool.ConnectReport()
	rep.Connect = &connect
	if connect.Connected == 0 {
		return errNoSubscribers
	}
	expected := want * connect.Connected
	b.awaitDelivery(ctx, expected)
	elapsed := b.delivery.arrivedWithin(start)
	disconnect()
	b.pool.Wait()
	rep.Delivery = b.delivery.Report(expected, &p.accepted, elapsed)
	rep.Delivery.Dropped = b.pool.dropped.Load()
	rep.Delivery.DropErrors = b.pool.streamErr.top(5)
	rep.Delivery.Latency = nil // from publish to arrival: not what a replay measures
	rep.Replay = &ReplayReport{Events: want, Complete: complete.Load(), Time: times.Summary()}
	if missed := connect.Connected - rep.Replay.Complete; missed > 0 && ctx.Err() == nil {
		// The time to the last is the figure: without every subscriber's
		// it would be the fastest ones' alone, or 0.
		return fmt.Errorf("%d of %d subscribers did not have all %d events within -drain %s", missed, connect.Connected, want, b.o.drain)
	}
	return nil
}
