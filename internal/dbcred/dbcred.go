// Package dbcred issues dynamic database credentials: on request it creates
// a uniquely named PostgreSQL or MySQL/MariaDB user with a random password
// under a lease, and drops the user (ending its sessions) when the lease
// expires or is revoked.
//
// A connection holds the admin credentials Coffer uses (stored below the
// barrier, never returned); a role holds the SQL templates that create,
// renew and revoke users. Templates are filled only with quoted values:
// nothing a caller sends reaches SQL except through those placeholders, and
// the values themselves are generated (see template.go).
//
// Order of operations makes crashes harmless: the lease is stored before
// the user is created, so a user can exist only while a lease that will
// drop it does.
package dbcred

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coffer-dev/coffer/internal/auth"
	"github.com/coffer-dev/coffer/internal/lease"
	"github.com/coffer-dev/coffer/internal/storage"
)

// LeaseKind is the kind of the leases this package creates and revokes.
const LeaseKind = "db"

// LeasePrefix starts the id of every database credential lease; the role
// name and a random part follow: db/creds/ROLE/RANDOM.
const LeasePrefix = "db/creds/"

// Storage layout, below the barrier.
const (
	connPrefix = "dbcred/config/"
	rolePrefix = "dbcred/role/"
)

// Defaults and bounds.
const (
	DefaultTTL    = time.Hour
	DefaultMaxTTL = 24 * time.Hour
	maxStatements = 64
	maxTemplate   = 16 << 10
	opTimeout     = 30 * time.Second
)

var (
	// ErrNotFound means there is no database connection with that name.
	ErrNotFound = errors.New("database connection not found")
	// ErrRoleNotFound means there is no role with that name.
	ErrRoleNotFound = errors.New("database role not found")
	// ErrInUse means the object is referenced: a connection by roles, a
	// role by live leases.
	ErrInUse = errors.New("in use")
	// ErrRoleNotAllowed means the role's connection does not list it in allowed_roles.
	ErrRoleNotAllowed = errors.New("role is not in the connection's allowed_roles")
)

// InputError reports a bad field.
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// DBError reports that the database refused or could not be reached. Its
// message never holds a password: known secrets are scrubbed from the
// driver's text.
type DBError struct {
	Op  string // what Coffer was doing, e.g. "create user"
	Msg string
}

func (e *DBError) Error() string { return "database: " + e.Op + ": " + e.Msg }

func dbError(op string, err error, secrets ...string) error {
	var ie *InputError
	if errors.As(err, &ie) {
		return err
	}
	msg := err.Error()
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, "[redacted]")
		}
	}
	return &DBError{Op: op, Msg: truncate(msg, 400)}
}

// Connection is a database connection as the API shows it: never the password.
type Connection struct {
	Name          string   `json:"name"`
	Plugin        string   `json:"plugin"`
	ConnectionURL string   `json:"connection_url"`
	Username      string   `json:"username,omitempty"`
	AllowedRoles  []string `json:"allowed_roles"`
	// MaxOpenConnections bounds Coffer's pool to this database; 0 means 4.
	MaxOpenConnections int        `json:"max_open_connections,omitempty"`
	PasswordSet        bool       `json:"password_set"`
	CreatedAt          time.Time  `json:"created_at"`
	UpdatedAt          time.Time  `json:"updated_at"`
	RootRotatedAt      *time.Time `json:"root_rotated_at,omitempty"`
	// RootRotationPeriod, when set, rotates the admin password on a
	// schedule: RotateRootDue rotates it once this long has passed since
	// the last rotation (or since the connection was created).
	RootRotationPeriod auth.Duration `json:"root_rotation_period,omitempty"`
	// RootRotationError is the last scheduled rotation's failure, cleared
	// by the next success.
	RootRotationError string `json:"root_rotation_error,omitempty"`
	// Version counts writes, so every node notices a change (such as a
	// rotated password) and reopens its pool.
	Version int64 `json:"version"`
}

