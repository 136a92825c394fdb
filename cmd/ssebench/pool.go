package main

import (
	"context"
	"errors"
	"io"
	"net"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// pool opens many event streams with bounded concurrency and keeps count
// of them. Its methods are safe for concurrent use.
type pool struct {
	connectTime Histogram
	attempted   atomic.Int64
	connected   atomic.Int64
	open        atomic.Int64
	// dropped counts streams that ended before the scenario ended them:
	// the server closed them or a read failed.
	dropped    atomic.Int64
	connectErr errorCounts
	streamErr  errorCounts

	started     time.Time
	lastConnect atomic.Int64  // Unix ns of the latest connect
	wall        time.Duration // from the first dial to the last connect, 0 without one
	streams     sync.WaitGroup
}

// connectAll opens n streams with open, at most concurrency at a time.
// Each stream that opens is handed to run on a goroutine of its own, which
// owns it until run returns; the stream is then closed. connectAll returns
// once every attempt has opened or failed, or ctx is done; the streams go
// on until run returns or ctx is done, which closes them. Wait waits for
// them.
func (p *pool) connectAll(ctx context.Context, n, concurrency int, open func(context.Context) (*sseConn, error), run func(i int, c *sseConn)) {
	sem := make(chan struct{}, max(concurrency, 1))
	var attempts sync.WaitGroup
	p.started = time.Now()
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		attempts.Add(1)
		p.streams.Add(1)
		go func() {
			defer p.streams.Done()
			t0 := time.Now()
			p.attempted.Add(1)
			c, err := open(ctx)
			<-sem
			if err != nil {
				p.connectErr.add(err)
				attempts.Done()
				return
			}
			now := time.Now()
			p.connectTime.Record(now.Sub(t0))
			for at := now.UnixNano(); ; {
				last := p.lastConnect.Load()
				if at <= last || p.lastConnect.CompareAndSwap(last, at) {
					break
				}
			}
			p.connected.Add(1)
			p.open.Add(1)
			attempts.Done()
			stop := context.AfterFunc(ctx, func() { _ = c.Close() })
			run(i, c)
			stop()
			_ = c.Close()
			p.open.Add(-1)
		}()
	}
	attempts.Wait()
	// A connect that failed, maybe after waiting out -connect-timeout,
	// does not stretch the time the connects took.
	if last := p.lastConnect.Load(); last != 0 {
		p.wall = max(time.Unix(0, last).Sub(p.started), 0)
	}
}

// streamEnded records why a stream's reading stopped: an error while the
// scenario still wanted the stream counts as a drop.
func (p *pool) streamEnded(ctx context.Context, err error) {
	if ctx.Err() != nil {
		return
	}
	p.dropped.Add(1)
	if errors.Is(err, io.EOF) {
		err = errServerClosed
	}
	p.streamErr.add(err)
}

// errServerClosed names a stream the server ended without the end event.
var errServerClosed = errors.New("server closed the stream")

// Wait waits until every stream has ended.
func (p *pool) Wait() {
	p.streams.Wait()
}

// ConnectReport returns the connection figures.
func (p *pool) ConnectReport() ConnectReport {
	return ConnectReport{
		Attempted: p.attempted.Load(),
		Connected: p.connected.Load(),
		Failed:    p.connectErr.total(),
		Errors:    p.connectErr.top(5),
		Time:      p.connectTime.Summary(),
		Wall:      Duration(p.wall),
	}
}

// errorCounts counts errors by message. It is safe for concurrent use.
type errorCounts struct {
	mu     sync.Mutex
	counts map[string]int64
	n      int64
}

// maxErrorKinds bounds how many distinct messages are kept.
const maxErrorKinds = 50

func (e *errorCounts) add(err error) {
	msg := errorKind(err)
	e.mu.Lock()
	defer e.mu.Unlock()
	e.n++
	if e.counts == nil {
		e.counts = make(map[string]int64)
	}
	if _, ok := e.counts[msg]; !ok && len(e.counts) >= maxErrorKinds {
		msg = "other errors"
	}
	e.counts[msg]++
}

// errorKind returns err's message without the socket addresses of a
// net.OpError, which differ on every connection.
func errorKind(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

func (e *errorCounts) total() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.n
}

// top returns the k most frequent messages with their counts.
func (e *errorCounts) top(k int) []ErrorCount {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ErrorCount, 0, len(e.counts))
	for msg, n := range e.counts {
		out = append(out, ErrorCount{Error: msg, Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Error < out[j].Error
	})
	return out[:min(k, len(out))]
}
