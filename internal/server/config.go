package server

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/coffer-dev/coffer/internal/auditsink"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/httpapi"
	"github.com/coffer-dev/coffer/internal/ratelimit"
)

// MaxConfigSize bounds a configuration file.
const MaxConfigSize = 1 << 20

// Config is a server configuration file:
//
//	listener "tcp" {
//	  address       = "0.0.0.0:8200"
//	  tls_cert_file = "/etc/coffer/tls.crt"
//	  tls_key_file  = "/etc/coffer/tls.key"
//	}
//	storage "bolt" { path = "/var/lib/coffer/coffer.db" }
//	# or, for several nodes sharing one database (docs/ha.md):
//	# storage "postgres" { url = "postgres://coffer@db.internal/coffer" }
//	# cluster { node_id = "coffer-1"  api_addr = "https://coffer-1.internal:8200" }
//	seal "keyfile" { path = "/etc/coffer/unseal.key" }   # or: seal "shamir" {}
//	log_level = "info"
//
// Unknown blocks and attributes are errors.
type Config struct {
	Listener Listener  `hcl:"listener,block"`
	Storage  Storage   `hcl:"storage,block"`
	Seal     *Seal     `hcl:"seal,block"`
	Audit    *Audit    `hcl:"audit,block"`
	Limits   []Limit   `hcl:"rate_limit,block"`
	Snapshot *Snapshot `hcl:"snapshot,block"`
	Cluster  *Cluster  `hcl:"cluster,block"`
	LogLevel string    `hcl:"log_level,optional"`
	// Telemetry decides who may scrape /v1/sys/metrics.
	Telemetry *Telemetry `hcl:"telemetry,block"`
	// Rotation configures secret rotation (docs/rotation.md).
	Rotation *Rotation `hcl:"rotation,block"`
}

// Rotation configures secret rotation. Webhook rotators refuse private,
// loopback and link-local addresses unless allowed here:
//
//	rotation {
//	  webhook_allowed_hosts = ["hooks.internal.example", "10.0.0.5"]
//	}
type Rotation struct {
	WebhookAllowedHosts []string `hcl:"webhook_allowed_hosts,optional"`
	// WebhookAllowPrivateAddresses lets webhooks reach every private address (labs only).
	WebhookAllowPrivateAddresses bool `hcl:"webhook_allow_private_addresses,optional"`
}

// RotationConfig returns the rotation settings (validated already).
func (c *Config) RotationConfig() core.RotationConfig {
	if c.Rotation == nil {
		return core.RotationConfig{}
	}
	return core.RotationConfig{WebhookAllowedHosts: c.Rotation.WebhookAllowedHosts, WebhookAllowPrivate: c.Rotation.WebhookAllowPrivateAddresses}
}

// Telemetry configures metrics access. By default a scrape needs a token
// with read on sys/metrics:
//
//	telemetry {
//	  unauthenticated_metrics_access = true            # Prometheus scrapes without a token
//	  metrics_allowed_cidrs          = ["10.0.0.0/8"]  # ...but only from these networks
//	}
type Telemetry struct {
	UnauthenticatedMetricsAccess bool     `hcl:"unauthenticated_metrics_access,optional"`
	MetricsAllowedCIDRs          []string `hcl:"metrics_allowed_cidrs,optional"`
}

// MetricsAccess returns the configured metrics access (validated already).
func (c *Config) MetricsAccess() httpapi.MetricsAccess {
	var m httpapi.MetricsAccess
	if t := c.Telemetry; t != nil {
		m.Unauthenticated = t.UnauthenticatedMetricsAccess
		for _, s := range t.MetricsAllowedCIDRs {
			if p, err := netip.ParsePrefix(s); err == nil {
				m.AllowedCIDRs = append(m.AllowedCIDRs, p)
			}
		}
	}
	return m
}

// Snapshot schedules backups into a directory, keeping the newest Retain:
//
//	snapshot {
//	  path     = "/var/lib/coffer/snapshots"
//	  interval = "6h"
//	  retain   = 28
//	}
type Snapshot struct {
	Path     string `hcl:"path"`
	Interval string `hcl:"interval,optional"` // default 24h
	Retain   int    `hcl:"retain,optional"`   // default 7
}

// SnapshotSchedule returns the scheduled snapshot settings (zero when none).
func (c *Config) SnapshotSchedule() SnapshotSchedule {
	if c.Snapshot == nil {
		return SnapshotSchedule{}
	}
	iv, _ := time.ParseDuration(c.Snapshot.Interval)
	return SnapshotSchedule{Dir: c.Snapshot.Path, Interval: iv, Retain: c.Snapshot.Retain}
}

