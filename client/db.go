package client

import (
	"context"
	"net/url"
	"time"
)

// DBConnection is a database connection Coffer issues users on. The admin
// password is never returned; PasswordSet says whether one is stored.
type DBConnection struct {
	Name                 string     `json:"name"`
	Plugin               string     `json:"plugin"` // postgresql or mysql
	ConnectionURL        string     `json:"connection_url"`
	Username             string     `json:"username,omitempty"`
	AllowedRoles         []string   `json:"allowed_roles"`
	MaxOpenConnections   int        `json:"max_open_connections,omitempty"`
	PasswordSet          bool       `json:"password_set"`
	CreatedAt            time.Time  `json:"created_at"`
	UpdatedAt            time.Time  `json:"updated_at"`
	RootRotatedAt        *time.Time `json:"root_rotated_at,omitempty"`
	RootRotationPeriod   string     `json:"root_rotation_period,omitempty"`   // e.g. "720h0m0s"; empty: on demand only
	RootRotationError    string     `json:"root_rotation_error,omitempty"`    // the last scheduled rotation's failure
	RootRotationFailures int        `json:"root_rotation_failures,omitempty"` // scheduled failures in a row
	RootRotationRetryAt  *time.Time `json:"root_rotation_retry_at,omitempty"` // next scheduled attempt after a failure
	Version              int64      `json:"version"`
}

// DBConnectionInput writes a connection. ConnectionURL may contain
// {{username}} and {{password}}, never a literal password.
type DBConnectionInput struct {
	Plugin             string   `json:"plugin"`
	ConnectionURL      string   `json:"connection_url"`
	Username           string   `json:"username,omitempty"`
	Password           *string  `json:"password,omitempty"` // nil: keep the stored one (refused if host, port, TLS, user or database change)
	AllowedRoles       []string `json:"allowed_roles,omitempty"`
	MaxOpenConnections int      `json:"max_open_connections,omitempty"`
	VerifyConnection   *bool    `json:"verify_connection,omitempty"` // nil: true
	// RootRotationPeriod rotates the admin password on a schedule ("30d", "720h").
	RootRotationPeriod string `json:"root_rotation_period,omitempty"`
}

// WriteDBConnection creates or replaces a connection; the server connects
// to the database first unless VerifyConnection is false.
func (c *Client) WriteDBConnection(ctx context.Context, name string, in DBConnectionInput) (*DBConnection, error) {
	var out DBConnection
	return &out, c.do(ctx, "PUT", "/v1/db/config/"+url.PathEscape(name), nil, in, &out)
}

// ReadDBConnection returns a connection.
func (c *Client) ReadDBConnection(ctx context.Context, name string) (*DBConnection, error) {
	var out DBConnection
	return &out, c.do(ctx, "GET", "/v1/db/config/"+url.PathEscape(name), nil, nil, &out)
}

// ListDBConnections lists connection names.
func (c *Client) ListDBConnections(ctx context.Context) ([]string, error) {
	var out struct {
		Connections []string `json:"connections"`
	}
	return out.Connections, c.do(ctx, "GET", "/v1/db/config", nil, nil, &out)
}

// DeleteDBConnection deletes a connection no role uses.
func (c *Client) DeleteDBConnection(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/db/config/"+url.PathEscape(name), nil, nil, nil)
}

// RotateDBRoot replaces the connection's admin password with a random one
// only Coffer knows.
func (c *Client) RotateDBRoot(ctx context.Context, name string) (*DBConnection, error) {
	var out DBConnection
	return &out, c.do(ctx, "POST", "/v1/db/rotate-root/"+url.PathEscape(name), nil, map[string]any{}, &out)
}

// DBRole describes the users issued under one role. TTLs are Go durations
// ("1h"); empty means the server default (1h and 24h).
type DBRole struct {
	Name                 string     `json:"name,omitempty"`
	DBName               string     `json:"db_name"`
	CreationStatements   []string   `json:"creation_statements"`
	RevocationStatements []string   `json:"revocation_statements,omitempty"`
	RenewStatements      []string   `json:"renew_statements,omitempty"`
	DefaultTTL           string     `json:"default_ttl,omitempty"`
	MaxTTL               string     `json:"max_ttl,omitempty"`
	CreatedAt            *time.Time `json:"created_at,omitempty"`
	UpdatedAt            *time.Time `json:"updated_at,omitempty"`
}

// WriteDBRole creates or replaces a role.
func (c *Client) WriteDBRole(ctx context.Context, name string, r DBRole) (*DBRole, error) {
	r.CreatedAt, r.UpdatedAt = nil, nil
	var out DBRole
	return &out, c.do(ctx, "PUT", "/v1/db/roles/"+url.PathEscape(name), nil, r, &out)
}

// ReadDBRole returns a role.
func (c *Client) ReadDBRole(ctx context.Context, name string) (*DBRole, error) {
	var out DBRole
	return &out, c.do(ctx, "GET", "/v1/db/roles/"+url.PathEscape(name), nil, nil, &out)
}

// ListDBRoles lists role names.
func (c *Client) ListDBRoles(ctx context.Context) ([]string, error) {
	var out struct {
		Roles []string `json:"roles"`
	}
	return out.Roles, c.do(ctx, "GET", "/v1/db/roles", nil, nil, &out)
}

// DeleteDBRole deletes a role that has no live leases.
func (c *Client) DeleteDBRole(ctx context.Context, name string) error {
	return c.do(ctx, "DELETE", "/v1/db/roles/"+url.PathEscape(name), nil, nil, nil)
}

// DBCreds are issued database credentials under a lease. The password is
// shown only once.
type DBCreds struct {
	Username      string    `json:"username"`
	Password      string    `json:"password"`
	LeaseID       string    `json:"lease_id"`
	LeaseDuration int64     `json:"lease_duration"` // seconds
	Renewable     bool      `json:"renewable"`
	ExpiresAt     time.Time `json:"expires_at"`
}

// DBCredentials creates a database user for role. ttl "" means the role's
// default. The request is not retried once it may have reached the server
// (a retry would create a second user).
func (c *Client) DBCredentials(ctx context.Context, role, ttl string) (*DBCreds, error) {
	body := map[string]string{}
	if ttl != "" {
		body["ttl"] = ttl
	}
	var out DBCreds
	return &out, c.do(ctx, "POST", "/v1/db/creds/"+url.PathEscape(role), nil, body, &out)
}
