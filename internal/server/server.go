// Package server wires a configuration into a running Coffer: storage,
// core, the HTTP API, listeners and background jobs, with graceful shutdown.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/coffer-dev/coffer/internal/auditsink"
	"github.com/coffer-dev/coffer/internal/awsapi"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/metrics"
	"github.com/coffer-dev/coffer/internal/ratelimit"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/vaultapi"
)

// Options configure a Server.
type Options struct {
	Backend storage.Backend
	KeyFile string // key-file seal when not empty
	Address string
	TLS     *tls.Config // nil: plain HTTP (loopback only; the config enforces it)
	Logger  *slog.Logger
	// JobInterval is how often background jobs run; 0 means one minute.
	JobInterval time.Duration
	// Audit configures the audit log; an empty Dir disables it.
	Audit core.AuditConfig
	// AuditSinks are remote destinations fed from the local audit log, by name.
	AuditSinks map[string]auditsink.Sink
	// RateLimits are token buckets per path prefix; none means unlimited.
	RateLimits []ratelimit.Rule
	// Snapshots schedules backups; a zero Dir disables them.
	Snapshots SnapshotSchedule
	// Cluster names this node when Backend is shared by several (postgres).
	Cluster ClusterOptions
	// MetricsAccess decides who may scrape metrics; the zero value needs a token.
	MetricsAccess httpapi.MetricsAccess
	// Rotation configures the rotators; the zero value is the safe default.
	Rotation core.RotationConfig
}

// SnapshotSchedule writes a backup every Interval into Dir, keeping the
// newest Retain files.
type SnapshotSchedule struct {
	Dir      string
	Interval time.Duration // 0: 24h
	Retain   int           // 0: 7
	// Hold is a test failpoint: how long a scheduled snapshot waits between
	// writing its file and renaming it into place. Always 0 in production.
	Hold time.Duration
}

// Server is a running Coffer server.
type Server struct {
	Core    *core.Core
	API     *httpapi.API
	AWS     *awsapi.API
	Metrics *metrics.Metrics

	opts    Options
	log     *slog.Logger
	ln      net.Listener
	http    *http.Server
	stop    chan struct{}
	wg      sync.WaitGroup // background jobs and the HTTP server
	rewrapC chan struct{}  // kicks the rewrap job after a key rotation
	sinks   []*auditsink.Runner
	cluster clusterState // leader election and cross-node state (cluster.go)
}

