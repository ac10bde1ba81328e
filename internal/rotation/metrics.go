package rotation

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Outcomes counted by coffer_rotation_attempts_total.
const (
	OutcomeSuccess     = "success"      // a rotation completed
	OutcomeError       = "error"        // an attempt failed and will be retried
	OutcomeFailed      = "failed"       // a rotation gave up after its last attempt
	OutcomeRevoked     = "revoked"      // a previous credential was revoked after its grace window
	OutcomeRevokeError = "revoke_error" // revoking failed and will be retried
)

// Metrics are the engine's collectors. Labels are the rotator type and the
// outcome, never a secret name.
type Metrics struct {
	Attempts *prometheus.CounterVec   // rotator, outcome (M3)
	Lateness *prometheus.HistogramVec // rotator: scheduled start minus due time (M8)
	Overdue  prometheus.Gauge         // age of the oldest due work not yet started (M8)
	Failed   prometheus.Gauge         // secrets whose rotation is marked failed

	rotators map[string]bool // label values allowed for rotator
}

func newMetrics(rotators []string) *Metrics {
	m := &Metrics{
		Attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_rotation_attempts_total",
			Help: "Rotation attempts by rotator and outcome: success, error (retried), failed (gave up), revoked, revoke_error (M3).",
		}, []string{"rotator", "outcome"}),
		Lateness: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "coffer_rotation_lateness_seconds",
			Help:    "How long after its due time a scheduled rotation started (M8).",
			Buckets: []float64{1, 10, 60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600},
		}, []string{"rotator"}),
		Overdue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coffer_rotation_overdue_seconds",
			Help: "Age of the oldest rotation work that is due but not yet started, as of the last scheduler tick (M8).",
		}),
		Failed: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coffer_rotation_failed_secrets",
			Help: "Secrets whose last rotation failed after every attempt and has not succeeded since.",
		}),
		rotators: map[string]bool{},
	}
	for _, r := range rotators {
		m.rotators[r] = true
		// Start every series at zero so rate() and alerts see the first event.
		for _, o := range []string{OutcomeSuccess, OutcomeError, OutcomeFailed, OutcomeRevoked, OutcomeRevokeError} {
			m.Attempts.WithLabelValues(r, o)
		}
		m.Lateness.WithLabelValues(r)
	}
	return m
}

func (m *Metrics) label(rotator string) string {
	if m.rotators[rotator] {
		return rotator
	}
	return "unknown"
}

func (m *Metrics) count(rotator, outcome string) {
	m.Attempts.WithLabelValues(m.label(rotator), outcome).Inc()
}

// Collectors returns the engine's collectors, for registration.
func (e *Engine) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.metrics.Attempts, e.metrics.Lateness, e.metrics.Overdue, e.metrics.Failed}
}

// Metrics returns the engine's collectors.
func (e *Engine) Metrics() *Metrics { return e.metrics }
