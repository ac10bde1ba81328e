package httpapi

import (
	"errors"
	"net/http"
	"strings"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/auth/cert"
	"github.com/coffer-dev/coffer/internal/auth/jwt"
)

// roleRoutes declares the admin routes every role-based auth method has.
func (a *API) roleRoutes(method string, put, get, del, list func(*request) (any, error)) []route {
	base := "/v1/auth/" + method + "/role"
	rolePath := func(r *request) string { return "auth/" + method + "/role/" + r.PathValue("role") }
	return []route{
		{"GET", base, Op{method + ".role-list", "list"}, authenticated, list, fixed("auth/" + method + "/role")},
		{"PUT", base + "/{role}", Op{method + ".role-write", "update"}, authenticated, put, rolePath},
		{"GET", base + "/{role}", Op{method + ".role-read", "read"}, authenticated, get, rolePath},
		{"DELETE", base + "/{role}", Op{method + ".role-delete", "delete"}, authenticated, del, rolePath},
	}
}

func (a *API) authMethodRoutes() []route {
	rs := []route{
		{"PUT", "/v1/auth/jwt/config", Op{"jwt.config-write", "update"}, authenticated, a.jwtConfigure, fixed("auth/jwt/config")},
		{"GET", "/v1/auth/jwt/config", Op{"jwt.config-read", "read"}, authenticated, a.jwtReadConfig, fixed("auth/jwt/config")},
		{"POST", "/v1/auth/jwt/login", Op{"jwt.login", ""}, public, a.jwtLogin, fixed("auth/jwt/login")},
		{"POST", "/v1/auth/cert/login", Op{"cert.login", ""}, public, a.certLogin, fixed("auth/cert/login")},
	}
	rs = append(rs, a.roleRoutes("jwt", a.jwtPutRole, a.jwtGetRole, a.jwtDeleteRole, a.jwtListRoles)...)
	rs = append(rs, a.roleRoutes("cert", a.certPutRole, a.certGetRole, a.certDeleteRole, a.certListRoles)...)
	rs = append(rs, a.approleRoutes()...)
	return append(rs, a.userpassRoutes()...)
}

// login issues a token for a successful auth-method login.
func (a *API) login(r *request, l *auth.Login, err error) (any, error) {
	method := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1/auth/"), "/login")
	if err != nil {
		a.metrics.Logins.WithLabelValues(method, "failure").Inc()
		return nil, err
	}
	a.metrics.Logins.WithLabelValues(method, "success").Inc()
	tok, e, err := a.core.IssueLogin(r.ctx, l)
	if err != nil {
		return nil, err
	}
	r.principal = e.Principal() // the audit record names who logged in
	return map[string]any{"token": tok, "info": infoOf(e)}, nil
}

// unsealed refuses public routes that need the barrier while sealed.
func (a *API) unsealed() error {
	if a.core.Sealed() {
		return errSealed
	}
	return nil
}

var errSealed = &apiError{http.StatusServiceUnavailable, "sealed", "server is sealed; unseal it with coffer operator unseal"}

func (a *API) jwtConfigure(r *request) (any, error) {
	var in jwt.Config
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if err := a.core.JWT.Configure(r.ctx, in); err != nil {
		return nil, err
	}
	return a.core.JWT.ReadConfig(r.ctx)
}

func (a *API) jwtReadConfig(r *request) (any, error) { return a.core.JWT.ReadConfig(r.ctx) }

func (a *API) jwtPutRole(r *request) (any, error) {
	var in jwt.Role
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	in.Name = r.PathValue("role")
	if err := auth.CheckDelegation(r.principal, in.Policies); err != nil { // see approlePutRole
		return nil, err
	}
	if err := a.core.JWT.PutRole(r.ctx, in); err != nil {
		return nil, err
	}
	return a.core.JWT.GetRole(r.ctx, in.Name)
}

func (a *API) jwtGetRole(r *request) (any, error) {
	return a.core.JWT.GetRole(r.ctx, r.PathValue("role"))
}

func (a *API) jwtDeleteRole(r *request) (any, error) {
	return nil, a.core.JWT.DeleteRole(r.ctx, r.PathValue("role"))
}

func (a *API) jwtListRoles(r *request) (any, error) {
	names, err := a.core.JWT.ListRoles(r.ctx)
	return map[string]any{"roles": nonNil(names)}, err
}

func (a *API) jwtLogin(r *request) (any, error) {
	if err := a.unsealed(); err != nil {
		return nil, err
	}
	var in struct {
		Role string `json:"role"`
		JWT  string `json:"jwt"`
	}
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	l, err := a.core.JWT.Login(r.ctx, in.Role, in.JWT)
	return a.login(r, l, err)
}

func (a *API) certPutRole(r *request) (any, error) {
	var in cert.Role
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	in.Name = r.PathValue("role")
	if err := auth.CheckDelegation(r.principal, in.Policies); err != nil { // see approlePutRole
		return nil, err
	}
	if err := a.core.Cert.PutRole(r.ctx, in); err != nil {
		return nil, err
	}
	return a.core.Cert.GetRole(r.ctx, in.Name)
}

func (a *API) certGetRole(r *request) (any, error) {
	return a.core.Cert.GetRole(r.ctx, r.PathValue("role"))
}

func (a *API) certDeleteRole(r *request) (any, error) {
	return nil, a.core.Cert.DeleteRole(r.ctx, r.PathValue("role"))
}

func (a *API) certListRoles(r *request) (any, error) {
	names, err := a.core.Cert.ListRoles(r.ctx)
	return map[string]any{"roles": nonNil(names)}, err
}

// certLogin authenticates the client certificate of this TLS connection.
func (a *API) certLogin(r *request) (any, error) {
	if err := a.unsealed(); err != nil {
		return nil, err
	}
	var in struct {
		Role string `json:"role"`
	}
	if r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	if r.TLS == nil {
		return nil, badRequest("cert login needs a TLS connection with a client certificate")
	}
	l, err := a.core.Cert.Login(r.ctx, in.Role, r.TLS.PeerCertificates)
	return a.login(r, l, err)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// authMethodError maps the auth methods' own errors.
func authMethodError(err error) (int, string, string, bool) {
	for _, f := range []func(error) (int, string, string, bool){approleError, userpassError, snapshotError} {
		if status, code, msg, ok := f(err); ok {
			return status, code, msg, true
		}
	}
	var jve *jwt.ValidationError
	switch {
	case errors.As(err, &jve):
		return http.StatusBadRequest, "invalid_request", jve.Error(), true
	case errors.Is(err, jwt.ErrNotConfigured):
		return http.StatusNotFound, "not_found", "the jwt auth method is not configured", true
	case errors.Is(err, auth.ErrUnauthenticated) && err != auth.ErrUnauthenticated:
		// Login failures: 401 with the method's safe reason.
		return http.StatusUnauthorized, "unauthenticated", err.Error(), true
	case errors.Is(err, jwt.ErrRoleNotFound), errors.Is(err, cert.ErrRoleNotFound):
		return http.StatusNotFound, "not_found", err.Error(), true
	}
	return 0, "", "", false
}
