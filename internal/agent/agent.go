package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coffer-dev/coffer/client"
)

// Options are the agent's dependencies. Zero values mean defaults.
type Options struct {
	Logger *slog.Logger     // default: discard
	Now    func() time.Time // default: time.Now
}

// Agent is a running (or ready to run) agent: auto-auth, the read cache
// with its listeners, the event stream follower, templates and metrics.
// Start it once and Shutdown it once.
type Agent struct {
	cfg  *Config
	log  *slog.Logger
	now  func() time.Time
	base *url.URL
	tr   *http.Transport // shared by every request to the server

	metrics   *metrics
	auth      *authenticator
	cache     *cache
	refresher *refresher
	follower  *follower
	renderer  *renderer
	handler   *handler

	// Retry delays of logins, the event stream and templates; tests
	// shorten them before Start.
	retryMin, retryMax time.Duration

	servers    []*http.Server // cache listeners and the metrics listener
	listeners  []net.Listener // in the order of servers
	tcpAddr    net.Addr       // of the TCP cache listener, once started
	metricAddr net.Addr       // of the metrics listener, once started
	socketPath string         // the unix socket to remove at shutdown

	cancel context.CancelFunc // stops the background goroutines
	wg     sync.WaitGroup     // the background goroutines and servers
}

// fetchTimeout bounds one read from the server.
const fetchTimeout = 10 * time.Second

// New builds an agent from a parsed configuration. It checks the server
// address and the CA certificate but contacts nothing.
func New(cfg *Config, opts Options) (*Agent, error) {
	a := &Agent{cfg: cfg, log: opts.Logger, now: opts.Now, retryMin: 500 * time.Millisecond, retryMax: 30 * time.Second}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	addr := cfg.Server
	if addr == "" {
		addr = client.DefaultAddress
	}
	if err := checkServer(addr); err != nil {
		return nil, err
	}
	base, err := url.Parse(strings.TrimRight(addr, "/"))
	if err != nil {
		return nil, err
	}
	a.base = base
	if base.Scheme == "http" && !isLoopback(base.Hostname()) {
		a.log.Warn("the server address is plain http to a non-loopback host: the agent's token crosses the network unencrypted", "server", addr)
	}
	tr, err := transport(cfg.CACert)
	if err != nil {
		return nil, err
	}
	a.tr = tr
	sdk, err := client.New(client.Config{Address: addr, HTTPClient: &http.Client{Transport: tr, Timeout: 30 * time.Second}})
	if err != nil {
		return nil, err
	}
	streams := &http.Client{Transport: tr}

	a.refresher = newRefresher()
	a.cache = newCache(cacheConfig{
		ttl: cfg.ttl(), maxStale: cfg.maxStale(), maxEntries: cfg.maxEntries(), now: a.now,
		fetchTimeout: fetchTimeout, refresh: func(s selector) { a.refresher.add(s) },
	})
	a.metrics = newMetrics(gauges{
		staleSeconds:    a.cache.staleSeconds,
		streamConnected: func() float64 { return boolFloat(a.follower.connected.Load()) },
		entries:         func() float64 { return float64(a.cache.size.Load()) },
		authenticated:   func() float64 { return boolFloat(a.auth.token() != "") },
	})
	retry := func() *backoff { return newBackoff(a.retryMin, a.retryMax) }
	a.auth = newAuthenticator(cfg.AutoAuth, sdk, a.log, a.metrics, a.now, retry)
	up := &upstream{base: base, hc: streams, auth: a.auth}
	a.cache.fetch = up.get
	a.renderer, err = newRenderer(cfg.Templates, a.cache.get, func(ctx context.Context) error {
		_, err := a.auth.waitToken(ctx, "")
		return err
	}, a.log, a.metrics, cfg.ttl(), retry)
	if err != nil {
		return nil, err
	}
	a.follower = &follower{
		base: base, hc: streams, auth: a.auth, log: a.log, metrics: a.metrics, retry: retry, idle: streamIdle,
		onEvent: func(ev event) {
			drop := ev.Type == "deleted" || ev.Type == "destroyed" || ev.Type == "purged"
			a.refresher.add(a.cache.invalidate(ev.Name, drop)...)
			a.renderer.notify(ev.Name)
		},
		onGap: func() {
			a.cache.clear()
			a.renderer.notifyAll()
		},
		onSubscribed: func() {
			a.refresher.add(a.cache.expireAll()...)
			a.renderer.notifyAll()
		},
		onLost: func() { a.cache.expireAll() },
	}
	a.handler = &handler{c: a.cache, m: a.metrics, health: a.health, headers: newCacheHeaders()}
	return a, nil
}

