// Package natsbroker is the hub's broker for several instances: events are
// stored in a NATS JetStream stream, which gives them their ids, and each
// instance reads the stream once and fans it out locally through a
// stream.Memory, whose history becomes a cache of the stream's tail.
//
// Publish goes to JetStream only, through the instance's one publishing
// goroutine (publisher.go; Options.DisablePublishBatching sends each
// from its caller's goroutine instead), and returns once JetStream has
// acknowledged the event. One consumer per Broker (live, which makes
// itself again as nats.go's ordered consumer does), on every subject of
// the stream, hands each event in sequence order to the local broker
// (consumer.go). A resume older than the local history reads the stream
// (resume.go). An event's id is its stream sequence plus the stream's
// creation time in microseconds (ids.go), so ids of another history are
// recognised. A stream deleted while the instance runs, created again or
// not, starts a new history without a restart (history.go).
package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/ssehub/ssehub/internal/stream"
)

// Defaults used for zero Options fields.
const (
	DefaultURL            = nats.DefaultURL
	DefaultStream         = "SSEHUB"
	DefaultSubjectPrefix  = "ssehub"
	DefaultPublishTimeout = 5 * time.Second
	DefaultReconnectWait  = time.Second
	DefaultPingInterval   = 5 * time.Second
)

// maxPingsOut is how many pings may go unanswered before the connection
// is taken for lost: with DefaultPingInterval, a hung NATS server is left
// within 10 to 15 s.
const maxPingsOut = 2

// eventTypeHeader carries an event's type (the `event:` field) in its
// JetStream message; absent for the default type.
const eventTypeHeader = "Ssehub-Event"

// eventTypeQuotedHeader carries, in eventTypeHeader's place, an event type
// that starts or ends with a blank (a space, a tab), Go-quoted: NATS drops
// the blanks around a header's value, and gave back "update" for
// " update" and "update ".
const eventTypeQuotedHeader = "Ssehub-Event-Quoted"

// eventTypeOf is the event type that header h of a stored event carries;
// "" for the default.
func eventTypeOf(h nats.Header) string {
	if q := h.Get(eventTypeQuotedHeader); q != "" {
		if t, err := strconv.Unquote(q); err == nil {
			return t
		}
	}
	return h.Get(eventTypeHeader)
}

// Options configures a Broker. A zero field means its default.
type Options struct {
	// URLs are the NATS servers to connect to, one or more of a cluster;
	// default DefaultURL.
	URLs []string
	// CredentialsFile is a NATS .creds file; empty means none.
	CredentialsFile string
	// CAFile holds the PEM certificates of the CAs that sign the servers'
	// TLS certificates; set, the connections must be TLS. Empty means the
	// system's CAs.
	CAFile string
	// Stream is the JetStream stream's name; default DefaultStream.
	Stream string
	// SubjectPrefix makes topic t the subject <SubjectPrefix>.t; default
	// DefaultSubjectPrefix.
	SubjectPrefix string
	// Replicas is how many copies of the stream a cluster keeps; default 1.
	Replicas int
	// Storage is "file" (the default) or "memory".
	Storage string
	// HistorySize bounds the stream (its MaxMsgs) and the local history;
	// default stream.DefaultHistorySize.
	HistorySize int
	// HistoryMaxBytes bounds the stream's bytes (its MaxBytes) and the
	// local history's, as stream.MemoryOptions.HistoryMaxBytes; zero means
	// no bound.
	HistoryMaxBytes int64
	// MaxEventBytes is the hub's cap on a publish body, for Open to warn
	// when the NATS server's max_payload cannot hold such an event as
	// stored; zero: no check.
	MaxEventBytes int
	// SubscriberBuffer and MaxSubscribers are the local broker's, as in
	// stream.MemoryOptions.
	SubscriberBuffer int
	MaxSubscribers   int
	// PublishTimeout bounds the wait for JetStream's acknowledgement (from
	// when the publish is sent: a publish's wait for a check of the stream
	// has a bound of its own, as long), and for the stream's answers when
	// a subscription resumes; default DefaultPublishTimeout.
	PublishTimeout time.Duration
	// DisablePublishBatching sends each publish to JetStream from its
	// caller's goroutine, as a synchronous publish. False, the zero value,
	// sends them all from the instance's one publishing goroutine, which
	// costs less CPU per publish under load (publisher.go).
	DisablePublishBatching bool
	// ReconnectWait is the pause between attempts to reconnect to a NATS
	// server; default DefaultReconnectWait.
	ReconnectWait time.Duration
	// PingInterval is how often the connection asks the server whether it
	// is there; two unanswered pings end it (then it reconnects, to
	// another server of URLs if there is one); default
	// DefaultPingInterval. nats.go's own, 2 minutes, left a hung server
	// (a stopped process, a partition without a reset) unnoticed for 4 to
	// 6 minutes: ready, each publish waiting PublishTimeout for a 503.
	// It also paces the JetStream question that tells a server cut off
	// from its cluster (watch).
	PingInterval time.Duration
	// Logger receives connection changes; default slog.Default().
	Logger *slog.Logger

	// dial, when set (by tests), makes the connections to NATS servers
	// in place of a net.Dialer's Dial.
	dial func(network, address string) (net.Conn, error)

	// cold starts the local history empty, after the stream's last
	// event, rather than loaded with the stream's tail (warm.go): for
	// tests of resumes read from the stream.
	cold bool

	// renewMax, when set (by tests), replaces renewWaitMax.
	renewMax time.Duration

	// heartbeat, when set (by tests), replaces consumerHeartbeat: a
	// consumer gone unnoticed is then missed that much later.
	heartbeat time.Duration

	// pullBytes, when set (by tests), replaces the bound of a
	// consumer's pull (Broker.pullBytes).
	pullBytes int

	// consumed, when set (by tests), is called by Open's start with the
	// first history once its consumer runs, before it is current.
	consumed func(h *history)
}

