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

// A start whose server does not greet it within nats.go's connection
// timeout (2 s), as the in-process one did not on a loaded machine ("read
// tcp ...: i/o timeout": a test's instance failed to open), is made again
// on a new connection, as one whose connection dropped is: here the
// first connection is one no server is on, which never greets. It failed
// at once, and the process exited over a blip.
func TestOpenConnectsAgainWhenTheServerDidNotGreetInTime(t *testing.T) {
	t.Parallel() // mostly nats.go's wait for the greeting
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	var mu sync.Mutex
	dials := 0
	opts.dial = func(network, address string) (net.Conn, error) {
		mu.Lock()
		dials++
		first := dials == 1
		mu.Unlock()
		if first {
			mine, other := net.Pipe() // silent: no INFO comes
			t.Cleanup(func() { other.Close() })
			return mine, nil
		}
		return net.Dial(network, address)
	}
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	b.Close()
	if dials != 2 {
		t.Fatalf("%d connections made, want 2", dials)
	}
}