// storedConn is the stored form, with the secrets.
type storedConn struct {
	Connection
	Password string `json:"password,omitempty"`
	// PendingPassword is set while a root rotation is in flight; if the
	// database took it but Coffer crashed before recording so, connecting
	// with it succeeds and it is promoted.
	PendingPassword string `json:"pending_password,omitempty"`
}

// Role describes the users issued under one name.
type Role struct {
	Name                 string        `json:"name"`
	DBName               string        `json:"db_name"`
	CreationStatements   []string      `json:"creation_statements"`
	RevocationStatements []string      `json:"revocation_statements,omitempty"`
	RenewStatements      []string      `json:"renew_statements,omitempty"`
	DefaultTTL           time.Duration `json:"default_ttl"`
	MaxTTL               time.Duration `json:"max_ttl"`
	CreatedAt            time.Time     `json:"created_at"`
	UpdatedAt            time.Time     `json:"updated_at"`
}

// Creds are issued credentials. Password is shown once.
type Creds struct {
	Username string
	Password string
	Lease    *lease.Lease
}

// leaseData is what a lease records for its revocation: the statements
// are copied from the role, so editing or deleting the role later does not
// change how existing users are removed.
type leaseData struct {
	DB         string   `json:"db"`
	Role       string   `json:"role"`
	Username   string   `json:"username"`
	Revocation []string `json:"revocation_statements,omitempty"`
	Renew      []string `json:"renew_statements,omitempty"`
}

// Store is what the service needs from the barrier.
type Store interface {
	Get(ctx context.Context, key string) ([]byte, error)
	List(ctx context.Context, prefix, after string, limit int) ([]string, error)
	Update(ctx context.Context, fn func(storage.Tx) error) error
}

// Options configure a Service; zero values mean defaults.
type Options struct {
	Now    func() time.Time
	Logger *slog.Logger
}

// Service manages connections and roles and issues credentials. It is safe
// for concurrent use.
type Service struct {
	store  Store
	leases *lease.Manager
	now    func() time.Time
	log    *slog.Logger

	mu    sync.Mutex       // guards pools
	pools map[string]*pool // by connection name
}

// pool is an open database/sql pool for one version of a connection.
type pool struct {
	version  int64
	password string
	db       *sql.DB
}

// New returns a Service and registers it as the revoker of LeaseKind leases.
func New(store Store, leases *lease.Manager, opts Options) *Service {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{store: store, leases: leases, now: opts.Now, log: opts.Logger, pools: map[string]*pool{}}
	leases.Register(LeaseKind, s)
	return s
}

// Reset closes every pool; call it on seal, so no admin password stays in memory.
func (s *Service) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, p := range s.pools {
		p.db.Close()
		delete(s.pools, name)
	}
}

// checkName validates a connection or role name.
func checkName(field, name string) error {
	if name == "" || len(name) > 64 {
		return &InputError{Field: field, Msg: "must be 1 to 64 characters"}
	}
	for i, c := range name {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || (i > 0 && (c == '_' || c == '-' || c == '.'))
		if !ok {
			return &InputError{Field: field, Msg: "may hold only letters, digits, _ . - and must start with a letter or digit"}
		}
	}
	return nil
}

// ConnInput is a connection to write.
type ConnInput struct {
	Name          string
	Plugin        string
	ConnectionURL string
	Username      string
	// Password is the admin password; nil keeps the stored one.
	Password           *string
	AllowedRoles       []string
	MaxOpenConnections int
	// RootRotationPeriod schedules admin password rotation; 0: only on demand.
	RootRotationPeriod time.Duration
	// SkipVerify stores the connection without connecting to it first.
	SkipVerify bool
}