func (o *Options) setDefaults() {
	if len(o.URLs) == 0 {
		o.URLs = []string{DefaultURL}
	}
	o.Stream = cmpOr(o.Stream, DefaultStream)
	o.SubjectPrefix = cmpOr(o.SubjectPrefix, DefaultSubjectPrefix)
	o.Storage = cmpOr(o.Storage, "file")
	o.Replicas = max(o.Replicas, 1)
	if o.HistorySize <= 0 {
		o.HistorySize = stream.DefaultHistorySize
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = DefaultPublishTimeout
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = DefaultReconnectWait
	}
	if o.PingInterval <= 0 {
		o.PingInterval = DefaultPingInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// heartbeatOr is the heartbeat set by tests, or def when none is.
func (o *Options) heartbeatOr(def time.Duration) time.Duration {
	if o.heartbeat > 0 {
		return o.heartbeat
	}
	return def
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Broker is the NATS JetStream broker. It implements the hub's broker seam
// (handler.Broker); all methods are safe for concurrent use.
type Broker struct {
	opts   Options
	nc     *nats.Conn
	js     jetstream.JetStream
	cur    atomic.Pointer[history] // the stream as read now; renew replaces it
	pub    *publisher
	closed chan struct{} // closed by Close
	// back is closed, and replaced, each time the connection is back
	// (reconnected): a renewal backing off asks again then.
	backMu sync.Mutex
	back   chan struct{}
	// refused is set once a server's refusal of the credentials is
	// logged, until the connection is back.
	refused atomic.Bool
	// connected is set while the connection is up, as its status says
	// (followStatus, conn.go), not its handlers, which run later.
	connected atomic.Bool
	status    chan nats.Status // followStatus's listener
	followed  chan struct{}    // closed when followStatus's goroutine has returned

	renewMu  sync.Mutex
	renewing bool // a renew goroutine runs
	// pending is the history whose consumer runs while it is not yet
	// current (start, next), nil when none: renew and check asked for it
	// are asked once it is (pendingAsk).
	pending  *history
	checking bool           // a check goroutine runs
	recheck  bool           // check was called while one ran: it asks again
	shut     bool           // Close has begun: no renew starts
	renewals sync.WaitGroup // the renew and check goroutines, for Close
	retired  stream.Stats   // the counters of the histories that ended

	published atomic.Uint64 // events this instance stored
	replayed  atomic.Uint64 // events replayed from the stream
	// replayedFirst counts those of them that did not reach the local
	// subscription (older than it), and those handed out ahead of the
	// local consumer that it closed before it got (countAhead): those
	// that did are counted there as delivered, queued or let go of
	// (stream.Memory.Spill).
	replayedFirst atomic.Uint64
	overtaken     atomic.Uint64 // resumes dropped: the stream evicted their next page
	lag           atomic.Uint64 // the consumer's pending events at its last one

	reads chan struct{} // a slot per page read from the stream at once (reads.go)
	held  chan struct{} // a slot per page resumes hold at once (reads.go)

	violMu     sync.Mutex
	violations []violation // the permissions violations told of lately, oldest first (denied)
	// violatedNow, when not nil, is closed at the next violation told of
	// (untilDenied).
	violatedNow chan struct{}

	limits atomic.Pointer[limitsSet] // the limits this instance set, if it did (limits.go)

	// getDenied is when a question of getMsg's was last found denied to
	// the NATS user, in Unix nanoseconds; 0 before.
	getDenied atomic.Int64

	watched   chan struct{}  // closed when watch has returned
	tending   atomic.Bool    // whether tend's goroutine runs
	tends     sync.WaitGroup // tend's goroutine, which watch waits for
	jsAnswers atomic.Uint64  // watch's questions answered
	// payloadSeen is the largest max_payload a server of the connection
	// has told (largestPayload).
	payloadSeen atomic.Int64
	auth        []nats.Option // the credentials and CAs, for watch's connections

	closeOnce sync.Once

	// topicsWalk, when set (by tests), is called by TopicsPage with the
	// history it is about to walk.
	topicsWalk func(h *history)
	// subscribed, when set (by tests), is called by subscribe once the
	// local subscription of a resume is made, before the stream is read.
	subscribed func()
	// handingOut, when set (by tests), is called by a resume's handOut
	// once it has looked at what the local subscription was sent.
	handingOut func()
}

// Open connects to NATS, creates the stream if it is missing and checks it
// if present (ErrStreamMismatch), and starts reading it at its tail: it
// returns once the local history holds the stream's last HistorySize
// events (warm.go). ctx bounds the start only. A JetStream cluster
// without a leader, which answers that it is temporarily unavailable or
// leaves the stream's lookup unanswered, or one whose server restarts,
// which refuses to place the stream on a server offline or tells that
// the stream is offline, is asked again up to startWait (openStream).
//
// A start whose connection dropped meanwhile (a NATS server restarting,
// pings unanswered on a stalled machine) failed at its next request to
// JetStream, and the process exited over a blip: it is made again on a
// new connection, up to startAttempts times in all. So is one whose
// server did not greet it in time (a stalled machine: the connection's
// first read timed out,
// TestOpenConnectsAgainWhenTheServerDidNotGreetInTime). A server that
// refuses the new connection ends it.
func Open(ctx context.Context, opts Options) (*Broker, error) {
	opts.setDefaults()
	for attempt := 1; ; attempt++ {
		b, dropped, err := open(ctx, opts)
		if err == nil || !dropped || ctx.Err() != nil {
			return b, err
		}
		if attempt == startAttempts {
			return nil, fmt.Errorf("nats: the connection dropped, or was not greeted in time, at each of %d starts: %w", startAttempts, err)
		}
		opts.Logger.Warn("nats connection dropped, or not greeted in time, while starting: starting again on a new connection", "err", err)
	}
}

// ungreeted reports whether err, nats.Connect's, is that of a server
// reached that did not greet the connection (its INFO, or the PONG to
// its CONNECT) within nats.go's timeout, 2 s: not one that could not be
// reached, nor one that refused the connection.
func ungreeted(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		return false
	}
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
}

// startAttempts bounds how many times Open starts on a new connection
// after the connection it started on dropped.
const startAttempts = 3

// open is one attempt of Open: on an error, dropped tells whether the
// connection dropped while it started.
func open(ctx context.Context, opts Options) (_ *Broker, dropped bool, _ error) {
	opened := time.Now()
	b := &Broker{opts: opts, closed: make(chan struct{}), back: make(chan struct{})}
	conn := []nats.Option{
		nats.Name("ssehub"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(opts.ReconnectWait),
		nats.PingInterval(opts.PingInterval),
		nats.MaxPingsOutstanding(maxPingsOut),
		// Nothing is kept to send once reconnected: a publish sent
		// meanwhile fails at once (503), rather than answer 503 after
		// PublishTimeout and be stored when NATS is back.
		nats.ReconnectBufSize(-1),
		// A write to a server that stopped reading (hung, or cut off by
		// a partition that drops packets) blocks once the socket's
		// buffers are full, holding the connection's lock: every
		// publish, and the pings that would find the server gone,
		// waited nats.go's default minute. Failed after PublishTimeout,
		// when every publish in it has been answered, it drops the
		// connection (leavingDialer), which reconnects.
		nats.FlusherTimeout(opts.PublishTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if b.isClosed() { // Close closed the connection: nothing to warn of
				return
			}
			opts.Logger.Warn("nats disconnected: publishing answers 503 until it is back", "err", err)
		}),
		// nats.go writes the server's asynchronous errors (a permissions
		// violation, a slow consumer) to stderr as plain text, outside
		// the service's log and its format.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				b.violated(err)
			}
			if refusal(err) {
				// Told at each attempt to reconnect (each
				// ReconnectWait): once until one succeeds.
				if b.refused.CompareAndSwap(false, true) {
					opts.Logger.Warn("nats server refuses this instance's credentials: asking again until it takes them", "err", err)
				}
				return
			}
			if sub != nil {
				if errors.Is(err, nats.ErrSlowConsumer) {
					// The client drops what passes the subscription's
					// pending limit: the consumer's messages, most
					// likely. It noticed the gap only at its next
					// message, and the last ones of a burst waited for
					// the next publish. Made again, it reads on after
					// the last one delivered; an extra remake costs a
					// consumer's creation. sub is not told apart: the
					// pending history's consumer (a renewal making it) is
					// made again too. Left, its last events waited for
					// the next publish
					// (TestSlowConsumerNoticeRemakesThePendingConsumer).
					b.resetConsumers()
				}
				opts.Logger.Warn("nats error", "err", err, "subject", sub.Subject)
				return
			}
			opts.Logger.Warn("nats error", "err", err)
		}),
		// A server that refuses the credentials twice in a row, as one
		// restarted or reloaded before its new ones were in place does,
		// closed the connection for good: the instance stayed unready,
		// delivering nothing, until it was restarted by hand. It is
		// asked again, as one that is away is.
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.refused.Store(false)
			b.backMu.Lock()
			close(b.back)
			b.back = make(chan struct{})
			b.backMu.Unlock()
			opts.Logger.Info("nats reconnected", "server", redacted(nc.ConnectedUrl()))
			b.largestPayload(nc.MaxPayload()) // noted for the servers after it
			// What the server sent the consumers meanwhile is lost.
			b.resetConsumers()
		}),
	}
	conn = append(conn, secureOptions(&opts)...)
	conn = append(conn, nats.SetCustomDialer(leavingDialer{opts.dial}))
	nc, err := nats.Connect(strings.Join(opts.URLs, ","), conn...)
	if err != nil {
		// nats.go's error may name no server ("no servers available
		// for connection"); the hosts, not the URLs, which may hold
		// credentials.
		hosts := make([]string, len(opts.URLs))
		for i, u := range opts.URLs {
			hosts[i] = hostOf(u)
		}
		// Not greeted in time (the server, or the machine, stalled: a
		// blip) is started again, as a connection that dropped is.
		return nil, ungreeted(err), fmt.Errorf("nats connect to %s: %w", strings.Join(hosts, ", "), err)
	}
	b.nc = nc
	b.largestPayload(nc.MaxPayload()) // noted for the servers it reconnects to
	b.followStatus(nc)
	// A body of MaxEventBytes may be stored with up to 3 times as many
	// bytes of data (each invalid UTF-8 byte becomes U+FFFD), its subject
	// and type besides: larger ones are refused with ErrEventTooLarge.
	if need := 3*int64(opts.MaxEventBytes) + 1024; opts.MaxEventBytes > 0 && nc.MaxPayload() < need {
		opts.Logger.Warn("the NATS server's max_payload is below what an event of hub.max_event_bytes may take: larger publishes are answered 413",
			"max_payload", nc.MaxPayload(), "max_event_bytes", opts.MaxEventBytes, "want_max_payload", need)
	}
	if err := b.start(ctx); err != nil {
		err = b.denied(err, "", opened)
		// Asked of the connection, not its handlers, which run later.
		dropped := nc.Status() != nats.CONNECTED || nc.Stats().Reconnects > 0
		b.Close()
		return nil, dropped, err
	}
	b.watched, b.auth = make(chan struct{}), authOptions(&opts)
	go b.watch()
	opts.Logger.Info("nats connected", "server", redacted(nc.ConnectedUrl()), "stream", opts.Stream)
	return b, false, nil
}

