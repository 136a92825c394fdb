package stream

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
)

// readyClosed reports whether s's Ready channel is closed, receiving a
// pending wake-up first.
func readyClosed(s Subscription) bool {
	for range 2 {
		select {
		case _, ok := <-s.Ready():
			if !ok {
				return true
			}
		default:
			return false
		}
	}
	return false
}

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
	// The slow one keeps the two queued events, then it has ended.
	if !readyClosed(slow) {
		t.Error("slow subscriber's Ready channel is not closed")
	}
	if got := queued(slow); fmt.Sprint(got) != "[1 2]" {
		t.Errorf("slow subscriber received %v, want [1 2]", got)
	}
	if _, open := slow.Take(nil, 0); open {
		t.Fatal("slow subscriber is still open")
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
	if _, open := s.Take(nil, 0); open || !readyClosed(s) {
		t.Error("subscription open after Close")
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
		if _, open := s.Take(nil, 0); open || !readyClosed(s) {
			t.Errorf("subscription %d: open after broker Close", i)
		}
		if err := s.Err(); !errors.Is(err, ErrClosed) {
			t.Errorf("subscription %d: Err() = %v, want ErrClosed", i, err)
		}
		s.Close() // harmless after the broker closed it
	}
	if _, _, err := b.Publish(Publication{Topic: "a", Data: "x"}); !errors.Is(err, ErrClosed) {
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
				if _, _, err := b.Publish(Publication{Topic: []string{"a", "a.b", "b"}[(i+p)%3], Data: "x"}); err != nil {
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
					<-s.Ready() // an event, or the end of a dropped subscriber
					s.Take(nil, 0)
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
		receive(s, func(*Message) bool { return true })
		if err := s.Err(); err != nil && !errors.Is(err, ErrClosed) && !errors.Is(err, ErrSlowConsumer) {
			t.Errorf("Err() = %v", err)
		}
	}
	if st := b.Stats(); st.Subscribers != 0 {
		t.Errorf("Subscribers = %d after Close, want 0", st.Subscribers)
	}
}

// queueCap returns the capacity of s's queue.
func queueCap(b *Memory, s Subscription) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return cap(s.(*memorySubscription).queue)
}

// TestQueueGrowsOnlyWhenBehind checks that a subscription's queue holds
// nothing until events arrive, stays small while the subscriber keeps up,
// grows with a backlog, and is let go once the backlog is taken.
func TestQueueGrowsOnlyWhenBehind(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 1024})
	s := mustSubscribe(t, b, "", "a")
	if c := queueCap(b, s); c != 0 {
		t.Errorf("new subscription: queue capacity %d, want 0", c)
	}
	for i := range 10 {
		m := mustPublish(t, b, "a", "", "x")
		<-s.Ready()
		if got := queued(s); len(got) != 1 || got[0] != m.ID {
			t.Fatalf("keeping up, event %d: took %v, want [%d]", i, got, m.ID)
		}
	}
	if c := queueCap(b, s); c == 0 || c > keptQueueCap {
		t.Errorf("keeping up: queue capacity %d, want 1..%d", c, keptQueueCap)
	}

	for range 300 {
		mustPublish(t, b, "a", "", "x")
	}
	if c := queueCap(b, s); c < 300 {
		t.Errorf("300 behind: queue capacity %d, want at least 300", c)
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("no wake-up for a backlog")
	}
	select {
	case <-s.Ready():
		t.Error("a second wake-up for one backlog")
	default:
	}
	got, open := s.Take(make([]*Message, 0, 4), 0)
	if !open || len(got) != 300 || got[0].ID != 11 || got[299].ID != 310 {
		t.Fatalf("took %d events (open %v), want ids 11..310", len(got), open)
	}
	if c := queueCap(b, s); c != 0 {
		t.Errorf("backlog taken: queue capacity %d, want 0 (let go)", c)
	}
}

