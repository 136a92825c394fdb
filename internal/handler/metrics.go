package handler

import (
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the handler's Prometheus collectors.
type metrics struct {
	handler       http.Handler
	streamsActive prometheus.Gauge
	eventsSent    prometheus.Counter
	// publishReplays counts publishes answered as a retry of an earlier
	// one with the same Idempotency-Key.
	publishReplays prometheus.Counter
	// writeTimeouts counts hub subscribers dropped because a write blocked
	// past the write timeout, or whose connection the system ended as
	// they read nothing for it (errStoppedReading); the broker counts
	// those whose queue filled.
	writeTimeouts atomic.Uint64
	// requests counts answered requests by route, method and status.
	requests *prometheus.CounterVec
	// refused counts 503s for capacity and for the broker's store, by
	// reason: what the refusal log's lines sum up.
	refused *prometheus.CounterVec
	// streamsEnded counts streams by why they ended (endReason).
	streamsEnded *prometheus.CounterVec
	// resets counts streams that began with event: reset.
	resets prometheus.Counter
}

// The reasons of refused: one per cap and per state of the store.
const (
	refusedMaxStreams       = "max_streams"
	refusedMaxSubscribers   = "max_subscribers"
	refusedStoreBusy        = "store_busy"
	refusedStoreFull        = "store_full"
	refusedStoreUnreachable = "store_unreachable"
)

func newMetrics(reg *prometheus.Registry, broker Broker) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}),
		streamsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ssehub_streams_active",
			Help: "Event streams open now, of every kind.",
		}),
		eventsSent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_stream_events_sent_total",
			Help: "Events written to event streams, of every kind; an open stream adds them 32 at a time.",
		}),
		publishReplays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_publish_replays_total",
			Help: "Publishes answered as a retry of an earlier one with the same Idempotency-Key: nothing stored.",
		}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssehub_http_requests_total",
			Help: "Requests answered, by route (\"other\": static files and unknown paths), method and status; a stream once it ends, or a detached one once handed over.",
		}, []string{"route", "method", "code"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssehub_requests_refused_total",
			Help: "Requests answered 503 with Retry-After for capacity (max_streams, max_subscribers) or because the event store was busy, full or unreachable.",
		}, []string{"reason"}),
		streamsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ssehub_streams_ended_total",
			Help: "Event streams ended, of every kind, by reason: completed, client_gone, shutting_down, dropped (a slow hub subscriber, or its stream replaced), write_failed, token_expired, panicked.",
		}, []string{"reason"}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ssehub_stream_resets_total",
			Help: "Streams that began with event: reset: a Last-Event-ID they could not resume from.",
		}),
	}
	for _, reason := range []string{refusedMaxStreams, refusedMaxSubscribers, refusedStoreBusy, refusedStoreFull, refusedStoreUnreachable} {
		m.refused.WithLabelValues(reason) // present at 0 from the start
	}
	// So is every reason a stream ends for: increase() and rate() miss
	// the first count of a series that appears with it.
	for _, end := range []error{errCompleted, errClientGone, errShuttingDown, errDropped, errors.New("write failed"), errExpired, errPanicked} {
		m.streamsEnded.WithLabelValues(endReason(end))
	}
	reg.MustRegister(m.streamsActive, m.eventsSent, m.publishReplays, m.requests, m.refused, m.streamsEnded, m.resets)
	if broker != nil {
		reg.MustRegister(&brokerCollector{broker: broker, writeTimeouts: &m.writeTimeouts})
	}
	return m
}

// brokerCollector reads the broker's running totals at scrape time.
type brokerCollector struct {
	broker        Broker
	writeTimeouts *atomic.Uint64
}

var (
	subscribersDesc = prometheus.NewDesc("ssehub_subscribers", "Open hub subscriptions.", nil, nil)
	publishedDesc   = prometheus.NewDesc("ssehub_events_published_total", "Events accepted by the hub.", nil, nil)
	deliveredDesc   = prometheus.NewDesc("ssehub_events_delivered_total", "Events queued to hub subscribers, replayed ones included.", nil, nil)
	droppedDesc     = prometheus.NewDesc("ssehub_slow_subscribers_dropped_total", "Hub subscribers dropped as too slow: a full queue, a write past the write timeout, or on Linux a client that read nothing for it.", nil, nil)
	replayedDesc    = prometheus.NewDesc("ssehub_replayed_events_total", "Events replayed to subscribers that resumed with Last-Event-ID.", nil, nil)
	historyDesc     = prometheus.NewDesc("ssehub_history_bytes", "Bytes the hub's history keeps, as hub.history_max_bytes counts them.", nil, nil)
)

// natsBroker is what a broker on NATS (package natsbroker) reports beside
// Stats: its metrics appear only for such a broker.
type natsBroker interface {
	// Connected reports whether it is connected to a NATS server now.
	Connected() bool
	// ConsumerLag is how many events of the stream it had yet to read
	// when it read its last one.
	ConsumerLag() uint64
}

var (
	natsConnectedDesc = prometheus.NewDesc("ssehub_nats_connected", "1 while the hub is connected to a NATS server, else 0.", nil, nil)
	natsLagDesc       = prometheus.NewDesc("ssehub_nats_consumer_lag", "Events of the NATS stream this instance had yet to read when it read its last one.", nil, nil)
)

func (c *brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{subscribersDesc, publishedDesc, deliveredDesc, droppedDesc, replayedDesc, historyDesc} {
		ch <- d
	}
	if _, ok := c.broker.(natsBroker); ok {
		ch <- natsConnectedDesc
		ch <- natsLagDesc
	}
}

func (c *brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.broker.Stats()
	timeouts := float64(c.writeTimeouts.Load())
	ch <- prometheus.MustNewConstMetric(subscribersDesc, prometheus.GaugeValue, float64(s.Subscribers))
	ch <- prometheus.MustNewConstMetric(publishedDesc, prometheus.CounterValue, float64(s.Published))
	ch <- prometheus.MustNewConstMetric(deliveredDesc, prometheus.CounterValue, float64(s.Delivered))
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(s.Dropped)+timeouts)
	ch <- prometheus.MustNewConstMetric(replayedDesc, prometheus.CounterValue, float64(s.Replayed))
	ch <- prometheus.MustNewConstMetric(historyDesc, prometheus.GaugeValue, float64(s.HistoryBytes))
	if n, ok := c.broker.(natsBroker); ok {
		connected := 0.0
		if n.Connected() {
			connected = 1
		}
		ch <- prometheus.MustNewConstMetric(natsConnectedDesc, prometheus.GaugeValue, connected)
		ch <- prometheus.MustNewConstMetric(natsLagDesc, prometheus.GaugeValue, float64(n.ConsumerLag()))
	}
}

// countRequest adds one answered request to requests. route is Gin's
// route pattern, empty for no route; the labels stay few whatever the
// client sends: unknown paths are "other", unknown methods "other".
func (m *metrics) countRequest(route, method string, status int) {
	if route == "" {
		route = "other"
	}
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
	default:
		method = "other"
	}
	m.requests.WithLabelValues(route, method, strconv.Itoa(status)).Inc()
}
