package handler

import (
	"io"
	"time"
)

// paced describes a finite stream that sends items from..count-1, the
// first at once and each next one interval later, then a final frame.
type paced struct {
	from, count int
	interval    time.Duration
	// appendItems appends the frames of items [i, j) to dst.
	appendItems func(dst []byte, i, j int) []byte
	final       []byte
}

// runPaced streams p on s. One timer serves both the next item and the
// heartbeat, on the grid (grid.go); every item already due is written in
// one step, so a slow step never falls behind by more than one flush.
// The first step does not wait: a stream whose slot was taken sends its
// first item even when Close came meanwhile, as a hub stream sends its
// answer, and does not end at random with nothing (a select between a
// timer already fired and the handler's close picks either).
func (s *sseStream) runPaced(p paced) {
	next := p.from
	start := time.Now()
	grain := grainOf(p.interval)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	first := true
	s.run(func(w io.Writer) bool {
		if !first && !s.wait(timer) {
			return false
		}
		first = false
		now := time.Now()
		due := p.count
		if p.interval > 0 {
			due = min(p.from+int(now.Sub(start)/p.interval)+1, p.count)
		}
		if due > next {
			s.buf = p.appendItems(s.stepBuf(), next, due)
			s.queued += due - next
			next = due
		}
		if next == p.count {
			s.queue(p.final, 1)
			s.last = true
			s.send(w, now)
			return s.stop(errCompleted)
		}
		if !s.send(w, now) {
			return false
		}
		untilItem := onGrid(now, start.Add(time.Duration(next-p.from)*p.interval).Sub(now), grain)
		timer.Reset(min(untilItem, s.nextHeartbeat(now)))
		return true
	}, func() { timer.Stop() })
}