// start opens the stream and the local consumer, and loads the stream's
// tail into the local history (warm.go). On an error the caller closes
// the Broker, which ends the current history.
func (b *Broker) start(ctx context.Context) error {
	var err error
	b.reads = make(chan struct{}, maxPageReads)
	b.held = make(chan struct{}, heldPages(b.opts.HistoryMaxBytes))
	// The async publish timeout bounds how long an unanswered publish is
	// remembered: a publish waits no longer than PublishTimeout anyway.
	if b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncTimeout(b.opts.PublishTimeout)); err != nil {
		return fmt.Errorf("nats jetstream: %w", err)
	}
	st, err := b.openStream(ctx)
	if err != nil {
		return err
	}
	state := st.CachedInfo().State
	h := b.newHistory(st, tailStart(state, b.opts.HistorySize, b.opts.cold))
	b.pub = newPublisher(b.js, b.closed, !b.opts.DisablePublishBatching)
	b.setPending(h)
	if err := b.consume(ctx, h); err != nil {
		b.setPending(nil)
		h.mem.Close()
		return err
	}
	if b.opts.consumed != nil {
		b.opts.consumed(h)
	}
	// Current once its consumer is set (renew ends the consumer of the
	// current history), before the tail has loaded: a stream replaced
	// meanwhile is renewed as at any other time. A renewal or check
	// its consumer asked for before (pendingAsk) is asked now: dropped,
	// a stream deleted and created again while the consumer was made
	// left the instance on the new stream as its own.
	b.renewMu.Lock()
	b.cur.Store(h)
	b.pending = nil
	again := h.renewAgain.Swap(false)
	b.renewMu.Unlock()
	if again {
		b.renew(h)
	}
	return b.warm(ctx, h, state.LastSeq)
}

