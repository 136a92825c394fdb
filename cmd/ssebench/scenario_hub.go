package main

import (
	"context"
	"time"
)

// Polling steps while waiting on the server or the subscribers.
const (
	awaitPoll        = 20 * time.Millisecond
	subscribeTimeout = 10 * time.Second
)

// hub runs the fanout, sustained and publish scenarios: open the
// subscribers (if any) on one topic, publish for -duration (or until
// -events were), wait up to -drain for the last events, then disconnect.
func (b *bench) hub(ctx context.Context, rep *Report) error {
	subCtx, disconnect := context.WithCancel(ctx)
	defer disconnect()
	if b.o.subscribers > 0 {
		if b.spread != nil {
			b.spread.baseline(ctx)
		}
		b.openSubscribers(subCtx, b.o.subscribers, subscribePath(b.o.topic), b.delivery.readEvents)
		connect := b.pool.ConnectReport()
		rep.Connect = &connect
		if connect.Connected == 0 {
			return errNoSubscribers
		}
		b.awaitSubscribers(ctx, connect.Connected)
	}
	subscribers := b.pool.open.Load()
	p := newPublisher(b.t, b.o.topic, b.o.token, b.o.event, b.o.size)
	p.limit = int64(b.o.events)
	p.handed = &b.delivery.seqLimit
	b.setPublisher(p)
	start := time.Now()
	p.run(ctx, b.o.rate, b.o.duration, b.o.publishers)
	expected := p.ok.Load() * subscribers
	if subscribers > 0 {
		// Events whose publish failed may arrive too, and count among
		// the arrivals until Report tells them apart: wait for them as
		// well, or the wait could end with accepted events on their way.
		b.awaitDelivery(ctx, expected+(p.sent.Load()-p.ok.Load())*subscribers)
	}
	elapsed := b.delivery.arrivedWithin(start)
	disconnect()
	b.pool.Wait()
	rep.Publish = p.Report()
	if b.o.subscribers > 0 {
		rep.Delivery = b.delivery.Report(expected, &p.accepted, elapsed)
		rep.Delivery.Dropped = b.pool.dropped.Load()
		rep.Delivery.DropErrors = b.pool.streamErr.top(5)
	}
	return nil
}

// awaitSubscribers waits until the server's ssehub_subscribers gauge
// counts n more subscribers than at the start, so that no event is
// published before a subscription exists. Without the gauge it returns at
// once: a 200 head already means the handler runs. A read that fails says
// nothing about the subscriptions: the wait goes on. With -sub-urls it
// waits for each instance's share instead.
func (b *bench) awaitSubscribers(ctx context.Context, n int64) {
	if b.spread != nil {
		b.spread.await(ctx)
		return
	}
	base := b.mon.baseSample().subscribers
	if base < 0 {
		return
	}
	deadline := time.Now().Add(subscribeTimeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		s := b.mon.sample(ctx)
		if s.subscribers >= base+n {
			return
		}
		sleep(ctx, awaitPoll)
	}
}

// awaitDelivery waits until expected events have arrived (counting those
// whose publish failed), every stream has ended, or -drain has passed.
func (b *bench) awaitDelivery(ctx context.Context, expected int64) {
	deadline := time.Now().Add(b.o.drain)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if b.delivery.delivered.Load() >= expected || b.pool.open.Load() == 0 {
			return
		}
		sleep(ctx, awaitPoll)
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
