package natsbroker

import (
	"slices"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// TestResumePullsABoundedNumberOfBytes: a resume's page pulls at most
// pullBytes of events, as the instance's consumer does
// (TestConsumerPullsABoundedNumberOfBytes), and still hands out every
// event once, in order. A page's first pull asked for replayPull
// messages with no bound in bytes: for events of 1 MiB, the server sent
// up to 32 MiB on the instance's one connection for a page that ends at
// the first of them.
//
// Each page's consumer is read through a pull of its own here (an event
// fills a page), and its deletion is held on its way to the server until
// the server has sent all that pull asked for: the consumer's deliveries
// are then what its pull took, counted in bytes as the server counts them
// against a pull, and compared with the bound; no time is measured.
func TestResumePullsABoundedNumberOfBytes(t *testing.T) {
	ns := startNATSWith(t, &natsServer{maxPayload: 2 << 20})
	opts := testBrokerOptions(ns)
	// The page's read waits for its deletion, held, and then for the
	// stream's info behind it, within PublishTimeout.
	opts.PublishTimeout = waitLimit
	a := openBroker(t, opts) // makes the stream
	const size, events = 1 << 20, 10
	first := store(t, ns, a, []event{{"t", 10}})
	want := store(t, ns, a, repeat(event{"t", size}, events))
	if t.Failed() {
		t.FailNow()
	}
	p := startProxy(t, ns)
	opts.URLs = []string{p.url()}
	opts.cold = true // its local history starts after them
	b := openBroker(t, opts)
	bound := b.pullBytes()
	if events*size <= bound {
		t.Fatalf("%d events of %d bytes fit in a pull of %d bytes: the test tells nothing", events, size, bound)
	}
	if size < replayPageBytes {
		t.Fatalf("an event of %d bytes does not fill a page (%d bytes): a page may take several pulls", size, replayPageBytes)
	}
	last, _ := b.cur.Load().ids.seq(want[len(want)-1].ID)

	// page runs read, which reads a page, with that page's consumer's
	// deletion held, and checks what the server sent the consumer.
	pages := 0
	page := func(read func()) {
		t.Helper()
		held, release := p.holdNext(t, "$JS.API.CONSUMER.DELETE.")
		done := make(chan struct{})
		go func() {
			defer close(done)
			read()
		}()
		select {
		case <-held:
		case <-done:
			t.Fatal("a page was read with no consumer deleted")
		}
		pages++
		subject := p.held()
		consumer := subject[strings.LastIndexByte(subject, '.')+1:]
		info := sentAll(t, ns, consumer, last)
		each := deliveryBytes(consumer, b.subject("t"), size)
		switch sent := int(info.Delivered.Consumer) * each; {
		case info.Delivered.Consumer == 0:
			t.Errorf("page %d: the server sent its consumer nothing", pages)
		case sent > bound:
			t.Errorf("page %d: the server sent its pull %d events (%d bytes at most each, %d in all): more than a pull's bound, %d bytes", pages, info.Delivered.Consumer, each, sent, bound)
		}
		release()
		<-done
	}

	var s stream.Subscription
	page(func() {
		var err error
		if s, err = b.Subscribe([]string{"t"}, first[0].IDString()); err != nil {
			t.Error(err)
		}
	})
	if s == nil {
		t.FailNow()
	}
	defer s.Close()
	if s.Reset() != "" {
		t.Fatalf("reset %q", s.Reset())
	}
	// Each Replay hands out the page held, an event, and reads the next.
	var got []*stream.Message
	done := false
	got, done = s.Replay(got, 1)
	for !done && len(got) < events {
		page(func() { got, done = s.Replay(got, 1) })
		if t.Failed() {
			t.FailNow()
		}
	}
	got = replayAll(t, s, got, 1)
	if !slices.EqualFunc(got, want, sameEvent) {
		t.Fatalf("got %d events %v, want %d %v", len(got), idsOf(got), len(want), idsOf(want))
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	if pages != events {
		t.Errorf("%d pages read, want one per event: %d", pages, events)
	}
}

// TestResumeReadsAnEventLargerThanAPull: an event larger than a pull's
// bound (stored through a server of a larger max_payload than the one
// the instance asks) is pulled alone, with no bound, and the replay goes
// on past it. Asked for fewer bytes than it takes, the server answers
// "409 Message Size Exceeds MaxBytes" and sends nothing, at each pull: the
// replay could not pass it. A pull that stops before it, with messages,
// is no end of the page: it pulls again.
func TestResumeReadsAnEventLargerThanAPull(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts) // makes the stream
	first := store(t, ns, a, []event{{"t", 10}})
	// The page's third pull takes a small event and stops at the next,
	// too large: 409 after a message, and the page pulls again.
	want := store(t, ns, a, []event{{"t", 100 << 10}, {"t", 10}, {"t", 10}, {"t", 100 << 10}, {"t", 10}})
	if t.Failed() {
		t.FailNow()
	}
	opts.cold = true          // its local history starts after them
	opts.pullBytes = 64 << 10 // less than an event of 100 KiB takes
	wantResumed(t, openBroker(t, opts), first[0].IDString(), want)
}

// TestResumePageGoesOnPastAPullThatTakesItsBoundExactly: a pull whose
// deliveries take exactly its bound in bytes ends there, the server
// sending nothing more (no status), and the page pulls again. Waiting on
// for the rest of the messages it asked for, the pull waited until the
// page's time ran out, and the resume failed.
//
// The bound is two deliveries of the page's consumer: their size is
// known (the subject, a reply subject of a consumer name of 26
// characters and numbers of one digit but the time's 19, the data), and
// checked against what the proxy saw.
func TestResumePageGoesOnPastAPullThatTakesItsBoundExactly(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts) // makes the stream
	const size = 1000
	first := store(t, ns, a, []event{{"t", 10}})
	want := store(t, ns, a, repeat(event{"t", size}, 5))
	if t.Failed() {
		t.FailNow()
	}
	p := startProxy(t, ns)
	opts.URLs = []string{p.url()}
	opts.cold = true // its local history starts after them
	// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer
	// seq>.<time>.<pending>: sequences 2 to 6, 4 to 0 pending.
	reply := len("$JS.ACK."+DefaultStream+".") + 26 + len(".1.2.1.") + 19 + len(".4")
	each := len(a.subject("t")) + reply + size
	opts.pullBytes = 2 * each
	wantResumed(t, openBroker(t, opts), first[0].IDString(), want)
	// The page's consumer is the one consumer with 5 deliveries.
	p.mu.Lock()
	var sizes []int
	for _, sz := range p.sizes {
		if len(sz) == len(want) {
			sizes = sz
		}
	}
	p.mu.Unlock()
	if len(sizes) == 0 || sizes[0]+sizes[1] != opts.pullBytes {
		t.Fatalf("the page's deliveries took %v bytes, not %d each: its pulls did not take their bound exactly, the test tells nothing", sizes, each)
	}
}

// wantResumed resumes topic t on b after the event of id after, and
// checks that it hands out want, each once and in order, and no error.
func wantResumed(t *testing.T, b *Broker, after string, want []*stream.Message) {
	t.Helper()
	s, err := b.Subscribe([]string{"t"}, after)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Reset() != "" {
		t.Fatalf("reset %q", s.Reset())
	}
	got := replayAll(t, s, nil, 1<<20)
	if !slices.EqualFunc(got, want, sameEvent) {
		t.Fatalf("got %d events %v, want %d %v", len(got), idsOf(got), len(want), idsOf(want))
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
}
