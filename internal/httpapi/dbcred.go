package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/core"
	"github.com/coffer-dev/coffer/internal/dbcred"
	"github.com/coffer-dev/coffer/internal/lease"
	"github.com/coffer-dev/coffer/internal/rotation"
)

// dbRoutes declares the dynamic database credential routes. Their policy
// paths live under sys/db/, which secret names cannot use, so a policy
// for secrets named db/... never grants database credentials by accident:
//
//	PUT    /v1/db/config/{name}       update on sys/db/config/NAME: write a connection (verified first)
//	GET    /v1/db/config/{name}       read on sys/db/config/NAME (never the password)
//	DELETE /v1/db/config/{name}       delete on sys/db/config/NAME
//	GET    /v1/db/config              list on sys/db/config
//	POST   /v1/db/rotate-root/{name}  rotate on sys/db/config/NAME: replace the admin password
//	PUT    /v1/db/roles/{name}        update on sys/db/roles/NAME
//	GET    /v1/db/roles/{name}        read on sys/db/roles/NAME
//	DELETE /v1/db/roles/{name}        delete on sys/db/roles/NAME
//	GET    /v1/db/roles               list on sys/db/roles
//	POST   /v1/db/creds/{name}        read on sys/db/creds/NAME: issue a database user under a lease
//	GET    /v1/db/creds/{name}        the same, for clients that read credentials with GET
func (a *API) dbRoutes() []route {
	cfgPath := func(r *request) string { return "sys/db/config/" + r.PathValue("name") }
	rolePath := func(r *request) string { return "sys/db/roles/" + r.PathValue("name") }
	credsPath := func(r *request) string { return "sys/db/creds/" + r.PathValue("name") }
	return []route{
		{"PUT", "/v1/db/config/{name}", Op{"db.config-write", "update"}, authenticated, a.dbConfigWrite, cfgPath},
		{"GET", "/v1/db/config/{name}", Op{"db.config-read", "read"}, authenticated, a.dbConfigRead, cfgPath},
		{"DELETE", "/v1/db/config/{name}", Op{"db.config-delete", "delete"}, authenticated, a.dbConfigDelete, cfgPath},
		{"GET", "/v1/db/config", Op{"db.config-list", "list"}, authenticated, a.dbConfigList, fixed("sys/db/config")},
		{"POST", "/v1/db/rotate-root/{name}", Op{"db.rotate-root", "rotate"}, authenticated, a.dbRotateRoot, cfgPath},
		{"PUT", "/v1/db/roles/{name}", Op{"db.role-write", "update"}, authenticated, a.dbRoleWrite, rolePath},
		{"GET", "/v1/db/roles/{name}", Op{"db.role-read", "read"}, authenticated, a.dbRoleRead, rolePath},
		{"DELETE", "/v1/db/roles/{name}", Op{"db.role-delete", "delete"}, authenticated, a.dbRoleDelete, rolePath},
		{"GET", "/v1/db/roles", Op{"db.role-list", "list"}, authenticated, a.dbRoleList, fixed("sys/db/roles")},
		{"POST", "/v1/db/creds/{name}", Op{"db.creds", "read"}, authenticated, a.dbCreds, credsPath},
		{"GET", "/v1/db/creds/{name}", Op{"db.creds", "read"}, authenticated, a.dbCreds, credsPath},
	}
}

// DBConfigRequest is the body of PUT /v1/db/config/{name}.
type DBConfigRequest struct {
	Plugin string `json:"plugin"` // postgresql or mysql
	// ConnectionURL may hold {{username}} and {{password}}; never a literal password.
	ConnectionURL      string   `json:"connection_url"`
	Username           string   `json:"username,omitempty"`
	Password           *string  `json:"password,omitempty"` // omitted on update: keep the stored one (400 if host, port, TLS, user or database change)
	AllowedRoles       []string `json:"allowed_roles,omitempty"`
	MaxOpenConnections int      `json:"max_open_connections,omitempty"`
	VerifyConnection   *bool    `json:"verify_connection,omitempty"` // default true
	// RootRotationPeriod rotates the admin password on a schedule ("30d", "720h"); empty: on demand only.
	RootRotationPeriod string `json:"root_rotation_period,omitempty"`
}

