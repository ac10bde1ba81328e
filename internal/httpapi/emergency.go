package httpapi

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/coffer-dev/coffer/internal/audit"
	"github.com/coffer-dev/coffer/internal/auth"
)

func (a *API) emergencyRoutes() []route {
	return []route{
		{"POST", "/v1/sys/break-glass", Op{"sys.break-glass", "update"}, authenticated, a.breakGlass, fixed("sys/break-glass")},
		{"GET", "/v1/sys/break-glass", Op{"sys.break-glass-list", "read"}, authenticated, a.breakGlassList, fixed("sys/break-glass")},
		{"POST", "/v1/sys/generate-root", Op{"sys.generate-root", ""}, public, a.generateRoot, nil},
		{"GET", "/v1/sys/generate-root", Op{"sys.generate-root-status", ""}, public, a.generateRootStatus, nil},
	}
}

func (a *API) breakGlass(r *request) (any, error) {
	var in struct {
		Justification string   `json:"justification"`
		Policies      []string `json:"policies"`
		TTL           string   `json:"ttl"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	ttl, err := parseDuration("ttl", in.TTL)
	if err != nil {
		return nil, err
	}
	tok, rec, err := a.core.BreakGlass(r.ctx, r.principal, in.Justification, in.Policies, ttl)
	if err != nil {
		return nil, err
	}
	a.metrics.BreakGlass.Inc()
	r.status = http.StatusCreated
	return map[string]any{"token": tok, "record": rec}, nil
}

func (a *API) breakGlassList(r *request) (any, error) {
	recs, err := a.core.BreakGlassRecords(r.ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{"records": recs}, nil
}

// generateRoot runs a generate-root attempt: init starts one and returns
// its nonce and one-time pad (to the operator who started it, once); each
// key holder then presents a key with the nonce; the call that completes
// the quorum gets the new root token encoded with the pad, which only the
// operator can decode. It needs no token: the keys are the credential.
func (a *API) generateRoot(r *request) (any, error) {
	var in struct {
		Init  bool   `json:"init"`
		Reset bool   `json:"reset"`
		Nonce string `json:"nonce"`
		Key   string `json:"key"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	st, _ := a.core.Status(r.ctx)
	switch {
	case in.Reset:
		a.core.GenerateRootReset()
		return map[string]any{"started": false, "progress": 0, "threshold": st.Threshold}, nil
	case in.Init:
		nonce, pad, err := a.core.GenerateRootStart()
		if err != nil {
			return nil, err
		}
		return map[string]any{"started": true, "nonce": nonce, "otp": pad, "progress": 0, "threshold": st.Threshold}, nil
	case in.Key == "" || in.Nonce == "":
		return nil, badRequest("give init: true to start an attempt, key and nonce to present a key, or reset: true")
	}
	encoded, progress, err := a.core.GenerateRoot(r.ctx, in.Nonce, in.Key)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"started": encoded == "", "nonce": in.Nonce, "progress": progress, "threshold": st.Threshold, "complete": encoded != ""}
	if encoded != "" {
		out["encoded_root_token"] = encoded
	}
	return out, nil
}

// generateRootStatus tells key holders whether an attempt runs, its nonce
// and the progress; it needs no token.
func (a *API) generateRootStatus(r *request) (any, error) {
	started, nonce, progress := a.core.GenerateRootStatus()
	st, _ := a.core.Status(r.ctx)
	return map[string]any{"started": started, "nonce": nonce, "progress": progress, "threshold": st.Threshold}, nil
}

func (a *API) metricsRoutes() []route {
	metrics := route{"GET", "/v1/sys/metrics", Op{"sys.metrics", "read"}, authenticated, a.serveMetrics, fixed("sys/metrics")}
	if a.cfg.MetricsAccess.Unauthenticated {
		metrics = route{"GET", "/v1/sys/metrics", Op{"sys.metrics", ""}, public, a.servePublicMetrics, fixed("sys/metrics")}
	}
	return []route{
		metrics,
		{"POST", "/v1/sys/audit/hash", Op{"audit.hash", "read"}, authenticated, a.auditHash, fixed("sys/audit")},
		{"GET", "/v1/sys/audit/public-key", Op{"audit.public-key", "read"}, authenticated, a.auditPublicKey, fixed("sys/audit")},
	}
}

// auditHash returns the HMAC an audit record would hold for a value, so an
// investigator can search the log for a known value without the log ever
// holding it.
func (a *API) auditHash(r *request) (any, error) {
	var in struct {
		Input       string `json:"input"`
		InputBase64 []byte `json:"input_base64"` // for a value that is not UTF-8 text
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.InputBase64 != nil {
		if in.Input != "" {
			return nil, badRequest("give input or input_base64, not both")
		}
		in.Input = string(in.InputBase64)
	}
	h, err := a.core.AuditHMAC(in.Input)
	if err != nil {
		return nil, badRequest("audit is not enabled on this server")
	}
	return map[string]string{"hmac": h}, nil
}

func (a *API) auditPublicKey(r *request) (any, error) {
	pub, err := a.core.AuditPublicKey()
	if err != nil {
		return nil, badRequest("audit is not enabled on this server")
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	return map[string]string{"key_id": audit.PublicKeyID(pub), "public_key_pem": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}, nil
}

// MetricsAccess decides who may scrape /v1/sys/metrics. By default a token
// with read on sys/metrics is needed; Unauthenticated lets a scraper in
// without one, from the AllowedCIDRs only when any are given.
type MetricsAccess struct {
	Unauthenticated bool
	AllowedCIDRs    []netip.Prefix
}

// servePublicMetrics serves metrics without a token to allowed sources.
func (a *API) servePublicMetrics(r *request) (any, error) {
	if cidrs := a.cfg.MetricsAccess.AllowedCIDRs; len(cidrs) > 0 {
		src := sourceAddr(r.Request)
		if !slices.ContainsFunc(cidrs, func(p netip.Prefix) bool { return p.Contains(src) }) {
			// Outside the open networks a scraper may still present a
			// token with read on sys/metrics, as without telemetry.
			tok := requestToken(r.Request)
			if tok == "" {
				return nil, fmt.Errorf("%w: metrics are served without a token only to telemetry metrics_allowed_cidrs; send a token with read on sys/metrics", auth.ErrForbidden)
			}
			// As on every authenticated route: no token is used without its record.
			if err := a.core.AuditReady(r.ctx); err != nil {
				return nil, err
			}
			p, err := a.core.Authenticate(r.ctx, tok)
			if err != nil {
				return nil, err
			}
			r.principal = p
			if err := a.core.Limits.AllowIdentity("sys/metrics", limitKey(p)); err != nil {
				return nil, err
			}
			if err := a.authorize(r, "sys.metrics", "sys/metrics", "read"); err != nil {
				return nil, err
			}
		}
	}
	return a.serveMetrics(r)
}

// serveMetrics answers in the Prometheus text format.
func (a *API) serveMetrics(r *request) (any, error) {
	h := promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{})
	return rawResponse(func(w http.ResponseWriter) int {
		h.ServeHTTP(w, r.Request)
		return http.StatusOK
	}), nil
}
