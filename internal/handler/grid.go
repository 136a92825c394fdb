package handler

import "time"

// Stream timers fire on a shared grid. Each stream has one timer, for its
// next item or heartbeat. Thousands of streams opened at scattered moments
// would wake the process once per timer, and each wake-up (threads leaving
// and entering sleep, the runtime looking for work) costs more than the
// write it serves; on a virtual machine, several times more. So a timer's
// due time is rounded up to the next multiple of a grain counted from the
// Unix epoch: timers due within one grain fire together, and the process
// wakes once for all of them. This is the timer slack of Linux, the ticks
// of Netty's HashedWheelTimer and nginx's timer_resolution, here bounded
// by the period: a timer fires at most period/16, and never more than
// maxGrain, late; never early. A 3s ticker's lines come within 100ms of
// their time, a 15s heartbeat within 250ms. docs/BENCHMARKS.md measures
// the gain.

// grains are the grid steps, largest first. Each divides a second, so
// timers due on whole seconds stay exact.
var grains = [...]time.Duration{
	maxGrain,
	200 * time.Millisecond,
	100 * time.Millisecond,
	50 * time.Millisecond,
	20 * time.Millisecond,
	10 * time.Millisecond,
	5 * time.Millisecond,
	2 * time.Millisecond,
	time.Millisecond,
}

// maxGrain is the most a stream timer fires late.
const maxGrain = 250 * time.Millisecond

// grainDivisor sets the grain from the period: a timer fires at most
// 1/grainDivisor of its period late.
const grainDivisor = 16

// grainOf is the grid step for a timer with the given period: the largest
// grain not above period/grainDivisor; 0, no rounding, for periods under
// 16ms.
func grainOf(period time.Duration) time.Duration {
	for _, g := range grains {
		if g <= period/grainDivisor {
			return g
		}
	}
	return 0
}

// onGrid rounds d, a time from now until a timer is due, up so that the
// timer fires on the grid of grain. An overdue timer stays overdue: it
// fires at once.
func onGrid(now time.Time, d, grain time.Duration) time.Duration {
	if grain <= 0 || d <= 0 {
		return d
	}
	at, g := now.UnixNano()+int64(d), int64(grain)
	if r := at % g; r > 0 {
		at += g - r
	}
	return time.Duration(at - now.UnixNano())
}
