package natsbroker

import (
	"context"
	"sync"
	"testing"
	"time"
)

// holdRenewalMade makes the next renewal of h that makes a new history
// (next) wait, the new history's consumer running and h still current,
// until release; held is closed once it waits. The test's end releases
// it too.
func holdRenewalMade(t *testing.T, h *history) (held <-chan struct{}, release func()) {
	t.Helper()
	waiting, until := make(chan struct{}), make(chan struct{})
	release = sync.OnceFunc(func() { close(until) })
	t.Cleanup(release)
	var once sync.Once
	made := func() {
		once.Do(func() {
			close(waiting)
			<-until
		})
	}
	h.renewMade.Store(&made)
	return waiting, release
}

// pendingAfterARecreate has a's stream deleted and created again, and
// holds the renewal that follows (holdRenewalMade) once it has made the
// new history, its consumer running, before it is current: it returns
// that pending history and the release of the renewal.
func pendingAfterARecreate(t *testing.T, a *instance, ns *natsServer, opts Options) (h *history, release func()) {
	t.Helper()
	prev := a.broker.cur.Load()
	held, release := holdRenewalMade(t, prev)
	recreateStream(t, ns, opts)
	select {
	case <-held:
	case <-time.After(waitLimit):
		t.Fatal("the new stream was not taken")
	}
	h = a.broker.pendingHistory()
	if h == nil || a.broker.cur.Load() != prev {
		t.Fatal("the renewal held without a pending history, or with it current")
	}
	return h, release
}

// pendingHistory is b's pending history (pendingAsk), nil when none.
func (b *Broker) pendingHistory() *history {
	b.renewMu.Lock()
	defer b.renewMu.Unlock()
	return b.pending
}

// recreateUnder deletes the stream of h, whose consumer runs, and creates
// another of its name, then waits until h's consumer, told of the
// deletion, has asked for a renewal and been made again on the new stream
// (which asks for a check): both asked before h is current.
func recreateUnder(t *testing.T, ns *natsServer, opts Options, h *history) {
	t.Helper()
	made := h.live.current.Load()
	recreateStream(t, ns, opts)
	waitFor(t, "the consumer made again on the new stream", func() bool { return h.live.current.Load() != made })
}

// A renewal has made the history of a stream created again, its consumer
// running, and not yet made it current when that stream is deleted and
// created again too: the consumer's renewal, and the check of its remake,
// are asked once the history is current (pendingAsk), and the instance
// takes the newest stream. Dropped as of a history not current, they were
// lost, and the instance, ready, went on with the newest stream as the
// one it had made the history of, its events delivered under that one's
// ids until a publish told.
func TestRenewalAskedForAHistoryBeingMadeIsAsked(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	h, release := pendingAfterARecreate(t, a, ns, opts)
	recreateUnder(t, ns, opts, h)
	release()
	waitNewHistory(t, a, h, "the stream created while the history was made taken")
}

// As TestRenewalAskedForAHistoryBeingMadeIsAsked, at start: the stream is
// deleted and created again once the first history's consumer runs,
// before start makes that history current. Open's start asks for the
// renewal as it does, and the instance takes the new stream.
func TestRenewalAskedAtStartBeforeTheHistoryIsCurrentIsAsked(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	consumed, until := make(chan *history, 1), make(chan struct{})
	release := sync.OnceFunc(func() { close(until) })
	t.Cleanup(release)
	opts.consumed = func(h *history) {
		consumed <- h
		<-until
	}
	type opened struct {
		b   *Broker
		err error
	}
	done := make(chan opened, 1)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		b, err := Open(ctx, opts)
		done <- opened{b, err}
	}()
	var h *history
	select {
	case h = <-consumed:
	case <-time.After(waitLimit):
		t.Fatal("the first history's consumer did not start")
	}
	recreateUnder(t, ns, opts, h)
	release()
	o := <-done
	if o.err != nil {
		t.Fatal(o.err)
	}
	t.Cleanup(o.b.Close)
	waitFor(t, "the stream created at start taken", func() bool { return o.b.cur.Load() != h && settled(o.b) })
}

// A delivery to the consumer of a history a renewal has made, not yet
// current, is lost on its way as the connection breaks: the consumer is
// made again after the reconnect, as the current history's is, and
// delivers the lost event with no other event to reveal the gap. Only the
// current history's made again, it waited for the next event, and the
// subscribers of the new history missed that one until then.
func TestConsumerOfAHistoryBeingMadeIsMadeAgainAfterAReconnect(t *testing.T) {
	t.Parallel()
	ns, p, opts := startProxied(t)
	a := newInstance(t, opts)
	prev := a.broker.cur.Load()
	h, release := pendingAfterARecreate(t, a, ns, opts)
	lost := p.loseDeliveries("lost on the way")
	if _, err := ns.operator(t).Publish(t.Context(), DefaultSubjectPrefix+".t", []byte("lost on the way")); err != nil {
		t.Fatal(err)
	}
	<-lost
	p.passDeliveries()
	back := a.broker.reconnected()
	p.cut()
	select {
	case <-back:
	case <-time.After(waitLimit):
		t.Fatal("the connection did not come back")
	}
	release()
	waitFor(t, "the lost event delivered", func() bool { return h.seen.last() >= 1 })
	waitNewHistory(t, a, prev, "the new stream taken")
}
