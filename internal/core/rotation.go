package core

import (
	"context"
	"os"
	"syscall"
	"time"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/events"
	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/rotation/dbrotate"
	"github.com/coffer-dev/coffer/internal/rotation/webhook"
	"github.com/coffer-dev/coffer/internal/secret"
	"github.com/coffer-dev/coffer/internal/testhook"
)

// Environment variables for crash tests only (internal/e2e): the first
// makes the server kill itself (SIGKILL, no cleanup) right after the named
// rotation step is durable; the second shortens rotation leases so that the
// restarted server takes over the dead one's rotation quickly.
const (
	envRotationCrashAfter = "COFFER_TEST_ROTATION_CRASH_AFTER"
	envRotationLease      = "COFFER_TEST_ROTATION_LEASE"
)

// RotationConfig configures the rotators. The zero value is the safe default.
type RotationConfig struct {
	// WebhookAllowedHosts are hosts webhooks may reach although they are
	// (or resolve to) private or loopback addresses.
	WebhookAllowedHosts []string
	// WebhookAllowPrivate lets webhooks reach every private address.
	WebhookAllowPrivate bool
}

// newRotation builds the rotation engine with every rotator.
func newRotation(cfg Config, store rotation.Store, secrets *secret.Service, bus *events.Bus, auditFn func(context.Context, *audit.Record) error) *rotation.Engine {
	rc := rotation.Config{
		Store: store, Secrets: secrets, Events: bus, Audit: auditFn, Logger: cfg.Logger, Now: cfg.Now,
		Rotators: map[string]rotation.Rotator{
			"password":   rotation.PasswordRotator{},
			"postgresql": dbrotate.Postgres(),
			"mysql":      dbrotate.MySQL(),
			"webhook": webhook.New(webhook.Config{AllowedHosts: cfg.Rotation.WebhookAllowedHosts,
				AllowPrivate: cfg.Rotation.WebhookAllowPrivate}),
		},
	}
	if step := testhook.Env(envRotationCrashAfter); step != "" {
		rc.Failpoint = func(s string) bool {
			if s == step {
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				time.Sleep(time.Minute) // the signal is on its way
			}
			return false
		}
	}
	if d, err := time.ParseDuration(testhook.Env(envRotationLease)); err == nil && d > 0 {
		rc.LeaseTTL = d
	}
	return rotation.New(rc)
}
