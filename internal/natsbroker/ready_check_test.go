package natsbroker

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

// longBound is a PublishTimeout no test here waits out: a check younger
// than it is fresh for Ready all through the test.
const longBound = 10 * time.Minute

// An instance whose stream is being checked, the check's question not
// answered yet (a publish that no stream's server took as the stream's
// leader crashed starts such a check on every instance that was
// publishing), stays ready, /readyz 200, while the check is fresh: it
// said unready for the whole check, every instance together, a load
// balancer left with none, over a stream then found there. Publishes
// still take the stream for being checked meanwhile (they wait for the
// answer, then refuse saying so).
func TestReadyWhileAFreshCheckHasNoAnswer(t *testing.T) {
	_, p, opts := startProxied(t)
	opts.PublishTimeout = longBound
	a := newInstance(t, opts)
	b := a.broker
	h := b.cur.Load()
	swallowed := p.swallowRequests(infoSubject)
	b.renew(h) // as a publish that no stream took does
	waitClosed(t, swallowed, "the check's question of the stream")
	if err := b.ready(h); !errors.Is(err, errStreamChecked) {
		t.Fatalf("the publishes' view while the check waits: %v, want the stream being checked", err)
	}
	if err := b.Ready(); err != nil {
		t.Fatalf("Ready while a fresh check has no answer: %v, want nil", err)
	}
	if resp := a.readyz(t); resp.StatusCode != http.StatusOK {
		t.Fatalf("readyz while a fresh check has no answer: %v, want 200", resp.Status)
	}
	p.passRequests() // the check's next question finds the stream there
	waitFor(t, "the check to find the stream there", func() bool { return !h.stale.Load() })
	if err := b.Ready(); err != nil || b.cur.Load() != h {
		t.Fatalf("Ready once the check found the stream: %v (history kept: %v)", err, b.cur.Load() == h)
	}
}

// A check that outlasts PublishTimeout with no answer makes Ready say
// unready, that the stream is being checked: the publishes waiting for
// it fail by then. The clock is synctest's: ready up to the bound, and
// unready from it.
func TestReadyUnreadyOnceTheCheckOutlastsItsBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const bound = 5 * time.Second
		b := &Broker{opts: Options{Stream: DefaultStream, PublishTimeout: bound}, closed: make(chan struct{})}
		b.connected.Store(true)
		h := &history{}
		b.cur.Store(h)
		if err := b.Ready(); err != nil {
			t.Fatalf("Ready with no check: %v", err)
		}
		h.beginCheck() // as renew does
		if err := b.Ready(); err != nil {
			t.Fatalf("Ready as the check begins: %v, want nil", err)
		}
		time.Sleep(bound - time.Nanosecond)
		if err := b.Ready(); err != nil {
			t.Fatalf("Ready just before the check's bound: %v, want nil", err)
		}
		time.Sleep(time.Nanosecond)
		err := b.Ready()
		if !errors.Is(err, stream.ErrUnavailable) || errors.Is(err, ErrStreamDeleted) || !errors.Is(err, errStreamChecked) {
			t.Fatalf("Ready once the check outlasted its bound: %v, want stream.ErrUnavailable saying the stream is being checked", err)
		}
		b.connected.Store(false)
		h.beginCheck() // a fresh check, NATS not connected
		if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "not connected") {
			t.Fatalf("Ready during a fresh check with NATS not connected: %v, want unready, not connected", err)
		}
	})
}

// The real renewal's bound is PublishTimeout, counted from the check's
// start: with a small one, an unanswered check makes the instance
// unready, /readyz 503, saying the stream is being checked, the question
// still unanswered.
func TestReadyUnreadyOnceAnUnansweredCheckOutlastsPublishTimeout(t *testing.T) {
	_, p, opts := startProxied(t)
	opts.PublishTimeout = 500 * time.Millisecond
	a := newInstance(t, opts)
	b := a.broker
	h := b.cur.Load()
	swallowed := p.swallowRequests(infoSubject)
	b.renew(h)
	waitClosed(t, swallowed, "the check's question of the stream")
	var err error
	waitFor(t, "the instance unready as the check outlasts its bound", func() bool {
		err = b.Ready()
		return err != nil
	})
	if !errors.Is(err, stream.ErrUnavailable) || !strings.Contains(err.Error(), "being checked") || h.told.Load() {
		t.Fatalf("Ready once the unanswered check outlasted PublishTimeout: %v (answered: %v), want it being checked", err, h.told.Load())
	}
	if resp := a.readyz(t); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz once the check outlasted its bound: %v, want 503", resp.Status)
	}
	p.passRequests()
	waitFor(t, "the instance ready once the check finds the stream", func() bool { return b.Ready() == nil })
}

