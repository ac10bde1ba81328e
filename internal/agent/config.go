package agent

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// MaxConfigSize bounds a configuration file.
const MaxConfigSize = 1 << 20

// Defaults of the cache block.
const (
	DefaultTTL        = 5 * time.Minute
	DefaultMaxStale   = time.Hour
	DefaultMaxEntries = 10000
	// DefaultCommandTimeout bounds a template's command.
	DefaultCommandTimeout = 30 * time.Second
)

// Config is an agent configuration file:
//
//	server  = "https://coffer.internal:8210"   # default $COFFER_ADDR
//	ca_cert = "/etc/coffer/ca.pem"
//	auto_auth {
//	  method         = "approle"              # approle, jwt or token
//	  role_id_file   = "/etc/coffer/role-id"
//	  secret_id_file = "/run/secrets/secret-id"
//	}
//	cache {
//	  listen_unix = "/run/coffer/agent.sock"
//	  listen_tcp  = "127.0.0.1:8211"
//	  allowed_hosts = ["coffer-agent"]       # optional, with listen_tcp
//	  ttl         = "5m"
//	  max_stale   = "1h"
//	}
//	template {
//	  source      = "/etc/app/config.tmpl"
//	  destination = "/etc/app/config.env"
//	  command     = "systemctl reload app"
//	}
//	metrics_listen = "127.0.0.1:8212"
//
// Unknown blocks and attributes are errors. ParseConfig fills the parsed
// forms (durations, modes) of the text fields; build a Config by parsing.
type Config struct {
	Server        string     `hcl:"server,optional"`
	CACert        string     `hcl:"ca_cert,optional"`
	AutoAuth      AutoAuth   `hcl:"auto_auth,block"`
	Cache         *Cache     `hcl:"cache,block"`
	Templates     []Template `hcl:"template,block"`
	MetricsListen string     `hcl:"metrics_listen,optional"`
}

// AutoAuth says how the agent logs in. Credential files are read again on
// every login, so a rotated secret_id or a refreshed Kubernetes token is
// picked up without a restart.
type AutoAuth struct {
	Method string `hcl:"method"`
	// approle
	RoleIDFile                     string `hcl:"role_id_file,optional"`
	SecretIDFile                   string `hcl:"secret_id_file,optional"`
	RemoveSecretIDFileAfterReading bool   `hcl:"remove_secret_id_file_after_reading,optional"`
	// jwt
	Role    string `hcl:"role,optional"`
	JWTFile string `hcl:"jwt_file,optional"`
	// token
	TokenFile string `hcl:"token_file,optional"`
	// SinkFile, when set, receives the current token (mode 0600) for
	// programs that need one; the agent itself keeps it in memory only.
	SinkFile string `hcl:"sink_file,optional"`
}

// Cache configures the local listeners and the read cache.
type Cache struct {
	ListenUnix string `hcl:"listen_unix,optional"`
	SocketMode string `hcl:"socket_mode,optional"` // octal, default 0600
	ListenTCP  string `hcl:"listen_tcp,optional"`  // loopback only
	// AllowedHosts are host names, besides localhost and loopback
	// addresses, that requests to listen_tcp may carry in their Host
	// header (names mapped to loopback in /etc/hosts, say). Any other Host
	// is refused, so a web page cannot reach the listener by DNS
	// rebinding.
	AllowedHosts []string `hcl:"allowed_hosts,optional"`
	TTL          string   `hcl:"ttl,optional"`
	MaxStale     string   `hcl:"max_stale,optional"` // "0s" turns stale answers off
	MaxEntries   int      `hcl:"max_entries,optional"`

	ttl, maxStale time.Duration
	socketMode    os.FileMode
	allowedHosts  []string // AllowedHosts in lower case
}

// Template renders a file from secrets.
type Template struct {
	Source         string `hcl:"source,optional"`
	Contents       string `hcl:"contents,optional"`
	Destination    string `hcl:"destination"`
	Perms          string `hcl:"perms,optional"` // octal, default 0600
	Command        string `hcl:"command,optional"`
	CommandTimeout string `hcl:"command_timeout,optional"`
	Signal         string `hcl:"signal,optional"`
	PIDFile        string `hcl:"pid_file,optional"`

	perms          os.FileMode
	commandTimeout time.Duration
	text           string // the template source, read at parse time
}

