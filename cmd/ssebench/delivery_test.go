package main

import (
	"reflect"
	"testing"
	"time"

	"github.com/ssehub/ssehub/internal/stream"
)

func TestDeliveryCounts(t *testing.T) {
	now := time.Unix(100, 0)
	sent := now.Add(-3 * time.Millisecond).UnixNano()
	ev := func(id string, seq int64) stream.Event {
		return stream.Event{ID: id, Data: string(appendPayload(nil, seq, sent, 64))}
	}
	var d delivery
	d.seqLimit.Store(1000) // events 0 to 999 were published
	var s subState
	for _, e := range []stream.Event{
		ev("10", 0),
		ev("11", 1),
		ev("11", 1), // duplicate
		ev("13", 3),
		ev("12", 2),                           // an id lower than the last: out of order
		{Type: "reset", Data: "history lost"}, // reset
		{Type: "message", Data: "not ours"},   // other
		{Type: "custom", Data: "x"},           // other
		ev("200", 130),                        // far ahead: the bitmap grows
	} {
		d.onEvent(&s, e, now)
	}
	r := d.Report(6, nil, time.Second)
	want := DeliveryReport{Expected: 6, Delivered: 5, Missing: 1, Duplicates: 1, OutOfOrder: 1, Resets: 1, Other: 2, PerSecond: 5}
	got := *r
	got.Latency = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report = %+v\nwant     %+v", got, want)
	}
	if r.Latency == nil || r.Latency.Count != 5 || time.Duration(r.Latency.Max) != 3*time.Millisecond {
		t.Errorf("latency = %+v, want 5 samples of 3ms", r.Latency)
	}
}

func TestDeliveryOrderBySequenceWithoutNumericIDs(t *testing.T) {
	var d delivery
	d.seqLimit.Store(4)
	var s subState
	for _, seq := range []int64{0, 2, 1, 3} {
		d.onEvent(&s, stream.Event{ID: "id-x", Data: string(appendPayload(nil, seq, 0, 64))}, time.Now())
	}
	if got := d.outOfOrder.Load(); got != 1 {
		t.Errorf("out of order = %d, want 1 (sequence 1 after 2)", got)
	}
}
