// Package logredact keeps credentials out of the operational log. Its
// slog.Handler rewrites token-shaped substrings (Coffer tokens, AppRole
// secret_ids, JWTs, bearer and basic Authorization values, passwords in URLs
// and in key=value connection strings) in messages and attributes before the
// wrapped handler sees them. It is a safety net: code still must never log a
// secret value on purpose.
package logredact

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"sync/atomic"
)

// Replacement stands in for a redacted credential.
const Replacement = "[REDACTED]"

// credential matches what a Coffer log must never hold.
var credential = regexp.MustCompile(
	`cof_[0-9A-Za-z]{40,60}` + // coffer tokens
		`|cofsid_[0-9a-fA-F]{64,80}` + // approle secret_ids
		`|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*` + // JWTs
		`|(?i:bearer)\s+[A-Za-z0-9._~+/=-]{16,}` + // Authorization headers
		`|(?i:basic)\s+[A-Za-z0-9+/]{8,}={0,2}`) // and their Basic form

// keyed matches credentials that sit inside a larger structure, which
// stays readable: the password of a URL's userinfo
// (postgres://app:PASSWORD@db) and of a key=value connection string
// (password=PASSWORD). Group 1 is kept, the rest replaced.
var keyed = regexp.MustCompile(
	`([A-Za-z][A-Za-z0-9+.-]*://[^\s/?#@:]*:)[^\s/?#@]+@` +
		`|((?i:password|passwd|pwd)\s*=\s*)[^\s&;,'"]+`)

// redactions counts credentials caught on their way to the log.
var redactions atomic.Uint64

// Redactions returns how many credential-shaped strings Scrub has replaced
// in this process: each one is a leak the redactor stopped (the reference's
// M6, "secrets exposed in logs", which should stay 0 because code never
// logs a credential; a rise means a call site does).
func Redactions() uint64 { return redactions.Load() }

// Scrub returns s with every credential-shaped substring replaced.
func Scrub(s string) string {
	if len(s) < 16 {
		return s
	}
	if loc := credential.FindAllStringIndex(s, -1); loc != nil {
		redactions.Add(uint64(len(loc)))
		s = credential.ReplaceAllString(s, Replacement)
	}
	if loc := keyed.FindAllStringSubmatchIndex(s, -1); loc != nil {
		redactions.Add(uint64(len(loc)))
		s = keyed.ReplaceAllStringFunc(s, func(m string) string {
			g := keyed.FindStringSubmatch(m)
			if g[1] != "" {
				return g[1] + Replacement + "@"
			}
			return g[2] + Replacement
		})
	}
	return s
}

// Handler is a slog.Handler that scrubs credentials.
type Handler struct {
	next slog.Handler
}

// New wraps next.
func New(next slog.Handler) *Handler { return &Handler{next: next} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, Scrub(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(scrubAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		clean[i] = scrubAttr(a)
	}
	return &Handler{next: h.next.WithAttrs(clean)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler { return &Handler{next: h.next.WithGroup(name)} }

func scrubAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, Scrub(v.String()))
	case slog.KindGroup:
		g := v.Group()
		clean := make([]any, len(g))
		for i, ga := range g {
			clean[i] = scrubAttr(ga)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, Scrub(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, Scrub(x.String()))
		case []byte:
			return slog.String(a.Key, Scrub(string(x))) // not a list of decimals that hides a token
		case []string:
			out := make([]string, len(x))
			for i, s := range x {
				out[i] = Scrub(s)
			}
			return slog.Any(a.Key, out)
		default:
			return slog.String(a.Key, Scrub(fmt.Sprint(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
