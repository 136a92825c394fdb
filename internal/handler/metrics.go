package handler

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the handler's Prometheus collectors.
type metrics struct {
	handler       http.Handler
	streamsActive prometheus.Gauge
	eventsSent    prometheus.Counter
}

func newMetrics(reg *prometheus.Registry) *metrics {
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
			Help: "Events written to event streams, of every kind.",
		}),
	}
	reg.MustRegister(m.streamsActive, m.eventsSent)
	return m
}
