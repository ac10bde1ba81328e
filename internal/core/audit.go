package core

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/policy"
	"github.com/coffer-dev/coffer/internal/storage"
)

// auditKeysPath holds the audit signing and HMAC keys, inside the barrier.
const auditKeysPath = "sys/audit/keys"

// ErrAuditUnavailable means a request's audit record could not be made
// durable; the request is refused (audit fails closed).
var ErrAuditUnavailable = errors.New("audit log unavailable")

// AuditConfig configures the local audit log. An empty Dir disables audit,
// which only benchmarks and tests should do.
type AuditConfig struct {
	Dir          string
	MaxFileBytes int64
	Options      audit.Options // rotation and retention; Dir, SigningKey and Logger are set by Core
}

type auditKeys struct {
	Seed []byte `json:"ed25519_seed"`
	HMAC []byte `json:"hmac_key"`
}

// auditState is the open audit log and its keys; replaced on unseal, nil while sealed.
type auditState struct {
	log     *audit.Log
	hmacKey []byte
	pub     ed25519.PublicKey
}

func (c *Core) loadAuditKeys(ctx context.Context) (*auditKeys, error) {
	raw, err := c.barrier.Get(ctx, auditKeysPath)
	if err == nil {
		var k auditKeys
		if err := json.Unmarshal(raw, &k); err != nil {
			return nil, fmt.Errorf("decode audit keys: %w", err)
		}
		return &k, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	k := &auditKeys{Seed: make([]byte, ed25519.SeedSize), HMAC: make([]byte, 32)}
	rand.Read(k.Seed)
	rand.Read(k.HMAC)
	raw, _ = json.Marshal(k)
	err = c.barrier.Update(ctx, func(tx storage.Tx) error {
		if existing, err := tx.Get(auditKeysPath); err == nil {
			return json.Unmarshal(existing, k)
		}
		return tx.Put(auditKeysPath, raw)
	})
	return k, err
}

// openAuditLocked opens the audit log with keys from the barrier.
func (c *Core) openAuditLocked(ctx context.Context) error {
	if c.auditCfg.Dir == "" || c.audit.Load() != nil {
		return nil
	}
	k, err := c.loadAuditKeys(ctx)
	if err != nil {
		return err
	}
	opts := c.auditCfg.Options
	opts.Dir, opts.Logger = c.auditCfg.Dir, c.log
	opts.SigningKey = ed25519.NewKeyFromSeed(k.Seed)
	opts.RepairTornTail = true // a crash mid-write leaves a torn last line; the fragment is saved aside
	l, err := audit.Open(opts)
	if err != nil {
		return fmt.Errorf("open audit log: %w", err)
	}
	c.audit.Store(&auditState{log: l, hmacKey: k.HMAC, pub: opts.SigningKey.Public().(ed25519.PublicKey)})
	return nil
}

func (c *Core) closeAuditLocked() {
	if st := c.audit.Swap(nil); st != nil {
		if err := st.log.Close(); err != nil {
			c.log.Error("closing the audit log failed", "error", err)
		}
	}
}

// AuditEnabled reports whether audit is configured.
func (c *Core) AuditEnabled() bool { return c.auditCfg.Dir != "" }

// Audit makes r durable in the audit log before the request is answered.
// With audit disabled it does nothing. While sealed there is no audit log
// open, and Audit fails: RecordRequest only drops records of requests that
// were refused anyway.
func (c *Core) Audit(ctx context.Context, r *audit.Record) error {
	if c.auditCfg.Dir == "" {
		return nil
	}
	st := c.audit.Load()
	if st == nil {
		return ErrAuditUnavailable
	}
	if err := st.log.Append(ctx, r); err != nil {
		return auditUnavailable(err)
	}
	return nil
}

// auditUnavailable wraps an error of the audit log in ErrAuditUnavailable,
// without saying "audit log unavailable" twice when the log already did.
func auditUnavailable(err error) error {
	msg := strings.TrimPrefix(err.Error(), audit.ErrUnavailable.Error()+": ")
	return fmt.Errorf("%w: %s", ErrAuditUnavailable, msg)
}

// AuditHealthy reports whether the audit log can take records (nil when
// disabled or sealed). It does not write.
func (c *Core) AuditHealthy() error {
	st := c.audit.Load()
	if st == nil {
		return nil
	}
	if err := st.log.Healthy(); err != nil {
		return auditUnavailable(err)
	}
	return nil
}

// AuditReady is AuditHealthy for the request path: when the log is
// unhealthy it appends a probe record, so the log recovers as soon as the
// fault clears (space freed, permissions fixed) instead of staying refused.
func (c *Core) AuditReady(ctx context.Context) error {
	if err := c.AuditHealthy(); err == nil {
		return nil
	}
	return c.Audit(ctx, &audit.Record{Type: "probe", Reason: "checking whether the audit log can be written again"})
}

// AuditFailures counts failed audit writes since the log opened.
func (c *Core) AuditFailures() uint64 {
	if st := c.audit.Load(); st != nil {
		return st.log.Failures()
	}
	return 0
}

// AuditHMAC returns "hmac-sha256:<hex>" of v under the audit HMAC key, so
// records can hold a searchable fingerprint of a sensitive value.
func (c *Core) AuditHMAC(v string) (string, error) {
	st := c.audit.Load()
	if st == nil {
		if c.auditCfg.Dir == "" {
			return "", errors.New("audit is disabled")
		}
		return "", ErrSealed
	}
	m := hmac.New(sha256.New, st.hmacKey)
	m.Write([]byte(v))
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil)), nil
}