// ParseConfig parses and validates configuration source; filename is used
// in messages and to resolve nothing else (paths are taken as written).
// Template sources are read and parsed here so that a broken template is a
// startup error, not a runtime one.
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
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	return &c, nil
}

// LoadConfig reads and parses a configuration file.
func LoadConfig(path string) (*Config, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return ParseConfig(src, path)
}

func (c *Config) validate() error {
	if c.Server != "" {
		if err := checkServer(c.Server); err != nil {
			return err
		}
	}
	if err := c.AutoAuth.validate(); err != nil {
		return err
	}
	if c.Cache != nil {
		if err := c.Cache.validate(); err != nil {
			return err
		}
	}
	dests := map[string]bool{}
	for i := range c.Templates {
		t := &c.Templates[i]
		if err := t.validate(); err != nil {
			return fmt.Errorf("template %d: %w", i+1, err)
		}
		d := filepath.Clean(t.Destination)
		if dests[d] {
			return fmt.Errorf("template %d: destination %s is used by another template", i+1, t.Destination)
		}
		dests[d] = true
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			return fmt.Errorf("metrics_listen %q: want host:port", c.MetricsListen)
		}
	}
	if (c.Cache == nil || (c.Cache.ListenUnix == "" && c.Cache.ListenTCP == "")) && len(c.Templates) == 0 {
		return errors.New("nothing to do: configure a cache listener (listen_unix or listen_tcp) or a template")
	}
	return nil
}

func checkServer(addr string) error {
	u, err := url.Parse(addr)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server %q: want a URL like https://coffer.example:8210", addr)
	}
	return nil
}

func (a *AutoAuth) validate() error {
	type need struct {
		name, val string
	}
	var required, forbidden []need
	all := map[string]string{
		"role_id_file": a.RoleIDFile, "secret_id_file": a.SecretIDFile,
		"role": a.Role, "jwt_file": a.JWTFile, "token_file": a.TokenFile,
	}
	switch a.Method {
	case "approle":
		required = []need{{"role_id_file", a.RoleIDFile}, {"secret_id_file", a.SecretIDFile}}
	case "jwt":
		required = []need{{"role", a.Role}, {"jwt_file", a.JWTFile}}
	case "token":
		required = []need{{"token_file", a.TokenFile}}
	default:
		return fmt.Errorf("auto_auth method %q: supported methods are \"approle\", \"jwt\" and \"token\"", a.Method)
	}
	for _, r := range required {
		if r.val == "" {
			return fmt.Errorf("auto_auth method %q needs %s", a.Method, r.name)
		}
		delete(all, r.name)
	}
	for name, val := range all {
		if val != "" {
			forbidden = append(forbidden, need{name, val})
		}
	}
	if len(forbidden) > 0 {
		return fmt.Errorf("auto_auth method %q does not take %s", a.Method, forbidden[0].name)
	}
	if a.RemoveSecretIDFileAfterReading && a.Method != "approle" {
		return fmt.Errorf("auto_auth remove_secret_id_file_after_reading applies to method \"approle\" only")
	}
	return nil
}

