package stream

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestSlowConsumerDropped(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 2})
	slow := mustSubscribe(t, b, "", "a", "a.>", "*") // several groups to unlink
	fast := mustSubscribe(t, b, "", ">")

	var fastGot []uint64
	for i := range 3 {
		mustPublish(t, b, "a", "", fmt.Sprint(i))
		fastGot = append(fastGot, queued(fast)...)
	}
	if fmt.Sprint(fastGot) != "[1 2 3]" {
		t.Errorf("reading subscriber received %v, want [1 2 3]", fastGot)
	}
	// The slow one keeps the two queued events, then its channel is closed.
	if got := queued(slow); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("slow subscriber received %v, want [1 2]", got)
	}
	if _, ok := <-slow.C(); ok {
		t.Fatal("slow subscriber's channel is still open")
	}
	if err := slow.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("slow subscriber Err() = %v, want ErrSlowConsumer", err)
	}
	st := b.Stats()
	if st.Dropped != 1 || st.Subscribers != 1 || st.Delivered != 5 {
		t.Errorf("Stats() = %+v, want Dropped 1, Subscribers 1, Delivered 5", st)
	}

	// The dropped subscription is gone from every group; closing it is
	// harmless and does not change its error.
	mustPublish(t, b, "a", "", "after")
	slow.Close()
	if err := slow.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("after Close, Err() = %v, want ErrSlowConsumer", err)
	}
	if got := queued(fast); fmt.Sprint(got) != "[4]" {
		t.Errorf("reading subscriber received %v after the drop, want [4]", got)
	}
	if got := b.Topics(); len(got) != 1 || got[0].Subscribers != 1 {
		t.Errorf("Topics() = %v, want topic a with 1 subscriber", got)
	}
}

func TestSubscriptionClose(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	s := mustSubscribe(t, b, "", "a", "b.*")
	keep := mustSubscribe(t, b, "", "a")
	mustPublish(t, b, "a", "", "1")
	s.Close()
	s.Close()
	if got := queued(s); fmt.Sprint(got) != "[1]" {
		t.Errorf("closed subscription yielded %v, want the queued [1]", got)
	}
	if _, ok := <-s.C(); ok {
		t.Error("channel open after Close")
	}
	if err := s.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	mustPublish(t, b, "a", "", "2")
	if got := queued(keep); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("other subscription received %v, want [1 2]", got)
	}
	if st := b.Stats(); st.Subscribers != 1 {
		t.Errorf("Subscribers = %d, want 1", st.Subscribers)
	}
}

func TestBrokerClose(t *testing.T) {
	b := NewMemory(MemoryOptions{})
	s1 := mustSubscribe(t, b, "", "a", "a.*")
	s2 := mustSubscribe(t, b, "", ">")
	select {
	case <-b.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	b.Close()
	b.Close()
	<-b.Done()
	for i, s := range []Subscription{s1, s2} {
		if _, ok := <-s.C(); ok {
			t.Errorf("subscription %d: channel open after broker Close", i)
		}
		if err := s.Err(); !errors.Is(err, ErrClosed) {
			t.Errorf("subscription %d: Err() = %v, want ErrClosed", i, err)
		}
		s.Close() // harmless after the broker closed it
	}
	if _, err := b.Publish("a", "", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v, want ErrClosed", err)
	}
	if _, err := b.Subscribe([]string{"a"}, ""); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("Subscribers = %d after Close, want 0", st.Subscribers)
	}
	if got := b.Topics(); len(got) != 0 {
		t.Errorf("Topics() after Close = %v, want none", got)
	}
}

// TestChurnLeavesNothingBehind subscribes and unsubscribes from many
// goroutines while others publish and the broker finally closes. The race
// detector checks the locking, goleak that the broker started no goroutine,
// and the counters that every subscription was accounted for.
func TestChurnLeavesNothingBehind(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := NewMemory(MemoryOptions{SubscriberBuffer: 4, HistorySize: 64, FirstID: 1})
	patterns := [][]string{{"a"}, {"a.*"}, {">"}, {"a", "b", "a.>"}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := b.Publish([]string{"a", "a.b", "b"}[(i+p)%3], "", "x"); err != nil {
					return // the broker closed
				}
			}
		})
	}
	var churnWG sync.WaitGroup
	for g := range 6 {
		churnWG.Go(func() {
			for i := range 200 {
				last := ""
				if i%3 == 0 {
					last = "5"
				}
				s, err := b.Subscribe(patterns[(g+i)%len(patterns)], last)
				if err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					<-s.C() // an event, or the close of a dropped subscriber
				}
				s.Close()
			}
		})
	}
	churnWG.Wait()
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("Subscribers = %d after every subscription closed, want 0", st.Subscribers)
	}
	if got := b.Topics(); len(got) > 3 {
		t.Errorf("Topics() = %v: subscriptions left topic entries behind", got)
	}
	// A last wave of subscriptions is ended by the broker itself.
	var open []Subscription
	for i := range 10 {
		open = append(open, mustSubscribe(t, b, "", patterns[i%len(patterns)]...))
	}
	var closeWG sync.WaitGroup
	for _, s := range open {
		closeWG.Go(s.Close) // races with b.Close below
	}
	b.Close()
	closeWG.Wait()
	close(stop)
	wg.Wait()
	for _, s := range open {
		for range s.C() {
		}
		if err := s.Err(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrSlowConsumer) {
			t.Errorf("Err() = %v", err)
		}
	}
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("Subscribers = %d after Close, want 0", st.Subscribers)
	}
}
