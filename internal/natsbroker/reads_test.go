package natsbroker

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/ssehub/ssehub/internal/stream"
)

// A crowd of deep resumes, more than the instance reads at once and many
// more than the server lets the stream have consumers, all resume: each
// waits for a read slot, and for a consumer the server refused for its
// cap, rather than fail (before, each one past the cap answered 503).
func TestResumeStormWaitsForConsumers(t *testing.T) {
	// Twice the instance's read slots, six times the consumers it may
	// have: every resume past the first 20 waits. The last ones wait for
	// the pages of all before them, which took more than 20s for 300 on a
	// busy machine under -race (35 of them failed): their time is far
	// longer than the work, a wait, not a failure, is the point.
	const resumes = 2 * maxPageReads
	ns := startNATSWith(t, &natsServer{maxConsumers: 22}) // the instances' own two, and 20
	opts := testBrokerOptions(ns)
	opts.HistorySize = 1000
	opts.PublishTimeout = 2 * time.Minute
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"t", 100}, 50))
	opts.cold = true
	// Its log on failure: 4 of 128 resumes once failed after the 2
	// minutes, "context deadline exceeded", as a resume did then that
	// waited for an answer lost: its page consumer's deletion's, or its
	// page's pull's across a reconnect (which the log tells of), which a
	// resume no longer waits out
	// (TestResumeWhosePageConsumersDeletionGoesUnanswered,
	// TestResumeWhosePagesPullIsLostWithTheConnection).
	logs := watchLog(&opts)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the instance's log:\n%s", logs.String())
		}
	})
	b := openBroker(t, opts) // its local history starts after them

	var failed atomic.Int64
	var wg sync.WaitGroup
	for range resumes {
		wg.Go(func() {
			s, err := b.Subscribe([]string{"t"}, all[0].IDString())
			if err != nil {
				if failed.Add(1) == 1 {
					t.Errorf("resume: %v", err)
				}
				return
			}
			defer s.Close()
			var got []*stream.Message
			for done := false; !done; {
				got, done = s.Replay(got, 64<<10)
			}
			if err := s.Err(); err != nil || len(got) != len(all)-1 || got[len(got)-1].ID != all[len(all)-1].ID {
				if failed.Add(1) == 1 {
					t.Errorf("replayed %d events, ended %v; want %d", len(got), err, len(all)-1)
				}
			}
		})
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d resumes failed", n, resumes)
	}
	if len(b.reads) != 0 {
		t.Errorf("%d read slots still taken", len(b.reads))
	}
}

// A resume that cannot have a consumer of the stream within its time (the
// server's cap taken) answers 503 saying the store is busy, not that it is
// unreachable, with Retry-After.
func TestResumeThatCannotReadAnswersBusy(t *testing.T) {
	ns := startNATSWith(t, &natsServer{maxConsumers: 1}) // the instance's own
	opts := testBrokerOptions(ns)
	// Time for the stream's info and a refusal at least: with 300 ms, one
	// request to JetStream answered later (a loaded machine under -race)
	// made the resume unreachable, not busy (1 in 150 runs beside a storm
	// of resumes).
	opts.PublishTimeout = time.Second
	createStream(t, ns, opts)
	publishAsOperator(t, ns, "t", 3)
	opts.cold = true
	in := newInstance(t, opts)
	first := in.broker.cur.Load().ids.id(1)

	_, err := in.broker.Subscribe([]string{"t"}, strconv.FormatUint(first, 10))
	if !errors.Is(err, stream.ErrBusy) || errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("Subscribe: %v, want ErrBusy", err)
	}
	req, _ := http.NewRequestWithContext(context.Background(), "GET", in.URL+"/api/v1/events?topic=t", nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(first, 10))
	resp, err := in.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "busy") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("%d %s, Retry-After %q; want 503 saying busy, with Retry-After", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
}

