package natsbroker

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// natsProxy stands between brokers and the NATS server, and can swallow
// the requests a broker publishes to subjects of a prefix, as a server
// too busy to answer them would: the broker stays connected and its
// request waits for its timeout. It can also lose JetStream's
// acknowledgements of publishes on their way back, as a reconnect may:
// the event is stored, and the publish waits for its timeout; and the
// notices that a consumer was deleted; and hold the requests of a page's
// read, as a server slow to answer them.
type natsProxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	swallow  []byte        // the subject prefix swallowed, or nil
	passing  int           // how many requests to it pass before the swallowing starts
	swallowd chan struct{} // closed at the first request swallowed
	swallows int           // how many were swallowed
	// placed is the subject of the first consumer creation seen once
	// placeOnDeadServer was called: each request to it is swallowed, as
	// for a consumer placed on a server that is gone; "?" until seen.
	placed   string
	pullWait time.Duration // how long each no-wait pull request is held
	loseAcks bool
	lostAck  chan struct{} // closed at the first acknowledgement lost
	loseGone bool
	lostGone chan struct{} // closed at the first consumer-deleted notice lost
	hung     bool          // nothing the server sends reaches the clients
	loseData []byte        // a consumer's deliveries with this payload are lost, or nil
	lostData chan struct{} // closed at the first delivery lost
	// undercount is taken off the num_pending of the next consumer the
	// server creates, in its answer, as a server whose copy of a
	// replicated stream lags behind counts it; 0: none.
	undercount int
	// storeFails is how many of the next stream creations' answers say
	// the server failed to create the stream's store (10049), as
	// nats-server 2.15 may just after a stream of that name was deleted.
	storeFails int
	// answerOf, when set, is the type of JetStream answer whose first
	// one from the server closes answered (answerSeen).
	answerOf []byte
	answered chan struct{}
	// refuseCreates answers every consumer creation that JetStream is
	// unavailable (10008); refused counts them.
	refuseCreates bool
	refused       int
	// refuseDeletes answers every consumer deletion that JetStream is
	// unavailable (10008), the consumer left in place, as a server cut
	// off from JetStream's meta leader does: the request goes on for a
	// consumer of another name, and its answer is rewritten.
	refuseDeletes bool
	// streamMissing is how many of the next answers to a stream's info
	// say that the stream is not found (10059), as a JetStream that has
	// not yet taken the stream back (a server restarting, a cluster's new
	// meta leader) may answer for one that exists.
	streamMissing int
	// consumerStreamMissing is how many of the next answers to a
	// consumer's creation say that its stream is not found (10059), as
	// streamMissing does for a stream's info.
	consumerStreamMissing int
	consumersMissed       chan struct{} // closed once it is back to 0
	// infoUnavailable and createUnavailable are how many of the next
	// answers to a stream's info and to a consumer's creation say that
	// JetStream is temporarily unavailable (10008), as a cluster's
	// servers answer while a stream elects a leader; refused counts them.
	infoUnavailable   int
	createUnavailable int
	// cutInfo, when above 0, counts down the requests for a stream's
	// info: the one that takes it to 0 is swallowed and the connections
	// cut as it is sent.
	cutInfo int
	// down is how long the cut of cutInfo leaves the server unreachable:
	// each connection made meanwhile is closed at once; downUntil is when
	// that ends.
	down      time.Duration
	downUntil time.Time
	// slowBy holds back each answer of JetStream's API to a client, as
	// a busy server's are; 0: none.
	slowBy time.Duration
	// answersHeld, when set, holds back each answer of JetStream's API
	// to a client until it is closed (holdAnswers).
	answersHeld chan struct{}
	// delivered counts the consumers' deliveries written to clients,
	// and reached is the last stream sequence written of each consumer
	// (passed).
	delivered uint64
	reached   map[string]uint64
	// ackBy holds back each acknowledgement of a publish, as a busy
	// server's; 0: none.
	ackBy time.Duration
	// creations, when not nil, holds back each request that repeats a
	// consumer creation (the same subject) seen since
	// holdRepeatedCreations, on its way to the server, until the server
	// has answered a consumer's deletion, as a server busy with other API
	// requests may handle a repeat after a deletion sent later; release
	// is closed then, and replaced. That deletion's answer is held back
	// until the answer answerWith or answerSeen waits for has passed, if
	// one is awaited (the repeat's): a second deletion, askEvery after
	// the first one's answer, is then sent once the server has made the
	// consumer again, not before the repeat (released, but not yet
	// handled on a loaded machine), which would make it once more.
	creations map[string]bool
	release   chan struct{}
	// frozen, when set, stops the reading of what clients publish (PUB
	// and HPUB) until it is closed, as a server that stopped reading its
	// connections: their writes fill the sockets' buffers, then block.
	frozen chan struct{}
	conns  []net.Conn
	wg     sync.WaitGroup
	// accepted counts the connections accepted.
	accepted int
	// misroute, when set, is the subject prefix whose next publish goes
	// to a subject no stream takes (its first byte changed), as one sent
	// while a stream's subjects have no server to take them (a leader's
	// election): the server answers that no one responds. That answer is
	// held back by noRespondersBy; noResponders is closed once it is
	// released.
	misroute       []byte
	noRespondersBy time.Duration
	noResponders   chan struct{}
	// holdPrefix, when set, is the subject prefix of the next request
	// held on its way to the server, with what its client sends after
	// it, until holdUntil is closed; holding is closed once it is held.
	holdPrefix []byte
	holding    chan struct{}
	holdUntil  chan struct{}
	// heldSubject is the subject of the last request holdNext held.
	heldSubject string
	// sizes holds, for each consumer, the sizes of its deliveries
	// written to clients, in order, as the server counts them against a
	// pull's max_bytes: subject, reply subject, headers and data.
	sizes map[string][]int
}