func (a *API) dbConfigWrite(r *request) (any, error) {
	var in DBConfigRequest
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.Password != nil {
		r.sensitive("password", *in.Password)
	}
	var period time.Duration
	if in.RootRotationPeriod != "" {
		d, err := rotation.ParseDuration(in.RootRotationPeriod)
		if err != nil {
			return nil, badRequest("root_rotation_period must be a duration like 30d or 720h")
		}
		period = d
	}
	return a.core.DB.PutConnection(r.ctx, dbcred.ConnInput{Name: r.PathValue("name"), Plugin: in.Plugin,
		ConnectionURL: in.ConnectionURL, Username: in.Username, Password: in.Password, AllowedRoles: in.AllowedRoles,
		MaxOpenConnections: in.MaxOpenConnections, RootRotationPeriod: period,
		SkipVerify: in.VerifyConnection != nil && !*in.VerifyConnection})
}

func (a *API) dbConfigRead(r *request) (any, error) {
	return a.core.DB.Connection(r.ctx, r.PathValue("name"))
}

func (a *API) dbConfigDelete(r *request) (any, error) {
	return nil, a.core.DB.DeleteConnection(r.ctx, r.PathValue("name"))
}

func (a *API) dbConfigList(r *request) (any, error) {
	names, err := a.core.DB.Connections(r.ctx)
	return map[string]any{"connections": nonNil(names)}, err
}

func (a *API) dbRotateRoot(r *request) (any, error) {
	if err := a.core.DB.RotateRoot(r.ctx, r.PathValue("name")); err != nil {
		return nil, err
	}
	return a.core.DB.Connection(r.ctx, r.PathValue("name"))
}

// DBRole is the wire form of a role (request and answer).
type DBRole struct {
	Name                 string        `json:"name,omitempty"`
	DBName               string        `json:"db_name"`
	CreationStatements   []string      `json:"creation_statements"`
	RevocationStatements []string      `json:"revocation_statements,omitempty"`
	RenewStatements      []string      `json:"renew_statements,omitempty"`
	DefaultTTL           auth.Duration `json:"default_ttl,omitempty"` // 0: 1h
	MaxTTL               auth.Duration `json:"max_ttl,omitempty"`     // 0: 24h
	CreatedAt            *time.Time    `json:"created_at,omitempty"`
	UpdatedAt            *time.Time    `json:"updated_at,omitempty"`
}

func dbRoleView(r *dbcred.Role) DBRole {
	return DBRole{Name: r.Name, DBName: r.DBName, CreationStatements: r.CreationStatements,
		RevocationStatements: r.RevocationStatements, RenewStatements: r.RenewStatements,
		DefaultTTL: auth.Duration(r.DefaultTTL), MaxTTL: auth.Duration(r.MaxTTL), CreatedAt: &r.CreatedAt, UpdatedAt: &r.UpdatedAt}
}

func (a *API) dbRoleWrite(r *request) (any, error) {
	var in DBRole
	if err := decode(r, &in); err != nil {
		return nil, err
	}
	if in.Name != "" && in.Name != r.PathValue("name") {
		return nil, badRequest("name: the body's name differs from the path's")
	}
	role, err := a.core.DB.PutRole(r.ctx, dbcred.Role{Name: r.PathValue("name"), DBName: in.DBName,
		CreationStatements: in.CreationStatements, RevocationStatements: in.RevocationStatements,
		RenewStatements: in.RenewStatements, DefaultTTL: time.Duration(in.DefaultTTL), MaxTTL: time.Duration(in.MaxTTL)})
	if err != nil {
		return nil, err
	}
	return dbRoleView(role), nil
}

func (a *API) dbRoleRead(r *request) (any, error) {
	role, err := a.core.DB.Role(r.ctx, r.PathValue("name"))
	if err != nil {
		return nil, err
	}
	return dbRoleView(role), nil
}

func (a *API) dbRoleDelete(r *request) (any, error) {
	return nil, a.core.DB.DeleteRole(r.ctx, r.PathValue("name"))
}

func (a *API) dbRoleList(r *request) (any, error) {
	names, err := a.core.DB.Roles(r.ctx)
	return map[string]any{"roles": nonNil(names)}, err
}

