// Package telemetry holds the gateway's operational signals: Prometheus
// metrics on a registry of its own (one per handler, so parallel tests never
// share counters), OpenTelemetry tracing, and the per-request record that the
// access log and the metrics are written from. Nothing here ever sees a
// variable's value, a response's data or an error's detail: only operation
// names, types, codes, durations and the caller's identity claims.
package telemetry

import (
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// OtherOperation is the label value every operation name outside the
// allow-list folds into, so a partner cannot grow the label set.
const OtherOperation = "other"

// Metrics are the gateway's Prometheus collectors, registered on Registry.
type Metrics struct {
	Registry *prometheus.Registry

	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	errors       *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	dbCommands   *prometheus.HistogramVec
	inFlight     prometheus.Gauge
	activeSubs   atomic.Pointer[func() int]
}

// NewMetrics registers the gateway's collectors (and the Go and process
// collectors) on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_graphql_requests_total",
			Help: "GraphQL operations by operation name (allow-listed, else \"other\"), type and outcome (ok, partial, error, refused).",
		}, []string{"operation", "type", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_graphql_request_duration_seconds",
			Help:    "GraphQL operation latency by operation name and type (subscriptions: their lifetime).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"operation", "type"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_graphql_errors_total",
			Help: "GraphQL errors returned, by extensions.code.",
		}, []string{"code"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_auth_failures_total",
			Help: "Refused authentications by reason (missing_token, malformed, expired, bad_signature, ...) and transport (http, websocket).",
		}, []string{"reason", "transport"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_rate_limited_total",
			Help: "Requests refused with 429, by the bucket that refused them (address, principal).",
		}, []string{"scope"}),
		dbCommands: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gateway_db_command_duration_seconds",
			Help:    "Database command durations by command name and outcome (ok, error).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"command", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_graphql_requests_in_flight",
			Help: "GraphQL HTTP requests being served (websockets excluded).",
		}),
	}
	subscriptions := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "gateway_subscriptions_active",
		Help: "Live GraphQL subscriptions on this replica.",
	}, func() float64 {
		if f := m.activeSubs.Load(); f != nil {
			return float64((*f)())
		}
		return 0
	})
	m.Registry.MustRegister(m.requests, m.duration, m.errors, m.authFailures, m.rateLimited, m.dbCommands, m.inFlight, subscriptions,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus exposition format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{Registry: m.Registry})
}

// ObserveOperation counts one finished GraphQL operation.
func (m *Metrics) ObserveOperation(operation, opType, outcome string, d time.Duration) {
	m.requests.WithLabelValues(operation, opType, outcome).Inc()
	m.duration.WithLabelValues(operation, opType).Observe(d.Seconds())
}

// RequestStarted and RequestEnded track requests in flight.
func (m *Metrics) RequestStarted() { m.inFlight.Inc() }

// RequestEnded is the counterpart of RequestStarted.
func (m *Metrics) RequestEnded() { m.inFlight.Dec() }

// ObserveError counts one GraphQL error by its extensions.code.
func (m *Metrics) ObserveError(code string) { m.errors.WithLabelValues(code).Inc() }

// ObserveAuthFailure counts a refused token by auth.Reason.
func (m *Metrics) ObserveAuthFailure(reason, transport string) {
	m.authFailures.WithLabelValues(reason, transport).Inc()
}

// ObserveRateLimited counts a 429 by the bucket that refused it.
func (m *Metrics) ObserveRateLimited(scope string) { m.rateLimited.WithLabelValues(scope).Inc() }

// ObserveDBCommand times one database command.
func (m *Metrics) ObserveDBCommand(command, outcome string, d time.Duration) {
	m.dbCommands.WithLabelValues(command, outcome).Observe(d.Seconds())
}

// WatchSubscriptions makes the active-subscriptions gauge read active (the
// event hub's count) at every scrape.
func (m *Metrics) WatchSubscriptions(active func() int) { m.activeSubs.Store(&active) }

// OperationNames bounds operation names: names in the allow-list keep
// themselves, anything else (including no name) becomes OtherOperation.
type OperationNames map[string]struct{}

// NewOperationNames returns the allow-list of names.
func NewOperationNames(names ...string) OperationNames {
	s := OperationNames{}
	for _, n := range names {
		s[n] = struct{}{}
	}
	return s
}

// Label returns the metric label for an operation name.
func (o OperationNames) Label(name string) string {
	if _, ok := o[name]; ok {
		return name
	}
	return OtherOperation
}