// PutConnection creates or replaces a connection, after checking that
// Coffer can connect with it (unless SkipVerify).
func (s *Service) PutConnection(ctx context.Context, in ConnInput) (*Connection, error) {
	if err := checkName("name", in.Name); err != nil {
		return nil, err
	}
	d, err := dialectFor(in.Plugin)
	if err != nil {
		return nil, err
	}
	switch {
	case in.ConnectionURL == "" || len(in.ConnectionURL) > 2048:
		return nil, &InputError{Field: "connection_url", Msg: "is required (at most 2048 characters)"}
	case len(in.Username) > 128:
		return nil, &InputError{Field: "username", Msg: "at most 128 characters"}
	case in.Password != nil && len(*in.Password) > 1024:
		return nil, &InputError{Field: "password", Msg: "at most 1024 characters"}
	case len(in.AllowedRoles) > 256:
		return nil, &InputError{Field: "allowed_roles", Msg: "at most 256 entries"}
	case in.MaxOpenConnections < 0 || in.MaxOpenConnections > 100:
		return nil, &InputError{Field: "max_open_connections", Msg: "must be between 0 and 100"}
	case in.RootRotationPeriod != 0 && (in.RootRotationPeriod < time.Hour || in.RootRotationPeriod > 5*366*24*time.Hour):
		return nil, &InputError{Field: "root_rotation_period", Msg: "must be between 1h and 5 years"}
	case in.RootRotationPeriod != 0 && (in.Password == nil || *in.Password == "") && !hasStoredPassword(ctx, s, in.Name):
		return nil, &InputError{Field: "root_rotation_period", Msg: "needs a stored admin password to rotate"}
	}
	for _, r := range in.AllowedRoles {
		if r != "*" {
			if err := checkName("allowed_roles", r); err != nil {
				return nil, err
			}
		}
	}
	if err := d.checkURL(in.ConnectionURL); err != nil {
		return nil, err
	}
	old, err := s.conn(ctx, in.Name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	now := s.now().UTC()
	st := &storedConn{Connection: Connection{Name: in.Name, Plugin: in.Plugin, ConnectionURL: in.ConnectionURL,
		Username: in.Username, AllowedRoles: slices.Clone(in.AllowedRoles), MaxOpenConnections: in.MaxOpenConnections,
		RootRotationPeriod: auth.Duration(in.RootRotationPeriod), CreatedAt: now, UpdatedAt: now}}
	if st.AllowedRoles == nil {
		st.AllowedRoles = []string{}
	}
	if in.Password != nil {
		st.Password = *in.Password
	}
	if old != nil {
		if old.Plugin != in.Plugin {
			return nil, &InputError{Field: "plugin", Msg: "cannot change; delete the connection and create it again"}
		}
		st.CreatedAt, st.RootRotatedAt, st.Version = old.CreatedAt, old.RootRotatedAt, old.Version
		if in.Password == nil {
			st.Password, st.PendingPassword = old.Password, old.PendingPassword
		}
	}
	st.Version++
	st.PasswordSet = st.Password != ""
	if !in.SkipVerify {
		if err := s.verify(ctx, d, st); err != nil {
			return nil, err
		}
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		if raw, err := tx.Get(connPrefix + in.Name); err == nil {
			var cur storedConn
			if json.Unmarshal(raw, &cur) == nil && cur.Version >= st.Version {
				st.Version = cur.Version + 1 // a concurrent write; the last one wins, with a newer version
			}
		}
		return putJSON(tx, connPrefix+in.Name, st)
	})
	if err != nil {
		return nil, err
	}
	s.dropPool(in.Name)
	out := st.Connection
	return &out, nil
}

// verify connects with st's settings and pings.
func (s *Service) verify(ctx context.Context, d dialect, st *storedConn) error {
	db, err := d.open(st.ConnectionURL, st.Username, st.Password)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		return dbError("verify connection", err, st.Password)
	}
	return nil
}

func putJSON(tx storage.Tx, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(key, raw)
}

func (s *Service) conn(ctx context.Context, name string) (*storedConn, error) {
	if checkName("name", name) != nil {
		return nil, ErrNotFound
	}
	raw, err := s.store.Get(ctx, connPrefix+name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	st := &storedConn{}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("decode database connection %s: %w", name, err)
	}
	return st, nil
}

// Connection returns a connection, without its password.
func (s *Service) Connection(ctx context.Context, name string) (*Connection, error) {
	st, err := s.conn(ctx, name)
	if err != nil {
		return nil, err
	}
	out := st.Connection
	return &out, nil
}

