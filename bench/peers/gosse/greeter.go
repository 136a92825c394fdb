package main

import (
	"time"

	"github.com/tmaxmax/go-sse"
)

// retry is the reconnection delay sent at the start of each stream, as
// ssehub's default.
const retry = 3 * time.Second

// greeter is Joe's Replayer for the moment Joe calls it, not for replay:
// it keeps no events. Joe calls Replay on his own goroutine just before he
// adds a subscriber, so the flush there sends the 200 head (with a retry
// field, like ssehub's first write) when no later event can miss the
// subscriber. Left alone, go-sse sends the head with the first event,
// and ssebench, like a browser, counts a stream as subscribed once the
// head arrives.
//
// Joe calls its methods from his one goroutine only.
type greeter struct{}

// Put hands msg back unchanged, as Joe's default replayer does.
func (greeter) Put(msg *sse.Message, _ []string) (*sse.Message, error) {
	return msg, nil
}

// Replay sends the retry field and flushes the response head.
func (greeter) Replay(sub sse.Subscription) error {
	if err := sub.Client.Send(&sse.Message{Retry: retry}); err != nil {
		return err
	}
	return sub.Client.Flush()
}