func (c *Cache) validate() error {
	var err error
	if c.ttl, err = parseDuration("cache ttl", c.TTL, DefaultTTL); err != nil {
		return err
	}
	if c.ttl <= 0 {
		return errors.New("cache ttl must be positive")
	}
	if c.maxStale, err = parseDuration("cache max_stale", c.MaxStale, DefaultMaxStale); err != nil {
		return err
	}
	if c.maxStale != 0 && c.maxStale < c.ttl {
		return fmt.Errorf("cache max_stale (%s) must be 0 (never serve stale values) or at least ttl (%s)", c.maxStale, c.ttl)
	}
	switch {
	case c.MaxEntries == 0:
		c.MaxEntries = DefaultMaxEntries
	case c.MaxEntries < 0 || c.MaxEntries > 1_000_000:
		return errors.New("cache max_entries must be 1 to 1000000")
	}
	c.socketMode = 0o600
	if c.SocketMode != "" {
		if c.ListenUnix == "" {
			return errors.New("cache socket_mode needs listen_unix")
		}
		m, err := parseMode("cache socket_mode", c.SocketMode)
		if err != nil {
			return err
		}
		if m&0o007 != 0 {
			return fmt.Errorf("cache socket_mode %s gives other users access to the agent's secrets; use 0600 or 0660", c.SocketMode)
		}
		if m&0o600 != 0o600 {
			return fmt.Errorf("cache socket_mode %s must give the owner read and write", c.SocketMode)
		}
		c.socketMode = m
	}
	if c.ListenTCP != "" {
		host, port, err := net.SplitHostPort(c.ListenTCP)
		if err != nil {
			return fmt.Errorf("cache listen_tcp %q: want host:port", c.ListenTCP)
		}
		if !isLoopback(host) {
			return fmt.Errorf("cache listen_tcp %q: the cache listener answers without a token, so it listens on loopback only (127.0.0.1 or [::1]); use listen_unix to share it with other containers", c.ListenTCP)
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			return fmt.Errorf("cache listen_tcp %q: bad port", c.ListenTCP)
		}
	}
	if len(c.AllowedHosts) > 0 && c.ListenTCP == "" {
		return errors.New("cache allowed_hosts needs listen_tcp")
	}
	c.allowedHosts = nil
	for _, h := range c.AllowedHosts {
		if !validHostName(h) {
			return fmt.Errorf("cache allowed_hosts %q: want a host name without port, scheme or wildcard, like \"coffer-agent\"", h)
		}
		c.allowedHosts = append(c.allowedHosts, strings.ToLower(h))
	}
	return nil
}

// validHostName reports whether s is a DNS host name: letters, digits,
// '-', '_' and non-empty dot-separated labels.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func (t *Template) validate() error {
	switch {
	case t.Destination == "":
		return errors.New("destination is required")
	case (t.Source == "") == (t.Contents == ""):
		return errors.New("give exactly one of source and contents")
	case t.Signal != "" && t.PIDFile == "":
		return errors.New("signal needs pid_file")
	case t.PIDFile != "" && t.Signal == "":
		return errors.New("pid_file needs signal")
	}
	var err error
	t.perms = 0o600
	if t.Perms != "" {
		if t.perms, err = parseMode("perms", t.Perms); err != nil {
			return err
		}
		// A rendered file holds secrets: share it through its group
		// (0640), never with every user of the machine.
		if t.perms&0o007 != 0 {
			return fmt.Errorf("perms %s gives other users access to a file of secrets; use a group (e.g. 0640)", t.Perms)
		}
	}
	if t.commandTimeout, err = parseDuration("command_timeout", t.CommandTimeout, DefaultCommandTimeout); err != nil {
		return err
	}
	if t.commandTimeout <= 0 {
		return errors.New("command_timeout must be positive")
	}
	if t.Signal != "" {
		if _, err := parseSignal(t.Signal); err != nil {
			return err
		}
	}
	t.text = t.Contents
	if t.Source != "" {
		b, err := os.ReadFile(t.Source)
		if err != nil {
			return fmt.Errorf("read source: %w", err)
		}
		t.text = string(b)
	}
	// Parse now so that a syntax error stops the agent at startup.
	if _, err := template.New(t.name()).Funcs(templateFuncStubs()).Parse(t.text); err != nil {
		return err
	}
	return nil
}

// name identifies the template in logs and errors.
func (t *Template) name() string {
	if t.Source != "" {
		return t.Source
	}
	return t.Destination
}

func parseDuration(what, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s %q: want a duration like \"30s\" or \"5m\"", what, s)
	}
	return d, nil
}

func parseMode(what, s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("%s %q: want an octal mode like \"0600\"", what, s)
	}
	return os.FileMode(m), nil
}

// isLoopback reports whether host is a loopback address literal or
// "localhost".
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ttl returns the cache TTL, or the default without a cache block.
func (c *Config) ttl() time.Duration {
	if c.Cache == nil {
		return DefaultTTL
	}
	return c.Cache.ttl
}

func (c *Config) maxStale() time.Duration {
	if c.Cache == nil {
		return DefaultMaxStale
	}
	return c.Cache.maxStale
}

func (c *Config) maxEntries() int {
	if c.Cache == nil || c.Cache.MaxEntries == 0 {
		return DefaultMaxEntries
	}
	return c.Cache.MaxEntries
}
