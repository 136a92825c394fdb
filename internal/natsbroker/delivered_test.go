package natsbroker

import (
	"context"
	"testing"
	"testing/synctest"
)

// advance releases the publishes waiting for the sequences it reached,
// and only those; a publish whose context ends stops waiting.
func TestDeliveredReleasesUpToTheSequence(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var d delivered
		stop := make(chan struct{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(map[uint64]chan bool)
		for seq := uint64(1); seq <= 5; seq++ {
			c := ctx
			if seq == 5 {
				c = context.Background()
			}
			ch := make(chan bool, 1)
			done[seq] = ch
			go func() { ch <- d.wait(c, stop, seq) }()
		}
		synctest.Wait()
		d.advance(2)
		synctest.Wait()
		for seq, want := range map[uint64]bool{1: true, 2: true} {
			if got := <-done[seq]; got != want {
				t.Errorf("wait(%d) after advance(2): %v", seq, got)
			}
		}
		if n := d.pending(); n != 3 {
			t.Fatalf("%d publishes waiting after advance(2), want 3", n)
		}
		cancel() // 3 and 4 give up
		synctest.Wait()
		for _, seq := range []uint64{3, 4} {
			if <-done[seq] {
				t.Errorf("wait(%d) reported a delivery after its context ended", seq)
			}
		}
		if n := d.pending(); n != 1 {
			t.Fatalf("%d publishes waiting after two gave up, want 1", n)
		}
		if !d.wait(context.Background(), stop, 2) {
			t.Error("wait for a sequence delivered already did not return true at once")
		}
		d.advance(7)
		if !<-done[5] || d.pending() != 0 {
			t.Errorf("advance(7) did not release the wait for 5 (%d waiting)", d.pending())
		}
	})
}
