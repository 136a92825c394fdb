package main

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"
)

// spread spreads subscribers round-robin over several instances of one
// hub (-url and -sub-urls) and waits until each instance counts its
// share. Its open method is safe for concurrent use.
type spread struct {
	targets []*target
	readers []*statsReader // each target's /metrics
	base    []int64        // each target's ssehub_subscribers before the run
	opened  []atomic.Int64 // streams opened on each target
	next    atomic.Int64
}

// newSpread returns a spread over targets, the first being -url.
func newSpread(targets []*target) *spread {
	s := &spread{targets: targets, base: make([]int64, len(targets)), opened: make([]atomic.Int64, len(targets))}
	for _, t := range targets {
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: t.tls, MaxIdleConnsPerHost: 1, DisableCompression: true}}
		s.readers = append(s.readers, &statsReader{metricsURL: t.url("/metrics"), client: client})
	}
	return s
}

// baseline reads each instance's subscriber gauge before the subscribers
// open.
func (s *spread) baseline(ctx context.Context) {
	for i, r := range s.readers {
		sample, _ := r.read(ctx)
		s.base[i] = sample.subscribers
	}
}

// open opens a stream on the next instance in turn.
func (s *spread) open(ctx context.Context, path string, timeout time.Duration, h ...header) (*sseConn, error) {
	i := int((s.next.Add(1) - 1) % int64(len(s.targets)))
	c, err := openStream(ctx, s.targets[i], path, timeout, h...)
	if err == nil {
		s.opened[i].Add(1)
	}
	return c, err
}

// await waits, up to subscribeTimeout, until every instance's gauge counts
// the streams opened on it. An instance without the gauge is not waited
// for; a read that fails is no answer, and the wait goes on.
func (s *spread) await(ctx context.Context) {
	deadline := time.Now().Add(subscribeTimeout)
	for i, r := range s.readers {
		for s.base[i] >= 0 && time.Now().Before(deadline) && ctx.Err() == nil {
			sample, _ := r.read(ctx)
			if sample.subscribers >= s.base[i]+s.opened[i].Load() {
				break
			}
			sleep(ctx, awaitPoll)
		}
	}
}