func startProxy(t *testing.T, ns *natsServer) *natsProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &natsProxy{ln: ln, target: ns.Addr().String()}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// startProxied starts a NATS server and a proxy to it, and returns them
// with testBrokerOptions for the server, reached through the proxy.
func startProxied(t *testing.T) (ns *natsServer, p *natsProxy, opts Options) {
	t.Helper()
	return startProxiedWith(t, &natsServer{})
}

// startProxiedWith is startProxied with the server set as the test needs
// it (startNATSWith).
func startProxiedWith(t *testing.T, set *natsServer) (ns *natsServer, p *natsProxy, opts Options) {
	t.Helper()
	ns = startNATSWith(t, set)
	p = startProxy(t, ns)
	opts = testBrokerOptions(ns)
	opts.URLs = []string{p.url()}
	return ns, p, opts
}

func (p *natsProxy) url() string { return "nats://" + p.ln.Addr().String() }

// swallowRequests starts swallowing what is published to subjects
// beginning with prefix; the channel is closed once one was.
func (p *natsProxy) swallowRequests(prefix string) <-chan struct{} {
	return p.swallowRequestsAfter(prefix, 0)
}

// placeOnDeadServer makes the next consumer creation, and each request
// repeating it under its name, go unanswered, as the creation of a
// consumer that a cluster's meta leader placed on a server that just
// crashed does (only that server answers it); a creation under another
// name is answered. The channel is closed once that creation was asked.
func (p *natsProxy) placeOnDeadServer() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.placed, p.swallowd = "?", make(chan struct{})
	return p.swallowd
}

// swallowRequestsAfter is swallowRequests that lets the next n requests
// to the prefix pass first.
func (p *natsProxy) swallowRequestsAfter(prefix string, n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.swallow, p.passing, p.swallowd = []byte(prefix), n, make(chan struct{})
	return p.swallowd
}

// delayNoWaitPulls holds each no-wait pull request (a page's read,
// resume.go) for d on its way to the server, as a server busy with other
// requests answers late; what the client sends after it waits too.
func (p *natsProxy) delayNoWaitPulls(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pullWait = d
}

