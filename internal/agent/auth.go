package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coffer-dev/coffer/client"
)

// maxCredentialFile bounds a role_id, secret_id, JWT or token file.
const maxCredentialFile = 64 << 10

// authenticator keeps the agent logged in: it logs in with the configured
// method, renews the token at two thirds of its remaining life, and logs in
// again when a renewal fails, when the token nears its maximum lifetime, or
// when the server refuses the token. The token lives in memory only (and in
// the optional sink file). Its methods are safe for concurrent use; run is
// called once by the agent.
type authenticator struct {
	cfg     AutoAuth
	c       *client.Client // without a token
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
	retry   func() *backoff

	tok atomic.Pointer[string] // the current token; nil before the first login

	mu      sync.Mutex    // guards changed and secretID
	changed chan struct{} // closed and replaced whenever tok changes
	// secretID is the last secret_id read, kept when the file is removed
	// after reading (remove_secret_id_file_after_reading).
	secretID string

	refused chan string // tokens the server refused; buffered
}

func newAuthenticator(cfg AutoAuth, c *client.Client, log *slog.Logger, m *metrics, now func() time.Time, retry func() *backoff) *authenticator {
	return &authenticator{cfg: cfg, c: c, log: log, metrics: m, now: now, retry: retry,
		changed: make(chan struct{}), refused: make(chan string, 1)}
}

// token returns the current token, or "" before the first login.
func (a *authenticator) token() string {
	if p := a.tok.Load(); p != nil {
		return *p
	}
	return ""
}

// waitToken returns a token different from old (old may be ""), waiting for
// a login until ctx ends.
func (a *authenticator) waitToken(ctx context.Context, old string) (string, error) {
	for {
		a.mu.Lock()
		ch := a.changed
		a.mu.Unlock()
		if t := a.token(); t != "" && t != old {
			return t, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("waiting for the agent to log in: %w", ctx.Err())
		case <-ch:
		}
	}
}

// reportRefused tells the login loop that the server answered 401 to tok.
// It never blocks.
func (a *authenticator) reportRefused(tok string) {
	select {
	case a.refused <- tok:
	default:
	}
}

func (a *authenticator) setToken(tok string) {
	a.tok.Store(&tok)
	a.mu.Lock()
	close(a.changed)
	a.changed = make(chan struct{})
	a.mu.Unlock()
	if a.cfg.SinkFile != "" {
		if err := writeFileAtomic(a.cfg.SinkFile, []byte(tok), 0o600); err != nil {
			a.log.Error("cannot write the token sink file", "path", a.cfg.SinkFile, "error", err)
		}
	}
}

// lifetime is what the agent knows of its token's expiry, in server time.
type lifetime struct {
	expires    time.Time     // zero: never expires
	maxExpires time.Time     // zero: no maximum (periodic or no expiry)
	ttl        time.Duration // what a renewal grants
	renewable  bool
	// skew is the server's clock minus the agent's, estimated at login.
	skew time.Duration
}

func (l lifetime) serverNow(now time.Time) time.Time { return now.Add(l.skew) }

// wake is how long to wait before renewing: two thirds of the remaining
// life, so a third is left to retry in. ok is false for a token without
// expiry.
func (l lifetime) wake(now time.Time) (d time.Duration, ok bool) {
	if l.expires.IsZero() {
		return 0, false
	}
	left := l.expires.Sub(l.serverNow(now))
	return max(left*2/3, 50*time.Millisecond), true
}

// relogin reports whether the next step should be a new login rather than
// a renewal: the token cannot be renewed, or a renewal would gain less than
// a third of its TTL before it hits its maximum lifetime.
func (l lifetime) relogin(now time.Time) bool {
	if !l.renewable {
		return true
	}
	if l.maxExpires.IsZero() {
		return false
	}
	return l.maxExpires.Sub(l.serverNow(now)) < l.ttl/3
}

func lifetimeOf(info client.TokenInfo, skew time.Duration, now time.Time) lifetime {
	l := lifetime{renewable: info.Renewable, skew: skew}
	if info.ExpiresAt != nil {
		l.expires = *info.ExpiresAt
		l.ttl = l.expires.Sub(l.serverNow(now))
	}
	if info.MaxExpires != nil {
		l.maxExpires = *info.MaxExpires
	}
	if d, err := time.ParseDuration(info.Period); err == nil && d > 0 {
		l.ttl = d
	}
	return l
}

