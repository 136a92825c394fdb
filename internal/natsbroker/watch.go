package natsbroker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
)

// watch asks the connected server for JetStream's account info every
// PingInterval, and moves the connection to another server (nats.go's
// ForceReconnect) once maxPingsOut questions in a row went unanswered or
// were answered that JetStream is unavailable: the server is cut off from
// its cluster's JetStream. Such a server still answers the connection's
// pings, so nats.go stays; the instance then delivered nothing, each of
// its publishes waited PublishTimeout for a 503, and it said it was ready,
// for as long as the partition lasted (TestClusterServerCutOff). After the
// move the consumer is made again on the new server (live), from the last
// event it delivered: nothing is lost.
//
// It acts only once the question was answered on this Broker: a NATS user
// without permission for $JS.API.INFO is never answered, and must not be
// moved from server to server. It returns when Close begins.
func (b *Broker) watch() {
	defer close(b.watched)
	tick := time.NewTicker(b.opts.PingInterval)
	defer tick.Stop()
	failed := 0
	for {
		failed = b.askJetStream(failed)
		select {
		case <-b.closed:
			return
		case <-tick.C:
		}
	}
}

// askJetStream is one of watch's questions, with failed questions in a
// row before it; it returns how many have failed in a row after it.
func (b *Broker) askJetStream(failed int) int {
	if !b.nc.IsConnected() {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PingInterval)
	_, err := b.js.AccountInfo(ctx)
	cancel()
	switch {
	case err == nil:
		b.jsAnswered.Store(true)
		return 0
	case !b.jsAnswered.Load() || errors.Is(err, nats.ErrConnectionClosed):
		return 0
	case failed+1 < maxPingsOut:
		return failed + 1
	}
	b.opts.Logger.Warn("the NATS server answers no JetStream question: cut off from its cluster? moving to another server",
		"server", b.nc.ConnectedServerName(), "err", err)
	if err := b.nc.ForceReconnect(); err != nil {
		b.opts.Logger.Debug("nats reconnect", "err", err)
	}
	return 0
}