// A resume whose time runs out while it asks again for a consumer the
// server refused for its cap (here the request after the refusal goes
// unanswered, as a server too busy to answer it in time) answers busy too,
// not that the store is unreachable: TestResumeThatCannotReadAnswersBusy
// failed so when its time ran out during a request.
func TestResumeRefusedThenUnansweredAnswersBusy(t *testing.T) {
	// One consumer: the instance's own.
	ns, p, opts := startProxiedWith(t, &natsServer{maxConsumers: 1})
	opts.PublishTimeout = time.Second // the refusal comes within it
	createStream(t, ns, opts)
	publishAsOperator(t, ns, "t", 3)
	opts.cold = true
	in := openBroker(t, opts)
	first := in.cur.Load().ids.id(1)
	swallowed := p.swallowRequestsAfter("$JS.API.CONSUMER.CREATE.", 1)
	_, err := in.Subscribe([]string{"t"}, strconv.FormatUint(first, 10))
	if !errors.Is(err, stream.ErrBusy) || errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("Subscribe: %v, want ErrBusy", err)
	}
	select {
	case <-swallowed:
	default:
		t.Fatal("no request for a consumer went unanswered: the test did not test its case")
	}
}

// A client that goes away while its resume waits for a read slot stops
// waiting, and no page is read for it once a slot is free: in a storm of
// reconnects, those that gave up held the slots of those still there.
func TestResumeOfAGoneClientReadsNothing(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.cold = true // resumes read the stream
	opts.PublishTimeout = time.Minute
	a := newInstance(t, opts)
	first := a.publish(t, "t", "1")
	a.publish(t, "t", "2")
	a.close()
	returned := make(chan struct{}, 10)
	b := newInstance(t, opts, func(c *gin.Context) {
		c.Next()
		returned <- struct{}{} // a request's handler has returned
	})
	for range maxPageReads {
		b.broker.reads <- struct{}{} // every slot taken
	}
	creates := consumerCreates(t, ns)

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", b.URL+"/api/v1/events?topic=t", nil)
	req.Header.Set("Last-Event-ID", first)
	if resp, err := b.Client().Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("resume answered %s with every read slot taken", resp.Status)
	}
	select {
	case <-returned:
	case <-time.After(waitLimit):
		t.Fatal("the resume of a client that went away still waits for a read slot")
	}
	for range maxPageReads {
		<-b.broker.reads
	}
	c := b.subscribe(t, "topic=t", first) // a client still there: reads a page
	c.next(t)
	if n := creates.seen(t, b.broker); n != 1 {
		t.Errorf("%d page consumers created once the slots were free, want 1: the one for the client still there", n)
	}
}

// A page whose messages a busy NATS server is slow to deliver (here each
// read's request reaches it 1.5 s late) is waited for within the read's
// time: the resume hands out every event. nats.go's FetchNoWait gave up
// after a second with nothing, the messages went to an inbox no longer
// read, and the resume failed, "counted but not delivered".
func TestResumeWaitsForASlowPage(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"t", 100}, 10))
	p := startProxy(t, ns)
	opts.URLs = []string{p.url()}
	opts.PublishTimeout = waitLimit
	opts.cold = true // the resume reads the stream
	b := openBroker(t, opts)
	p.delayNoWaitPulls(1500 * time.Millisecond)
	s, err := b.Subscribe([]string{"t"}, all[0].IDString())
	if err != nil {
		t.Fatalf("resume from a slow server: %v", err)
	}
	defer s.Close()
	if got := replayAll(t, s, nil, 1<<20); !slices.EqualFunc(got, all[1:], sameEvent) {
		t.Fatalf("replayed %v, want %v", idsOf(got), idsOf(all[1:]))
	}
}