func transport(caFile string) (*http.Transport, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_cert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_cert %s holds no PEM certificate", caFile)
		}
		tlsCfg.RootCAs = pool
	}
	tr.TLSClientConfig = tlsCfg
	return tr, nil
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler returns the cache listener's handler (for tests and embedding):
// the unix socket's, which refuses requests with an Origin header but does
// not check the Host as the TCP listener does.
func (a *Agent) Handler() http.Handler { return a.handler }

// Start binds the listeners and starts logging in, following events,
// rendering templates and serving. It returns once the listeners accept
// connections; the first login happens in the background.
func (a *Agent) Start(ctx context.Context) error {
	if err := a.listen(); err != nil {
		a.closeListeners()
		return err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	for _, f := range []func(context.Context){a.auth.run, a.follower.run, a.renderer.run,
		func(ctx context.Context) { a.refresher.run(ctx, a.cache) }} {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			f(runCtx)
		}()
	}
	for i, srv := range a.servers {
		ln := a.listeners[i]
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("listener stopped", "address", ln.Addr().String(), "error", err)
			}
		}()
	}
	a.log.Info("agent started", "server", a.base.Redacted(), "method", a.cfg.AutoAuth.Method, "templates", len(a.cfg.Templates))
	return nil
}

// Shutdown stops serving (letting requests in flight finish until ctx
// ends), stops the background work and removes the socket file.
func (a *Agent) Shutdown(ctx context.Context) error {
	var err error
	for _, srv := range a.servers {
		if serr := srv.Shutdown(ctx); serr != nil && err == nil {
			err = serr
		}
	}
	if a.cancel != nil {
		a.cancel()
	}
	a.wg.Wait()
	a.cache.close()
	a.tr.CloseIdleConnections()
	if a.socketPath != "" {
		os.Remove(a.socketPath)
	}
	return err
}

// TCPAddr returns the TCP cache listener's address, or nil.
func (a *Agent) TCPAddr() net.Addr { return a.tcpAddr }

// MetricsAddr returns the metrics listener's address, or nil.
func (a *Agent) MetricsAddr() net.Addr { return a.metricAddr }

func (a *Agent) newServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
}

func (a *Agent) listen() error {
	if c := a.cfg.Cache; c != nil {
		if c.ListenUnix != "" {
			ln, err := listenUnix(c.ListenUnix, c.socketMode)
			if err != nil {
				return err
			}
			a.socketPath = c.ListenUnix
			a.add(ln, a.handler)
		}
		if c.ListenTCP != "" {
			ln, err := net.Listen("tcp", c.ListenTCP)
			if err != nil {
				return fmt.Errorf("cache listen_tcp: %w", err)
			}
			a.tcpAddr = ln.Addr()
			a.add(ln, &hostGuard{next: a.handler, port: ":" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), allowed: c.allowedHosts})
		}
	}
	if a.cfg.MetricsListen != "" {
		ln, err := net.Listen("tcp", a.cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics_listen: %w", err)
		}
		a.metricAddr = ln.Addr()
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics.registry, promhttp.HandlerOpts{}))
		a.add(ln, mux)
	}
	return nil
}

func (a *Agent) add(ln net.Listener, h http.Handler) {
	a.listeners = append(a.listeners, ln)
	a.servers = append(a.servers, a.newServer(h))
}

func (a *Agent) closeListeners() {
	for _, ln := range a.listeners {
		ln.Close()
	}
	if a.socketPath != "" {
		os.Remove(a.socketPath)
	}
}

// listenUnix creates the socket at path with mode, never reachable with a
// wider mode: it binds in a fresh 0700 directory beside path, sets the
// mode, then renames the socket into place. A stale socket at path (no
// one listening) is replaced; anything else there is an error.
func listenUnix(path string, mode os.FileMode) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("cache listen_unix %s exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("cache listen_unix %s: another process is listening there", path)
		}
	}
	dir, err := os.MkdirTemp(filepath.Dir(path), ".coffer-agent-")
	if err != nil {
		return nil, fmt.Errorf("cache listen_unix: %w", err)
	}
	defer os.RemoveAll(dir)
	tmp := filepath.Join(dir, "sock")
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("cache listen_unix: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cache listen_unix: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("cache listen_unix: %w", err)
	}
	return ln, nil
}

// health answers GET /v1/sys/health on the cache listener: 200 once the
// agent holds a token, 503 before.
func (a *Agent) health() (int, any) {
	authed := a.auth.token() != ""
	body := map[string]any{
		"authenticated":          authed,
		"event_stream_connected": a.follower.connected.Load(),
		"cache_entries":          a.cache.size.Load(),
		"stale_seconds":          a.cache.staleSeconds(),
		"server":                 a.base.Redacted(),
	}
	if !authed {
		return http.StatusServiceUnavailable, body
	}
	return http.StatusOK, body
}
