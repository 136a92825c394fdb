package natsbroker

import (
	"context"
	"errors"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/ssehub/ssehub/internal/stream"
)

// The publishes queued while the publisher's goroutine was busy leave
// together, in the order they were queued.
func TestPublisherSendsWhatIsQueuedInOrder(t *testing.T) {
	ns := startNATS(t)
	b, err := Open(t.Context(), testBrokerOptions(ns))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	p := &publisher{js: b.js, queue: make(chan *publishing, 5)} // no run
	var pubs []*publishing
	for range cap(p.queue) {
		pub := &publishing{msg: &nats.Msg{Subject: b.subject("a"), Data: []byte("x")}, sent: make(chan struct{})}
		pubs = append(pubs, pub)
		p.queue <- pub
	}
	if n := p.sendQueued(); n != len(pubs) {
		t.Fatalf("sendQueued sent %d of %d queued", n, len(pubs))
	}
	var last uint64
	for i, pub := range pubs {
		<-pub.sent
		if pub.err != nil {
			t.Fatal(pub.err)
		}
		select {
		case ack := <-pub.ack.Ok():
			if ack.Sequence <= last {
				t.Fatalf("publish %d stored as %d, after %d", i, ack.Sequence, last)
			}
			last = ack.Sequence
		case err := <-pub.ack.Err():
			t.Fatal(err)
		}
	}
}

// A publish still waiting for the publisher when the broker closes ends
// with stream.ErrClosed.
func TestPublisherStopEndsWaitingPublishes(t *testing.T) {
	stop := make(chan struct{})
	p := &publisher{queue: make(chan *publishing), stop: stop} // no run: nothing is taken
	got := make(chan error, 1)
	go func() {
		_, err := p.publish(context.Background(), &nats.Msg{Subject: "ssehub.a"})
		got <- err
	}()
	close(stop)
	if err := <-got; !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("publish after stop: %v, want stream.ErrClosed", err)
	}
}
