package natsbroker

import (
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