// startWait bounds how long the start asks JetStream for its stream
// (openStream), when ctx ends no sooner.
const startWait = 14 * time.Second

// openStream is ensureStream at start, through the moments a JetStream
// cluster elects a leader (a node down, a cluster just started), up to
// startWait or ctx's end, whichever comes first:
//
//   - A lookup left unanswered is asked again (askAgain) until then,
//     rather than for askWait alone: the members of a stream without a
//     leader answer nothing in the first 10 s of their JetStream, and an
//     instance started beside its cluster, or as it lost the stream's
//     leader, gave up after 5 s (TestClusterOpenWhileANodeIsDown in
//     CI, TestOpenWaitsWhileTheStreamIsUnanswered).
//   - An answer that JetStream is temporarily unavailable (10008), as
//     the cluster's servers answer while it has no meta leader, is asked
//     again every askEvery, with a warning: the start failed at the first
//     one, and ssehub exited
//     (TestOpenAsksAgainWhileJetStreamIsTemporarilyUnavailable).
//   - An answer that no servers enough are there to place the stream
//     on, one of them offline (peersOffline, 10005), as the meta leader
//     answers a creation, or an update to more replicas, while a server
//     restarts, is asked again as well: the start failed, though the
//     next one 300 ms later succeeded (TestClusterOpenAsAPeerRestarts,
//     TestClusterOpenRaisesReplicasAsAPeerRestarts,
//     TestOpenAsksAgainWhilePeersAreOffline).
//   - An answer that the stream is offline (streamOffline, 10118), as
//     the meta leader answers while every server of the stream is away
//     (an R1 stream's one server restarting), is asked again as well:
//     the start failed, though the server, back, served the stream
//     (TestClusterOpenWhileTheStreamsServerRestarts).
//
// Any other refusal (a permissions violation, a stream with other
// settings, no JetStream) fails the start at once, as before.
func (b *Broker) openStream(ctx context.Context) (jetstream.Stream, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, startWait)
	defer cancel()
	var refused error // JetStream's last answer that it is unavailable, or a server offline
	for {
		st, err := b.ensureStream(ctx)
		if unavailable(err) || peersOffline(err) || streamOffline(err) {
			if refused == nil {
				b.opts.Logger.Warn("nats JetStream temporarily unavailable at start (a cluster without a leader, or a server restarting): asking again",
					"stream", b.opts.Stream, "every", askEvery, "for", startWait, "err", err)
			}
			refused = err
			if pause(ctx, askEvery) == nil {
				continue
			}
			err = fmt.Errorf("nats: stream %q: %w", b.opts.Stream, ctx.Err())
		}
		if err == nil || ctx.Err() == nil {
			return st, err
		}
		// Its time is up: startWait passed, or ctx ended (a stop asked
		// for, which ssehub tells by ctx's error, kept in err).
		switch {
		case refused != nil && parent.Err() == nil:
			err = fmt.Errorf("%w (JetStream's last answer, after asking for %s: %w)%s", err, startWait, refused, refusedAdvice(refused))
		case refused != nil:
			err = fmt.Errorf("%w (JetStream's last answer: %w)%s", err, refused, refusedAdvice(refused))
		case parent.Err() == nil && unanswered(err):
			err = fmt.Errorf("%w (no answer within %s)", err, startWait)
		}
		return nil, err
	}
}

// refusedAdvice is what an operator can do about refused, the last
// refusal openStream was answered when its time was up, for the end of
// its error; "" when nothing but waiting helps. A cluster that still
// counts a server gone for good among its peers refuses an R3 stream
// (peersOffline) for as long as it does: the start failed with "context
// deadline exceeded" and JetStream's answer, and nothing said what to do.
func refusedAdvice(refused error) string {
	if peersOffline(refused) {
		return ": a server of the NATS cluster is offline; start it again, or if it is gone for good remove it from the cluster (nats server raft peer-remove), or lower nats.replicas"
	}
	return ""
}