// Limit is a token-bucket rate limit for the paths under a prefix
// ("default" or "" for every path); the longest matching prefix applies:
//
//	rate_limit "default" { identity_rps = 100  identity_burst = 200  source_rps = 200 }
//	rate_limit "prod/"   { identity_rps = 20 }
type Limit struct {
	Prefix        string  `hcl:"prefix,label"`
	IdentityRPS   float64 `hcl:"identity_rps,optional"`
	IdentityBurst int     `hcl:"identity_burst,optional"`
	SourceRPS     float64 `hcl:"source_rps,optional"`
	SourceBurst   int     `hcl:"source_burst,optional"`
}

// RateLimits returns the configured rules.
func (c *Config) RateLimits() []ratelimit.Rule {
	var out []ratelimit.Rule
	for _, l := range c.Limits {
		p := l.Prefix
		if p == "default" {
			p = ""
		}
		ib, sb := l.IdentityBurst, l.SourceBurst
		if ib == 0 {
			ib = int(math.Max(1, 2*l.IdentityRPS))
		}
		if sb == 0 {
			sb = int(math.Max(1, 2*l.SourceRPS))
		}
		out = append(out, ratelimit.Rule{Prefix: p, IdentityRate: l.IdentityRPS, IdentityBurst: ib, SourceRate: l.SourceRPS, SourceBurst: sb})
	}
	return out
}

// Audit configures the local audit log. It is on by default, in an "audit"
// directory beside the storage file; only `enabled = false` turns it off.
type Audit struct {
	Enabled         *bool  `hcl:"enabled,optional"`
	Path            string `hcl:"path,optional"`
	MaxFileMB       int    `hcl:"max_file_mb,optional"`
	MaxFileAge      string `hcl:"max_file_age,optional"`
	Retention       string `hcl:"retention,optional"`
	CheckpointEvery int    `hcl:"checkpoint_every,optional"`
	Sinks           []Sink `hcl:"sink,block"`
}

// Sink is a remote audit destination fed from the local log:
//
//	sink "siem" {
//	  type    = "webhook"              # webhook, syslog or stdout
//	  url     = "https://siem.example/collect"
//	  headers = { Authorization = "Splunk ..." }
//	}
//	sink "local-syslog" {
//	  type    = "syslog"
//	  address = "udp://127.0.0.1:514"  # udp://, tcp:// or unix:///dev/log
//	}
type Sink struct {
	Name    string            `hcl:"name,label"`
	Type    string            `hcl:"type"`
	URL     string            `hcl:"url,optional"`
	Headers map[string]string `hcl:"headers,optional"`
	Address string            `hcl:"address,optional"`
}

// Listener is the API listener.
type Listener struct {
	Type        string `hcl:"type,label"`
	Address     string `hcl:"address"`
	TLSCertFile string `hcl:"tls_cert_file,optional"`
	TLSKeyFile  string `hcl:"tls_key_file,optional"`
}

// Cluster names this node among those sharing a postgres storage. Both
// fields are optional: node_id defaults to the host name and listener
// address, api_addr to the listener's URL.
type Cluster struct {
	NodeID  string `hcl:"node_id,optional"`
	APIAddr string `hcl:"api_addr,optional"`
}

// PostgresURLEnv is the environment variable that gives the postgres URL
// when the storage block has none, keeping the password out of the file.
const PostgresURLEnv = "COFFER_POSTGRES_URL"

// Storage selects the backend: "bolt" with a path, or "postgres" with a
// url (or none, and the URL in $COFFER_POSTGRES_URL).
type Storage struct {
	Type string `hcl:"type,label"`
	Path string `hcl:"path,optional"`
	URL  string `hcl:"url,optional"`
	// MaxConns bounds the postgres connection pool of this node; 0 means 16.
	MaxConns int `hcl:"max_connections,optional"`
	// Timeout bounds each postgres operation; default 5s.
	Timeout string `hcl:"timeout,optional"`
}

// PostgresURL returns the configured postgres URL, from the file or the
// environment.
func (s Storage) PostgresURL() string {
	if s.URL != "" {
		return s.URL
	}
	return os.Getenv(PostgresURLEnv)
}

// Seal selects how the root key is protected.
type Seal struct {
	Type string `hcl:"type,label"`
	Path string `hcl:"path,optional"`
}

