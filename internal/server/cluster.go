package server

import (
	"context"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coffer-dev/coffer/internal/cluster"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/postgres"
	"github.com/coffer-dev/coffer/internal/storage/timed"
)

// ClusterOptions name this node among the nodes sharing a postgres
// storage. They are ignored on other backends.
type ClusterOptions struct {
	// NodeID defaults to the host name and the listener's port.
	NodeID string
	// APIAddr is the URL operators and other nodes reach this node at;
	// default the listener's URL.
	APIAddr string
	// Interval is how often the node heartbeats and, when not leading,
	// tries for leadership; 0 means 1s.
	Interval time.Duration
	// Version is shown in the registry.
	Version string
}

// clusterState is the server's part in a cluster. With a storage that is
// not shared (bolt, memory) node is nil and this server always leads.
type clusterState struct {
	node  *cluster.Node   // nil: single server
	relay *cluster.Events // nil: single server
	pg    *postgres.Backend

	ctx    context.Context // ends when the server stops; leadership of a single server
	cancel context.CancelFunc
}

// storageLatency is the histogram behind coffer_storage_operation_duration_seconds.
func storageLatency() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "coffer_storage_operation_duration_seconds",
		Help:    "Duration of storage backend operations (get, list, update, snapshot).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"op"})
}

// timedBackend wraps b so that each operation is observed by h.
func timedBackend(b storage.Backend, h *prometheus.HistogramVec) storage.Backend {
	obs := map[string]prometheus.Observer{}
	for _, op := range []string{"get", "list", "update", "snapshot"} {
		obs[op] = h.WithLabelValues(op)
	}
	return timed.Wrap(b, func(op string, d time.Duration) { obs[op].Observe(d.Seconds()) })
}

// setupCluster joins the cluster when the storage is shared: leader
// election, the node registry, cross-node cache invalidation and events.
func (s *Server) setupCluster() {
	cs := &s.cluster
	cs.ctx, cs.cancel = context.WithCancel(context.Background())
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "coffer_leader", Help: "1 while this node runs the background jobs (always 1 without a cluster).",
	}, func() float64 {
		if s.IsLeader() {
			return 1
		}
		return 0
	}))
	pg, ok := s.opts.Backend.(*postgres.Backend)
	if !ok {
		return
	}
	co := s.opts.Cluster
	if co.NodeID == "" {
		host, _ := os.Hostname()
		_, port, _ := net.SplitHostPort(s.Addr())
		co.NodeID = host + ":" + port
	}
	if co.APIAddr == "" {
		co.APIAddr = s.URL()
	}
	cs.pg = pg
	s.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coffer_storage_commits_total", Help: "PostgreSQL transactions committed (several writes share one: group commit).",
	}, func() float64 { c, _, _ := pg.Stats(); return float64(c) }))
	s.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coffer_storage_conflict_retries_total", Help: "Transactions run again after a serialization conflict with another node.",
	}, func() float64 { _, _, r := pg.Stats(); return float64(r) }))
	cs.node = cluster.New(cluster.Config{
		Pool: pg.Pool(), ConnConfig: pg.ConnConfig(), NodeID: co.NodeID, APIAddr: co.APIAddr, Version: co.Version,
		Sealed: s.Core.Sealed, OnChange: s.leaderChanged, Interval: co.Interval, Logger: s.log,
	})
	cs.relay = cluster.NewEvents(pg, s.Core.Events, s.log)
	s.Core.Follow(pg, s.kickRewrap) // the leader re-encrypts after another node's rotation
	s.Core.SetCluster(cs.node)
}

// startCluster runs the cluster membership until the server stops.
func (s *Server) startCluster() {
	cs := &s.cluster
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		<-s.stop
		cs.cancel()
	}()
	if cs.node == nil {
		return
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		cs.node.Run(cs.ctx) // on return: stepped down, lock released, deregistered
	}()
	go func() {
		defer s.wg.Done()
		cs.relay.Run(cs.ctx)
	}()
}

// leaderCtx returns, while this server leads, a context that ends when it
// stops leading or stops. Background jobs run only under it.
func (s *Server) leaderCtx() (context.Context, bool) {
	if s.cluster.node == nil {
		return s.cluster.ctx, s.cluster.ctx.Err() == nil
	}
	return s.cluster.node.Leader()
}

// IsLeader reports whether this server runs the background jobs.
func (s *Server) IsLeader() bool {
	_, ok := s.leaderCtx()
	return ok
}

// leaderChanged runs when this node gains or loses leadership. A new leader
// finishes what a failed one may have left: a rewrap after a rotation.
func (s *Server) leaderChanged(leader bool) {
	if !leader {
		return
	}
	if ks, err := s.Core.KeyStatus(); err == nil && ks.Terms > 1 {
		s.kickRewrap()
	}
}
