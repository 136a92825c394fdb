package natsbroker

import (
	"errors"
	"strings"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// A publish refused while the instance checks whether its stream was
// deleted, with no answer yet (the stream's info unanswered), says that
// the stream is being checked, as Ready does: it said "stream deleted" of
// a stream that was there, in its error and in the refusal log's cause.
// Once the check is answered that the stream is there, publishes are
// taken again.
func TestPublishWhileTheStreamIsCheckedSaysSo(t *testing.T) {
	_, p, opts := startProxied(t)
	b := openBroker(t, opts)
	swallowed := p.swallowRequests(infoSubject)
	b.renew(b.cur.Load())
	waitClosed(t, swallowed, "the check's question of the stream")
	_, _, err := b.Publish(stream.Publication{Topic: "t", Type: "message", Data: "checked"})
	if !errors.Is(err, stream.ErrUnavailable) || errors.Is(err, ErrStreamDeleted) || !strings.Contains(err.Error(), "being checked") {
		t.Fatalf("publish while the stream is checked: %v, want stream.ErrUnavailable saying the stream is being checked, not deleted", err)
	}
	if err := b.Ready(); errors.Is(err, ErrStreamDeleted) || !strings.Contains(err.Error(), "being checked") {
		t.Fatalf("Ready while the stream is checked: %v, want it being checked, not deleted", err)
	}
	p.passRequests()
	waitFor(t, "the check to find the stream there", func() bool { return settled(b) })
	if _, _, err := b.Publish(stream.Publication{Topic: "t", Type: "message", Data: "after"}); err != nil {
		t.Fatalf("publish once the stream was found: %v", err)
	}
}

// The stream deleted and not created again: once the check is answered
// that no stream of its name is found, a publish says the stream deleted.
func TestPublishOnceTheStreamIsFoundDeletedSaysSo(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	b := openBroker(t, opts)
	h := b.cur.Load()
	deleteStream(t, ns, DefaultStream)
	b.renew(h)
	waitFor(t, "the check to find no stream", h.gone.Load)
	if _, _, err := b.Publish(stream.Publication{Topic: "t", Type: "message", Data: "gone"}); !errors.Is(err, stream.ErrUnavailable) || !errors.Is(err, ErrStreamDeleted) {
		t.Fatalf("publish with the stream found deleted: %v, want stream.ErrUnavailable and ErrStreamDeleted", err)
	}
}
