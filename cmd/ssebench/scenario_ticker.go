package main

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// ticker runs the ticker scenario: every client reads GET /stream until
// its close event. Only the message events count as delivered.
func (b *bench) ticker(ctx context.Context, rep *Report) error {
	q := url.Values{}
	q.Set("count", fmt.Sprint(b.o.count))
	q.Set("interval", b.o.interval.String())
	path := "/stream?" + q.Encode()
	start := time.Now()
	b.openSubscribers(ctx, b.o.subscribers, path, b.readTicker)
	b.pool.Wait()
	connect := b.pool.ConnectReport()
	rep.Connect = &connect
	rep.Delivery = b.delivery.Report(b.pool.connected.Load()*int64(b.o.count), nil, time.Since(start))
	rep.Delivery.Dropped = b.pool.dropped.Load()
	rep.Delivery.DropErrors = b.pool.streamErr.top(5)
	if connect.Connected == 0 {
		return errNoSubscribers
	}
	return nil
}

// readTicker counts one ticker stream's events until the close event,
// which ends it without error.
func (b *bench) readTicker(c *sseConn) error {
	d := b.delivery
	c.parser.OnComment = func(string) { d.heartbeats.Add(1) }
	for {
		ev, err := c.Next()
		if err != nil {
			return err
		}
		switch ev.Type {
		case "close":
			return nil
		case "", "message":
			d.delivered.Add(1)
		case "reset":
			d.resets.Add(1)
		default:
			d.other.Add(1)
		}
	}
}