// Connections lists connection names.
func (s *Service) Connections(ctx context.Context) ([]string, error) {
	return s.names(ctx, connPrefix)
}

// Roles lists role names.
func (s *Service) Roles(ctx context.Context) ([]string, error) {
	return s.names(ctx, rolePrefix)
}

func (s *Service) names(ctx context.Context, prefix string) ([]string, error) {
	keys, err := s.store.List(ctx, prefix, "", 0)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = strings.TrimPrefix(k, prefix)
	}
	return out, nil
}

// DeleteConnection deletes a connection no role uses.
func (s *Service) DeleteConnection(ctx context.Context, name string) error {
	if _, err := s.conn(ctx, name); err != nil {
		return err
	}
	roles, err := s.Roles(ctx)
	if err != nil {
		return err
	}
	var users []string
	for _, r := range roles {
		role, err := s.Role(ctx, r)
		if err == nil && role.DBName == name {
			users = append(users, r)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return fmt.Errorf("%w: roles %s use this connection; delete them first", ErrInUse, strings.Join(users, ", "))
	}
	if err := s.store.Update(ctx, func(tx storage.Tx) error { return tx.Delete(connPrefix + name) }); err != nil {
		return err
	}
	s.dropPool(name)
	return nil
}

// PutRole creates or replaces a role after checking its templates.
func (s *Service) PutRole(ctx context.Context, r Role) (*Role, error) {
	if err := checkName("name", r.Name); err != nil {
		return nil, err
	}
	conn, err := s.conn(ctx, r.DBName)
	if errors.Is(err, ErrNotFound) {
		return nil, &InputError{Field: "db_name", Msg: fmt.Sprintf("no database connection named %q", truncate(r.DBName, 64))}
	}
	if err != nil {
		return nil, err
	}
	d, err := dialectFor(conn.Plugin)
	if err != nil {
		return nil, err
	}
	if r.DefaultTTL == 0 {
		r.DefaultTTL = DefaultTTL
	}
	if r.MaxTTL == 0 {
		r.MaxTTL = max(DefaultMaxTTL, r.DefaultTTL)
	}
	switch {
	case r.DefaultTTL < time.Second || r.MaxTTL > lease.MaxTTL:
		return nil, &InputError{Field: "default_ttl", Msg: fmt.Sprintf("ttls must be between 1s and %s", lease.MaxTTL)}
	case r.DefaultTTL > r.MaxTTL:
		return nil, &InputError{Field: "default_ttl", Msg: "must not exceed max_ttl"}
	}
	if _, err := r.parse(d); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	r.CreatedAt, r.UpdatedAt = now, now
	if old, err := s.Role(ctx, r.Name); err == nil {
		r.CreatedAt = old.CreatedAt
		if old.DBName != r.DBName {
			if n, err := s.liveLeases(ctx, r.Name); err != nil {
				return nil, err
			} else if n {
				return nil, fmt.Errorf("%w: db_name cannot change while the role has live leases; revoke them first (coffer lease revoke -prefix %s%s/)", ErrInUse, LeasePrefix, r.Name)
			}
		}
	}
	if err := s.store.Update(ctx, func(tx storage.Tx) error { return putJSON(tx, rolePrefix+r.Name, &r) }); err != nil {
		return nil, err
	}
	return &r, nil
}

// parsedRole is a role's templates, parsed.
type parsedRole struct {
	create, revoke, renew []statement
}

func (r *Role) parse(d dialect) (*parsedRole, error) {
	for field, sts := range map[string][]string{"creation_statements": r.CreationStatements,
		"revocation_statements": r.RevocationStatements, "renew_statements": r.RenewStatements} {
		n := 0
		for _, st := range sts {
			n += len(st)
		}
		if len(sts) > maxStatements || n > maxTemplate {
			return nil, &InputError{Field: field, Msg: fmt.Sprintf("at most %d statements and %d bytes", maxStatements, maxTemplate)}
		}
	}
	var (
		p   parsedRole
		err error
	)
	if p.create, err = parseTemplates(d, "creation_statements", r.CreationStatements, phName, phPassword, phExpiration); err != nil {
		return nil, err
	}
	if len(p.create) == 0 || !slices.ContainsFunc(p.create, hasName) {
		return nil, &TemplateError{Field: "creation_statements", Msg: "required, and must create the user named {{name}}"}
	}
	if p.revoke, err = parseTemplates(d, "revocation_statements", r.RevocationStatements, phName); err != nil {
		return nil, err
	}
	if p.renew, err = parseTemplates(d, "renew_statements", r.RenewStatements, phName, phExpiration); err != nil {
		return nil, err
	}
	return &p, nil
}

func hasName(st statement) bool {
	return slices.ContainsFunc(st, func(p part) bool { return p.placeholder == phName })
}

// Role returns a role.
func (s *Service) Role(ctx context.Context, name string) (*Role, error) {
	if checkName("name", name) != nil {
		return nil, ErrRoleNotFound
	}
	raw, err := s.store.Get(ctx, rolePrefix+name)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrRoleNotFound
	}
	if err != nil {
		return nil, err
	}
	r := &Role{}
	if err := json.Unmarshal(raw, r); err != nil {
		return nil, fmt.Errorf("decode database role %s: %w", name, err)
	}
	return r, nil
}