// publishAsOperator stores n events on topic through a connection of
// the operator's own, with no instance running.
func publishAsOperator(t *testing.T, ns *natsServer, topic string, n int) {
	t.Helper()
	js := ns.operator(t)
	for i := range n {
		if _, err := js.Publish(t.Context(), DefaultSubjectPrefix+"."+topic, []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
}

// Resumes read from the stream hold at most heldPages pages at once: a
// page read and not yet handed out (a client that reads slowly, or not at
// all) keeps its slot, and a resume past the bound waits for one, then
// answers busy; a subscription closed gives its slot back.
func TestHeldPagesAreBounded(t *testing.T) {
	t.Parallel() // mostly the wait of the resume past the bound
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistoryMaxBytes = 1 << 20 // 4 pages' bytes: the bound is maxPageReads
	// Each resume within the bound is to be answered, not within a time:
	// with 1 s, beside other packages' tests under -race, one answered
	// 503, the stream's info unanswered in time. The one past the bound
	// waits for a slot as long as its client does (pastBound).
	opts.PublishTimeout = time.Minute
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"t", 100}, 3))
	opts.cold = true
	b := openBroker(t, opts) // its local history starts after them
	bound := heldPages(opts.HistoryMaxBytes)
	if bound != maxPageReads {
		t.Fatalf("heldPages(%d) = %d, want maxPageReads", opts.HistoryMaxBytes, bound)
	}

	resume := func() (stream.Subscription, error) {
		return b.Subscribe([]string{"t"}, all[0].IDString())
	}
	var subs []stream.Subscription
	t.Cleanup(func() {
		for _, s := range subs {
			s.Close()
		}
	})
	for i := range bound { // each reads its first page, and holds it
		s, err := resume()
		if err != nil {
			t.Fatalf("resume %d of %d: %v", i+1, bound, err)
		}
		subs = append(subs, s)
	}
	// Its client's 5 s bound its wait, and leave time for the stream's
	// info before it (up to 1.1 s under load).
	const pastBound = 5 * time.Second
	ctx, cancel := context.WithTimeout(t.Context(), pastBound)
	_, err := b.SubscribeContext(ctx, []string{"t"}, all[0].IDString())
	cancel()
	if !errors.Is(err, stream.ErrBusy) || !strings.Contains(err.Error(), "pages of resumes held") {
		t.Fatalf("resume past the bound: %v, want ErrBusy for the pages held", err)
	}

	// One hands its page out, one is closed: two slots come back.
	got, done := subs[0].Replay(nil, 64<<10)
	if !done || len(got) != len(all)-1 {
		t.Fatalf("Replay: %d events, done %v; want %d, done", len(got), done, len(all)-1)
	}
	subs[1].Close()
	for i := range 2 {
		s, err := resume()
		if err != nil {
			t.Fatalf("resume %d after two pages were let go: %v", i+1, err)
		}
		subs = append(subs, s)
	}
	for _, s := range subs {
		s.Close()
	}
	if len(b.held) != 0 {
		t.Errorf("%d page slots still taken after every subscription closed", len(b.held))
	}
}

// A page's consumer that counts fewer messages pending than the stream
// holds, as one on a server whose copy of a replicated stream lags behind
// does, does not end the replay early: the stream's leader is asked
// whether more is left, and the replay reads on. Trusting the count, it
// handed out the first 5 of 9 events as the whole replay, without a word.
func TestReplayDoesNotTrustAShortCount(t *testing.T) {
	ns := startNATS(t)
	p, b, all := coldBehindProxy(t, ns, testBrokerOptions(ns), 10)
	p.undercountNextConsumer(4) // the first page's: 5 of the 9 after all[0]
	replaysAfterFirst(t, b, all)
}

// coldBehindProxy stores n events through an instance of opts, and opens
// another behind a proxy, its local history starting after them: its
// resumes read the stream. It returns the proxy, the second instance and
// the events.
func coldBehindProxy(t *testing.T, ns *natsServer, opts Options, n int) (*natsProxy, *Broker, []*stream.Message) {
	t.Helper()
	p := startProxy(t, ns)
	all := store(t, ns, openBroker(t, opts), repeat(event{"t", 100}, n))
	opts.URLs = []string{p.url()}
	opts.cold = true
	return p, openBroker(t, opts), all
}

// replaysAfterFirst resumes on b after all[0], and fails the test unless
// the replay hands out the rest of all, each once, in order, and ends
// without an error.
func replaysAfterFirst(t *testing.T, b *Broker, all []*stream.Message) {
	t.Helper()
	s, err := b.Subscribe([]string{"t"}, all[0].IDString())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := replayAll(t, s, nil, 64<<10)
	if err := s.Err(); err != nil || !slices.EqualFunc(got, all[1:], func(a, b *stream.Message) bool { return a.ID == b.ID }) {
		t.Fatalf("replayed %d events (ended %v), want the %d after the first, each once", len(got), err, len(all)-1)
	}
}