// run logs in, then renews and logs in again as needed until ctx ends.
func (a *authenticator) run(ctx context.Context) {
	var life lifetime
	needLogin := true
	for {
		if needLogin {
			l, ok := a.loginUntilDone(ctx)
			if !ok {
				return
			}
			life, needLogin = l, false
		}
		var (
			timer *time.Timer
			fire  <-chan time.Time
		)
		if d, ok := life.wake(a.now()); ok {
			timer = time.NewTimer(d)
			fire = timer.C
		}
		var tok string
		renewDue := false
		select {
		case <-ctx.Done():
		case tok = <-a.refused:
		case <-fire:
			renewDue = true
		}
		if timer != nil {
			timer.Stop()
		}
		switch {
		case ctx.Err() != nil:
			return
		case !renewDue:
			if tok == a.token() {
				a.log.Info("the server refused the agent's token; logging in again")
				needLogin = true
			}
		default:
			if life.relogin(a.now()) {
				needLogin = true
				continue
			}
			l, err := a.renew(ctx, life)
			if err != nil {
				a.log.Warn("token renewal failed; logging in again", "error", err)
				needLogin = true
				continue
			}
			life = l
		}
	}
}

func (a *authenticator) renew(ctx context.Context, old lifetime) (lifetime, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	info, err := a.c.WithToken(a.token()).RenewSelf(ctx, "")
	if err != nil {
		a.metrics.renewals.WithLabelValues("failure").Inc()
		return lifetime{}, err
	}
	a.metrics.renewals.WithLabelValues("success").Inc()
	l := lifetimeOf(*info, old.skew, a.now())
	if d, err := time.ParseDuration(info.Period); err != nil || d <= 0 {
		l.ttl = old.ttl // what a renewal grants does not change
	}
	a.log.Debug("token renewed", "accessor", info.Accessor)
	return l, nil
}

// loginUntilDone logs in, retrying with backoff, until it succeeds (true)
// or ctx ends (false).
func (a *authenticator) loginUntilDone(ctx context.Context) (lifetime, bool) {
	b := a.retry()
	for {
		l, err := a.login(ctx)
		if err == nil {
			return l, true
		}
		if ctx.Err() != nil {
			return lifetime{}, false
		}
		a.metrics.logins.WithLabelValues("failure").Inc()
		d := b.next()
		a.log.Warn("login failed; retrying", "method", a.cfg.Method, "retry_in", d.Round(time.Millisecond), "error", err)
		if !sleep(ctx, d) {
			return lifetime{}, false
		}
	}
}

// login performs one login with the configured method, reading the
// credential files again.
func (a *authenticator) login(ctx context.Context) (lifetime, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var (
		l   *client.Login
		err error
	)
	sent := a.now()
	switch a.cfg.Method {
	case "approle":
		var roleID, secretID string
		if roleID, err = readCredential(a.cfg.RoleIDFile, "role_id_file"); err != nil {
			return lifetime{}, err
		}
		if secretID, err = a.readSecretID(); err != nil {
			return lifetime{}, err
		}
		l, err = a.c.LoginAppRole(ctx, roleID, secretID)
	case "jwt":
		var jwt string
		if jwt, err = readCredential(a.cfg.JWTFile, "jwt_file"); err != nil {
			return lifetime{}, err
		}
		l, err = a.c.LoginJWT(ctx, a.cfg.Role, jwt)
	case "token":
		var tok string
		if tok, err = readCredential(a.cfg.TokenFile, "token_file"); err != nil {
			return lifetime{}, err
		}
		var info *client.TokenInfo
		if info, err = a.c.WithToken(tok).TokenSelf(ctx); err == nil {
			l = &client.Login{Token: tok, Info: *info}
		}
	default:
		return lifetime{}, fmt.Errorf("unknown auth method %q", a.cfg.Method)
	}
	if err != nil {
		return lifetime{}, err
	}
	got := a.now()
	var skew time.Duration
	if a.cfg.Method != "token" && !l.Info.CreatedAt.IsZero() {
		// The token was created while the request was in flight.
		skew = l.Info.CreatedAt.Sub(sent.Add(got.Sub(sent) / 2))
	}
	life := lifetimeOf(l.Info, skew, got)
	a.metrics.logins.WithLabelValues("success").Inc()
	a.setToken(l.Token)
	a.log.Info("logged in", "method", a.cfg.Method, "accessor", l.Info.Accessor, "ttl", life.ttl.Round(time.Second), "renewable", life.renewable)
	return life, nil
}

// readSecretID reads the secret_id file, removing it afterwards when so
// configured; with the file gone it reuses the secret_id read before.
func (a *authenticator) readSecretID() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	s, err := readCredential(a.cfg.SecretIDFile, "secret_id_file")
	if errors.Is(err, os.ErrNotExist) && a.cfg.RemoveSecretIDFileAfterReading && a.secretID != "" {
		return a.secretID, nil
	}
	if err != nil {
		return "", err
	}
	a.secretID = s
	if a.cfg.RemoveSecretIDFileAfterReading {
		if err := os.Remove(a.cfg.SecretIDFile); err != nil {
			a.log.Warn("cannot remove the secret_id file after reading it", "path", a.cfg.SecretIDFile, "error", err)
		}
	}
	return s, nil
}

// readCredential reads a small file and trims surrounding white space. Its
// errors name the file, never its content.
func readCredential(path, what string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return "", fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(b) > maxCredentialFile {
		return "", fmt.Errorf("%s %s: larger than %d bytes", what, path, maxCredentialFile)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return s, nil
}