// holdNext holds the next request a client publishes to a subject
// beginning with prefix on its way to the server, and what that client
// sends after it, as a server slow to read it; the channel is closed once
// it is held. The request goes on at release, which the test's end calls
// too.
func (p *natsProxy) holdNext(t *testing.T, prefix string) (held <-chan struct{}, release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdPrefix, p.holding, p.holdUntil = []byte(prefix), make(chan struct{}), make(chan struct{})
	until := p.holdUntil
	release = sync.OnceFunc(func() { close(until) })
	t.Cleanup(release)
	return p.holding, release
}

// holdThis returns the channel that releases a request to subject when
// holdNext holds it, else nil.
func (p *natsProxy) holdThis(subject []byte) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.holdPrefix == nil || !bytes.HasPrefix(subject, p.holdPrefix) {
		return nil
	}
	p.holdPrefix, p.heldSubject = nil, string(subject)
	close(p.holding)
	return p.holdUntil
}

// swallowOnly narrows what swallowRequests swallows to the subjects
// beginning with prefix, with no new channel.
func (p *natsProxy) swallowOnly(prefix string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.swallow = []byte(prefix)
}

// passRequests stops swallowing.
func (p *natsProxy) passRequests() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.swallow = nil
}

// loseAcknowledgements starts losing JetStream's acknowledgements of
// publishes (the messages to a client whose data is a PubAck); the channel
// is closed once one was lost.
func (p *natsProxy) loseAcknowledgements() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loseAcks, p.lostAck = true, make(chan struct{})
	return p.lostAck
}

// loseConsumerDeleted starts losing the server's notices that a pull
// consumer was deleted (a "409 Consumer Deleted" status message), as
// nats-server may when it deletes a stream; the channel is closed once
// one was lost.
func (p *natsProxy) loseConsumerDeleted() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loseGone, p.lostGone = true, make(chan struct{})
	return p.lostGone
}

// loseDeliveries starts losing what consumers are sent of messages with
// payload data, as a connection that breaks loses what it had on its
// way; the channel is closed once one was lost. passDeliveries stops it.
func (p *natsProxy) loseDeliveries(data string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loseData, p.lostData = []byte(data+"\r\n"), make(chan struct{})
	return p.lostData
}

func (p *natsProxy) passDeliveries() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loseData = nil
}

// cut breaks the connections it carries, as a network fault would; the
// clients connect again through it.
func (p *natsProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

// hang makes the server seem hung, as a stopped process or a network
// partition without a reset would: the connections stay open, and
// nothing the server sends, its PONGs included, reaches the clients.
func (p *natsProxy) hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hung = true
}

// freeze makes the server stop reading what clients publish, as a hung
// server's full socket buffers do: their writes block once their own
// buffers are full. The proxy's close ends it.
func (p *natsProxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frozen = make(chan struct{})
}

// connections is how many connections the proxy has accepted.
func (p *natsProxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

// isHung reports whether hang was called.
func (p *natsProxy) isHung() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hung
}

// passAcknowledgements stops losing them.
func (p *natsProxy) passAcknowledgements() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.loseAcks = false
}

func (p *natsProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.accepted++
		down := time.Now().Before(p.downUntil)
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.relay(c, s)
	}
}

// relay passes what client c and server s send each other, as p asks,
// until either closes.
func (p *natsProxy) relay(c, s net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c, s)
	p.mu.Unlock()
	p.wg.Add(2)
	go func() {
		defer p.wg.Done()
		copyOps(c, s, "MSG", p.lose, p.isHung, p.rewrite, p.holdBack, p.passed)
		c.Close()
	}()
	go func() { defer p.wg.Done(); copyOps(s, c, "PUB", p.swallowed, nil, nil, p.holdRepeat, nil); s.Close() }()
}

