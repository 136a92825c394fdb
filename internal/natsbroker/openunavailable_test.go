package natsbroker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// An instance started while its JetStream cluster has no meta leader (a
// node down, a cluster just started) is answered "JetStream system
// temporarily unavailable" (10008) until there is one. The start asks
// again, with a warning, and serves once JetStream answers: it failed at
// the first such answer, and ssehub exited.
func TestOpenAsksAgainWhileJetStreamIsTemporarilyUnavailable(t *testing.T) {
	t.Parallel() // waits for askEvery between the asks, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	d := &jsAnswerDialer{unavailable: 3}
	opts.dial = d.Dial
	in := newInstance(t, opts)
	if asked, refused := d.counts(); refused != 3 || asked < 4 {
		t.Fatalf("%d stream lookups, %d answered unavailable: want 3 answered so, then one more", asked, refused)
	}
	if n := log.Count("nats JetStream temporarily unavailable at start"); n != 1 {
		t.Errorf("%d warnings that JetStream was unavailable, want 1:\n%s", n, log.String())
	}
	c := in.subscribe(t, "topic=t", "")
	m, _, err := in.broker.Publish(stream.Publication{Topic: "t", Data: "after"})
	if err != nil {
		t.Fatal(err)
	}
	receives(t, c, []string{m.IDString()})
}

// A JetStream that stays unavailable fails the start once its context
// ends (or startWait passes), with the context's error, which tells
// ssehub of a stop asked for, and JetStream's answer.
func TestOpenFailsWhileJetStreamStaysUnavailable(t *testing.T) {
	t.Parallel() // waits for its context, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{unavailable: -1}
	opts.dial = d.Dial
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	b, err := Open(ctx, opts)
	if b != nil {
		b.Close()
		t.Fatal("Open succeeded on a JetStream that answered every lookup that it was unavailable")
	}
	if !unavailable(err) || !errors.Is(err, ctx.Err()) {
		t.Fatalf("Open: %v, want the context's end and JetStream's 10008 answer", err)
	}
	if asked, _ := d.counts(); asked < 2 {
		t.Fatalf("%d stream lookups: it was not asked again", asked)
	}
}

// A refusal that will not pass when asked again, a stream with other
// settings here, still fails the start at once: one lookup.
func TestOpenFailsAtOnceOnAStreamWithOtherSettings(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.setDefaults()
	other := streamConfig(&opts)
	other.Storage = jetstream.MemoryStorage
	if _, err := ns.operator(t).CreateStream(t.Context(), other); err != nil {
		t.Fatal(err)
	}
	d := &jsAnswerDialer{}
	opts.dial = d.Dial
	b, err := Open(t.Context(), opts)
	if b != nil {
		b.Close()
	}
	if !errors.Is(err, ErrStreamMismatch) {
		t.Fatalf("Open: %v, want %v", err, ErrStreamMismatch)
	}
	if asked, _ := d.counts(); asked != 1 {
		t.Fatalf("%d stream lookups, want 1", asked)
	}
}

// A start whose stream lookup goes unanswered for longer than askWait,
// as it does while a JetStream cluster that started less than 10 s ago
// elects the stream's leader (its members answer nothing meanwhile),
// waits for the answer: it failed after askWait, 5 s.
func TestOpenWaitsWhileTheStreamIsUnanswered(t *testing.T) {
	t.Parallel() // waits for the silence to end, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{silentFor: askWait + 2*askEvery}
	opts.dial = d.Dial
	newInstance(t, opts)
	if asked, swallowed := d.silences(); swallowed < 2 || asked <= swallowed {
		t.Fatalf("%d stream lookups, %d of them unanswered: want some unanswered, then one answered", asked, swallowed)
	}
}

// An instance started while its cluster's meta leader refuses to place
// the stream, a server offline (10005, "no suitable peers for placement,
// peer offline"), as it does while a server restarts, asks again, with
// one warning, and serves once the stream is created: the start failed
// at the refusal (TestClusterOpenAsAPeerRestarts).
func TestOpenAsksAgainWhilePeersAreOffline(t *testing.T) {
	t.Parallel() // waits for askEvery between the asks, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	d := &jsAnswerDialer{noPeers: 2, noPeersWhy: "no suitable peers for placement, peer offline"}
	opts.dial = d.Dial
	in := newInstance(t, opts)
	if created, refused := d.creations(); refused != 2 || created < 3 { // more when an answer is later than askEvery
		t.Fatalf("%d stream creations, %d refused: want 2 refused, then one more", created, refused)
	}
	if n := log.Count(startWarning); n != 1 {
		t.Errorf("%d warnings that the start was refused, want 1:\n%s", n, log.String())
	}
	c := in.subscribe(t, "topic=t", "")
	m, _, err := in.broker.Publish(stream.Publication{Topic: "t", Data: "after"})
	if err != nil {
		t.Fatal(err)
	}
	receives(t, c, []string{m.IDString()})
}