// Publish stores the event in the stream and returns it with the id made
// from its sequence, once JetStream has acknowledged it and the local
// consumer has delivered it (within PublishTimeout from when it is sent;
// the event is stored either way): it does not deliver it itself, the
// local consumer does, as on every other instance. While NATS is
// unreachable, and while a deleted stream is being replaced, it returns an
// error wrapping stream.ErrUnavailable; while the instance checks whether
// its stream was deleted, it waits for the check's answer within
// PublishTimeout, then goes on (with the new history, should the check
// have made one current) with a PublishTimeout of its own, or returns the
// error the check answered: it answers within PublishTimeout, and within
// twice that when it waited for a check. While JetStream has no room for
// the event (the server's storage or the account's limits full) it
// returns one wrapping stream.ErrStoreFull; with batching, one wrapping
// stream.ErrBusy when the NATS client refuses it, holding as many
// publishes awaiting their acknowledgement as it may (4000). Nothing is
// acknowledged that was not stored, or with an id of a history that has
// ended (an event whose acknowledgement was lost may be stored
// nonetheless: a retry with p.Key stores it once).
//
// A publish with p.Key carries it, with its topic, as the message's
// Nats-Msg-Id, and JetStream stores one message per Nats-Msg-Id within
// its duplicate window (stream.IdempotencyWindow, the stream's): a repeat
// is acknowledged as a duplicate of the first one's sequence, and
// answered with that event (replayed true) or, when the first one's type
// or data differ, with an error wrapping stream.ErrKeyReused (see
// confirmReplay).
func (b *Broker) Publish(p stream.Publication) (msg *stream.Message, replayed bool, err error) {
	if err := stream.ValidateTopic(p.Topic); err != nil {
		return nil, false, err
	}
	if err := stream.ValidateEventType(p.Type); err != nil {
		return nil, false, err
	}
	if p.Key != "" {
		if err := stream.ValidateIdempotencyKey(p.Key); err != nil {
			return nil, false, err
		}
	}
	// While renew checks whether the stream was deleted (a publish that
	// no stream took as the stream's leader crashed starts such a
	// check), it waits for the check's answer within its bound: answered
	// 503 at once, it was refused for as long as the check lasted, seconds
	// on a cluster, though the stream was there.
	h, err := b.readyToPublish()
	if err != nil {
		return nil, false, err
	}
	// The publish has its own PublishTimeout from here, not what the wait
	// for the check left of it: sent with a fraction of a second left, its
	// acknowledgement timed out, and a publish that was stored answered
	// 503 "may have been stored", which a client's plain retry stores
	// twice (TestPublishAfterTheChecksWaitHasItsOwnTimeout).
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	m := &nats.Msg{Subject: b.subject(p.Topic), Data: []byte(p.Data), Header: b.header(p)}
	// No Nats-Expected-Stream header (jetstream.WithExpectStream): the
	// stream would store it with every event and every consumer parse it.
	// The acknowledgement names the stream instead.
	sent := time.Now()
	ack, err := b.pub.publish(ctx, m)
	if errors.Is(err, nats.ErrMaxPayload) {
		return nil, false, fmt.Errorf("%w: it takes at most %d bytes of data, type and topic (NATS max_payload)", stream.ErrEventTooLarge, b.nc.MaxPayload())
	}
	if errors.Is(err, jetstream.ErrStreamMessageExceedsMaximum) {
		// The stream's max_msg_size, set by whoever made it.
		return nil, false, fmt.Errorf("%w: its data and type take more than stream %q's max_msg_size", stream.ErrEventTooLarge, b.opts.Stream)
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) {
			b.renew(h) // no stream took it: deleted, and its consumer not told?
		}
		if full(err) {
			return nil, false, fmt.Errorf("nats publish to stream %q: %w: %w", b.opts.Stream, stream.ErrStoreFull, err)
		}
		if errors.Is(err, nats.ErrReconnectBufExceeded) {
			err = fmt.Errorf("nats not connected: %w", err) // sent while it reconnects
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) && !b.isClosed() {
			// Not sent: the client holds as many publishes awaiting their
			// acknowledgement as it may (PublishAsyncMaxPending), and
			// none was answered for 200 ms. NATS is reached, too slowly.
			return nil, false, fmt.Errorf("nats publish: %w: %w", stream.ErrBusy, err)
		}
		err = b.denied(err, m.Subject, sent)
		if sentUnanswered(err) {
			err = fmt.Errorf("%w: %w", stream.ErrMaybeStored, err)
		}
		return nil, false, b.unavailable("publish", err)
	}
	if ack.Stream != b.opts.Stream {
		return nil, false, b.unavailable("publish", fmt.Errorf("subject %s stored by stream %q, not %q: %w", m.Subject, ack.Stream, b.opts.Stream, ErrStreamMismatch))
	}
	// Stored: a consumer refused meanwhile need not wait out its back-off.
	h.live.streamAnswers()
	if !ack.Duplicate {
		b.published.Add(1)
	}
	msg, err = stream.NewMessage(h.ids.id(ack.Sequence), p.Topic, p.Type, p.Data)
	if err != nil {
		return nil, false, err
	}
	// The stream may have been deleted meanwhile, and this event stored in
	// the next one: its id in h would be wrong. The wait for the consumer
	// leaves a share of ctx (confirmShare) to ask the stream when it ends
	// with the event not delivered.
	deadline, _ := ctx.Deadline()
	wait, cancelWait := context.WithDeadline(ctx, deadline.Add(-b.opts.PublishTimeout/confirmShare))
	delivered := h.seen.wait(wait, h.ended, ack.Sequence)
	cancelWait()
	switch {
	case ack.Duplicate:
		// The wait left the check that this is the first event its
		// share of ctx, with the consumer behind (as after a reconnect).
		err = b.confirmReplay(ctx, h, msg, p)
	case delivered:
		err = b.confirm(ctx, h, msg)
	default:
		// Not delivered in time (the consumer behind, as after a
		// reconnect, or on a stream deleted that it has not been told
		// of): stored by the stream that h reads, or by another one? A
		// NATS that does not answer (gone since the acknowledgement)
		// leaves the event stored by the stream of h's name: a 503
		// would have a client's plain retry store it twice.
		if err = b.confirmStream(ctx, h, msg); !errors.Is(err, ErrStreamDeleted) {
			// Answered with its id, unconfirmed: handed out all the
			// same (answerAhead), as confirmStream counts one it
			// confirms. Not counted, a stream restored from a backup
			// that lacks it was taken for h's, its last sequence at the
			// consumer's, and the new event stored under its sequence
			// delivered under the id its publisher had been told was
			// its event's (TestPublishAnsweredUnconfirmedCountsItsID).
			h.answerAhead(ack.Sequence)
			err = nil
		}
	}
	if err == nil {
		// Not b.ready: a connection lost since the acknowledgement does
		// not unstore the event, and a 503 would have a client's plain
		// retry store it twice.
		err = b.current(h)
	}
	if errors.Is(err, stream.ErrKeyReused) {
		return nil, false, err
	}
	if err != nil {
		// Acknowledged: stored, by a stream of its name.
		return nil, false, b.unavailable("publish", fmt.Errorf("%w: %w", stream.ErrMaybeStored, err))
	}
	return msg, ack.Duplicate, nil
}