// copyOps copies the NATS protocol of src to dst one operation at a time,
// leaving out the operations with a payload, named op or "H"+op (with
// headers), that drop reports: drop is given the operation's fields and
// its payload; and every operation while hung, if not nil, reports true.
// rewrite, if not nil, may change the payload of an op without headers
// (its CRLF left off), and returns it. later, if not nil, may hold back an
// operation until the channel it returns is closed: it is written then,
// with those after it going on meanwhile. written, if not nil, is given
// the fields of each op or "H"+op once it is written, unless held back.
func copyOps(dst io.Writer, src io.Reader, op string, drop func(fields [][]byte, payload []byte) bool, hung func() bool, rewrite func([]byte) []byte, later func(msg []byte) <-chan struct{}, written func(fields [][]byte)) {
	r := bufio.NewReader(src)
	var wmu sync.Mutex // the writes held back and the others
	var held sync.WaitGroup
	defer held.Wait()
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		fields := bytes.Fields(line)
		msg := line
		isOp := len(fields) >= 3 && (bytes.EqualFold(fields[0], []byte(op)) || bytes.EqualFold(fields[0], []byte("H"+op)))
		if isOp {
			size, err := strconv.Atoi(string(fields[len(fields)-1]))
			if err != nil {
				return
			}
			payload := make([]byte, size+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			if drop(fields, payload) {
				continue
			}
			if rewrite != nil && bytes.EqualFold(fields[0], []byte(op)) {
				body := rewrite(payload[:size])
				fields[len(fields)-1] = []byte(strconv.Itoa(len(body)))
				line = append(bytes.Join(fields, []byte(" ")), "\r\n"...)
				payload = append(body, "\r\n"...)
			}
			msg = append(line, payload...)
		}
		if hung != nil && hung() {
			continue
		}
		if later != nil {
			if release := later(msg); release != nil {
				held.Go(func() {
					<-release
					wmu.Lock()
					defer wmu.Unlock()
					_, _ = dst.Write(msg)
				})
				continue
			}
		}
		wmu.Lock()
		_, err = dst.Write(msg)
		wmu.Unlock()
		if err != nil {
			return
		}
		if written != nil && isOp {
			written(fields)
		}
	}
}

// swallowed reports whether a client's PUB or HPUB is to a swallowed
// subject; a no-wait pull request it holds for pullWait first.
func (p *natsProxy) swallowed(fields [][]byte, payload []byte) bool {
	p.mu.Lock()
	wait, frozen := p.pullWait, p.frozen
	p.mu.Unlock()
	if frozen != nil {
		<-frozen
	}
	if until := p.holdThis(fields[1]); until != nil {
		<-until
	}
	if wait > 0 && bytes.Contains(payload, []byte(`"no_wait":true`)) {
		time.Sleep(wait)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.misroute != nil && bytes.HasPrefix(fields[1], p.misroute) {
		p.misroute = nil
		fields[1][0] = 'x' // in the line copied on
		return false
	}
	if p.placed != "" && bytes.HasPrefix(fields[1], []byte("$JS.API.CONSUMER.CREATE.")) {
		switch p.placed {
		case "?":
			p.placed = string(fields[1])
			closeOnce(p.swallowd)
			return true
		case string(fields[1]):
			return true
		}
		return false
	}
	if p.refuseDeletes && bytes.HasPrefix(fields[1], []byte("$JS.API.CONSUMER.DELETE.")) {
		fields[1][len(fields[1])-1] = '~' // in the line copied on: no such consumer
	}
	if p.cutInfo > 0 && bytes.HasPrefix(fields[1], []byte("$JS.API.STREAM.INFO.")) {
		if p.cutInfo--; p.cutInfo == 0 {
			p.downUntil = time.Now().Add(p.down)
			p.wg.Go(p.cut)
			return true
		}
	}
	if p.swallow == nil || !bytes.HasPrefix(fields[1], p.swallow) {
		return false
	}
	if p.passing > 0 {
		p.passing--
		return false
	}
	closeOnce(p.swallowd)
	p.swallows++
	return true
}

// swallowedRequests is how many requests swallowRequests has swallowed.
func (p *natsProxy) swallowedRequests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.swallows
}