// TestQueueBoundDropsOnce checks that SubscriberBuffer bounds the events
// waiting in the queue, not the events passing through it, and that a
// subscription that overflows it ends once, keeping what was queued.
func TestQueueBoundDropsOnce(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 4})
	s := mustSubscribe(t, b, "", "a")
	for range 5 {
		for range 4 {
			mustPublish(t, b, "a", "", "x")
		}
		if got := queued(s); len(got) != 4 {
			t.Fatalf("took %v, want 4 events", got)
		}
	}
	if st := b.Stats(); st.Dropped != 0 {
		t.Fatalf("Dropped = %d while the subscriber took every 4 events", st.Dropped)
	}
	for i := range 8 {
		mustPublish(t, b, "a", "", "x") // the fifth overflows
		if st := b.Stats(); (i >= 4) != (st.Dropped == 1) || st.Dropped > 1 {
			t.Fatalf("after %d more events, Dropped = %d", i+1, st.Dropped)
		}
	}
	if err := s.Err(); !errors.Is(err, ErrSlowConsumer) {
		t.Errorf("Err() = %v, want ErrSlowConsumer", err)
	}
	if st := b.Stats(); st.Subscribers != 0 || st.Delivered != 24 {
		t.Errorf("Stats() = %+v, want Subscribers 0, Delivered 24", st)
	}
	got, open := s.Take(nil, 0)
	if fmt.Sprint(ids(got)) != "[21 22 23 24]" || !open {
		t.Errorf("dropped subscription: took %v (open %v), want [21 22 23 24] and open", ids(got), open)
	}
	if got, open := s.Take(got[:0], 0); len(got) != 0 || open {
		t.Errorf("dropped subscription, queue empty: took %d (open %v), want nothing and ended", len(got), open)
	}
}