// DeleteRole deletes a role that has no live leases.
func (s *Service) DeleteRole(ctx context.Context, name string) error {
	if _, err := s.Role(ctx, name); err != nil {
		return err
	}
	if live, err := s.liveLeases(ctx, name); err != nil {
		return err
	} else if live {
		return fmt.Errorf("%w: the role has live leases; revoke them first (coffer lease revoke -prefix %s%s/)", ErrInUse, LeasePrefix, name)
	}
	return s.store.Update(ctx, func(tx storage.Tx) error { return tx.Delete(rolePrefix + name) })
}

func (s *Service) liveLeases(ctx context.Context, role string) (bool, error) {
	ids, _, err := s.leases.List(ctx, LeasePrefix+role+"/", "", 1)
	return len(ids) > 0, err
}

// CredsInput asks for credentials.
type CredsInput struct {
	// DisplayName is the caller's name; sanitized, it becomes part of the user name.
	DisplayName string
	// Accessor is the caller's token accessor: revoking the token revokes the lease.
	Accessor string
	// TTL is the lease's lifetime; 0 means the role's default. At most the role's max_ttl.
	TTL time.Duration
}

// Creds creates a database user for the role and returns it with its lease.
func (s *Service) Creds(ctx context.Context, roleName string, in CredsInput) (*Creds, error) {
	role, err := s.Role(ctx, roleName)
	if err != nil {
		return nil, err
	}
	st, err := s.conn(ctx, role.DBName)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(st.AllowedRoles, "*") && !slices.Contains(st.AllowedRoles, role.Name) {
		return nil, fmt.Errorf("%w: add %q to allowed_roles of connection %q", ErrRoleNotAllowed, role.Name, st.Name)
	}
	d, err := dialectFor(st.Plugin)
	if err != nil {
		return nil, err
	}
	parsed, err := role.parse(d)
	if err != nil {
		return nil, err
	}
	ttl := role.DefaultTTL
	switch {
	case in.TTL < 0:
		return nil, &InputError{Field: "ttl", Msg: "must not be negative"}
	case in.TTL > role.MaxTTL:
		return nil, &InputError{Field: "ttl", Msg: fmt.Sprintf("must be at most the role's max_ttl (%s)", role.MaxTTL)}
	case in.TTL > 0:
		ttl = in.TTL
	}
	user := username(d, in.DisplayName, role.Name)
	password := newPassword()
	data, _ := json.Marshal(leaseData{DB: st.Name, Role: role.Name, Username: user,
		Revocation: role.RevocationStatements, Renew: role.RenewStatements})
	l, err := s.leases.Create(ctx, lease.Input{Kind: LeaseKind, Prefix: LeasePrefix + role.Name, Accessor: in.Accessor,
		TTL: ttl, MaxTTL: role.MaxTTL, Renewable: true, Data: data})
	if err != nil {
		return nil, err
	}
	sts, err := render(d, parsed.create, values{name: user, password: password, expiration: d.formatExpiration(l.ExpiresAt)})
	if err == nil {
		err = s.withDB(ctx, st, func(ctx context.Context, db *sql.DB) error {
			return execAll(ctx, d, db, sts)
		})
	}
	if err != nil {
		// The lease was stored first; revoking it removes anything half made.
		if rerr := s.leases.Revoke(context.WithoutCancel(ctx), l.ID); rerr != nil && !errors.Is(rerr, lease.ErrNotFound) {
			s.log.Warn("cleanup after failed user creation is pending", "lease_id", l.ID, "error", rerr)
		}
		return nil, dbError("create user", err, password, st.Password)
	}
	return &Creds{Username: user, Password: password, Lease: l}, nil
}