// DBCreds is the answer of /v1/db/creds/{name}: the only time the password is shown.
type DBCreds struct {
	Username      string    `json:"username"`
	Password      string    `json:"password"`
	LeaseID       string    `json:"lease_id"`
	LeaseDuration int64     `json:"lease_duration"` // seconds
	Renewable     bool      `json:"renewable"`
	ExpiresAt     time.Time `json:"expires_at"`
}

func (a *API) dbCreds(r *request) (any, error) {
	var in struct {
		TTL auth.Duration `json:"ttl,omitempty"` // 0: the role's default_ttl
	}
	if r.Method == http.MethodPost && r.ContentLength != 0 {
		if err := decode(r, &in); err != nil {
			return nil, err
		}
	}
	if v := r.URL.Query().Get("ttl"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return nil, badRequest("ttl must be a duration like 15m")
		}
		in.TTL = auth.Duration(d)
	}
	if r.Method == http.MethodGet {
		// A GET here creates a database user: like every change, it is on
		// record before it is made (the pipeline does this for other methods).
		if err := a.core.RecordRequest(r.ctx, core.RequestRecord{Type: core.TypeIntent, ID: r.id, Op: "db.creds",
			Path: "sys/db/creds/" + r.PathValue("name"), Principal: r.principal, Source: sourceAddr(r.Request),
			UserAgent: r.UserAgent(), Decision: r.decision}); err != nil {
			return nil, err
		}
	}
	// A break-glass token must not leave credentials behind that outlive it.
	if r.principal.BreakGlass {
		return nil, fmt.Errorf("%w: a break-glass token cannot obtain database credentials", auth.ErrForbidden)
	}
	c, err := a.core.DB.Creds(r.ctx, r.PathValue("name"), dbcred.CredsInput{DisplayName: r.principal.Name,
		Accessor: r.principal.Accessor, TTL: time.Duration(in.TTL)})
	if err != nil {
		return nil, err
	}
	r.sensitive("password", c.Password)
	r.sensitive("lease_id", c.Lease.ID)
	return DBCreds{Username: c.Username, Password: c.Password, LeaseID: c.Lease.ID,
		LeaseDuration: int64(c.Lease.ExpiresAt.Sub(c.Lease.IssuedAt).Seconds()), Renewable: c.Lease.Renewable,
		ExpiresAt: c.Lease.ExpiresAt}, nil
}

// dynamicError maps the errors of leases and database credentials.
func dynamicError(err error) (int, string, string, bool) {
	var (
		ie  *dbcred.InputError
		lie *lease.InputError
		te  *dbcred.TemplateError
		de  *dbcred.DBError
	)
	switch {
	case errors.As(err, &ie):
		return http.StatusBadRequest, "invalid_request", ie.Error(), true
	case errors.As(err, &lie):
		return http.StatusBadRequest, "invalid_request", lie.Error(), true
	case errors.As(err, &te):
		return http.StatusBadRequest, "invalid_request", te.Error(), true
	case errors.As(err, &de):
		return http.StatusBadGateway, "database_error", de.Error(), true
	case errors.Is(err, dbcred.ErrNotFound), errors.Is(err, dbcred.ErrRoleNotFound), errors.Is(err, lease.ErrNotFound):
		return http.StatusNotFound, "not_found", rootMessage(err), true
	case errors.Is(err, dbcred.ErrInUse):
		return http.StatusConflict, "in_use", err.Error(), true
	case errors.Is(err, dbcred.ErrRoleNotAllowed):
		return http.StatusBadRequest, "role_not_allowed", err.Error(), true
	case errors.Is(err, lease.ErrBadID), errors.Is(err, lease.ErrBadPrefix):
		return http.StatusBadRequest, "invalid_request", err.Error(), true
	case errors.Is(err, lease.ErrNotRenewable):
		return http.StatusConflict, "not_renewable", err.Error(), true
	case errors.Is(err, lease.ErrExpired):
		return http.StatusConflict, "expired", err.Error(), true
	case errors.Is(err, lease.ErrRevoking):
		return http.StatusConflict, "revoking", err.Error(), true
	}
	return 0, "", "", false
}

// rootMessage is the message of the innermost sentinel: "lease not found",
// not the context it was wrapped in.
func rootMessage(err error) string {
	for _, s := range []error{dbcred.ErrNotFound, dbcred.ErrRoleNotFound, lease.ErrNotFound} {
		if errors.Is(err, s) {
			return s.Error()
		}
	}
	return err.Error()
}
