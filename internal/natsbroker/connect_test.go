package natsbroker

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// connectNATS, which jetStreamClient and countRequests connect with,
// waits for a server slower to greet than nats.go's 2 s default, as the
// in-process one was on a loaded machine: a relay holds each connection
// that long and a second more before it passes it on.
func TestConnectNATSWaitsForASlowServer(t *testing.T) {
	ns := startNATS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer ln.Close()
	wg.Go(func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		time.Sleep(nats.DefaultTimeout + time.Second) // the slow greeting: not a wait for something
		s, err := net.Dial("tcp", ns.Addr().String())
		if err != nil {
			return
		}
		defer s.Close()
		wg.Go(func() { _, _ = io.Copy(s, c); s.Close() })
		_, _ = io.Copy(c, s)
	})

	nc := connectNATS(t, "nats://"+ln.Addr().String(), nats.NoReconnect())
	defer nc.Close()
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}