// New builds a server and binds its listener; Serve starts it.
func New(opts Options) (*Server, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.JobInterval == 0 {
		opts.JobInterval = time.Minute
	}
	latency := storageLatency()
	c := core.New(core.Config{Backend: timedBackend(opts.Backend, latency), KeyFile: opts.KeyFile, Logger: log, Audit: opts.Audit, RateLimits: opts.RateLimits, Rotation: opts.Rotation})
	s := &Server{Core: c, opts: opts, log: log, stop: make(chan struct{}), rewrapC: make(chan struct{}, 1), Metrics: metrics.New()}
	s.API = httpapi.New(httpapi.Config{Core: c, Logger: log, OnKeyRotated: s.kickRewrap, Metrics: s.Metrics, MetricsAccess: opts.MetricsAccess})
	s.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coffer_audit_write_failures_total", Help: "Audit records that could not be made durable (requests refused).",
	}, func() float64 { return float64(c.AuditFailures()) }))
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "coffer_sealed", Help: "1 while the server is sealed.",
	}, func() float64 {
		if c.Sealed() {
			return 1
		}
		return 0
	}))
	s.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coffer_audit_syncs_total", Help: "fsyncs of the local audit log since it opened; records per fsync shows group commit at work.",
	}, func() float64 {
		if l := c.AuditLog(); l != nil {
			return float64(l.Syncs())
		}
		return 0
	}))
	s.Metrics.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "coffer_audit_records_total", Help: "Records in the local audit log's chain (its last sequence number).",
	}, func() float64 {
		if l := c.AuditLog(); l != nil {
			return float64(l.LastSeq())
		}
		return 0
	}))
	s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "coffer_audit_healthy", Help: "1 when the local audit log accepts records.",
	}, func() float64 {
		if c.AuditHealthy() != nil {
			return 0
		}
		return 1
	}))
	for name, sk := range opts.AuditSinks {
		r, err := auditsink.New(auditsink.Config{Dir: opts.Audit.Dir, Name: name, Sink: sk, Logger: log, Log: c.AuditLog})
		if err != nil {
			return nil, err
		}
		s.sinks = append(s.sinks, r)
		s.Metrics.Registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "coffer_audit_sink_lag_records", Help: "Audit records written locally but not yet delivered to a sink.",
			ConstLabels: prometheus.Labels{"sink": name},
		}, func() float64 {
			if l := c.AuditLog(); l != nil && l.LastSeq() > r.Cursor() {
				return float64(l.LastSeq() - r.Cursor())
			}
			return 0
		}))
	}
	ln, err := net.Listen("tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", opts.Address, err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	s.ln = ln
	s.Metrics.Registry.MustRegister(latency)
	s.Metrics.Registry.MustRegister(c.Leases.Collectors()...)
	s.Metrics.Registry.MustRegister(c.Rotation.Collectors()...)
	s.setupCluster()
	// /vault/ serves the Vault-compatible API, /aws the AWS Secrets Manager
	// one; everything else the native one.
	vault := http.StripPrefix("/vault", vaultapi.New(vaultapi.Config{Core: c, Logger: log, Metrics: s.Metrics}))
	s.AWS = awsapi.New(awsapi.Config{Core: c, Keys: c.AWSKeys, Logger: log, Metrics: s.Metrics})
	s.http = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch p := r.URL.Path; {
			case strings.HasPrefix(p, "/vault/"):
				vault.ServeHTTP(w, r)
			case p == awsapi.Prefix || strings.HasPrefix(p, awsapi.Prefix+"/"):
				s.AWS.ServeHTTP(w, r)
			default:
				s.API.ServeHTTP(w, r)
			}
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// Addr returns the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// URL returns the base URL clients use.
func (s *Server) URL() string {
	scheme := "http"
	if s.opts.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + s.Addr()
}

// Start unseals from the key file if configured and starts serving and the
// background jobs. It returns once the listener accepts connections.
func (s *Server) Start(ctx context.Context) error {
	if err := s.Core.AutoUnseal(ctx); err != nil {
		return fmt.Errorf("unseal from key file: %w", err)
	}
	s.startCluster()
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http server stopped", "error", err)
		}
	}()
	go func() {
		defer s.wg.Done()
		s.jobs()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.rotationLoop()
	}()
	if s.opts.Snapshots.Dir != "" {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.snapshotLoop()
		}()
	}
	if len(s.sinks) > 0 {
		ctx, cancel := context.WithCancel(context.Background())
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			<-s.stop
			cancel()
		}()
		for _, r := range s.sinks {
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				r.Run(ctx)
			}()
		}
	}
	return nil
}

// Shutdown stops accepting requests, lets those in flight finish until ctx
// ends, stops background jobs and closes storage last.
func (s *Server) Shutdown(ctx context.Context) error {
	s.Core.Events.Close() // ends event streams, which would otherwise hold Shutdown open
	err := s.http.Shutdown(ctx)
	close(s.stop)
	s.wg.Wait()
	s.Core.Seal() // flushes and closes the audit log with a final checkpoint
	if cerr := s.opts.Backend.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Server) kickRewrap() {
	select {
	case s.rewrapC <- struct{}{}:
	default:
	}
}

// jobs runs the background work: purging secrets past their recovery
// window, removing expired tokens and secret_ids, and re-encrypting records
// after a key rotation.
func (s *Server) jobs() {
	t := time.NewTicker(s.opts.JobInterval)
	defer t.Stop()
	rewrap := false // a rotation happened and its rewrap has not finished
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		case <-s.rewrapC:
			rewrap = true
		}
		lead, ok := s.leaderCtx() // in a cluster only the leader runs jobs
		if s.Core.Sealed() || !ok {
			continue
		}
		ctx, cancel := context.WithTimeout(lead, 10*time.Minute)
		go func() {
			select {
			case <-s.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		if n, err := s.Core.Secrets.PurgeDue(ctx); err != nil {
			s.log.Warn("purge of deleted secrets failed", "error", err)
		} else if n > 0 {
			s.log.Info("purged deleted secrets", "count", n)
		}
		if n, err := s.Core.Tokens.TidyExpired(ctx); err != nil {
			s.log.Warn("tidy of expired tokens failed", "error", err)
		} else if n > 0 {
			s.log.Debug("removed expired tokens", "count", n)
		}
		if _, err := s.Core.AWSKeys.TidyExpired(ctx); err != nil {
			s.log.Warn("tidy of expired aws access keys failed", "error", err)
		}
		if _, err := s.Core.AppRole.TidyExpired(ctx); err != nil {
			s.log.Warn("tidy of expired approle secret_ids failed", "error", err)
		}
		if res, err := s.Core.Leases.ExpireDue(ctx); err != nil { // expired leases and revocation retries
			s.log.Warn("lease expiry failed; retrying at the next job tick", "error", err)
		} else if res.Revoked+res.Pending > 0 {
			s.log.Info("expired leases", "revoked", res.Revoked, "pending", res.Pending)
		}
		s.rotateDBRoots(ctx)
		if rewrap {
			if n, err := s.Core.RewrapKeys(ctx); err != nil {
				s.log.Warn("rewrap failed; retrying at the next job tick", "error", err)
			} else {
				rewrap = false
				s.log.Info("rewrap finished", "records", n)
			}
		}
		cancel()
	}
}