// lose reports whether a MSG or HMSG to a client is a publish's
// acknowledgement, a consumer-deleted notice or a delivery to lose.
func (p *natsProxy) lose(fields [][]byte, payload []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.loseData != nil && len(fields) >= 5 && bytes.HasPrefix(fields[3], []byte("$JS.ACK.")) && bytes.HasSuffix(payload, p.loseData):
		closeOnce(p.lostData)
		return true
	case p.loseAcks && bytes.HasPrefix(payload, []byte(`{"stream":`)):
		closeOnce(p.lostAck)
		return true
	case p.loseGone && bytes.HasPrefix(payload, []byte("NATS/1.0 409 Consumer Deleted")):
		closeOnce(p.lostGone)
		return true
	}
	return false
}

// misrouteNext sends the next publish to a subject beginning with
// prefix where no stream takes it, and holds back the server's answer
// that no one responds by d; the channel is closed once that answer is
// on its way to the client.
func (p *natsProxy) misrouteNext(prefix string, d time.Duration) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.misroute, p.noRespondersBy, p.noResponders = []byte(prefix), d, make(chan struct{})
	return p.noResponders
}

// slowAnswers holds back every answer of JetStream's API by d, as a busy
// server answers; 0 ends it.
func (p *natsProxy) slowAnswers(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.slowBy = d
}

// holdAnswers holds back every answer of JetStream's API, as a server
// too busy to answer does, until release is called; the test's end
// releases them too. Unlike slowAnswers, no time lets them go: a test
// that holds them until something comes of it is not run out by a
// loaded machine.
func (p *natsProxy) holdAnswers(t *testing.T) (release func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	held := make(chan struct{})
	p.answersHeld = held
	release = sync.OnceFunc(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.answersHeld == held {
			p.answersHeld = nil
		}
		close(held)
	})
	t.Cleanup(release)
	return release
}

// passed counts a MSG or HMSG written to a client when it is a
// consumer's delivery: its reply subject, $JS.ACK.<stream>.<consumer>.
// <delivered>.<stream seq>.<consumer seq>.<time>.<pending> (or, with a
// domain and an account hash ahead of the stream, 12 tokens or more),
// names its consumer and stream sequence.
func (p *natsProxy) passed(fields [][]byte) {
	if len(fields) < 5 || !bytes.HasPrefix(fields[3], []byte("$JS.ACK.")) {
		return
	}
	tokens := bytes.Split(fields[3], []byte("."))
	consumer, seq := 3, 5
	if len(tokens) >= 12 {
		consumer, seq = 5, 7
	} else if len(tokens) < 9 {
		return
	}
	n, err := strconv.ParseUint(string(tokens[seq]), 10, 64)
	if err != nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.delivered++
	if p.reached == nil {
		p.reached = make(map[string]uint64)
	}
	p.reached[string(tokens[consumer])] = max(p.reached[string(tokens[consumer])], n)
	if size, err := strconv.Atoi(string(fields[len(fields)-1])); err == nil {
		if p.sizes == nil {
			p.sizes = make(map[string][]int)
		}
		name := string(tokens[consumer])
		p.sizes[name] = append(p.sizes[name], len(fields[1])+len(fields[3])+size)
	}
}

// held is the subject of the last request holdNext held.
func (p *natsProxy) held() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.heldSubject
}

// deliveries is how many of the consumers' deliveries the proxy has
// written to clients so far.
func (p *natsProxy) deliveries() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered
}

// reachedBy is the last stream sequence the proxy has written to a
// client for the consumer of that name, 0 for none.
func (p *natsProxy) reachedBy(consumer string) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reached[consumer]
}

// answerSeen returns a channel closed once the server has sent a client
// an answer of JetStream's API of that type ("consumer_create_response"),
// as it reaches the proxy: before slowAnswers holds it back.
func (p *natsProxy) answerSeen(typ string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answerOf = []byte(`"type":"io.nats.jetstream.api.v1.` + typ + `"`)
	p.answered = make(chan struct{})
	return p.answered
}