// TestTakeUnderConcurrentPublish takes events while several goroutines
// publish, and checks that each subscriber gets every matching event once,
// in id order, whether Close or the broker's Close ends it.
func TestTakeUnderConcurrentPublish(t *testing.T) {
	const publishers, perPublisher = 4, 2000
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: publishers * perPublisher})
	all := mustSubscribe(t, b, "", ">")
	onlyB := mustSubscribe(t, b, "", "b")
	got := make([][]uint64, 2)
	var subWG sync.WaitGroup
	for i, s := range []Subscription{all, onlyB} {
		subWG.Go(func() {
			receive(s, func(m *Message) bool {
				got[i] = append(got[i], m.ID)
				return true
			})
		})
	}
	var pubWG sync.WaitGroup
	for p := range publishers {
		pubWG.Go(func() {
			for i := range perPublisher {
				if _, _, err := b.Publish(Publication{Topic: []string{"a", "b"}[(p+i)%2], Data: "x"}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pubWG.Wait()
	all.Close()
	b.Close()
	subWG.Wait()

	check := func(name string, got []uint64, want int) {
		t.Helper()
		for i := 1; i < len(got); i++ {
			if got[i] <= got[i-1] {
				t.Fatalf("%s: id %d after %d: out of order or duplicate", name, got[i], got[i-1])
			}
		}
		if len(got) != want {
			t.Errorf("%s: took %d events, want %d", name, len(got), want)
		}
	}
	check("'>'", got[0], publishers*perPublisher)
	check("'b'", got[1], publishers*perPublisher/2)
	if err := all.Err(); err != nil {
		t.Errorf("closed subscription: Err() = %v, want nil", err)
	}
	if err := onlyB.Err(); !errors.Is(err, ErrClosed) {
		t.Errorf("subscription ended by the broker: Err() = %v, want ErrClosed", err)
	}
}

// TestReadySignalledOnEnd checks that a subscriber waiting on Ready wakes
// when its subscription ends, however it ends, with events still queued
// and no wake-up pending.
func TestReadySignalledOnEnd(t *testing.T) {
	tests := []struct {
		name string
		end  func(b *Memory, s Subscription)
		want error
	}{
		{"Close", func(_ *Memory, s Subscription) { s.Close() }, nil},
		{"broker Close", func(b *Memory, _ Subscription) { b.Close() }, ErrClosed},
		{"slow consumer", func(b *Memory, _ Subscription) { mustPublish(t, b, "a", "", "overflow") }, ErrSlowConsumer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 1})
			s := mustSubscribe(t, b, "", "a")
			mustPublish(t, b, "a", "", "queued")
			<-s.Ready() // the wake-up for the queued event, not taken
			woke := make(chan struct{})
			go func() {
				<-s.Ready()
				close(woke)
			}()
			tt.end(b, s)
			select {
			case <-woke:
			case <-time.After(10 * time.Second):
				t.Fatal("Ready not signalled when the subscription ended")
			}
			if got, open := s.Take(nil, 0); len(got) != 1 || !open {
				t.Errorf("took %d events (open %v), want the queued one", len(got), open)
			}
			if _, open := s.Take(nil, 0); open {
				t.Error("still open with nothing left")
			}
			if err := s.Err(); !errors.Is(err, tt.want) {
				t.Errorf("Err() = %v, want %v", err, tt.want)
			}
		})
	}
}

// Idle gives the broker's newest id, matching or not, only while the
// subscription has nothing to hand out: not with a replay or a queue left,
// nor once it has ended.
func TestIdleOnlyWithNothingToHandOut(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{})
	mustPublish(t, b, "a", "", "1")
	resumed := mustSubscribe(t, b, "0", "a")
	live := mustSubscribe(t, b, "", "a")
	idle := func(s Subscription) string {
		id, ok := s.Idle()
		return fmt.Sprint(id, ok)
	}
	if got := idle(live); got != "1 true" {
		t.Errorf("live-only, nothing queued: Idle %s, want 1 true", got)
	}
	if got := idle(resumed); got != "0 false" {
		t.Errorf("replay not handed out: Idle %s, want 0 false", got)
	}
	if _, done := resumed.Replay(nil, 1<<20); !done {
		t.Fatal("replay of one event not done")
	}
	mustPublish(t, b, "other", "", "2")
	if got := idle(resumed); got != "2 true" {
		t.Errorf("replay handed out, an event for others: Idle %s, want 2 true", got)
	}
	mustPublish(t, b, "a", "", "3")
	if got := idle(live); got != "0 false" {
		t.Errorf("an event queued: Idle %s, want 0 false", got)
	}
	if got := queued(live); fmt.Sprint(got) != "[3]" {
		t.Fatalf("queued %v, want [3]", got)
	}
	if got := idle(live); got != "3 true" {
		t.Errorf("queue taken: Idle %s, want 3 true", got)
	}
	live.Close()
	if got := idle(live); got != "0 false" {
		t.Errorf("closed: Idle %s, want 0 false", got)
	}
}

// Take with a bound takes the oldest events until their frames reach it
// (one at least), leaves the rest queued, where they count against
// SubscriberBuffer, and signals Ready for them; once the subscription has
// ended, what is left is taken at once, whatever the bound, and Ready
// stays closed.
func TestTakeUpToBytes(t *testing.T) {
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: 3})
	s := mustSubscribe(t, b, "", "a")
	var frames []int
	for range 3 {
		frames = append(frames, len(mustPublish(t, b, "a", "", "0123456789").Frame))
	}
	<-s.Ready()
	got, open := s.Take(nil, frames[0]+1)
	if len(got) != 2 || !open {
		t.Fatalf("Take up to a frame and a byte: %d events, open %v; want 2, open", len(got), open)
	}
	select {
	case <-s.Ready():
	default:
		t.Fatal("an event left queued, Ready not signalled")
	}
	mustPublish(t, b, "a", "", "x")
	mustPublish(t, b, "a", "", "y") // the queue of 3 is full
	if s.Err() != nil {
		t.Fatalf("dropped with 3 events queued: %v", s.Err())
	}
	last := mustPublish(t, b, "a", "", "z")
	if !errors.Is(s.Err(), ErrSlowConsumer) || !readyClosed(s) {
		t.Fatalf("a fourth event behind a queue of 3: Err %v, want dropped", s.Err())
	}
	got, open = s.Take(nil, 1)
	if len(got) != 3 || got[0].ID != last.ID-3 || !open {
		t.Fatalf("after the drop, Take up to a byte: %v, open %v; want the 3 left at once (the subscriber stops after them), open", ids(got), open)
	}
	if got, open = s.Take(nil, 0); len(got) != 0 || open {
		t.Fatalf("after the drop, with nothing left: Take %v, open %v; want none, ended", ids(got), open)
	}
}

