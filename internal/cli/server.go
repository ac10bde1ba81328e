package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/logredact"
	"github.com/coffer-dev/coffer/internal/server"
	"github.com/coffer-dev/coffer/internal/storage"
	"github.com/coffer-dev/coffer/internal/storage/bolt"
	"github.com/coffer-dev/coffer/internal/storage/mem"
	"github.com/coffer-dev/coffer/internal/testhook"
)

const defaultListen = "127.0.0.1:8210"

func (e *env) serverCommand() *cobra.Command {
	var (
		dev      bool
		listen   string
		devData  string
		config   string
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Coffer server",
		Long: `Run the Coffer server.

With --dev it starts at once on 127.0.0.1 with an in-memory store (or --dev-data DIR),
initialized and unsealed, and prints a root token. Never use --dev in production.

Otherwise it reads --config FILE (HCL: listener, storage, seal); see docs/configuration.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %v", err)
			}
			log := newLogger(e.stderr, level)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch {
			case dev && config != "":
				return errors.New("give --dev or --config, not both")
			case dev:
				return e.runDev(ctx, log, listen, devData)
			case config != "":
				return e.runConfig(ctx, log, config, listen)
			default:
				return errors.New("give --dev for a dev server or --config FILE for a real one")
			}
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dev, "dev", false, "run a dev server: loopback only, initialized and unsealed, in memory")
	f.StringVar(&listen, "listen", "", "address to listen on (dev default "+defaultListen+"; overrides the config file)")
	f.StringVar(&devData, "dev-data", "", "keep dev server data in this directory instead of memory")
	f.StringVar(&config, "config", "", "configuration file (HCL)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func (e *env) runDev(ctx context.Context, log *slog.Logger, listen, dataDir string) error {
	if listen == "" {
		listen = defaultListen
	}
	if !isLoopbackAddr(listen) {
		return fmt.Errorf("--dev listens on loopback only; %s is not", listen)
	}
	var (
		be       storage.Backend = mem.New()
		keyFile  string
		where    = "in memory; everything is lost when it stops"
		auditDir string
	)
	if dataDir == "" {
		tmp, err := os.MkdirTemp("", "coffer-dev-audit-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		auditDir = tmp
	} else {
		auditDir = filepath.Join(dataDir, "audit")
	}
	if dataDir != "" {
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return err
		}
		b, err := bolt.Open(filepath.Join(dataDir, "coffer.db"))
		if err != nil {
			return err
		}
		be, keyFile, where = b, filepath.Join(dataDir, "unseal.key"), "in "+dataDir
	}
	srv, err := server.New(server.Options{Backend: be, KeyFile: keyFile, Address: listen, Logger: log, Audit: core.AuditConfig{Dir: auditDir}})
	if err != nil {
		be.Close()
		return err
	}
	if err := srv.Start(ctx); err != nil {
		return err
	}
	root, err := devRootToken(ctx, srv, dataDir)
	if err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	e.printf(`Coffer dev server is running (%s). Do not use it in production.

  Address:    %s
  Root token: %s
  Audit log:  %s

Paste these lines to point the CLI at it:

  export COFFER_ADDR=%s
  export COFFER_TOKEN=%s
  export COFFER_AUDIT_DIR=%s

`, where, srv.URL(), root, auditDir, srv.URL(), root, auditDir)
	<-ctx.Done()
	return shutdown(srv, log)
}

// devRootToken initializes a fresh dev server, or reads the token saved
// beside a --dev-data store.
func devRootToken(ctx context.Context, srv *server.Server, dataDir string) (string, error) {
	tokenPath := filepath.Join(dataDir, "root-token")
	st, err := srv.Core.Status(ctx)
	if err != nil {
		return "", err
	}
	if st.Initialized {
		b, err := os.ReadFile(tokenPath)
		if err != nil {
			return "", fmt.Errorf("dev data in %s has no root-token file: %w", dataDir, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	res, err := srv.Core.Init(ctx, 1, 1)
	if err != nil {
		return "", err
	}
	if dataDir == "" {
		// In memory: Shamir with one share; unseal with it right away.
		if _, err := srv.Core.Unseal(ctx, res.Keys[0]); err != nil {
			return "", err
		}
		return res.RootToken, nil
	}
	if err := os.WriteFile(tokenPath, []byte(res.RootToken+"\n"), 0o600); err != nil {
		return "", err
	}
	return res.RootToken, nil
}

func (e *env) runConfig(ctx context.Context, log *slog.Logger, path, listen string) error {
	cfg, err := server.LoadConfig(path)
	if err != nil {
		return err
	}
	if listen != "" {
		cfg.Listener.Address = listen
	}
	if cfg.LogLevel != "" {
		var level slog.Level
		level.UnmarshalText([]byte(cfg.LogLevel))
		log = newLogger(e.stderr, level)
	}
	var tlsCfg *tls.Config
	if cfg.Listener.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.Listener.TLSCertFile, cfg.Listener.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		// Client certificates are requested, not required: the cert auth method
		// verifies them against each role's CAs at login.
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}
	} else if !isLoopbackAddr(cfg.Listener.Address) {
		return fmt.Errorf("listener %s is not loopback, so it needs tls_cert_file and tls_key_file", cfg.Listener.Address)
	}
	be, err := cfg.OpenStorage(ctx, log)
	if err != nil {
		return err
	}
	snapshots := cfg.SnapshotSchedule()
	// Test failpoint (internal/e2e/ha_test.go): hold scheduled snapshots
	// before they are renamed into place, so a test can kill the writer.
	snapshots.Hold, _ = time.ParseDuration(testhook.Env("COFFER_FAILPOINT_SNAPSHOT_HOLD"))
	cluster := cfg.ClusterOptions()
	cluster.Version = Version
	srv, err := server.New(server.Options{Backend: be, Cluster: cluster, KeyFile: cfg.KeyFile(), Address: cfg.Listener.Address, TLS: tlsCfg, Logger: log, Audit: cfg.AuditConfig(), AuditSinks: cfg.AuditSinks(), RateLimits: cfg.RateLimits(),
		Snapshots: snapshots, MetricsAccess: cfg.MetricsAccess(), Rotation: cfg.RotationConfig()})
	if err != nil {
		be.Close()
		return err
	}
	if err := srv.Start(ctx); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	st, _ := srv.Core.Status(ctx)
	log.Info("coffer server listening", "address", srv.URL(), "storage", cfg.StorageName(),
		"seal", st.Type, "initialized", st.Initialized, "sealed", st.Sealed)
	if !st.Initialized {
		log.Info("server is not initialized; run: coffer operator init")
	} else if st.Sealed {
		log.Info("server is sealed; run: coffer operator unseal")
	}
	<-ctx.Done()
	return shutdown(srv, log)
}

func shutdown(srv *server.Server, log *slog.Logger) error {
	log.Info("shutting down")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Shutdown(ctx)
}

func isLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newLogger is the server's operational log: text to w, with credentials
// scrubbed by logredact before they can be written.
func newLogger(w io.Writer, level slog.Level) *slog.Logger {
	return slog.New(logredact.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})))
}