// answerWith is answerSeen for the first answer, of any kind, whose
// payload holds text.
func (p *natsProxy) answerWith(text string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answerOf = []byte(text)
	p.answered = make(chan struct{})
	return p.answered
}

// slowAcknowledgements holds back every acknowledgement of a publish by
// d; 0 ends it.
func (p *natsProxy) slowAcknowledgements(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ackBy = d
}

// holdBack holds back msg, an operation to a client, by slowBy or ackBy;
// a consumer's deletion answered releases the repeats holdRepeat holds,
// and waits for the answer awaited (see creations).
func (p *natsProxy) holdBack(msg []byte) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.creations != nil && bytes.Contains(msg, []byte(`"type":"io.nats.jetstream.api.v1.consumer_delete_response"`)) {
		close(p.release)
		p.release = make(chan struct{})
		if p.answerOf != nil {
			return p.answered
		}
	}
	switch {
	case p.noResponders != nil && bytes.Contains(msg, []byte("\r\nNATS/1.0 503")):
		released := p.noResponders
		p.noResponders = nil
		time.AfterFunc(p.noRespondersBy, func() { close(released) })
		return released
	case p.answersHeld != nil && bytes.Contains(msg, []byte(`"type":"io.nats.jetstream.api.v1.`)):
		return p.answersHeld
	case p.slowBy > 0 && bytes.Contains(msg, []byte(`"type":"io.nats.jetstream.api.v1.`)):
		return after(p.slowBy)
	case p.ackBy > 0 && bytes.Contains(msg, []byte("\r\n{\"stream\":")):
		return after(p.ackBy)
	}
	return nil
}

// after returns a channel closed once d has passed.
func after(d time.Duration) <-chan struct{} {
	c := make(chan struct{})
	time.AfterFunc(d, func() { close(c) })
	return c
}

// holdRepeatedCreations holds back each request that repeats a consumer
// creation sent from now on (askAgain's), on its way to the server, until
// the server has answered a consumer's deletion.
func (p *natsProxy) holdRepeatedCreations() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.creations, p.release = map[string]bool{}, make(chan struct{})
}

// holdRepeat is copyOps's later for what clients send: see creations.
func (p *natsProxy) holdRepeat(msg []byte) <-chan struct{} {
	fields := bytes.Fields(msg[:bytes.IndexByte(msg, '\n')+1])
	if len(fields) < 2 || !bytes.HasPrefix(fields[1], []byte("$JS.API.CONSUMER.CREATE.")) {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.creations == nil {
		return nil
	}
	subject := string(fields[1])
	if !p.creations[subject] {
		p.creations[subject] = true
		return nil
	}
	return p.release
}

// failStreamStores makes the answers to the next n stream creations
// say that the server failed to create the stream's store (10049), as
// nats-server 2.15 may while it still removes the store of a stream of
// that name just deleted. (The server did create it: asked again, it
// answers with it.)
func (p *natsProxy) failStreamStores(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.storeFails = n
}

// refuseConsumers makes every answer to a consumer creation say that
// JetStream is unavailable, as a server whose JetStream is recovering
// does, until passConsumers; refusals counts them.
func (p *natsProxy) refuseConsumers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseCreates = true
}

// electLeader makes the next n answers to a stream's info, and the
// next n to a consumer's creation, say that JetStream is temporarily
// unavailable (10008), as a cluster's servers answer while the stream
// elects a new leader (its leader stopped).
func (p *natsProxy) electLeader(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.infoUnavailable, p.createUnavailable = n, n
}

// missStream makes the next n answers to a stream's info say that the
// stream is not found, though it is there.
func (p *natsProxy) missStream(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.streamMissing = n
}