// An instance whose stream's creation goes unanswered, as a cluster's
// meta leader that is busy or losing its leadership leaves it, asks
// again after askEvery, and starts. It waited for the whole start
// (startWait) and failed it: "create stream: context deadline exceeded".
func TestOpenCreatesTheStreamAgainWhenItsCreationIsUnanswered(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{dropCreates: 1}
	opts.dial = d.Dial
	in := newInstance(t, opts)
	if created, _ := d.creations(); created < 2 {
		t.Fatalf("%d stream creations, want one unanswered and more", created)
	}
	receives(t, in.subscribe(t, "topic=t", ""), []string{in.publish(t, "t", "after")})
}

// A refusal to place the stream for reasons that a server's return does
// not change (a tag no server has) fails the start at once: one
// creation, JetStream's answer the error.
func TestOpenFailsAtOnceWhenNoPeersFit(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{noPeers: -1, noPeersWhy: "no suitable peers for placement, tags not matched ['ssd']"}
	openRefused(t, opts, d, errCodeNoPeers)
	if created, _ := d.creations(); created != 1 {
		t.Fatalf("%d stream creations, want 1", created)
	}
}

// A stream creation that fails for a reason JetStream has no code of its
// own for (10049), other than a store it failed to create
// (TestOpenCreatesTheStreamAgainAfterAStoreError), fails the start at
// once: one creation, JetStream's answer the error. The start asked again
// for 5 s whatever the reason.
func TestOpenFailsAtOnceOnAStreamCreationError(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{noPeers: -1, createError: `{"code":500,"err_code":10049,"description":"stream configuration refused by the server"}`}
	openRefused(t, opts, d, errCodeStreamCreate)
	if created, _ := d.creations(); created != 1 {
		t.Fatalf("%d stream creations, want 1", created)
	}
}

// A stream offline for a reason that its servers' return does not
// change (10194: a server too old for the stream) fails the start at
// once, unlike one offline while its servers are away (10118,
// TestClusterOpenWhileTheStreamsServerRestarts): one lookup.
func TestOpenFailsAtOnceOnAStreamOfflineForAReason(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	d := &jsAnswerDialer{unavailable: -1, lookupError: `{"code":500,"err_code":10194,"description":"stream is offline: unsupported - required API level: 9"}`}
	openRefused(t, opts, d, 10194)
	if asked, _ := d.counts(); asked != 1 {
		t.Fatalf("%d stream lookups, want 1", asked)
	}
}