// snapshotJob names the scheduled snapshots in the shared schedule record.
const snapshotJob = "snapshot"

// snapshotLoop writes one scheduled snapshot per interval until the server
// stops. Slots are aligned to the interval (UTC) and the newest slot done is
// recorded in storage, so in a cluster only the leader writes, and a leader
// that takes over writes the slot its predecessor did not finish. A slot's
// file name is fixed, so two leaders overlapping for a moment still leave
// one file per slot.
func (s *Server) snapshotLoop() {
	sc := s.opts.Snapshots
	if sc.Interval == 0 {
		sc.Interval = 24 * time.Hour
	}
	if sc.Retain == 0 {
		sc.Retain = 7
	}
	t := time.NewTicker(min(sc.Interval/4, time.Second))
	defer t.Stop()
	var done, retryAt time.Time // newest slot known done; no retry before
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		lead, ok := s.leaderCtx()
		now := time.Now().UTC()
		slot := now.Truncate(sc.Interval)
		if !ok || s.Core.Sealed() || !slot.After(done) || now.Before(retryAt) {
			continue
		}
		ctx, cancel := context.WithTimeout(lead, 30*time.Minute)
		path, err := s.snapshotSlot(ctx, sc, slot)
		cancel()
		if err != nil {
			if lead.Err() == nil {
				s.log.Error("scheduled snapshot failed", "error", err)
			}
			retryAt = now.Add(min(sc.Interval, time.Minute))
			continue
		}
		done = slot
		if path != "" {
			s.log.Info("scheduled snapshot written", "path", path)
		}
	}
}

// snapshotSlot writes the snapshot of slot unless the schedule record says
// it is done, and records it done. It returns "" if nothing was written.
func (s *Server) snapshotSlot(ctx context.Context, sc SnapshotSchedule, slot time.Time) (string, error) {
	if ok, err := s.Core.SlotDone(ctx, snapshotJob, slot); err != nil || ok {
		return "", err
	}
	path, err := s.snapshotFile(ctx, sc.Dir, "coffer-"+slot.Format("20060102T150405.000Z")+".snapshot", sc.Retain, sc.Hold)
	if err != nil {
		return "", err
	}
	return path, s.Core.MarkSlotDone(ctx, snapshotJob, slot)
}

// SnapshotTo writes a snapshot file into dir (0600, written atomically)
// and deletes the oldest beyond retain.
func (s *Server) SnapshotTo(dir string, retain int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	return s.snapshotFile(ctx, dir, "coffer-"+time.Now().UTC().Format("20060102T150405.000Z")+".snapshot", retain, 0)
}

// snapshotFile writes a snapshot into dir/name atomically, waiting hold
// (a test failpoint) before the rename, and applies retention.
func (s *Server) snapshotFile(ctx context.Context, dir, name string, retain int, hold time.Duration) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".snapshot-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := s.Core.Snapshot(ctx, f); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if hold > 0 {
		select {
		case <-time.After(hold):
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
	path := filepath.Join(dir, name)
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "coffer-*.snapshot"))
	sort.Strings(old) // names sort by time
	for len(old) > retain {
		os.Remove(old[0])
		old = old[1:]
	}
	// Temporary files of a writer that died (a killed leader) are removed
	// once they are clearly abandoned.
	tmps, _ := filepath.Glob(filepath.Join(dir, ".snapshot-*"))
	for _, t := range tmps {
		if fi, err := os.Stat(t); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(t)
		}
	}
	return path, nil
}