// withDB runs fn with the connection's pool, under a timeout.
func (s *Service) withDB(ctx context.Context, st *storedConn, fn func(context.Context, *sql.DB) error) error {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	db, err := s.pool(ctx, st)
	if err != nil {
		return err
	}
	return fn(ctx, db)
}

// pool returns the open pool for this version of the connection, opening
// it (and settling an interrupted root rotation) if needed.
func (s *Service) pool(ctx context.Context, st *storedConn) (*sql.DB, error) {
	s.mu.Lock()
	p := s.pools[st.Name]
	if p != nil && p.version == st.Version && p.password == st.Password {
		s.mu.Unlock()
		return p.db, nil
	}
	s.mu.Unlock()
	d, err := dialectFor(st.Plugin)
	if err != nil {
		return nil, err
	}
	db, err := d.open(st.ConnectionURL, st.Username, st.Password)
	if err != nil {
		return nil, err
	}
	maxOpen := st.MaxOpenConnections
	if maxOpen == 0 {
		maxOpen = 4
	}
	db.SetMaxOpenConns(maxOpen)
	db.SetMaxIdleConns(maxOpen)
	db.SetConnMaxIdleTime(5 * time.Minute)
	db.SetConnMaxLifetime(30 * time.Minute)
	if st.PendingPassword != "" {
		if db, err = s.settleRotation(ctx, d, st, db); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.pools[st.Name]; old != nil {
		if old.version > st.Version {
			db.Close() // a newer version won the race
			return old.db, nil
		}
		old.db.Close()
	}
	s.pools[st.Name] = &pool{version: st.Version, password: st.Password, db: db}
	return db, nil
}

// settleRotation finishes a root rotation that was interrupted: if the
// stored password no longer works but the pending one does, the database
// took the new password, which is then recorded.
func (s *Service) settleRotation(ctx context.Context, d dialect, st *storedConn, db *sql.DB) (*sql.DB, error) {
	if db.PingContext(ctx) == nil {
		return db, nil
	}
	alt, err := d.open(st.ConnectionURL, st.Username, st.PendingPassword)
	if err != nil {
		return db, nil
	}
	if alt.PingContext(ctx) != nil {
		alt.Close()
		return db, nil
	}
	db.Close()
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(connPrefix + st.Name)
		if err != nil {
			return err
		}
		var cur storedConn
		if err := json.Unmarshal(raw, &cur); err != nil {
			return err
		}
		if cur.PendingPassword != st.PendingPassword {
			return nil
		}
		now := s.now().UTC()
		cur.Password, cur.PendingPassword, cur.RootRotatedAt = cur.PendingPassword, "", &now
		cur.Version++
		*st = cur
		return putJSON(tx, connPrefix+st.Name, &cur)
	})
	if err != nil {
		alt.Close()
		return nil, err
	}
	s.log.Info("finished an interrupted root credential rotation", "connection", st.Name)
	return alt, nil
}

func (s *Service) dropPool(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pools[name]; p != nil {
		p.db.Close()
		delete(s.pools, name)
	}
}

