package natsbroker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// maxPageReads bounds the pages an instance reads from the stream at once
// (resume.go), each through a consumer of its own. nats-server caps the
// consumers of a stream, across every instance (1000 by default,
// JSDefaultMaxConsumersPerStream): a crowd of deep resumes after a
// restart, each creating its consumer at once, went past it, and the
// refused ones answered 503. With the bound, a resume past it waits for a
// slot within its PublishTimeout. 64 keeps 15 instances, each at its
// bound, under the server's default with room for their own consumers;
// a page takes a few round trips to NATS (create, one or two fetches,
// delete), so 64 at once keep it busy: more would not be served sooner,
// as its JetStream API answers them in turn. A resume that cannot have a
// slot, or a consumer the server refuses for its cap (more instances, or
// a lower cap set by the operator), waits and asks again, and answers
// stream.ErrBusy when its time is up. The stream's own cap (its
// MaxConsumers) is left as the operator set it (ensureStream sets none):
// it bounds what every client of the NATS server may create, and other
// tools reading the stream need their share of it.
const maxPageReads = 64

// Waits between asking again for a consumer the server refused for its
// cap: from consumerRetryMin, doubled each time up to consumerRetryMax.
const (
	consumerRetryMin = 5 * time.Millisecond
	consumerRetryMax = 100 * time.Millisecond
)

// readSlot takes one of the instance's maxPageReads slots for a page read,
// waiting for one until ctx ends; the function returned gives it back.
// Waiting past ctx is an error wrapping stream.ErrBusy.
func (b *Broker) readSlot(ctx context.Context) (release func(), err error) {
	return takeSlot(ctx, b.reads, "reads from the stream")
}

// defaultHeldBytes is what heldPages allows pages without a
// HistoryMaxBytes: the hub's default history bytes.
const defaultHeldBytes = 64 << 20

// heldPages bounds the pages that the instance's resumes hold at once:
// read and not yet handed out (resume.go). Each is a copy of up to
// replayPageBytes of the stream's events (and the event that crosses it)
// for one subscription: unbounded, a crowd of deep resumes whose clients
// read slowly held one each, max_streams of them (5 GB at the defaults).
// It is the local history's bytes in pages (HistoryMaxBytes, 64 MiB by
// default: 256), and at least maxPageReads. A resume past it waits for a
// page to be let go, within its PublishTimeout, and is busy after.
func heldPages(historyMaxBytes int64) int {
	if historyMaxBytes <= 0 {
		historyMaxBytes = defaultHeldBytes
	}
	return max(int(historyMaxBytes/replayPageBytes), maxPageReads)
}

// holdSlot takes one of the instance's heldPages slots for a page to be
// held, waiting for one until ctx ends; the function returned gives it
// back, once however often it is called. Waiting past ctx is an error
// wrapping stream.ErrBusy.
func (b *Broker) holdSlot(ctx context.Context) (release func(), err error) {
	release, err = takeSlot(ctx, b.held, "pages of resumes held")
	if err != nil {
		return nil, err
	}
	return sync.OnceFunc(release), nil
}

// takeSlot takes one of slots, waiting until ctx ends; the function
// returned gives it back. Waiting past ctx is an error wrapping
// stream.ErrBusy, saying that all of what are taken.
func takeSlot(ctx context.Context, slots chan struct{}, what string) (release func(), err error) {
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	default:
	}
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, busy(fmt.Errorf("all %d %s in use: %w", cap(slots), what, ctx.Err()))
	}
}

// createConsumer creates a page's consumer, asking again while the server
// refuses it for its cap on the stream's consumers, until ctx ends: then
// it returns an error wrapping stream.ErrBusy, whether ctx ended between
// two requests or during one (it was reported unreachable then, more
// often the slower the server answered). A request left unanswered is
// sent again (askAgain) under a new name: one placed on a cluster's server
// that just crashed is never answered, asked again under its name or not
// (live.create), and a resume answered 503. A request that did create its
// consumer and lost the answer leaves that one to the server, which
// removes it once idle for its InactiveThreshold.
//
// The repeats askAgain sent, whose answers it did not take, may have
// created their consumers all the same (a server slower to answer than
// askEvery creates each one): each is deleted once askAgain returns, or it
// held a place under the server's cap on the stream's consumers for
// InactiveThreshold, and under load a crowd of resumes filled the cap with
// consumers nobody read (TestResumeWhileNATSAnswersSlowly).
func (b *Broker) createConsumer(ctx context.Context, h *history, cfg jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	var refused error // the server's last refusal for its cap
	var (
		mu    sync.Mutex
		names []string // of the creations askAgain sent
	)
	create := func(ctx context.Context) (jetstream.Consumer, error) {
		cfg := cfg // asks run at once (askAgain)
		cfg.Name = rand.Text()
		mu.Lock()
		names = append(names, cfg.Name)
		mu.Unlock()
		return h.stream.CreateConsumer(ctx, cfg)
	}
	for wait := consumerRetryMin; ; wait = min(2*wait, consumerRetryMax) {
		names = names[:0] // askAgain has waited for its asks
		cons, err := askThroughElection(ctx, create)
		b.deleteUntaken(names, cons)
		switch {
		case errors.Is(err, jetstream.ErrMaximumConsumersLimit):
			refused = err
		case err != nil && refused != nil && ctx.Err() != nil:
			return nil, busy(fmt.Errorf("%w: %w", refused, ctx.Err()))
		default:
			return cons, err
		}
		if err := pause(ctx, wait); err != nil {
			return nil, busy(fmt.Errorf("%w: %w", refused, err))
		}
	}
}

// deleteUntaken asks the server to delete the consumers named, but taken:
// creations of a page's consumer whose answers askAgain did not take,
// each may have been created. It sends the requests and waits for no
// answer: those not created are not found, and a deletion lost leaves
// its consumer to the server's InactiveThreshold.
func (b *Broker) deleteUntaken(names []string, taken jetstream.Consumer) {
	for _, name := range names {
		if taken != nil && taken.CachedInfo().Name == name {
			continue
		}
		_ = b.nc.PublishRequest(consumerDeleteSubject+b.opts.Stream+"."+name, b.nc.NewInbox(), nil)
	}
}

// consumerDeleteSubject is the subject, before the stream's name, a dot
// and the consumer's, of JetStream's request to delete a consumer.
const consumerDeleteSubject = "$JS.API.CONSUMER.DELETE."

// busy wraps err, why a read could not start in time, with stream.ErrBusy.
func busy(err error) error {
	return fmt.Errorf("nats replay: %w: %w", stream.ErrBusy, err)
}