// missStreamOfConsumers makes the next n answers to a consumer's creation
// say that its stream is not found, though it is there; the channel is
// closed once the last of them was sent.
func (p *natsProxy) missStreamOfConsumers(n int) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consumerStreamMissing = n
	p.consumersMissed = make(chan struct{})
	return p.consumersMissed
}

// cutAtStreamInfoFor makes the nth request for a stream's info from now
// on go unanswered, and cuts the connections as it is sent: a reconnect
// in the middle of that request. The server is unreachable for d after
// the cut: a request sent meanwhile fails at once.
func (p *natsProxy) cutAtStreamInfoFor(n int, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutInfo, p.down = n, d
}

// refuseDeletions makes every consumer deletion go unmade, answered
// that JetStream is unavailable, until passDeletions.
func (p *natsProxy) refuseDeletions() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseDeletes = true
}

func (p *natsProxy) passDeletions() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseDeletes = false
}

func (p *natsProxy) passConsumers() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuseCreates = false
}

func (p *natsProxy) refusals() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refused
}

// rewrite changes what the server answers as undercountNextConsumer,
// failStreamStores and refuseConsumers ask.
func (p *natsProxy) rewrite(payload []byte) []byte {
	p.mu.Lock()
	if p.answerOf != nil && bytes.Contains(payload, p.answerOf) {
		p.answerOf = nil
		close(p.answered)
	}
	fail := p.storeFails > 0 && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.stream_create_response"`))
	if fail {
		p.storeFails--
	}
	refuse := p.refuseCreates && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.consumer_create_response"`))
	if !refuse && p.createUnavailable > 0 && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.consumer_create_response"`)) {
		p.createUnavailable--
		refuse = true
	}
	if refuse {
		p.refused++
	}
	deleteRefused := p.refuseDeletes && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.consumer_delete_response"`))
	infoRefused := p.infoUnavailable > 0 && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.stream_info_response"`))
	if infoRefused {
		p.infoUnavailable--
		p.refused++
	}
	missing := p.streamMissing > 0 && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.stream_info_response"`))
	if missing {
		p.streamMissing--
	}
	consumerMissing := p.consumerStreamMissing > 0 && bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.consumer_create_response"`))
	if consumerMissing {
		if p.consumerStreamMissing--; p.consumerStreamMissing == 0 {
			close(p.consumersMissed)
		}
	}
	p.mu.Unlock()
	switch {
	case deleteRefused:
		return []byte(`{"type":"io.nats.jetstream.api.v1.consumer_delete_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`)
	case infoRefused:
		return []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`)
	case missing:
		return []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}`)
	case consumerMissing:
		return []byte(`{"type":"io.nats.jetstream.api.v1.consumer_create_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}`)
	case fail:
		return []byte(`{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":500,"err_code":10049,"description":"error creating store for stream: directory not empty"}}`)
	case refuse:
		return []byte(`{"type":"io.nats.jetstream.api.v1.consumer_create_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`)
	}
	return p.countLess(payload)
}

// undercountNextConsumer makes the server's answer to the next consumer
// creation count n fewer messages pending than the consumer has, as a
// server whose copy of a replicated stream lags behind would.
func (p *natsProxy) undercountNextConsumer(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.undercount = n
}

// countLess takes undercount off the num_pending of a consumer creation's
// answer, once.
func (p *natsProxy) countLess(payload []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.undercount == 0 || !bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.consumer_create_response"`)) {
		return payload
	}
	m := numPending.FindSubmatchIndex(payload)
	if m == nil {
		return payload
	}
	n, _ := strconv.Atoi(string(payload[m[2]:m[3]]))
	n = max(n-p.undercount, 0)
	p.undercount = 0
	return slices.Concat(payload[:m[2]], []byte(strconv.Itoa(n)), payload[m[3]:])
}

var numPending = regexp.MustCompile(`"num_pending":(\d+)`)

func closeOnce(c chan struct{}) {
	select {
	case <-c:
	default:
		close(c)
	}
}

func (p *natsProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	if p.frozen != nil {
		close(p.frozen)
		p.frozen = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
