package server

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclsyntax"
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
//	seal "keyfile" { path = "/etc/coffer/unseal.key" }   # or: seal "shamir" {}
//	log_level = "info"
//
// Unknown blocks and attributes are errors.
type Config struct {
	Listener Listener `hcl:"listener,block"`
	Storage  Storage  `hcl:"storage,block"`
	Seal     *Seal    `hcl:"seal,block"`
	LogLevel string   `hcl:"log_level,optional"`
}

// Listener is the API listener.
type Listener struct {
	Type        string `hcl:"type,label"`
	Address     string `hcl:"address"`
	TLSCertFile string `hcl:"tls_cert_file,optional"`
	TLSKeyFile  string `hcl:"tls_key_file,optional"`
}

// Storage selects the backend.
type Storage struct {
	Type string `hcl:"type,label"`
	Path string `hcl:"path,optional"`
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
	switch c.Storage.Type {
	case "bolt":
		if c.Storage.Path == "" {
			return fmt.Errorf("%s: storage \"bolt\" needs path", file)
		}
	default:
		return fmt.Errorf("%s: storage %q: supported types are \"bolt\"", file, c.Storage.Type)
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