// ParseConfig parses and validates configuration source. filename is used in messages.
func ParseConfig(src []byte, filename string) (*Config, error) {
	if len(src) > MaxConfigSize {
		return nil, fmt.Errorf("%s: larger than %d bytes", filename, MaxConfigSize)
	}
	f, diags := hclsyntax.ParseConfig(src, filename, hcl.InitialPos)
	if diags.HasErrors() {
		return nil, errors.New(diags.Error())
	}
	var c Config
	if diags := gohcl.DecodeBody(f.Body, nil, &c); diags.HasErrors() {
		return nil, errors.New(diags.Error())
	}
	return &c, c.validate(filename)
}

// LoadConfig reads and parses a configuration file.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(src, path)
}

func (c *Config) validate(file string) error {
	if c.Listener.Type != "tcp" {
		return fmt.Errorf("%s: listener %q: only \"tcp\" is supported", file, c.Listener.Type)
	}
	host, _, err := net.SplitHostPort(c.Listener.Address)
	if err != nil {
		return fmt.Errorf("%s: listener address %q: %v", file, c.Listener.Address, err)
	}
	tls := c.Listener.TLSCertFile != "" || c.Listener.TLSKeyFile != ""
	if tls && (c.Listener.TLSCertFile == "" || c.Listener.TLSKeyFile == "") {
		return fmt.Errorf("%s: listener needs both tls_cert_file and tls_key_file", file)
	}
	if !tls && !isLoopback(host) {
		return fmt.Errorf("%s: listener %s is not loopback, so it needs tls_cert_file and tls_key_file", file, c.Listener.Address)
	}
	switch st := c.Storage; st.Type {
	case "bolt":
		if st.Path == "" {
			return fmt.Errorf("%s: storage \"bolt\" needs path", file)
		}
		if st.URL != "" || st.MaxConns != 0 || st.Timeout != "" {
			return fmt.Errorf("%s: storage \"bolt\" takes only path", file)
		}
		if c.Cluster != nil {
			return fmt.Errorf("%s: a cluster block needs storage \"postgres\"", file)
		}
	case "postgres":
		if st.Path != "" {
			return fmt.Errorf("%s: storage \"postgres\" takes url, not path", file)
		}
		if st.PostgresURL() == "" {
			return fmt.Errorf("%s: storage \"postgres\" needs url, or the URL in $%s", file, PostgresURLEnv)
		}
		if st.MaxConns < 0 || st.MaxConns > 1000 {
			return fmt.Errorf("%s: storage \"postgres\" max_connections must be 1 to 1000", file)
		}
		if st.Timeout != "" {
			if d, err := time.ParseDuration(st.Timeout); err != nil || d < 100*time.Millisecond || d > 5*time.Minute {
				return fmt.Errorf("%s: storage \"postgres\" timeout must be a duration from 100ms to 5m", file)
			}
		}
		if a := c.Audit; a == nil || ((a.Enabled == nil || *a.Enabled) && a.Path == "") {
			return fmt.Errorf("%s: storage \"postgres\" keeps no local files, so set audit { path = \"...\" } for this node's audit log (or enabled = false)", file)
		}
		if cl := c.Cluster; cl != nil && cl.APIAddr != "" {
			if u, err := url.Parse(cl.APIAddr); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%s: cluster api_addr must be a URL like https://coffer-1.internal:8200", file)
			}
		}
	default:
		return fmt.Errorf("%s: storage %q: supported types are \"bolt\" and \"postgres\"", file, c.Storage.Type)
	}
	if c.Seal != nil {
		switch c.Seal.Type {
		case "shamir":
			if c.Seal.Path != "" {
				return fmt.Errorf("%s: seal \"shamir\" takes no path", file)
			}
		case "keyfile":
			if c.Seal.Path == "" {
				return fmt.Errorf("%s: seal \"keyfile\" needs path", file)
			}
		default:
			return fmt.Errorf("%s: seal %q: supported types are \"shamir\" and \"keyfile\"", file, c.Seal.Type)
		}
	}
	if a := c.Audit; a != nil {
		for name, v := range map[string]string{"max_file_age": a.MaxFileAge, "retention": a.Retention} {
			if v == "" {
				continue
			}
			if d, err := time.ParseDuration(v); err != nil || d < 0 {
				return fmt.Errorf("%s: audit %s must be a duration like 24h", file, name)
			}
		}
		if a.MaxFileMB < 0 || a.MaxFileMB > 10240 || a.CheckpointEvery < 0 {
			return fmt.Errorf("%s: audit max_file_mb must be 1 to 10240 and checkpoint_every positive", file)
		}
		seen := map[string]bool{}
		for _, sk := range a.Sinks {
			if seen[sk.Name] || !sinkName.MatchString(sk.Name) {
				return fmt.Errorf("%s: audit sink %q: names must be unique and match [a-z0-9_-]{1,64}", file, sk.Name)
			}
			seen[sk.Name] = true
			if _, err := sk.Build(); err != nil {
				return fmt.Errorf("%s: audit sink %q: %v", file, sk.Name, err)
			}
		}
	}
	if sn := c.Snapshot; sn != nil {
		if sn.Path == "" {
			return fmt.Errorf("%s: snapshot needs path", file)
		}
		if sn.Interval != "" {
			// Below a minute is for tests; production schedules are hours.
			if d, err := time.ParseDuration(sn.Interval); err != nil || d < time.Second {
				return fmt.Errorf("%s: snapshot interval must be a duration of at least 1s", file)
			}
		}
		if sn.Retain < 0 {
			return fmt.Errorf("%s: snapshot retain must be positive", file)
		}
	}
	if _, err := ratelimit.New(c.RateLimits(), nil); err != nil {
		return fmt.Errorf("%s: %v", file, err)
	}
	if t := c.Telemetry; t != nil {
		if len(t.MetricsAllowedCIDRs) > 0 && !t.UnauthenticatedMetricsAccess {
			return fmt.Errorf("%s: telemetry metrics_allowed_cidrs applies only with unauthenticated_metrics_access = true", file)
		}
		for _, cidr := range t.MetricsAllowedCIDRs {
			if _, err := netip.ParsePrefix(cidr); err != nil {
				return fmt.Errorf("%s: telemetry metrics_allowed_cidrs: %q is not a CIDR like 10.0.0.0/8", file, cidr)
			}
		}
	}
	if r := c.Rotation; r != nil {
		for _, h := range r.WebhookAllowedHosts {
			if h == "" || (strings.ContainsAny(h, "/:@ ") && net.ParseIP(h) == nil) {
				return fmt.Errorf("%s: rotation webhook_allowed_hosts: %q is not a host name or IP address (no scheme, port or path)", file, h)
			}
		}
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("%s: log_level must be debug, info, warn or error", file)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// KeyFile returns the key-file path, or "" for the Shamir seal.
func (c *Config) KeyFile() string {
	if c.Seal != nil && c.Seal.Type == "keyfile" {
		return c.Seal.Path
	}
	return ""
}

// AuditConfig returns the audit settings for the core: the directory (empty
// when disabled) and rotation options.
func (c *Config) AuditConfig() core.AuditConfig {
	a := c.Audit
	if a == nil {
		a = &Audit{}
	}
	if a.Enabled != nil && !*a.Enabled {
		return core.AuditConfig{}
	}
	dir := a.Path
	if dir == "" {
		dir = filepath.Join(filepath.Dir(c.Storage.Path), "audit")
	}
	out := core.AuditConfig{Dir: dir}
	out.Options.MaxFileBytes = int64(a.MaxFileMB) << 20
	out.Options.MaxFileAge, _ = time.ParseDuration(a.MaxFileAge)
	out.Options.Retention, _ = time.ParseDuration(a.Retention)
	out.Options.CheckpointEvery = a.CheckpointEvery
	return out
}

var sinkName = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// Build returns the sink this block describes.
func (s Sink) Build() (auditsink.Sink, error) {
	switch s.Type {
	case "stdout":
		return &auditsink.Writer{W: os.Stdout}, nil
	case "webhook":
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, errors.New("webhook needs url = \"https://...\"")
		}
		return &auditsink.Webhook{URL: s.URL, Headers: s.Headers}, nil
	case "syslog":
		network, addr, ok := strings.Cut(s.Address, "://")
		if !ok || (network != "udp" && network != "tcp" && network != "unix") || addr == "" {
			return nil, errors.New("syslog needs address = \"udp://host:514\", \"tcp://host:601\" or \"unix:///dev/log\"")
		}
		return &auditsink.Syslog{Network: network, Address: addr}, nil
	}
	return nil, fmt.Errorf("type %q: want webhook, syslog or stdout", s.Type)
}

// AuditSinks returns the configured sinks by name.
func (c *Config) AuditSinks() map[string]auditsink.Sink {
	out := map[string]auditsink.Sink{}
	if c.Audit == nil {
		return out
	}
	for _, s := range c.Audit.Sinks {
		if sk, err := s.Build(); err == nil {
			out[s.Name] = sk
		}
	}
	return out
}