// A check answered that the stream is not found makes the instance
// unready at once, fresh as it is, and it stays unready while the
// check's later questions go unanswered: NATS's silence then tells
// nothing of a stream found deleted.
func TestReadyUnreadyAtOnceWhenTheCheckFindsTheStreamDeleted(t *testing.T) {
	ns, p, opts := startProxied(t)
	opts.PublishTimeout = longBound
	a := newInstance(t, opts)
	b := a.broker
	h := b.cur.Load()
	deleteStream(t, ns, DefaultStream)
	b.renew(h)
	waitFor(t, "the check to find no stream", h.gone.Load)
	if err := b.Ready(); !errors.Is(err, stream.ErrUnavailable) || !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("Ready with the stream found deleted: %v, want stream.ErrUnavailable and ErrStreamDeleted", err)
	}
	if resp := a.readyz(t); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the stream found deleted: %v, want 503", resp.Status)
	}
	swallowed := p.swallowRequests(infoSubject)
	waitClosed(t, swallowed, "the check's next question of the stream")
	// Unanswered (askWait), the question leaves the stream being checked,
	// not deleted.
	waitFor(t, "the next question to go unanswered", func() bool { return !h.gone.Load() })
	if err := b.Ready(); !errors.Is(err, stream.ErrUnavailable) || !strings.Contains(err.Error(), "being checked") {
		t.Fatalf("Ready with the stream found deleted, then NATS silent: %v, want unready, being checked", err)
	}
}

// A check answered by another stream of its name that does not fit (of
// other storage) makes the instance unready at once: an answer, not an
// election's silence, which waiting will not change.
func TestReadyUnreadyAtOnceWhenTheCheckFindsAStreamThatDoesNotFit(t *testing.T) {
	a := checkedAStreamThatDoesNotFit(t)
	b := a.broker
	if err := b.Ready(); !errors.Is(err, stream.ErrUnavailable) {
		t.Fatalf("Ready with the stream replaced by one that does not fit: %v, want stream.ErrUnavailable", err)
	}
	if resp := a.readyz(t); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with the stream replaced by one that does not fit: %v, want 503", resp.Status)
	}
}

// A publish during a check that NATS has answered (another stream of its
// name that does not fit) is refused at once, as Ready is: it waited its
// whole PublishTimeout for an answer it already had, then answered 503.
func TestPublishRefusedAtOnceWhenTheCheckFindsAStreamThatDoesNotFit(t *testing.T) {
	b := checkedAStreamThatDoesNotFit(t).broker
	refused := make(chan error, 1)
	go func() {
		_, _, err := b.Publish(stream.Publication{Topic: "t", Data: "x"})
		refused <- err
	}()
	select {
	case err := <-refused:
		if !errors.Is(err, stream.ErrUnavailable) {
			t.Fatalf("publish with the stream replaced by one that does not fit: %v, want stream.ErrUnavailable", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("a publish waited more than %v for a check NATS had answered (PublishTimeout %v)", waitLimit, b.opts.PublishTimeout)
	}
}

// checkedAStreamThatDoesNotFit returns an instance (PublishTimeout
// longBound) whose stream was replaced by one of its name that does not
// fit (of other storage), once its check has that answer.
func checkedAStreamThatDoesNotFit(t *testing.T) *instance {
	t.Helper()
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.PublishTimeout = longBound
	a := newInstance(t, opts)
	h := a.broker.cur.Load()
	other := opts
	other.Storage = "memory"
	recreateStream(t, ns, other)
	a.broker.renew(h)
	// Answered first, maybe, that no stream is found (the deletion's
	// notice starts a check before the other stream is created).
	waitFor(t, "the check's answer of a stream that does not fit", func() bool { return h.told.Load() && !h.gone.Load() })
	return a
}
