package natsbroker

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// watch asks the connected server for JetStream's account info every
// PingInterval, and moves the connection to another server (nats.go's
// ForceReconnect) once maxPingsOut questions in a row went unanswered or
// were answered that JetStream is unavailable, and another server answers
// the question (answeredElsewhere): the server is cut off from its
// cluster's JetStream. Such a server still answers the connection's
// pings, so nats.go stays; the instance then delivered nothing, each of
// its publishes waited PublishTimeout for a 503, and it said it was ready,
// for as long as the partition lasted (TestClusterServerCutOff). After the
// move the consumer is made again on the new server (live), from the last
// event it delivered: nothing is lost.
//
// While a cluster elects JetStream's meta leader (6 to 11 s after the
// leader's crash, as measured), no server answers: without asking another
// server first, every instance of the cluster moved at once, for nothing
// (TestClusterWatchStaysThroughAMetaElection). A single server, or a
// cluster without a quorum, is not left either.
//
// It acts only once the question was answered on this Broker: a NATS user
// without permission for $JS.API.INFO is never answered, here or
// elsewhere, and is spared the questions to other servers. It returns
// when Close begins.
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
	err := b.askHere()
	switch {
	case err == nil:
		return 0
	case b.jsAnswers.Load() == 0 || errors.Is(err, nats.ErrConnectionClosed):
		return 0
	case failed+1 < maxPingsOut:
		return failed + 1
	}
	server := b.nc.ConnectedServerName()
	if !b.answeredElsewhere() {
		b.opts.Logger.Debug("the NATS server answers no JetStream question, nor does another", "server", server, "err", err)
		return 0
	}
	// An election ends on some servers before others: asked again, this
	// one may answer now. (Moved without this, an instance whose server
	// learnt of the new leader last left it, 1 run in 3.)
	if err = b.askHere(); err == nil || !b.nc.IsConnected() {
		return 0
	}
	b.opts.Logger.Warn("the NATS server answers no JetStream question, another does: cut off from its cluster? moving to another server",
		"server", server, "err", err)
	if err := b.nc.ForceReconnect(); err != nil {
		b.opts.Logger.Debug("nats reconnect", "err", err)
	}
	return 0
}

// askHere asks the connected server watch's question, and counts its
// answer.
func (b *Broker) askHere() error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PingInterval)
	defer cancel()
	_, err := b.js.AccountInfo(ctx)
	if err == nil {
		b.jsAnswers.Add(1)
	}
	return err
}

// answeredElsewhere reports whether another server the connection knows
// of (those of Options.URLs, and those its cluster told of) answers
// watch's question, asked on a connection of its own.
func (b *Broker) answeredElsewhere() bool {
	here := b.nc.ConnectedUrl()
	for _, url := range b.nc.Servers() {
		if url != here && b.answers(url) {
			return true
		}
	}
	return false
}

// answers reports whether the server at url answers JetStream's account
// info within PingInterval.
func (b *Broker) answers(url string) bool {
	opts := []nats.Option{nats.Name("ssehub-check"), nats.NoReconnect(), nats.Timeout(b.opts.PingInterval)}
	if b.opts.CredentialsFile != "" {
		opts = append(opts, nats.UserCredentials(b.opts.CredentialsFile))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return false
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PingInterval)
	defer cancel()
	_, err = js.AccountInfo(ctx)
	return err == nil
}
