package server

import (
	"context"
	"time"

	"github.com/coffer-dev/coffer/internal/rotation"
	"github.com/coffer-dev/coffer/internal/testhook"
)

// envRotationTick shortens the rotation scheduler's tick, for tests only.
const envRotationTick = "COFFER_TEST_ROTATION_TICK"

// rotationTick is how often the rotation scheduler looks for due work.
const rotationTick = 10 * time.Second

// rotationLoop runs the rotation scheduler (rotation.Engine.RunDue) on the
// leader until the server stops: at once, to resume rotations a crash
// interrupted, then every tick. Shutting down cancels the tick in progress;
// an interrupted rotation is resumed from its last durable step.
func (s *Server) rotationLoop() {
	iv := rotationTick
	if d, err := time.ParseDuration(testhook.Env(envRotationTick)); err == nil && d > 0 {
		iv = d
	}
	t := time.NewTicker(iv)
	defer t.Stop()
	for {
		if lead, ok := s.leaderCtx(); ok && !s.Core.Sealed() {
			ctx, cancel := context.WithTimeout(lead, 10*time.Minute)
			stopped := make(chan struct{})
			go func() {
				select {
				case <-s.stop:
					cancel()
				case <-stopped:
				}
			}()
			if _, err := s.Core.Rotation.RunDue(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("rotation scheduler tick failed; retrying at the next tick", "error", err)
			}
			close(stopped)
			cancel()
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// rotateDBRoots rotates the admin passwords of database connections whose
// root_rotation_period has passed, counting each outcome in the rotation
// metrics (rotator "db-root").
func (s *Server) rotateDBRoots(ctx context.Context) {
	res, err := s.Core.DB.RotateRootDue(ctx)
	if err != nil {
		s.log.Warn("scheduled database root rotation failed; retrying at the next job tick", "error", err)
		return
	}
	attempts := s.Core.Rotation.Metrics().Attempts
	for _, name := range res.Rotated {
		attempts.WithLabelValues("db-root", rotation.OutcomeSuccess).Inc()
		s.log.Info("rotated a database connection's admin password", "connection", name)
	}
	for name, err := range res.Failed {
		attempts.WithLabelValues("db-root", rotation.OutcomeError).Inc()
		s.log.Warn("scheduled database root rotation failed; retrying at the next job tick", "connection", name, "error", err)
	}
}
