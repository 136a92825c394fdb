package natsbroker

import (
	"runtime"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// A resume that comes while the instance checks whether its stream was
// deleted, with no answer yet (a publish that no stream's server took as
// the stream's leader crashed starts such a check, which lasted seconds
// on a cluster), waits for the check's answer within its bound: the
// stream found h's still, it replays. It answered 503 at once, "stream
// being checked", for as long as the check lasted.
func TestResumeWaitsForTheStreamsCheck(t *testing.T) {
	ns := startNATS(t)
	p, b, all := coldBehindProxy(t, ns, testBrokerOptions(ns), 5)
	swallowed := p.swallowRequests(infoSubject)
	b.renew(b.cur.Load())
	waitClosed(t, swallowed, "the check's question of the stream")
	type result struct {
		s   stream.Subscription
		err error
	}
	resumed := make(chan result, 1)
	go func() {
		s, err := b.Subscribe([]string{"t"}, all[0].IDString())
		resumed <- result{s, err}
	}()
	var early *result
	waitFor(t, "the resume to wait for the check, or be answered", func() bool {
		select {
		case r := <-resumed:
			early = &r
			return true
		default:
			return waitingForTheCheck()
		}
	})
	if early != nil {
		if early.s != nil {
			early.s.Close()
		}
		t.Fatalf("resume while the stream is checked answered at once: %v; want it to wait for the check", early.err)
	}
	p.passRequests() // the check's next question is answered: the stream is there
	r := <-resumed
	if r.err != nil {
		t.Fatalf("resume once the check found the stream: %v", r.err)
	}
	defer r.s.Close()
	got := replayAll(t, r.s, nil, 64<<10)
	if err := r.s.Err(); err != nil || len(got) != len(all)-1 {
		t.Fatalf("replayed %d events (ended %v), want the %d after the first", len(got), err, len(all)-1)
	}
}

// waitingForTheCheck reports whether a goroutine waits in
// readyOnceChecked, read from a dump of every goroutine's stack.
func waitingForTheCheck() bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Contains(string(buf[:n]), "natsbroker.(*Broker).readyOnceChecked(")
		}
		buf = make([]byte, 2*len(buf))
	}
}
