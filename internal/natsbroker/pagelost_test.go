package natsbroker

import (
	"strings"
	"testing"
)

// A resume whose page's consumer deletion goes unanswered (the request or
// its answer lost, as a server dropping its backlog of API requests does)
// replays all the same: the page is read, and the consumer is left to the
// server's InactiveThreshold. The deletion's answer was waited for as long
// as the page's PublishTimeout, and the resume then failed, its time spent
// ("context deadline exceeded"): 4 of 128 resumes of
// TestResumeStormWaitsForConsumers, after 121 s.
func TestResumeWhosePageConsumersDeletionGoesUnanswered(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PublishTimeout = waitLimit // what a resume may take, not what it is to take
	p, b, all := coldBehindProxy(t, ns, opts, 5)
	swallowed := p.swallowRequests(consumerDeleteSubject)
	replaysAfterFirst(t, b, all)
	select {
	case <-swallowed:
	default:
		t.Fatal("no consumer deletion went unanswered: the test did not test its case")
	}
}

// A resume whose page's pull goes unanswered, lost as the connection
// drops (a server that found its client too slow to read, a connection
// found stale on a loaded machine), reads the page again, through a
// consumer of its own, once reconnected: it replays. It waited for the
// pull's answer until the page's PublishTimeout, and failed, its time
// spent ("context deadline exceeded"), as the resumes in flight in
// TestResumeStormWaitsForConsumers may have.
func TestResumeWhosePagesPullIsLostWithTheConnection(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PublishTimeout = waitLimit // what a resume may take, not what it is to take
	logs := watchLog(&opts)
	p, b, all := coldBehindProxy(t, ns, opts, 5)
	// The instance's own consumer has pulled once it has delivered an
	// event (one of another topic: the replay's is t's), and asks for
	// more only once that pull expires (30 s): the pull swallowed is the
	// page's.
	other := store(t, ns, b, []event{{"u", 10}})
	seq, _ := b.cur.Load().ids.seq(other[0].ID)
	waitFor(t, "the instance's consumer delivering", func() bool { return b.cur.Load().seen.last() >= seq })
	swallowed := p.swallowRequests("$JS.API.CONSUMER.MSG.NEXT.")
	go func() {
		select {
		case <-swallowed:
			p.passRequests()
			p.cut()
		case <-t.Context().Done():
		}
	}()
	replaysAfterFirst(t, b, all)
	if !strings.Contains(logs.String(), pageReadAgain) {
		t.Fatalf("no page was read again: the test did not test its case; the instances' log:\n%s", logs.String())
	}
}
