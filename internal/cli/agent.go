package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coffer-dev/coffer/internal/agent"
)

// agentShutdownTimeout bounds the drain of in-flight requests at exit.
const agentShutdownTimeout = 10 * time.Second

func (e *env) agentCommand() *cobra.Command {
	var config, logLevel string
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the Coffer agent: auto-auth, a local read cache and templates",
		Long: `Run the Coffer agent beside an application.

It logs in with an auth method (approle, jwt or token) and keeps its token
renewed, serves GET /v1/secrets/{name} to local applications from a cache
(on a unix socket or loopback TCP, without a token), follows the server's
event stream to drop changed values, keeps serving the last good values for
up to max_stale when the server is unreachable, and renders templates.

It reads --config FILE (HCL); see docs/agent.md. The server address comes
from the file's "server", else --address, else $COFFER_ADDR.
It runs until SIGINT or SIGTERM.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level := slog.LevelInfo
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %v", err)
			}
			if config == "" {
				return errors.New("give --config FILE; see docs/agent.md")
			}
			cfg, err := agent.LoadConfig(config)
			if err != nil {
				return err
			}
			if cfg.Server == "" {
				cfg.Server = e.address
			}
			if cfg.Server == "" {
				cfg.Server = e.getenv("COFFER_ADDR")
			}
			if cfg.CACert == "" {
				cfg.CACert = e.caCert
			}
			if cfg.CACert == "" {
				cfg.CACert = e.getenv("COFFER_CACERT")
			}
			log := newLogger(e.stderr, level)
			a, err := agent.New(cfg, agent.Options{Logger: log})
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if err := a.Start(ctx); err != nil {
				return err
			}
			<-ctx.Done()
			log.Info("shutting down the agent")
			sctx, cancel := context.WithTimeout(context.Background(), agentShutdownTimeout)
			defer cancel()
			return a.Shutdown(sctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&config, "config", "", "agent configuration file (HCL)")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}