// confirmShare is the share of PublishTimeout (1/confirmShare) that
// Publish keeps to confirm an event its consumer has not delivered.
const confirmShare = 5

// sentUnanswered reports whether err, a publish's, is that of one sent to
// NATS with no answer in time (its acknowledgement may have been lost on
// its way, or be late): it may have been stored. Not one its caller gave
// up on before it was sent, nor one the server told of a permissions
// violation for (denied), which it did not store.
func sentUnanswered(err error) bool {
	return (unanswered(err) || errors.Is(err, nats.ErrDisconnected)) &&
		!errors.Is(err, errNotSent) && !errors.Is(err, nats.ErrPermissionViolation)
}

// errCodeAccountResourcesExceeded is nats-server's error code for a
// publish past its account's JetStream limits
// (JSAccountResourcesExceededErr), and errCodeNotStored its code
// for a message its stream did not store (JSStreamStoreFailedF), with
// the store's error as description; nats.go names neither.
const (
	errCodeAccountResourcesExceeded jetstream.ErrorCode = 10002
	errCodeNotStored                jetstream.ErrorCode = 10077
)

// full reports whether err, a publish's, is JetStream refusing the event
// for want of room: the server's storage (its max_file_store or
// max_memory_store) or the account's limits reached before the stream's
// own let go of its oldest events, or the stream's limits reached when it
// discards new events (edited so since the start, which refuses such a
// stream). Taken for NATS unreachable, it was answered "try again in a
// moment", when nothing would be stored until an operator made room.
func full(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jetstream.ErrorCode(nats.JSErrCodeInsufficientResourcesErr), errCodeAccountResourcesExceeded:
		return true
	case errCodeNotStored:
		// nats-server's ErrMaxMsgs, ErrMaxBytes, ErrMaxMsgsPerSubject.
		switch apiErr.Description {
		case "maximum messages exceeded", "maximum bytes exceeded", "maximum messages per subject exceeded":
			return true
		}
	}
	return false
}

// refusal reports whether err, told by the connection, is a server's
// refusal of the instance's credentials.
func refusal(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}

// maxViolations is how many permissions violations denied remembers.
const maxViolations = 16

// violation is a permissions violation the server told of, and when.
type violation struct {
	err error
	at  time.Time
}

// violated remembers err, a permissions violation just told of, for
// denied: the maxViolations latest.
func (b *Broker) violated(err error) {
	b.violMu.Lock()
	defer b.violMu.Unlock()
	if len(b.violations) == maxViolations {
		b.violations = slices.Delete(b.violations, 0, 1)
	}
	b.violations = append(b.violations, violation{err, time.Now()})
	if b.violatedNow != nil {
		close(b.violatedNow)
		b.violatedNow = nil
	}
}