// A NATS user that may not get messages from the stream by subject (an
// operator's choice of permissions) still resumes from the stream: the
// stream's leader cannot be asked whether a replay has more left than the
// page's count (rest), and the count is trusted, as before that check.
// Asking, and failing, ended every such replay with the store
// unreachable, and the client's next resume too.
func TestReplayWithoutMessageGetPermission(t *testing.T) {
	ns := startNATSWith(t, &natsServer{denied: []string{"$JS.API.STREAM.MSG.GET.>"}})
	opts := testBrokerOptions(ns)
	a := openBroker(t, opts)
	all := store(t, ns, a, repeat(event{"t", 100}, 10))
	store(t, ns, a, repeat(event{"u", 100}, 1)) // the stream's last is no match: the count ends the replay
	opts.URLs = []string{ns.restrictedURL()}
	opts.cold = true
	b := openBroker(t, opts)

	s, err := b.Subscribe([]string{"t"}, all[0].IDString())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := replayAll(t, s, nil, 64<<10)
	if err := s.Err(); err != nil || len(got) != len(all)-1 {
		t.Fatalf("replayed %d events, ended %v; want the %d after the first", len(got), err, len(all)-1)
	}
}

// A page's consumer placed where its creation is never answered, asked
// again under its name or not (a cluster's server that just crashed): the
// resume asks for one under another name, and replays.
func TestResumeNamesItsPageConsumerAnew(t *testing.T) {
	ns := startNATS(t)
	p, b, all := coldBehindProxy(t, ns, testBrokerOptions(ns), 5)
	placed := p.placeOnDeadServer()
	replaysAfterFirst(t, b, all)
	select {
	case <-placed:
	default:
		t.Fatal("no consumer creation went unanswered: the test did not test its case")
	}
}

// A resume read from the stream while NATS answers each JetStream request
// in 700 ms, as a busy server does: it replays. Asking again every
// askEvery, and dropping the request before, it had no answer and
// answered 503. It leaves no page consumer behind once it is done. askAgain sends
// a consumer's creation again, under a new name, each askEvery it has no
// answer, and takes the first answer: the consumers the others created
// stayed on the server for their InactiveThreshold (PublishTimeout), each
// holding a place under the server's cap on the stream's consumers. Under
// load, a crowd of resumes so filled the cap with consumers nobody read,
// and waited for it until PublishTimeout (TestResumeStormWaitsForConsumers:
// 27 and 77 of 128 resumes failed in 2 of 3 runs).
func TestResumeWhileNATSAnswersSlowly(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PublishTimeout = 5 * time.Second // a page's read asks several questions
	p, b, all := coldBehindProxy(t, ns, opts, 5)
	p.slowAnswers(700 * time.Millisecond)
	replaysAfterFirst(t, b, all)
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for info := range st.ListConsumers(t.Context()).Info() {
		if info.Config.FilterSubject != "" || len(info.Config.FilterSubjects) > 0 {
			left = append(left, info.Name) // a page's: the instances' own have no filter
		}
	}
	if len(left) > 0 {
		t.Fatalf("%d page consumers left on the server after the replay: %v", len(left), left)
	}
}

// A resume read from the stream while JetStream answers that it is
// temporarily unavailable (10008), as a cluster's servers answer while the
// stream elects a leader (its leader stopped): the stream's info and the
// page consumer's creation are asked again, as a question left unanswered
// is, within the resume's bound, and the replay hands out every event.
// The first such answer ended the resume with a 503
// (TestClusterResumeAsALeaderStops, TestClusterNodeStopsWhilePublishing
// under load).
func TestResumeWhileTheStreamElectsALeader(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	p, b, all := coldBehindProxy(t, ns, opts, 5)
	p.electLeader(2)
	replaysAfterFirst(t, b, all)
	if n := p.refusals(); n < 4 {
		t.Fatalf("%d answers of JetStream temporarily unavailable, want 4", n)
	}
}
