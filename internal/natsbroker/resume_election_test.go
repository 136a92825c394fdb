package natsbroker

import (
	"bytes"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// A resume read from the stream whose page's consumer counted fewer
// messages than the stream holds (its server's copy of a replicated
// stream lagging behind the leader), while the stream's leader is asked
// for the rest (rest) during an election: JetStream answers that it is
// temporarily unavailable (10008), and the question is asked again within
// the read's bound, as the stream's info and the consumer's creation are;
// the replay hands out every event. Taken at once, that answer left the
// count trusted, and the replay ended short without a word.
func TestResumeAsksTheRestThroughAnElection(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	all := store(t, ns, openBroker(t, opts), repeat(event{"t", 100}, 5))
	d := &msgGetDialer{}
	opts.dial = d.Dial
	opts.cold = true // its resumes read the stream
	b := openBroker(t, opts)
	d.electLeader(2, 2)
	replaysAfterFirst(t, b, all)
	if n := d.refusals(); n != 2 {
		t.Fatalf("%d questions for the rest answered JetStream temporarily unavailable, want 2", n)
	}
}

// msgGetDialer dials NATS servers through a connection that changes what
// the server answers: the next consumer creation's answer counts
// undercount fewer messages pending than the consumer has, as a server
// whose copy of a replicated stream lags behind counts; and the answers
// to the next refuse questions for a stream's next message of a subject
// ($JS.API.STREAM.MSG.GET with next_by_subj: rest's) say that JetStream
// is temporarily unavailable (10008), as a cluster's servers answer while
// the stream elects a leader.
type msgGetDialer struct {
	mu         sync.Mutex
	undercount int
	refuse     int
	refused    int
	refusedTo  map[string]bool // the reply subjects of the questions refused, not answered yet
}

// electLeader sets the next consumer creation's undercount and the next
// questions for the rest to refuse.
func (d *msgGetDialer) electLeader(undercount, refuse int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.undercount, d.refuse, d.refusedTo = undercount, refuse, map[string]bool{}
}

// refusals counts the questions for the rest answered 10008.
func (d *msgGetDialer) refusals() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.refused
}

func (d *msgGetDialer) Dial(network, address string) (net.Conn, error) {
	return dialEditing(network, address, d.answer, d.request)
}

// request notes the reply subject of a question for the rest to refuse.
func (d *msgGetDialer) request(fields [][]byte, payload []byte) []byte {
	if len(fields) < 4 || !bytes.HasPrefix(fields[1], []byte(msgGetSubject)) || !bytes.Contains(payload, []byte(`"next_by_subj"`)) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refuse > 0 {
		d.refuse--
		d.refusedTo[string(fields[2])] = true
	}
	return nil
}

// answer replaces the answer to a question refused with 10008, and takes
// undercount off the next consumer creation's num_pending.
func (d *msgGetDialer) answer(fields [][]byte, payload []byte) []byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.refusedTo[string(fields[1])] {
		delete(d.refusedTo, string(fields[1]))
		d.refused++
		return []byte(`{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}`)
	}
	if d.undercount == 0 || !bytes.Contains(payload, []byte(`"type":"io.nats.jetstream.api.v1.consumer_create_response"`)) {
		return nil
	}
	m := numPending.FindSubmatchIndex(payload)
	if m == nil {
		return nil
	}
	n, _ := strconv.Atoi(string(payload[m[2]:m[3]]))
	n = max(n-d.undercount, 0)
	d.undercount = 0
	return slices.Concat(payload[:m[2]], []byte(strconv.Itoa(n)), payload[m[3]:])
}