// A subscriber that takes its queue in pieces, waiting on Ready only
// when its last piece is written, is never left waiting with events
// queued: while publishers queue concurrently, it takes every event, in
// order, each once, whatever the bound of each Take. In a synctest
// bubble a lost wake-up is no hang but a failure: every goroutine
// blocked, the subscriber on Ready.
func TestTakeInPiecesLosesNoWakeUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const publishers, each = 4, 500
		b := newTestMemory(t, MemoryOptions{SubscriberBuffer: publishers * each, HistorySize: 16})
		s := mustSubscribe(t, b, "", "t.>")
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				for i := range each {
					mustPublish(t, b, fmt.Sprintf("t.%d", p), "", strings.Repeat("x", i%7))
				}
			})
		}
		var got []*Message
		for round := 0; len(got) < publishers*each; round++ {
			<-s.Ready()
			var open bool
			// From one frame's bytes (one event a Take) to several.
			if got, open = s.Take(got, 1+round%3*40); !open {
				t.Fatalf("ended after %d events: %v", len(got), s.Err())
			}
		}
		wg.Wait()
		for i, m := range got {
			if m.ID != got[0].ID+uint64(i) {
				t.Fatalf("event %d has id %d, want %d: out of order or lost", i, m.ID, got[0].ID+uint64(i))
			}
		}
		if msgs, _ := s.Take(nil, 0); len(msgs) != 0 {
			t.Errorf("%d events left queued", len(msgs))
		}
	})
}

// TestAQueueTakenInPiecesIsLetGo: a subscriber that fell behind takes
// its backlog a write's worth at a time (64 KiB: 16 events of 4 KB), the
// queue's rest left where it is in its array. Emptied by the last piece,
// the queue was kept when what was left of the array from there held
// keptQueueCap pointers or fewer, and with it the whole array: 2.3 KiB
// for a full queue of the default SubscriberBuffer, for as long as the
// subscriber then kept up or stayed idle (a crowd of 20,000 such:
// 46 MB).
func TestAQueueTakenInPiecesIsLetGo(t *testing.T) {
	const (
		subs    = 1000
		backlog = DefaultSubscriberBuffer // a queue's array of 256 pointers
	)
	b := newTestMemory(t, MemoryOptions{SubscriberBuffer: backlog, HistorySize: backlog})
	open := make([]Subscription, subs)
	for i := range open {
		open[i] = mustSubscribe(t, b, "", "a")
	}
	data := strings.Repeat("x", 4000)
	for range backlog {
		mustPublish(t, b, "a", "", data)
	}
	var buf []*Message
	for _, s := range open {
		for pieces := 0; ; pieces++ {
			var ok bool
			if buf, ok = s.Take(buf[:0], 64<<10); !ok || len(buf) == 0 {
				if pieces < 2 {
					t.Fatalf("the backlog came in %d pieces, want several", pieces)
				}
				break
			}
		}
	}
	var kept, without runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&kept)
	b.mu.Lock()
	for _, s := range open {
		s.(*memorySubscription).queue = nil
	}
	b.mu.Unlock()
	runtime.GC()
	runtime.ReadMemStats(&without)
	if got := int64(kept.HeapAlloc) - int64(without.HeapAlloc); got > 512<<10 {
		t.Errorf("%d emptied queues hold %d bytes more than none, want at most 512 KiB", subs, got)
	}
	runtime.KeepAlive(open)
}