// openRefused starts an instance through d, which refuses it: Open must
// fail with JetStream's answer of code.
func openRefused(t *testing.T, opts Options, d *jsAnswerDialer, code jetstream.ErrorCode) {
	t.Helper()
	opts.dial = d.Dial
	b, err := Open(t.Context(), opts)
	if b != nil {
		b.Close()
		t.Fatal("Open succeeded on a JetStream that refused it")
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != code {
		t.Fatalf("Open: %v, want JetStream's %d answer", err, code)
	}
}

// jsAnswerDialer dials NATS servers through a connection that changes
// what the server answers to stream lookups ($JS.API.STREAM.INFO):
// the first unavailable answers (every one when -1) say that JetStream is
// temporarily unavailable (10008), as the servers of a cluster without a
// meta leader answer, or carry lookupError; with silentFor, the lookups sent within silentFor of
// the first one are not passed on, as the members of a stream without
// a leader, in a cluster started less than 10 s before, answer none;
// the first noPeers answers to stream creations ($JS.API.STREAM.CREATE,
// every one when -1) say that no servers are there to place the stream
// on (10005), for the reasons noPeersWhy, as a cluster's meta leader
// answers while a server restarts ("peer offline").
type jsAnswerDialer struct {
	unavailable int
	lookupError string // the error those answers carry, if not 10008
	silentFor   time.Duration
	noPeers     int
	noPeersWhy  string
	createError string // the error those answers carry, if not 10005 for noPeersWhy
	dropCreates int    // the first stream creations not passed on

	mu        sync.Mutex
	asked     int             // stream lookups sent
	refused   int             // answered unavailable
	swallowed int             // not passed on
	first     time.Time       // of the first lookup
	created   int             // stream creations sent
	placeless int             // answered 10005
	refusedTo map[string]bool // the reply subjects of those, not answered yet
}

// creations are the stream creations sent and those answered 10005.
func (d *jsAnswerDialer) creations() (created, refused int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.created, d.placeless
}

// counts are the stream lookups sent and those answered unavailable.
func (d *jsAnswerDialer) counts() (asked, refused int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked, d.refused
}

// silences are the stream lookups sent and those not passed on.
func (d *jsAnswerDialer) silences() (asked, swallowed int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.asked, d.swallowed
}

func (d *jsAnswerDialer) Dial(network, address string) (net.Conn, error) {
	return dialEditing(network, address, d.answer, d.request)
}

// request counts a client's PUB or HPUB of a stream lookup, and reports
// whether to drop it (dropOp), and counts a stream creation, which it
// keeps from creating the stream when noPeers refuses it.
func (d *jsAnswerDialer) request(fields [][]byte, _ []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if bytes.HasPrefix(fields[1], []byte("$JS.API.STREAM.CREATE.")) {
		d.created++
		if d.dropCreates > 0 {
			d.dropCreates--
			return dropOp
		}
		if d.noPeers != 0 {
			// Refused: the server gets a config without the
			// stream's name, which it refuses too, creating none.
			d.noPeers--
			d.placeless++
			// Its answer is told by the reply subject: a repeat's
			// (askAgain) may come first.
			if d.refusedTo == nil {
				d.refusedTo = map[string]bool{}
			}
			d.refusedTo[string(fields[2])] = true
			return []byte(`{}`)
		}
	}
	if !bytes.HasPrefix(fields[1], []byte("$JS.API.STREAM.INFO.")) {
		return nil
	}
	d.asked++
	if d.first.IsZero() {
		d.first = time.Now()
	}
	if time.Since(d.first) < d.silentFor {
		d.swallowed++
		return dropOp
	}
	return nil
}

// answer replaces the server's answer to a stream lookup with one that
// JetStream is temporarily unavailable, as unavailable asks, and its
// answer to a creation refused (request) with 10005.
func (d *jsAnswerDialer) answer(fields [][]byte, payload []byte) []byte {
	if bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.stream_create_response"`)) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if !d.refusedTo[string(fields[1])] {
			return nil
		}
		delete(d.refusedTo, string(fields[1]))
		if d.createError != "" {
			return []byte(`{"type":"io.nats.jetstream.api.v1.stream_create_response","error":` + d.createError + `}`)
		}
		why, _ := json.Marshal(d.noPeersWhy)
		return []byte(`{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10005,"description":` + string(why) + `}}`)
	}
	if !bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.stream_info_response"`)) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unavailable == 0 {
		return nil
	}
	d.unavailable--
	d.refused++
	if d.lookupError != "" {
		return []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response","error":` + d.lookupError + `}`)
	}
	return []byte(`{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`)
}

// dropOp is edit's answer for an operation to leave out.
var dropOp = []byte{}

// dialEditing dials a NATS server at address through a pipe that passes
// the server's MSG operations through answer and the client's PUB
// operations through request (copyNATS; a nil one keeps each).
func dialEditing(network, address string, answer, request func(fields [][]byte, payload []byte) []byte) (net.Conn, error) {
	server, err := net.DialTimeout(network, address, 2*time.Second)
	if err != nil {
		return nil, err
	}
	keep := func([][]byte, []byte) []byte { return nil }
	if answer == nil {
		answer = keep
	}
	if request == nil {
		request = keep
	}
	client, inner := net.Pipe()
	go func() {
		copyNATS(inner, server, "MSG", answer)
		inner.Close()
	}()
	go func() {
		copyNATS(server, inner, "PUB", request)
		server.Close()
	}()
	return client, nil
}

// copyNATS copies the NATS protocol of src to dst one operation at a
// time. The payload of each operation named op (without headers: "MSG"
// or "PUB") or "H"+op goes through edit, given the operation's fields
// and its payload, CRLF left off: nil keeps it, dropOp leaves the operation
// out, and anything else replaces the payload of an op without headers.
func copyNATS(dst io.Writer, src io.Reader, op string, edit func(fields [][]byte, payload []byte) []byte) {
	r := bufio.NewReader(src)
	for {
		line, err := r.ReadBytes('\n')
		if err != nil {
			return
		}
		msg := line
		fields := bytes.Fields(line)
		if len(fields) >= 3 && (bytes.EqualFold(fields[0], []byte(op)) || bytes.EqualFold(fields[0], []byte("H"+op))) {
			size, err := strconv.Atoi(string(fields[len(fields)-1]))
			if err != nil {
				return
			}
			payload := make([]byte, size+2) // and its CRLF
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			msg = append(line, payload...)
			switch body := edit(fields, payload[:size]); {
			case body == nil:
			case len(body) == 0:
				continue
			case bytes.EqualFold(fields[0], []byte(op)):
				fields[len(fields)-1] = []byte(strconv.Itoa(len(body)))
				msg = append(append(bytes.Join(fields, []byte(" ")), "\r\n"...), append(body, "\r\n"...)...)
			}
		}
		if _, err := dst.Write(msg); err != nil {
			return
		}
	}
}