// Revoke implements lease.Revoker: it ends the user's sessions and removes
// it. It succeeds if the user is already gone.
func (s *Service) Revoke(ctx context.Context, l *lease.Lease) error {
	var data leaseData
	if err := json.Unmarshal(l.Data, &data); err != nil {
		return fmt.Errorf("decode lease data: %w", err)
	}
	st, err := s.conn(ctx, data.DB)
	if err != nil {
		return fmt.Errorf("database connection %q: %w", data.DB, err)
	}
	d, err := dialectFor(st.Plugin)
	if err != nil {
		return err
	}
	var custom []string
	if len(data.Revocation) > 0 {
		sts, err := parseTemplates(d, "revocation_statements", data.Revocation, phName)
		if err != nil {
			return err
		}
		if custom, err = render(d, sts, values{name: data.Username}); err != nil {
			return err
		}
	}
	err = s.withDB(ctx, st, func(ctx context.Context, db *sql.DB) error {
		return d.revoke(ctx, db, data.Username, custom)
	})
	if err != nil {
		return dbError("revoke user", err, st.Password)
	}
	return nil
}

// Renew implements lease.Renewer: it runs the renewal statements (for
// PostgreSQL by default, ALTER ROLE ... VALID UNTIL the new expiry).
func (s *Service) Renew(ctx context.Context, l *lease.Lease, expires time.Time) error {
	var data leaseData
	if err := json.Unmarshal(l.Data, &data); err != nil {
		return fmt.Errorf("decode lease data: %w", err)
	}
	st, err := s.conn(ctx, data.DB)
	if err != nil {
		return fmt.Errorf("database connection %q: %w", data.DB, err)
	}
	d, err := dialectFor(st.Plugin)
	if err != nil {
		return err
	}
	tmpl := data.Renew
	if len(tmpl) == 0 {
		tmpl = d.defaultRenew()
	}
	if len(tmpl) == 0 {
		return nil
	}
	parsed, err := parseTemplates(d, "renew_statements", tmpl, phName, phExpiration)
	if err != nil {
		return err
	}
	sts, err := render(d, parsed, values{name: data.Username, expiration: d.formatExpiration(expires)})
	if err != nil {
		return err
	}
	err = s.withDB(ctx, st, func(ctx context.Context, db *sql.DB) error { return execAll(ctx, d, db, sts) })
	if err != nil {
		return dbError("renew user", err, st.Password)
	}
	return nil
}

// RotateRoot replaces the admin password of a connection with a random one
// that only Coffer knows: it records the new password as pending, changes
// it on the database, then makes it current. A crash in between is settled
// on the next connection (see settleRotation). The rotation engine calls
// this for scheduled rotations.
func (s *Service) RotateRoot(ctx context.Context, name string) error {
	st, err := s.conn(ctx, name)
	if err != nil {
		return err
	}
	if st.Password == "" {
		return &InputError{Field: "password", Msg: "the connection has no stored password to rotate"}
	}
	d, err := dialectFor(st.Plugin)
	if err != nil {
		return err
	}
	next := newPassword()
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(connPrefix + name)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		cur := &storedConn{}
		if err := json.Unmarshal(raw, cur); err != nil {
			return err
		}
		if cur.Version != st.Version {
			return fmt.Errorf("%w: the connection changed during rotation; try again", ErrInUse)
		}
		cur.PendingPassword = next
		return putJSON(tx, connPrefix+name, cur)
	})
	if err != nil {
		return err
	}
	user, err := s.adminUser(d, st)
	if err != nil {
		return err
	}
	err = s.withDB(ctx, st, func(ctx context.Context, db *sql.DB) error {
		return d.setPassword(ctx, db, user, next)
	})
	if err != nil {
		// The database may or may not have taken it; the pending password
		// stays, and the next connection settles which one works.
		return dbError("rotate root password", err, next, st.Password)
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(connPrefix + name)
		if err != nil {
			return err
		}
		var cur storedConn
		if err := json.Unmarshal(raw, &cur); err != nil {
			return err
		}
		now := s.now().UTC()
		cur.Password, cur.PendingPassword, cur.RootRotatedAt, cur.RootRotationError = next, "", &now, ""
		cur.Version++
		return putJSON(tx, connPrefix+name, &cur)
	})
	if err != nil {
		return err
	}
	s.dropPool(name)
	return nil
}

