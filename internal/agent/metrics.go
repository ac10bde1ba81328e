package agent

import (
	"math/rand/v2"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Cache results, the values of the result label and of X-Coffer-Cache.
const (
	resultHit   = "hit"   // a fresh entry answered, the server was not asked
	resultMiss  = "miss"  // the server answered a value
	resultStale = "stale" // the server was unreachable; an older value answered
	resultError = "error" // an error answered: the server's, or unreachable with nothing cached
)

// metrics are the agent's own collectors. Labels are fixed words, never a
// secret name or a token.
type metrics struct {
	registry *prometheus.Registry

	// Requests by result: plain atomic counters, so the hit path does no
	// label lookup and the hit ratio is cheap to compute. Hits are striped
	// so that cores counting at once do not fight over one cache line.
	hits                   stripedCounter
	misses, stales, errors atomic.Uint64

	renders   *prometheus.CounterVec // result: changed, unchanged, error
	commands  *prometheus.CounterVec // result: ok, error
	logins    *prometheus.CounterVec // result: success, failure
	renewals  *prometheus.CounterVec // result: success, failure
	events    prometheus.Counter
	reconnect prometheus.Counter
}

// gauges are read when Prometheus scrapes.
type gauges struct {
	staleSeconds    func() float64
	streamConnected func() float64
	entries         func() float64
	authenticated   func() float64
}

func newMetrics(g gauges) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		renders: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_agent_template_renders_total", Help: "Template renders by result (changed, unchanged, error).",
		}, []string{"result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_agent_template_commands_total", Help: "Commands and signals run after a template changed, by result (ok, error).",
		}, []string{"result"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_agent_auth_logins_total", Help: "Auto-auth logins by result (success, failure).",
		}, []string{"result"}),
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "coffer_agent_auth_renewals_total", Help: "Token renewals by result (success, failure).",
		}, []string{"result"}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_agent_events_total", Help: "Secret events received from the server's event stream.",
		}),
		reconnect: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "coffer_agent_event_stream_reconnects_total", Help: "Times the event stream was opened again after it broke.",
		}),
	}
	reqs := &requestCollector{m: m, desc: prometheus.NewDesc("coffer_agent_cache_requests_total",
		"Reads answered by the agent's cache listener, by result (hit, miss, stale, error) (M5).", []string{"result"}, nil)}
	m.registry.MustRegister(reqs, m.renders, m.commands, m.logins, m.renewals, m.events, m.reconnect,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	gauge := func(name, help string, f func() float64) {
		m.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
	}
	gauge("coffer_agent_cache_hit_ratio", "Fresh cache hits over all cache listener reads since the agent started (M5).", m.hitRatio)
	gauge("coffer_agent_stale_seconds", "Age of the oldest value answered stale since the server last answered; 0 when no stale value is being served (F1).", g.staleSeconds)
	gauge("coffer_agent_event_stream_connected", "1 while the agent follows the server's event stream.", g.streamConnected)
	gauge("coffer_agent_cache_entries", "Values held in the agent's cache.", g.entries)
	gauge("coffer_agent_authenticated", "1 while the agent holds a token.", g.authenticated)
	// Make the result series exist from the start, at zero.
	for _, r := range []string{"changed", "unchanged", "error"} {
		m.renders.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure"} {
		m.logins.WithLabelValues(r)
		m.renewals.WithLabelValues(r)
	}
	m.commands.WithLabelValues("ok")
	m.commands.WithLabelValues("error")
	return m
}

// hitRatio is fresh hits over all reads since the start, or 0 before any.
func (m *metrics) hitRatio() float64 {
	hits := m.hits.Load()
	total := hits + m.misses.Load() + m.stales.Load() + m.errors.Load()
	if total == 0 {
		return 0
	}
	return float64(hits) / float64(total)
}

// requestCollector exports the request counters.
type requestCollector struct {
	m    *metrics
	desc *prometheus.Desc
}

func (c *requestCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *requestCollector) Collect(ch chan<- prometheus.Metric) {
	for _, r := range []struct {
		result string
		n      *atomic.Uint64
	}{{resultHit, nil}, {resultMiss, &c.m.misses}, {resultStale, &c.m.stales}, {resultError, &c.m.errors}} {
		n := c.m.hits.Load()
		if r.n != nil {
			n = r.n.Load()
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(n), r.result)
	}
}

// stripedCounter is a counter spread over cache lines; Add picks one at
// random (the runtime's per-thread generator, which takes no lock).
type stripedCounter struct {
	stripes [8]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (c *stripedCounter) Add(n uint64) { c.stripes[rand.Uint32()&7].n.Add(n) }

// Load returns the sum of the stripes.
func (c *stripedCounter) Load() uint64 {
	var sum uint64
	for i := range c.stripes {
		sum += c.stripes[i].n.Load()
	}
	return sum
}
