package natsbroker

import (
	"bytes"
	"net"
	"sync"
	"testing"
)

// An instance that starts with other limits than its stream's, whose
// update of them goes unanswered (a cluster's meta leader busy, or
// changing), asks again after askEvery, and starts with its limits set,
// as a creation left unanswered is
// (TestOpenCreatesTheStreamAgainWhenItsCreationIsUnanswered). Asked once,
// it waited for the whole start (startWait) and failed it: "update stream
// limits: context deadline exceeded".
func TestOpenUpdatesTheStreamAgainWhenItsUpdateIsUnanswered(t *testing.T) {
	t.Parallel() // waits for askEvery, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	created := opts
	created.HistorySize = 10
	createStream(t, ns, created)
	d := &updateDropDialer{drop: 1}
	opts.dial = d.Dial
	in := newInstance(t, opts)
	if n := d.updates(); n < 2 {
		t.Fatalf("%d stream updates, want one unanswered and more", n)
	}
	st, err := ns.operator(t).Stream(t.Context(), DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.CachedInfo().Config.MaxMsgs; got != int64(opts.HistorySize) {
		t.Fatalf("the stream's max_msgs is %d, want the instance's %d", got, opts.HistorySize)
	}
	receives(t, in.subscribe(t, "topic=t", ""), []string{in.publish(t, "t", "after")})
}

// updateDropDialer dials NATS servers through a connection that leaves
// out the first drop stream updates ($JS.API.STREAM.UPDATE) a client
// sends, as a server too busy to handle them would.
type updateDropDialer struct {
	mu   sync.Mutex
	drop int
	sent int // stream updates sent
}

// updates is how many stream updates were sent.
func (d *updateDropDialer) updates() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sent
}

func (d *updateDropDialer) Dial(network, address string) (net.Conn, error) {
	return dialEditing(network, address, nil, d.request)
}

// request counts a stream update, and leaves it out while drop says so.
func (d *updateDropDialer) request(fields [][]byte, _ []byte) []byte {
	if !bytes.HasPrefix(fields[1], []byte(updateSubject)) {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sent++
	if d.drop > 0 {
		d.drop--
		return dropOp
	}
	return nil
}
