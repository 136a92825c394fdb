package natsbroker

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ssehub/ssehub/internal/stream"
)

// Once a publish is answered its event is local: GET /api/v1/topics shows
// it, and a subscription opened afterwards gets only later events, as on
// the memory broker.
func TestPublishAnswersOnceTheEventIsLocal(t *testing.T) {
	eachPublishMode(t, func(t *testing.T, options func(*natsServer) Options) {
		ns := startNATS(t)
		a := newInstance(t, options(ns))
		for i := range 20 {
			topic := "t" + strconv.Itoa(i)
			before := a.publish(t, topic, "before")
			topics := a.broker.Topics()
			k := slices.IndexFunc(topics, func(ti stream.TopicInfo) bool { return ti.Topic == topic })
			if k < 0 || topics[k].LastEventID != before {
				t.Fatalf("topics right after the publish of %s: %+v", before, topics)
			}
			if page, _ := a.broker.TopicsPage(topic[:1], 1); k == 0 && (len(page) != 1 || page[0] != topics[0]) {
				t.Fatalf("the first page of one topic right after the publish of %s: %+v, want %+v", before, page, topics[0])
			}
			if k > 0 {
				if page, next := a.broker.TopicsPage(topics[k-1].Topic, 1); len(page) != 1 || page[0] != topics[k] || next != "" && next != topic {
					t.Fatalf("a page of topics right after the publish of %s: %+v (next %q), want %+v", before, page, next, topics[k])
				}
			}
			c := a.subscribe(t, "topic="+topic, "")
			after := a.publish(t, topic, "after")
			if got := c.next(t); got.ID != after {
				t.Fatalf("a subscription opened after %s was answered got %+v first, want %s", before, got, after)
			}
			c.cancel()
		}
	})
}

// The local history keeps hub.history_max_bytes as the stream does: an
// id it dropped is resumed from the stream, not held in memory.
func TestLocalHistoryKeepsTheByteCap(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistoryMaxBytes = 1000
	a := newInstance(t, opts)
	var ids []string
	for range 6 {
		m, _, err := a.broker.Publish(stream.Publication{Topic: "a", Data: strings.Repeat("x", 300)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strconv.FormatUint(m.ID, 10))
	}
	local, err := a.broker.cur.Load().mem.Subscribe([]string{"a"}, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	defer local.Close()
	if local.Reset() == "" {
		t.Errorf("the local history still holds %s: it ignores the byte cap", ids[0])
	}
	s, err := a.broker.Subscribe([]string{"a"}, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.Contains(s.Reset(), "older than the retained history") {
		t.Errorf("resume from %s, dropped by the stream too: reset %q", ids[0], s.Reset())
	}
}

// GET /api/v1/topics on a NATS instance, followed page by page through
// next, lists each topic of the events it published once, in order, with
// the id of its event: more topics than the local broker looks at under
// one hold of its lock.
func TestTopicsPagesOverHTTP(t *testing.T) {
	const topics, limit = 700, 100
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	opts.HistorySize = topics
	a := newInstance(t, opts)
	want := make([]string, topics)
	for i := range topics {
		topic := fmt.Sprintf("user.%04d", i)
		want[i] = topic + "=" + a.publish(t, topic, "x")
	}
	var got []string
	query := "?limit=" + strconv.Itoa(limit)
	for pages := 1; ; pages++ {
		if pages > topics/limit+1 {
			t.Fatalf("%d pages and still a next", pages)
		}
		resp, err := a.Client().Get(a.URL + "/api/v1/topics" + query)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Topics []struct {
				Topic       string `json:"topic"`
				LastEventID string `json:"last_event_id"`
			} `json:"topics"`
			Next *string `json:"next"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /api/v1/topics%s: %d, %v", query, resp.StatusCode, err)
		}
		for _, ti := range page.Topics {
			got = append(got, ti.Topic+"="+ti.LastEventID)
		}
		if page.Next == nil {
			break
		}
		query = "?limit=" + strconv.Itoa(limit) + "&after=" + url.QueryEscape(*page.Next)
	}
	if !slices.Equal(got, want) {
		t.Errorf("the pages list %d topics, want the %d published, in order, each with its event's id", len(got), len(want))
	}
}

// GET /api/v1/topics while the stream is deleted and created again: the
// history the page walks is replaced, and ended, before the walk. The
// answer lists the new stream's topics, not an empty last page, which a
// client following next takes for the end of the list.
func TestTopicsPageAcrossARenewal(t *testing.T) {
	ns := startNATS(t)
	opts := testBrokerOptions(ns)
	a := newInstance(t, opts)
	for i := range 3 {
		a.publish(t, "old."+strconv.Itoa(i), "x")
	}
	walking, resume := make(chan *history, 1), make(chan struct{})
	var once sync.Once
	a.broker.topicsWalk = func(h *history) {
		once.Do(func() {
			walking <- h
			<-resume
		})
	}
	type answer struct {
		status int
		body   string
		err    error
	}
	answered := make(chan answer, 1)
	go func() {
		resp, err := a.Client().Get(a.URL + "/api/v1/topics?limit=10")
		if err != nil {
			answered <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		answered <- answer{resp.StatusCode, string(body), err}
	}()
	old := <-walking
	recreateStream(t, ns, opts)
	if _, err := ns.operator(t).Publish(t.Context(), "ssehub.new.0", []byte("y")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the instance to take the new stream's event", func() bool {
		h := a.broker.cur.Load()
		return h != old && len(h.mem.Topics()) == 1
	})
	<-old.mem.Done()
	close(resume)
	got := <-answered
	if got.err != nil {
		t.Fatal(got.err)
	}
	if got.status != http.StatusOK || !strings.Contains(got.body, `"topic":"new.0"`) {
		t.Errorf("GET /api/v1/topics across the renewal: %d %s; want the new stream's topic new.0", got.status, got.body)
	}
}
