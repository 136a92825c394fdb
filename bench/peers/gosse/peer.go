package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strconv"
	"sync"

	"github.com/tmaxmax/go-sse"
)

// maxBodyBytes caps a publish body, as ssehub's default does.
const maxBodyBytes = 1 << 20

// peer is the HTTP side of the benchmark peer around one sse.Server. Its
// handlers are safe for concurrent use.
type peer struct {
	sse   *sse.Server
	token string

	mu     sync.Mutex // held across Publish, so Joe gets messages in id order
	lastID uint64
}

func newPeer(token string) *peer {
	return &peer{
		token: token,
		sse: &sse.Server{
			Provider:  &sse.Joe{Replayer: greeter{}},
			OnSession: sessionTopics,
		},
	}
}

// routes returns the handler of every route the peer serves.
func (p *peer) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("GET /api/v1/events", p.sse)
	mux.HandleFunc("POST /api/v1/topics/{topic}/events", p.publish)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# TYPE go_goroutines gauge\ngo_goroutines %d\n", runtime.NumGoroutine())
	})
	return mux
}

// sessionTopics is the Server's OnSession: the topic query parameters are
// the subscription's go-sse topics, matched by exact name.
func sessionTopics(w http.ResponseWriter, r *http.Request) ([]string, bool) {
	topics := r.URL.Query()["topic"]
	if len(topics) == 0 || slices.Contains(topics, "") {
		http.Error(w, "topic is required: /api/v1/events?topic=news", http.StatusBadRequest)
		return nil, false
	}
	return topics, true
}

// publishRequest is the body of POST /api/v1/topics/{topic}/events.
type publishRequest struct {
	Event string          `json:"event"`
	Data  json.RawMessage `json:"data"`
}

// publishAnswer is the 201 body of a publish.
type publishAnswer struct {
	ID    string `json:"id"`
	Topic string `json:"topic"`
}

// publish serves POST /api/v1/topics/{topic}/events: the body's data
// becomes the message's data (a JSON string unquoted, any other value as
// its JSON text), with the next id, on the go-sse topic of the same name.
func (p *peer) publish(w http.ResponseWriter, r *http.Request) {
	if !p.authorized(r) {
		http.Error(w, "a valid publish token is required", http.StatusUnauthorized)
		return
	}
	topic := r.PathValue("topic")
	var req publishRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes)).Decode(&req); err != nil || len(req.Data) == 0 {
		http.Error(w, `want {"event": "...", "data": ...}`, http.StatusBadRequest)
		return
	}
	msg := &sse.Message{}
	if req.Event != "" {
		t, err := sse.NewType(req.Event)
		if err != nil {
			http.Error(w, "event: no line breaks", http.StatusBadRequest)
			return
		}
		msg.Type = t
	}
	msg.AppendData(dataText(req.Data))
	id, err := p.send(msg, topic)
	if err != nil {
		http.Error(w, "the broker is closed", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(publishAnswer{ID: id, Topic: topic})
}

// authorized reports whether r carries the publish token, if one is set.
func (p *peer) authorized(r *http.Request) bool {
	if p.token == "" {
		return true
	}
	got := []byte(r.Header.Get("Authorization"))
	return subtle.ConstantTimeCompare(got, []byte("Bearer "+p.token)) == 1
}

// send gives msg the next id and publishes it to topic. The lock spans
// Publish, so ids increase in the order Joe sends the messages whatever
// the number of publishers: Joe takes a message once he has sent the one
// before to every subscriber, so publishers queue here instead of on his
// channel.
func (p *peer) send(msg *sse.Message, topic string) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.lastID++
	id := strconv.FormatUint(p.lastID, 10)
	msg.ID = sse.ID(id)
	return id, p.sse.Publish(msg, topic)
}

// dataText returns the event data for a publish body's data value.
func dataText(data json.RawMessage) string {
	if bytes.HasPrefix(data, []byte(`"`)) {
		var s string
		if json.Unmarshal(data, &s) == nil {
			return s
		}
	}
	return string(data)
}
