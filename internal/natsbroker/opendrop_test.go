package natsbroker

import (
	"bytes"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
	"github.com/ssehub/ssehub/internal/testlog"
)

// A connection that dropped while Open started (its stream lookup lost,
// the lookup asked again while the client reconnected) failed the start
// with nats.go's "outbound buffer limit exceeded", and the process
// exited over a blip: Open starts again on a new connection.
func TestOpenStartsAgainWhenItsConnectionDrops(t *testing.T) {
	t.Parallel() // waits for askAgain's second question, not on the CPU
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	var log testlog.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&log, nil))
	// The client waits as long before it reconnects: a request made
	// meanwhile fails at once, as in the moments a reconnection takes.
	opts.ReconnectWait = 3 * time.Second
	d := &droppingDialer{}
	opts.dial = d.Dial
	in := newInstance(t, opts)
	if !d.cut.Load() {
		t.Fatal("the first connection was not dropped: the test shows nothing")
	}
	if n := log.Count("starting again on a new connection"); n != 1 {
		t.Fatalf("%d warnings of a new start, want 1", n)
	}
	c := in.subscribe(t, "topic=t", "")
	m, _, err := in.broker.Publish(stream.Publication{Topic: "t", Data: "after"})
	if err != nil {
		t.Fatal(err)
	}
	receives(t, c, []string{m.IDString()})
}

// droppingDialer dials NATS servers. Its first connection drops at the
// first stream lookup written to it; later connections are plain.
type droppingDialer struct {
	dials atomic.Int32
	cut   atomic.Bool
}

func (d *droppingDialer) Dial(network, address string) (net.Conn, error) {
	conn, err := net.DialTimeout(network, address, 2*time.Second)
	if err != nil || d.dials.Add(1) != 1 {
		return conn, err
	}
	return &droppingConn{Conn: conn, d: d}, nil
}

type droppingConn struct {
	net.Conn
	d *droppingDialer
}

func (c *droppingConn) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("$JS.API.STREAM.INFO.")) && c.d.cut.CompareAndSwap(false, true) {
		c.Conn.Close()
		return 0, net.ErrClosed
	}
	return c.Conn.Write(p)
}