// untilDenied returns a context of ctx that ends, with the violation as
// its cause, once the server tells of a permissions violation for
// subject: a request there is never answered, and would wait out ctx.
// stop ends it, and must be called.
func (b *Broker) untilDenied(ctx context.Context, subject string) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	since := time.Now()
	go func() {
		for {
			b.violMu.Lock()
			if b.violatedNow == nil {
				b.violatedNow = make(chan struct{})
			}
			next := b.violatedNow
			b.violMu.Unlock()
			if v := b.violationFor(subject, since); v != nil {
				cancel(v)
				return
			}
			select {
			case <-next:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ctx, func() { cancel(nil) }
}

// denied adds to err, a request to subject sent at since and left
// unanswered, the permissions violation the server told of for subject
// (for any subject when "") since then: a NATS user that may not publish
// there is never answered, and nats.go tells of the violation apart.
// Its last error, taken before, could be another request's violation,
// and one of a subject allowed since, minutes old.
func (b *Broker) denied(err error, subject string, since time.Time) error {
	if !unanswered(err) {
		return err
	}
	if v := b.violationFor(subject, since); v != nil {
		return fmt.Errorf("%w (%w)", err, v)
	}
	return err
}

// violationFor returns the last permissions violation the server told of
// for subject (for any subject when "") since then, or nil.
func (b *Broker) violationFor(subject string, since time.Time) error {
	b.violMu.Lock()
	defer b.violMu.Unlock()
	for _, v := range slices.Backward(b.violations) {
		if v.at.Before(since) {
			break
		}
		if subject == "" || strings.Contains(v.err.Error(), `"`+subject+`"`) {
			return v.err
		}
	}
	return nil
}

// header is the JetStream header of p's message: the event type, unless
// the default (quoted when it starts or ends with a blank), and the idempotency
// key within its topic as Nats-Msg-Id.
// Nil for neither: every header is stored with its event, and parsed by
// every consumer.
func (b *Broker) header(p stream.Publication) nats.Header {
	if p.Type == "" && p.Key == "" {
		return nil
	}
	h := make(nats.Header, 2)
	if p.Type != "" {
		if strings.Trim(p.Type, " \t") != p.Type {
			h[eventTypeQuotedHeader] = []string{strconv.Quote(p.Type)}
		} else {
			h[eventTypeHeader] = []string{p.Type}
		}
	}
	if p.Key != "" {
		// A topic has no space (stream.ValidateTopic): the first one
		// ends it.
		h[jetstream.MsgIDHeader] = []string{p.Topic + " " + p.Key}
	}
	return h
}

// Ready returns nil while the broker is connected to NATS and its stream
// is the one it reads, and otherwise an error wrapping
// stream.ErrUnavailable (or stream.ErrClosed once Close was called).
//
// A stream being checked (errStreamChecked) counts as there while the
// check is younger than PublishTimeout and NATS has given it no answer
// but silence or an election's (history.checkFresh): publishes and
// resumes wait for its answer meanwhile (readyOnceChecked). A leader's
// crash in a cluster starts such a check on every instance that was
// publishing, and each said unready until its check ended, 0.5 to 6.5 s:
// a load balancer was left with no instance, for a stream found there.
// Unready at once when the check finds the stream gone, no JetStream, or
// another stream that does not fit, or NATS not connected; and once the
// check outlasts PublishTimeout, as the publishes waiting for it fail.
func (b *Broker) Ready() error {
	h := b.cur.Load()
	err := b.ready(h)
	if errors.Is(err, errStreamChecked) && h.checkFresh(b.opts.PublishTimeout) {
		return nil
	}
	return err
}

// ready is Ready with h as the current history.
func (b *Broker) ready(h *history) error {
	switch {
	case b.isClosed():
		return stream.ErrClosed
	case !b.connected.Load():
		return fmt.Errorf("nats not connected: %w", stream.ErrUnavailable)
	}
	return b.current(h)
}

// readyOnceChecked is ready for a read of h's stream, or a publish to it,
// which waits while renew checks whether the stream was deleted and has
// no answer yet (errStreamChecked), until ctx ends: then it returns that
// error. A check's answer that the stream is h's still ends the wait, as
// one that it is gone or replaced, or the connection's loss, does with
// their error. A publish that no stream's server took while the stream's
// leader crashed starts such a check, which lasted seconds on a 3-node
// cluster (the election's, and renew's pause between its questions):
// every resume that came meanwhile answered 503 at once, though its own
// questions wait through the election (askThroughElection)
// (TestResumeWaitsForTheStreamsCheck), and so did every publish, of a
// stream that the check then found there
// (TestPublishWaitsForTheStreamsCheck). An answer of NATS that leaves the
// stream in doubt (another stream of its name that does not fit, a
// question the NATS user may not ask: told) ends the wait too, with
// errStreamChecked: waiting for the next would not change it, and each
// publish waited its whole PublishTimeout
// (TestPublishRefusedAtOnceWhenTheCheckFindsAStreamThatDoesNotFit).
func (b *Broker) readyOnceChecked(ctx context.Context, h *history) error {
	for wait := checkedLookMin; ; wait = min(2*wait, checkedLookMax) {
		err := b.ready(h)
		if !errors.Is(err, errStreamChecked) || h.told.Load() || pause(ctx, wait) != nil {
			return err
		}
	}
}

// readyOnceChecked looks whether the check has its answer from
// checkedLookMin after the first look, doubled each time up to
// checkedLookMax: a look is an atomic load, and a check of a stream that
// answers takes a round trip to NATS.
const (
	checkedLookMin = 5 * time.Millisecond
	checkedLookMax = 100 * time.Millisecond
)

// readyToPublish returns the current history once it is ready for a
// publish (readyOnceChecked), within PublishTimeout. A check that ends by
// making another history current (the stream deleted and created again)
// has the publish go on with that one, as a publish that came a moment
// later would, rather than fail because the history it first looked at
// ended. A history ready at once is returned without a bound made for
// the wait: every publish comes here.
func (b *Broker) readyToPublish() (*history, error) {
	if h := b.cur.Load(); b.ready(h) == nil {
		return h, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), b.opts.PublishTimeout)
	defer cancel()
	for {
		h := b.cur.Load()
		err := b.readyOnceChecked(ctx, h)
		if err == nil || h == b.cur.Load() {
			return h, err
		}
	}
}

// current returns nil while h is the current history and its stream is
// not in doubt (renew checks it), and otherwise an error wrapping
// stream.ErrUnavailable: ready without the connection's state. It says
// the stream deleted (ErrStreamDeleted) once h is no longer current, or
// renew's check was answered that no stream of its name is found; while
// that check has no answer yet, or one of no stream deleted (a NATS that
// did not answer), only that the stream is being checked
// (errStreamChecked): a publish refused then said "stream deleted", in
// its error and in the refusal log, of a stream that was there.
func (b *Broker) current(h *history) error {
	switch {
	case h != b.cur.Load():
		return fmt.Errorf("stream %q: %w: %w", b.opts.Stream, ErrStreamDeleted, stream.ErrUnavailable)
	case !h.stale.Load():
		return nil
	case h.noJetStream.Load():
		return fmt.Errorf("nats: %w: %w", errNoJetStream, stream.ErrUnavailable)
	case h.gone.Load():
		return fmt.Errorf("stream %q: %w: %w", b.opts.Stream, ErrStreamDeleted, stream.ErrUnavailable)
	}
	return fmt.Errorf("stream %q: %w: %w", b.opts.Stream, errStreamChecked, stream.ErrUnavailable)
}

// errStreamChecked is current's error while renew checks whether the
// stream was deleted and has no answer that it was.
var errStreamChecked = errors.New("nats stream being checked: it may have been deleted")

// unavailable wraps a NATS error of op with stream.ErrUnavailable, or
// returns stream.ErrClosed after Close.
func (b *Broker) unavailable(op string, err error) error {
	if b.isClosed() || errors.Is(err, nats.ErrConnectionClosed) || errors.Is(err, stream.ErrClosed) {
		if errors.Is(err, stream.ErrMaybeStored) {
			return errClosedInFlight
		}
		return stream.ErrClosed
	}
	return fmt.Errorf("nats %s: %w: %w", op, stream.ErrUnavailable, err)
}

// Topics lists the active topics the local history and subscriptions know
// of: the topics of the stream's tail that it caches.
func (b *Broker) Topics() []stream.TopicInfo {
	list, _ := b.TopicsPage("", 0)
	return list
}

// TopicsPage is Topics a page at a time: see stream.Memory.TopicsPage.
// A renewal ends the history it replaces (renewFrom): the walk of its
// local broker, closed before or during it, stops with no topics and no
// next, which a client following next takes for the end of the list. The
// walk of a history that ended and is no longer current is made again on
// the current one.
func (b *Broker) TopicsPage(after string, limit int) (page []stream.TopicInfo, next string) {
	for {
		h := b.cur.Load()
		if b.topicsWalk != nil {
			b.topicsWalk(h)
		}
		page, next = h.mem.TopicsPage(after, limit)
		// swap makes the new history current before end closes
		// ended, and ended is closed before the local broker.
		if !h.over() || b.cur.Load() == h {
			return page, next
		}
	}
}

// Stats returns running totals: Published counts the events this instance
// stored and was told so (an event whose acknowledgement was lost is not
// counted, nor is its retry with a key, a duplicate), the others are the
// local broker's plus replays from the stream. The local counters of the
// histories that ended are kept.
func (b *Broker) Stats() stream.Stats {
	b.renewMu.Lock()
	s, old := b.cur.Load().mem.Stats(), b.retired
	b.renewMu.Unlock()
	s.Delivered += old.Delivered
	s.Dropped += old.Dropped + b.overtaken.Load()
	s.Replayed += old.Replayed
	s.Published = b.published.Load()
	s.Replayed += b.replayed.Load()
	s.Delivered += b.replayedFirst.Load()
	return s
}

// resetConsumers makes the consumers of the current history and of the
// pending one (pendingAsk), once made, again: after a reconnect, what the
// server sent them meanwhile is lost, and after a slow consumer notice,
// what the client dropped of theirs. Only the current one's made again,
// a delivery lost as the connection broke while a renewal made a new
// history waited for the next event
// (TestConsumerOfAHistoryBeingMadeIsMadeAgainAfterAReconnect).
func (b *Broker) resetConsumers() {
	b.renewMu.Lock()
	var pending *live
	if b.pending != nil {
		pending = b.pending.live // set under renewMu (consume)
	}
	b.renewMu.Unlock()
	if h := b.cur.Load(); h != nil {
		h.live.reset()
	}
	if pending != nil {
		pending.reset()
	}
}

// Connected reports whether the broker is connected to a NATS server now.
func (b *Broker) Connected() bool { return b.connected.Load() }

// reconnected returns a channel closed the next time the connection is
// back after a loss.
func (b *Broker) reconnected() <-chan struct{} {
	b.backMu.Lock()
	defer b.backMu.Unlock()
	return b.back
}

// isClosed reports whether Close has begun: the publisher stops then,
// before the connection closes.
func (b *Broker) isClosed() bool {
	select {
	case <-b.closed:
		return true
	default:
		return false
	}
}

// ConsumerLag returns how many events of the stream the local consumer
// had yet to read when it read its last one.
func (b *Broker) ConsumerLag() uint64 { return b.lag.Load() }

// Close stops reading the stream, ends every subscription with
// stream.ErrClosed and closes the connection. It is idempotent.
func (b *Broker) Close() {
	b.closeOnce.Do(func() {
		close(b.closed)
		if b.pub != nil {
			<-b.pub.done
		}
		b.renewMu.Lock()
		b.shut = true
		b.renewMu.Unlock()
		// The renewals and checks end with b.closed, their requests
		// too, while the connection is up: a renewal that made a new
		// history has swapped it in, or deleted the consumer it was
		// making (live.create). Waited for after the connection's
		// close, a new history's consumer was left to the server for
		// its InactiveThreshold.
		b.renewals.Wait()
		// The instance's consumer is deleted while the connection is
		// up; one that NATS does not delete within askEvery it removes
		// once idle, as it would after a stop.
		if h := b.cur.Load(); h != nil && b.nc.IsConnected() {
			h.live.retire(askEvery)
		}
		// The connection goes before the consumers stop: a request
		// that NATS, away or busy, may never answer (a deletion's)
		// ends with it. Nothing needs it any more: the publishes have
		// ended.
		b.nc.Close()
		b.stopStatus()
		if b.watched != nil {
			<-b.watched
		}
		if h := b.cur.Load(); h != nil {
			h.end(stream.ErrClosed)
		}
	})
}

// leavingDialer makes the connections to NATS servers: connections
// that close once a write has timed out. nats.go closes one only after a
// write that timed out part-way (the protocol cut in the middle); one
// that timed out with nothing written, when it found the socket's
// buffers full, it kept, and wrote to again, each write waiting its
// timeout holding the connection's lock, until the pings, each waiting
// there as well, found the server gone (PingInterval, 2 to 3 times).
type leavingDialer struct {
	dial func(network, address string) (net.Conn, error) // nil: a net.Dialer's
}

func (d leavingDialer) Dial(network, address string) (net.Conn, error) {
	dial := d.dial
	if dial == nil {
		dialer := &net.Dialer{Timeout: nats.GetDefaultOptions().Timeout}
		dial = dialer.Dial
	}
	c, err := dial(network, address)
	if err != nil {
		return nil, err
	}
	return leavingConn{c}, nil
}

// leavingConn is a connection that closes once a write has timed out.
type leavingConn struct{ net.Conn }

func (c leavingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		_ = c.Conn.Close()
	}
	return n, err
}

// subject is the subject of topic's events.
func (b *Broker) subject(topic string) string { return b.opts.SubjectPrefix + "." + topic }

// topic is the topic of subject, or false for a subject outside the prefix.
func (b *Broker) topic(subject string) (string, bool) {
	return strings.CutPrefix(subject, b.opts.SubjectPrefix+".")
}