func hasStoredPassword(ctx context.Context, s *Service, name string) bool {
	st, err := s.conn(ctx, name)
	return err == nil && st.Password != ""
}

// RootRotationResult is what one RotateRootDue pass did.
type RootRotationResult struct {
	Rotated []string
	Failed  map[string]error
}

// RotateRootDue rotates the admin password of every connection whose
// RootRotationPeriod has passed since its last rotation. A failure is kept
// on the connection (RootRotationError, shown by GET /v1/db/config) and the
// rotation is tried again at the next pass; the pending password RotateRoot
// keeps makes a retry safe whether or not the database took the first one.
// The server runs it from the leader's background jobs.
func (s *Service) RotateRootDue(ctx context.Context) (RootRotationResult, error) {
	res := RootRotationResult{Failed: map[string]error{}}
	names, err := s.Connections(ctx)
	if err != nil {
		return res, err
	}
	now := s.now()
	for _, name := range names {
		st, err := s.conn(ctx, name)
		if err != nil {
			if errors.Is(err, ErrNotFound) {
				continue
			}
			return res, err
		}
		period := time.Duration(st.RootRotationPeriod)
		last := st.CreatedAt
		if st.RootRotatedAt != nil {
			last = *st.RootRotatedAt
		}
		if period <= 0 || now.Before(last.Add(period)) {
			continue
		}
		if err := s.RotateRoot(ctx, name); err != nil {
			res.Failed[name] = err
			s.noteRootRotationError(ctx, name, err)
			continue
		}
		res.Rotated = append(res.Rotated, name)
	}
	return res, nil
}

// noteRootRotationError records a scheduled rotation's failure on the connection.
func (s *Service) noteRootRotationError(ctx context.Context, name string, cause error) {
	msg := cause.Error()
	if len(msg) > 512 {
		msg = msg[:512]
	}
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(connPrefix + name)
		if err != nil {
			return err
		}
		var cur storedConn
		if err := json.Unmarshal(raw, &cur); err != nil {
			return err
		}
		cur.RootRotationError = msg
		return putJSON(tx, connPrefix+name, &cur)
	})
	if err != nil {
		s.log.Warn("could not record a root rotation failure", "connection", name, "error", err)
	}
}

// adminUser is the user name Coffer connects as.
func (s *Service) adminUser(d dialect, st *storedConn) (string, error) {
	if st.Username != "" {
		return st.Username, nil
	}
	switch d.name() {
	case PluginPostgres:
		cfg, err := postgres{}.parse(st.ConnectionURL)
		if err != nil {
			return "", err
		}
		return cfg.User, nil
	default:
		cfg, err := mysqlDialect{}.parse(st.ConnectionURL)
		if err != nil {
			return "", err
		}
		return cfg.User, nil
	}
}

// username builds a unique user name from the caller's display name and
// the role name, reduced to [a-z0-9_], plus a random part:
// v_<display:8>_<role:8>_<random:10>, at most 30 characters.
func username(d dialect, display, role string) string {
	if i := strings.LastIndexByte(display, '/'); i >= 0 {
		display = display[i+1:]
	}
	u := "v_" + clean(display, 8) + "_" + clean(role, 8) + "_" + randomString(lower, 10)
	return truncate(u, d.maxUserLen())
}

func clean(s string, n int) string {
	var b strings.Builder
	for _, c := range strings.ToLower(s) {
		if b.Len() == n {
			break
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' {
			b.WriteRune(c)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

const (
	lower = "abcdefghijklmnopqrstuvwxyz0123456789"
	alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

// newPassword returns 32 characters: a fixed "A1a-" so that common password
// policies (upper, lower, digit, symbol) are met, then 28 random
// alphanumerics (166 bits).
func newPassword() string { return "A1a-" + randomString(alnum, 28) }

// randomString draws n characters uniformly from alphabet.
func randomString(alphabet string, n int) string {
	out := make([]byte, 0, n)
	limit := 256 - 256%len(alphabet)
	var buf [64]byte
	for len(out) < n {
		_, _ = rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
