package vaultapi

import (
	"fmt"
	"github.com/coffer-dev/coffer/internal/metrics"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/coffer-dev/coffer/internal/core"
)

// DefaultMount is the KV version 2 mount served when Config.Mount is empty.
const DefaultMount = "secret"

// DefaultVersion is reported as the server version in sys/health and
// sys/seal-status when Config.Version is empty. Some clients (Terraform's
// Vault provider, for one) parse it as a Vault semantic version to choose
// features, so it is one; the build metadata names Coffer.
const DefaultVersion = "1.15.0+coffer"

// MaxBodySize caps every request body.
const MaxBodySize = 1 << 20

// Config configures the API. Zero values mean defaults.
type Config struct {
	Core   *core.Core
	Logger *slog.Logger
	// Mount is the KV version 2 mount path, e.g. "secret" (the default) or
	// "kv/apps": segments of [A-Za-z0-9_.-], and not "sys" or "auth".
	Mount string
	// Version is the server version reported to clients.
	Version string
	// Metrics receives request counters and durations, labeled with the
	// adapter's operation names (vault.*); nil counts nothing.
	Metrics *metrics.Metrics
}

// API serves the Vault-compatible subset. It is safe for concurrent use.
type API struct {
	core    *core.Core
	log     *slog.Logger
	mount   string
	version string
	metrics *metrics.Metrics
	mux     *http.ServeMux
	routes  []*route
	badPath http.Handler // refuses paths with empty, . or .. segments
}

// New builds the API and registers every route. It panics if cfg.Mount is
// not a valid mount path, like http.ServeMux does for a bad pattern.
func New(cfg Config) *API {
	a := &API{core: cfg.Core, log: cfg.Logger, mount: cfg.Mount, version: cfg.Version, metrics: cfg.Metrics, mux: http.NewServeMux()}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.mount == "" {
		a.mount = DefaultMount
	}
	if err := validMount(a.mount); err != nil {
		panic("vaultapi: " + err.Error())
	}
	if a.version == "" {
		a.version = DefaultVersion
	}
	a.routes = a.table()
	// Requests no route serves are refused through the same pipeline as
	// the others, so each has its audit record (and a 503 when that record
	// cannot be kept).
	methodNotAllowed := a.wrap(&route{op: "vault.method-not-allowed", access: public, handle: func(*request) (*reply, error) {
		return nil, &apiError{http.StatusMethodNotAllowed, []string{"unsupported operation"}}
	}})
	noRoute := a.wrap(&route{op: "vault.no-route", access: public, handle: func(r *request) (*reply, error) {
		return nil, &apiError{http.StatusNotFound, []string{fmt.Sprintf("no handler for route %q; Coffer serves a subset of Vault's API (KV version 2 on %q, token, approle login, sys/health, sys/seal-status)", strings.TrimPrefix(r.URL.Path, "/v1/"), a.mount)}}
	}})
	a.badPath = a.wrap(&route{op: "vault.bad-path", access: public, handle: func(*request) (*reply, error) {
		return nil, badRequest("path must not contain empty, . or .. segments")
	}})
	// Each path pattern gets its methods, then a method-less fallback that
	// answers 405 in Vault's shape instead of ServeMux's plain text.
	seen := map[string]bool{}
	for _, rt := range a.routes {
		if rt.viaGETList {
			continue // served through the GET route of the same pattern
		}
		a.mux.Handle(rt.method+" "+rt.pattern, a.handlerFor(rt))
		if !seen[rt.pattern] {
			seen[rt.pattern] = true
			a.mux.Handle(rt.pattern, methodNotAllowed)
		}
	}
	// ServeMux would redirect a subtree's root without its trailing slash
	// to the root with one; behind the server's /vault prefix that redirect
	// would leave the prefix out. Answer those roots here instead.
	for pattern := range seen {
		if root, ok := strings.CutSuffix(pattern, "/{path...}"); ok && !seen[root] {
			a.mux.Handle(root, noRoute)
		}
	}
	a.mux.Handle("/", noRoute)
	return a
}

// handlerFor wraps a route; a GET on a pattern that also serves LIST goes to
// the list route when the query says list=true, as Vault's HTTP layer does.
func (a *API) handlerFor(rt *route) http.Handler {
	h := a.wrap(rt)
	if rt.method != http.MethodGet {
		return h
	}
	var list *route
	for _, o := range a.routes {
		if o.viaGETList && o.pattern == rt.pattern {
			list = o
		}
	}
	if list == nil {
		return h
	}
	lh := a.wrap(list)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ok, _ := strconv.ParseBool(r.URL.Query().Get("list")); ok {
			lh.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// ServeHTTP implements http.Handler. Paths with empty, "." or ".." segments
// are refused rather than cleaned and redirected, so that what a policy
// sees is exactly what the caller sent.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") ||
		strings.HasSuffix(p, "/.") || strings.HasSuffix(p, "/..") {
		a.badPath.ServeHTTP(w, r)
		return
	}
	a.mux.ServeHTTP(w, r)
}

// RouteInfo describes a registered route, for tests that walk every route.
type RouteInfo struct {
	Method, Pattern, Op string
	// Query is "list=true" for the GET form of a list.
	Query  string
	Public bool
}

// Routes lists the registered routes.
func (a *API) Routes() []RouteInfo {
	out := make([]RouteInfo, 0, len(a.routes))
	for _, rt := range a.routes {
		ri := RouteInfo{Method: rt.method, Pattern: rt.pattern, Op: rt.op, Public: rt.access == public}
		if rt.viaGETList {
			ri.Query = "list=true"
		}
		out = append(out, ri)
	}
	return out
}

func validMount(m string) error {
	for _, seg := range strings.Split(m, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("mount %q: segments must not be empty, . or ..", m)
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
				return fmt.Errorf("mount %q: characters must be in [A-Za-z0-9_.-]", m)
			}
		}
	}
	if first, _, _ := strings.Cut(m, "/"); first == "sys" || first == "auth" {
		return fmt.Errorf("mount %q: sys and auth are reserved", m)
	}
	return nil
}
