package natsbroker

import (
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

// After backUpSeen, a publish reaches the restarted server: acknowledged,
// it is answered 201. The instance reaches NATS through a relay that
// closes its side of a connection only lateClose after the server closed
// its own, as a loaded machine's client reads the end of its connection
// late. Ready alone after backUp, the instance published on the
// connection to the stopped server; the publish reached no server and
// was answered 503 once the client saw that connection lost
// (TestResumeFromAReplayedPublishTheRestoreLostBeforeItsDelivery, 2 runs
// in about 200 beside CPU hogs).
func TestBackUpSeenPublishesToTheRestartedServer(t *testing.T) {
	t.Parallel()
	ns := startNATS(t)
	const lateClose = 2 * time.Second
	r := startLateCloseRelay(t, ns.Addr().String(), lateClose)
	opts := testBrokerOptions(ns)
	opts.URLs = []string{"nats://" + r.ln.Addr().String()}
	a := newInstance(t, opts)
	a.publish(t, "t", "in the backup")
	backUpSeen(t, ns, a)
	if status, _, _ := a.postKeyed(t, "t", `{"data": "after the restart"}`, "k"); status != http.StatusCreated {
		t.Fatalf("publish after backUpSeen: %d, want 201", status)
	}
}

// lateCloseRelay carries TCP connections to a server, and closes a
// client's one lateClose after the server closed its end.
type lateCloseRelay struct {
	ln        net.Listener
	target    string
	lateClose time.Duration
	mu        sync.Mutex
	conns     []net.Conn
	wg        sync.WaitGroup
}

func startLateCloseRelay(t *testing.T, target string, lateClose time.Duration) *lateCloseRelay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &lateCloseRelay{ln: ln, target: target, lateClose: lateClose}
	r.wg.Go(r.accept)
	t.Cleanup(func() {
		_ = r.ln.Close()
		r.mu.Lock()
		for _, c := range r.conns {
			_ = c.Close()
		}
		r.mu.Unlock()
		r.wg.Wait()
	})
	return r
}

func (r *lateCloseRelay) accept() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Go(func() {
			_, _ = io.Copy(c, s)
			t := time.NewTimer(r.lateClose)
			defer t.Stop()
			<-t.C
			_ = c.Close()
		})
		r.wg.Go(func() {
			_, _ = io.Copy(s, c)
			_ = s.Close()
		})
	}
}
