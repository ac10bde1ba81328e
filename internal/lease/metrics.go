package lease

import "github.com/prometheus/client_golang/prometheus"

// stats are the manager's Prometheus collectors. Labels: none (lease ids
// and kinds of leases are not metric labels).
type stats struct {
	created, revoked, failures, runs prometheus.Counter
	pending                          prometheus.Gauge
}

func newStats() stats {
	return stats{
		created: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_leases_created_total", Help: "Leases created (dynamic credentials issued).",
		}),
		revoked: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_leases_revoked_total", Help: "Leases revoked: expired, revoked by request, by prefix or with their token.",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_lease_revocation_failures_total", Help: "Lease revocation attempts that failed and were scheduled for a retry.",
		}),
		runs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_lease_expiry_runs_total", Help: "Runs of the lease expiry job on this node.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "coffer_lease_revocations_pending", Help: "Leases whose revocation failed and awaits a retry, as of the last expiry run on this node.",
		}),
	}
}

// Collectors returns the manager's metrics for the server to register.
func (m *Manager) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.stats.created, m.stats.revoked, m.stats.failures, m.stats.runs, m.stats.pending}
}
