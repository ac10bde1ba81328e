// Package metrics holds Coffer's Prometheus collectors. Labels have bounded
// cardinality: operation names, status classes, refusal reasons and the
// first segment of a path, never a secret name, an identity or a token.
package metrics

import (
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/coffer-dev/coffer/internal/exposure"
	"github.com/coffer-dev/coffer/internal/logredact"
)

// Metrics is one server's collectors, registered in its own registry.
type Metrics struct {
	Registry *prometheus.Registry

	Requests        *prometheus.CounterVec   // op, code class
	RequestDuration *prometheus.HistogramVec // op
	Refused         *prometheus.CounterVec   // reason, path prefix
	BreakGlass      prometheus.Counter
	Logins          *prometheus.CounterVec // method, result
	Exposures       *prometheus.CounterVec // source

	prefixMu sync.Mutex          // guards prefixes
	prefixes map[string]struct{} // prefix label values in use
}

// New builds and registers the collectors, with the Go runtime and process collectors.
func New() *Metrics {
	m := &Metrics{
		prefixes: map[string]struct{}{},
		Registry: prometheus.NewRegistry(),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_requests_total", Help: "API requests by operation and status class (M1).",
		}, []string{"op", "code"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "coffer_request_duration_seconds", Help: "API request latency by operation (M2).",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
		}, []string{"op"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_refused_requests_total", Help: "Requests refused by reason and the first segment of the path (M4).",
		}, []string{"reason", "prefix"}),
		BreakGlass: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_break_glass_tokens_issued_total", Help: "Emergency (break-glass) tokens issued (M10).",
		}),
		Logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_logins_total", Help: "Auth method logins by method and result.",
		}, []string{"method", "result"}),
		Exposures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_secret_exposures_reported_total", Help: "Reports that a secret's value leaked, by where it was found (M6).",
		}, []string{"source"}),
	}
	for _, src := range exposure.Sources {
		m.Exposures.WithLabelValues(src)
	}
	m.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coffer_log_redactions_total", Help: "Credential-shaped strings the log redactor kept out of the operational log (M6 detector; should stay 0).",
	}, func() float64 { return float64(logredact.Redactions()) }))
	m.Registry.MustRegister(m.Requests, m.RequestDuration, m.Refused, m.BreakGlass, m.Logins, m.Exposures,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// CodeClass turns a status into "2xx", "4xx", ...
func CodeClass(status int) string { return strconv.Itoa(status/100) + "xx" }

// maxPrefixes bounds the distinct prefix label values.
const maxPrefixes = 64

// Prefix returns a bounded label for a path: its first segment when the
// path has more than one (a folder such as prod/ or sys/, never a secret's
// own name), "top-level" for single-segment names, and "other" once
// maxPrefixes distinct folders have been seen or for odd ones.
func (m *Metrics) Prefix(path string) string { return m.prefix(path, maxPrefixes) }

// StrangerPrefix is Prefix for requests without a known caller: they may
// claim only half the label values, so that junk paths from strangers
// cannot crowd out the folders real callers use.
func (m *Metrics) StrangerPrefix(path string) string { return m.prefix(path, maxPrefixes/2) }

func (m *Metrics) prefix(path string, limit int) string {
	first, _, more := strings.Cut(path, "/")
	switch {
	case path == "":
		return "none"
	case !more:
		return "top-level"
	}
	if len(first) > 32 {
		return "other"
	}
	for i := 0; i < len(first); i++ {
		c := first[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return "other"
		}
	}
	m.prefixMu.Lock()
	defer m.prefixMu.Unlock()
	if _, ok := m.prefixes[first]; !ok {
		if len(m.prefixes) >= limit {
			return "other"
		}
		m.prefixes[first] = struct{}{}
	}
	return first
}