// AuditPublicKey returns the Ed25519 key that verifies checkpoints.
func (c *Core) AuditPublicKey() (ed25519.PublicKey, error) {
	st := c.audit.Load()
	if st == nil {
		return nil, ErrSealed
	}
	return st.pub, nil
}

// AuditLog returns the open log (nil when disabled or sealed), for sinks.
func (c *Core) AuditLog() *audit.Log {
	if st := c.audit.Load(); st != nil {
		return st.log
	}
	return nil
}

// Sensitive holds the request fields an audit record keeps only as HMACs.
// The zero value is ready to use.
type Sensitive map[string]string

// Add records field's value (nothing for an empty one).
func (s *Sensitive) Add(field, value string) {
	if value == "" {
		return
	}
	if *s == nil {
		*s = Sensitive{}
	}
	(*s)[field] = value
}

// RequestRecord is what a wire adapter knows about a request.
type RequestRecord struct {
	// Type is audit.TypeRequest (the default) for the outcome, or
	// TypeIntent for the record a change writes before it acts.
	Type         string
	ID, Op, Path string
	Version      int
	Stage        string
	Principal    *auth.Principal // nil on public routes or before authentication
	Public       bool
	Source       netip.Addr
	UserAgent    string
	Status       int
	Err          error  // the request's error, if any
	ErrCode      string // the adapter's error code for Err
	Decision     *policy.Decision
	Sensitive    Sensitive // fields kept only as HMACs
	Elapsed      time.Duration
}

// TypeIntent marks the record a change writes before it acts, so that a
// change the audit log cannot record is never made, and a change whose
// outcome record fails after it committed is still on record.
const TypeIntent = "intent"

// maxUserAgent and maxRecordPath bound what a caller's input can make a
// record hold: a record that outgrew audit.MaxRecordBytes could not be
// written, and the request would be refused as if the log were down.
const (
	maxUserAgent  = 256
	maxRecordPath = 1024 // secret names are at most 512 bytes; longer paths are refused anyway
)

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// RecordRequest writes the audit record of a request; every wire adapter
// calls it before answering. A non-nil error means the record could not be
// kept and the request must be refused.
func (c *Core) RecordRequest(ctx context.Context, in RequestRecord) error {
	if c.auditCfg.Dir == "" || errors.Is(in.Err, ErrAuditUnavailable) {
		return nil
	}
	if c.audit.Load() == nil && (in.Err != nil || in.Public) {
		// Sealed (or not yet initialized): nothing can hold the record. A
		// refused request changed nothing, and the public routes (health,
		// seal status, unseal, init, generate-root) are the only ones a
		// sealed server serves. Any other request that succeeded must have
		// its record: it falls through and fails closed (for example one
		// in flight when the server sealed).
		return nil
	}
	typ := in.Type
	if typ == "" {
		typ = audit.TypeRequest
	}
	rec := &audit.Record{
		Type: typ, RequestID: in.ID, Op: in.Op, Path: in.Path, Version: in.Version, Stage: in.Stage,
		Source: in.Source.String(), UserAgent: in.UserAgent, Status: in.Status, LatencyUS: in.Elapsed.Microseconds(),
		Error: in.ErrCode,
	}
	rec.UserAgent = truncateUTF8(rec.UserAgent, maxUserAgent)
	if len(rec.Path) > maxRecordPath {
		rec.Path = truncateUTF8(rec.Path, maxRecordPath) + "...(truncated)"
	}
	if p := in.Principal; p != nil {
		rec.Identity = &audit.Identity{Name: p.Name, ID: p.IdentityID, Method: p.Method, Accessor: p.Accessor,
			Policies: p.Policies, BreakGlass: p.BreakGlass, MFA: p.MFA}
	}
	switch {
	case errors.Is(in.Err, auth.ErrUnauthenticated):
		rec.Decision = "unauthenticated"
	case errors.Is(in.Err, auth.ErrForbidden):
		rec.Decision = "deny"
	case typ == TypeIntent && in.Decision == nil:
		// Written before the operation made its authorization decision
		// (an adapter that authorizes inside the operation): not decided yet.
	case !in.Public && in.Principal != nil:
		rec.Decision = "allow"
	}
	if d := in.Decision; d != nil {
		rec.Policy, rec.Rule, rec.Reason = d.Policy, d.Rule, d.Reason
	}
	for field, v := range in.Sensitive {
		if h, err := c.AuditHMAC(v); err == nil {
			if rec.HMACs == nil {
				rec.HMACs = map[string]string{}
			}
			rec.HMACs[field] = h
		}
	}
	return c.Audit(ctx, rec)
}
