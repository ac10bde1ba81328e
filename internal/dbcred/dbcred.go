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
	// pendingWindow is how long a pending admin password written by
	// another Coffer node counts as a rotation still running there (a
	// rotation's database work is bounded by opTimeout).
	pendingWindow = 2 * opTimeout
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
	// RootRotationFailures counts the scheduled rotations that failed in a
	// row, the last at RootRotationFailedAt; the next is not tried before
	// RootRotationRetryAt (see rootRetryDelay), so a database that refuses
	// the admin is not sent a failing login every minute (which could lock
	// the account). All three are cleared by a success or a rewrite.
	RootRotationFailures int        `json:"root_rotation_failures,omitempty"`
	RootRotationFailedAt *time.Time `json:"root_rotation_failed_at,omitempty"`
	RootRotationRetryAt  *time.Time `json:"root_rotation_retry_at,omitempty"`
	// Version counts writes, so every node notices a change (such as a
	// rotated password) and reopens its pool.
	Version int64 `json:"version"`
}

// storedConn is the stored form, with the secrets.
type storedConn struct {
	Connection
	Password string `json:"password,omitempty"`
	// PendingPassword is set while a root rotation is in flight, and stays
	// if the rotation failed or was interrupted: the database may or may
	// not hold it. It is never overwritten before it is settled (see
	// settle); if the database took it, connecting with it succeeds and it
	// is made current.
	PendingPassword string `json:"pending_password,omitempty"`
	// PendingSince is when PendingPassword was written, and PendingBy the
	// Service (node) that wrote it: another node's rotation may still be
	// running for pendingWindow.
	PendingSince *time.Time `json:"pending_since,omitempty"`
	PendingBy    string     `json:"pending_by,omitempty"`
}

func (st *storedConn) clearPending() {
	st.PendingPassword, st.PendingSince, st.PendingBy = "", nil, ""
}

// rotated records a successful root rotation to password at now.
func (st *storedConn) rotated(password string, now time.Time) {
	st.Password, st.RootRotatedAt = password, &now
	st.RootRotationError, st.RootRotationFailures, st.RootRotationFailedAt, st.RootRotationRetryAt = "", 0, nil, nil
	st.clearPending()
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
	id     string // random; names this Service in storedConn.PendingBy

	mu       sync.Mutex       // guards pools and rotating
	pools    map[string]*pool // by connection name
	rotating map[string]bool  // connections whose root rotation runs in this Service

	// afterSetPassword, set only by tests before use, sees the outcome of
	// the password change in RotateRoot and may replace it (to simulate an
	// answer lost after the database committed).
	afterSetPassword func(error) error
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
	s := &Service{store: store, leases: leases, now: opts.Now, log: opts.Logger, id: randomString(lower, 16),
		pools: map[string]*pool{}, rotating: map[string]bool{}}
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
	moved := false
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
		if moved, err = s.checkMove(ctx, d, old, in); err != nil {
			return nil, err
		}
		st.CreatedAt, st.RootRotatedAt, st.Version = old.CreatedAt, old.RootRotatedAt, old.Version
		if !moved { // checkMove refuses a move while a rotation is unsettled
			st.PendingPassword, st.PendingSince, st.PendingBy = old.PendingPassword, old.PendingSince, old.PendingBy
		}
		if in.Password == nil {
			st.Password = old.Password
		}
	}
	st.PasswordSet = st.Password != ""
	if !in.SkipVerify {
		if err := s.verify(ctx, d, st); err != nil {
			return nil, err
		}
	}
	err = s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(connPrefix + in.Name)
		if errors.Is(err, storage.ErrNotFound) {
			if old != nil {
				return fmt.Errorf("%w: the connection was deleted while it was being written; try again", ErrInUse)
			}
			st.Version = 1
			return putJSON(tx, connPrefix+in.Name, st)
		}
		if err != nil {
			return err
		}
		var cur storedConn
		if err := json.Unmarshal(raw, &cur); err != nil {
			return fmt.Errorf("decode database connection %s: %w", in.Name, err)
		}
		// Whatever happened during verification (a root rotation, another
		// write) must not be overwritten with what was read before it.
		if old == nil || cur.Version != old.Version {
			return fmt.Errorf("%w: the connection changed while it was being written (another write or a root rotation); read it and try again", ErrInUse)
		}
		st.CreatedAt, st.RootRotatedAt = cur.CreatedAt, cur.RootRotatedAt
		if moved && cur.PendingPassword != "" {
			// Unreachable while the version check holds; a pending
			// password is never carried to a new place.
			return errPendingMove
		}
		st.PendingPassword, st.PendingSince, st.PendingBy = cur.PendingPassword, cur.PendingSince, cur.PendingBy
		if in.Password == nil {
			st.Password = cur.Password
		}
		st.PasswordSet = st.Password != ""
		st.Version = cur.Version + 1
		return putJSON(tx, connPrefix+in.Name, st)
	})
	if err != nil {
		return nil, err
	}
	s.dropPool(in.Name)
	out := st.Connection
	return &out, nil
}

// errPendingMove refuses a move while a root rotation is unsettled.
var errPendingMove = fmt.Errorf("%w: a root rotation is unsettled; settle it (rotate-root) first", ErrInUse)

// checkMove guards a rewrite that changes where or how the admin password
// is sent (host, port, TLS and authentication settings, user or database;
// see dialect.identity) and reports whether it does. The stored password
// is never sent to a new place, so such a change needs the password
// again. It is refused while a root rotation is unsettled, whose pending
// password (which verify and settle try) must never reach a new place,
// and while the connection has live leases, whose users could then no
// longer be dropped.
func (s *Service) checkMove(ctx context.Context, d dialect, old *storedConn, in ConnInput) (bool, error) {
	next, err := d.identity(in.ConnectionURL, in.Username)
	if err != nil {
		return false, err
	}
	// A stored URL that no longer parses counts as moved.
	if prev, err := d.identity(old.ConnectionURL, old.Username); err == nil && prev == next {
		return false, nil
	}
	if old.PendingPassword != "" {
		return true, errPendingMove
	}
	if in.Password == nil {
		return true, &InputError{Field: "password", Msg: "is required when the host, port, TLS or authentication settings, user or database change: " +
			"the stored admin password is only sent where and how it was given for"}
	}
	roles, err := s.connRoles(ctx, old.Name)
	if err != nil {
		return true, err
	}
	for _, r := range roles {
		if live, err := s.liveLeases(ctx, r); err != nil {
			return true, err
		} else if live {
			return true, fmt.Errorf("%w: the host, port, user or database cannot change while the connection has live leases (role %s); "+
				"revoke them first (coffer lease revoke --prefix %s%s/)", ErrInUse, r, LeasePrefix, r)
		}
	}
	return true, nil
}

// connRoles returns the names of the roles that use connection name.
func (s *Service) connRoles(ctx context.Context, name string) ([]string, error) {
	roles, err := s.Roles(ctx)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range roles {
		role, err := s.Role(ctx, r)
		if err == nil && role.DBName == name {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out, nil
}

// verify connects with st's settings and pings. While a root rotation is
// unsettled the database may hold the pending password instead of the
// stored one; either will do.
func (s *Service) verify(ctx context.Context, d dialect, st *storedConn) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	err := s.ping(ctx, d, st, st.Password)
	if err != nil && st.PendingPassword != "" && s.ping(ctx, d, st, st.PendingPassword) == nil {
		return nil
	}
	return err
}

func (s *Service) ping(ctx context.Context, d dialect, st *storedConn, password string) error {
	db, err := d.open(st.ConnectionURL, st.Username, password)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return dbError("verify connection", err, password, st.Password, st.PendingPassword)
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
	st := &storedConn{}
	if err := s.load(ctx, connPrefix, "database connection", name, ErrNotFound, st); err != nil {
		return nil, err
	}
	return st, nil
}

// load decodes the record of name under prefix into v; notFound is returned
// for a bad or unknown name.
func (s *Service) load(ctx context.Context, prefix, what, name string, notFound error, v any) error {
	if checkName("name", name) != nil {
		return notFound
	}
	raw, err := s.store.Get(ctx, prefix+name)
	if errors.Is(err, storage.ErrNotFound) {
		return notFound
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("decode %s %s: %w", what, name, err)
	}
	return nil
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
	users, err := s.connRoles(ctx, name)
	if err != nil {
		return err
	}
	if len(users) > 0 {
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
				return nil, fmt.Errorf("%w: db_name cannot change while the role has live leases; revoke them first (coffer lease revoke --prefix %s%s/)", ErrInUse, LeasePrefix, r.Name)
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
	r := &Role{}
	if err := s.load(ctx, rolePrefix, "database role", name, ErrRoleNotFound, r); err != nil {
		return nil, err
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
		return fmt.Errorf("%w: the role has live leases; revoke them first (coffer lease revoke --prefix %s%s/)", ErrInUse, LeasePrefix, name)
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
	db, release, err := s.pool(ctx, st)
	if err != nil {
		return err
	}
	defer release()
	return fn(ctx, db)
}

// pool returns a pool for this version of the connection and a function to
// call when done with it. The pool is cached per version, except while the
// connection has a pending admin password: which password the database
// holds is then unknown, so the rotation is settled first, and while it
// cannot be (another rotation may still be running) each call gets a pool
// of its own, logged in with the password that works.
func (s *Service) pool(ctx context.Context, st *storedConn) (*sql.DB, func(), error) {
	d, err := dialectFor(st.Plugin)
	if err != nil {
		return nil, nil, err
	}
	noop := func() {}
	if st.PendingPassword != "" {
		s.dropPool(st.Name)
		cur, db, err := s.settle(ctx, d, st, false)
		if err != nil {
			return nil, nil, err
		}
		if cur.PendingPassword != "" {
			return db, func() { db.Close() }, nil
		}
		return s.keep(cur, db), noop, nil
	}
	s.mu.Lock()
	p := s.pools[st.Name]
	if p != nil && p.version == st.Version && p.password == st.Password {
		s.mu.Unlock()
		return p.db, noop, nil
	}
	s.mu.Unlock()
	db, err := s.openPool(d, st, st.Password)
	if err != nil {
		return nil, nil, err
	}
	return s.keep(st, db), noop, nil
}

// keep caches db as the pool of st's version and returns it, or returns
// the cached pool of the same or a newer version (closing db): a pool
// another caller may be using is only closed when a newer version
// replaces it.
func (s *Service) keep(st *storedConn, db *sql.DB) *sql.DB {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old := s.pools[st.Name]; old != nil {
		if old.version >= st.Version {
			db.Close() // another caller opened this version first, or a newer one won the race
			return old.db
		}
		old.db.Close()
	}
	s.pools[st.Name] = &pool{version: st.Version, password: st.Password, db: db}
	return db
}

// openPool opens (without connecting) a pool to st's database as password.
func (s *Service) openPool(d dialect, st *storedConn, password string) (*sql.DB, error) {
	db, err := d.open(st.ConnectionURL, st.Username, password)
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
	return db, nil
}

// login opens a pool as password and checks that the database accepts it.
func (s *Service) login(ctx context.Context, d dialect, st *storedConn, password string) (*sql.DB, error) {
	db, err := s.openPool(d, st, password)
	if err != nil {
		return nil, err
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, dbError("connect", err, password, st.Password, st.PendingPassword)
	}
	return db, nil
}

// errChanged is returned when a connection changed under an operation that
// must not overwrite the change.
var errChanged = fmt.Errorf("%w: the connection changed meanwhile; try again", ErrInUse)

// settle finds out which admin password the database holds while st has a
// pending one (a root rotation is running, failed, or was interrupted). It
// tries the pending password first, then the stored one, and returns the
// connection as it now stands with a pool logged in with the password that
// works:
//
//   - the pending password works: the database took it, and it becomes the
//     stored one;
//   - the stored one works: the database did not take the pending one, which
//     is dropped, unless a rotation may still be running (in this Service,
//     unless the caller is that rotation, or started by another node less
//     than pendingWindow ago) and could yet change the password: the record
//     is then returned with its pending password;
//   - neither works: a *DBError, and both passwords stay recorded.
//
// Only a password that was tried and refused is ever dropped, so the one
// the database holds is never lost.
func (s *Service) settle(ctx context.Context, d dialect, st *storedConn, rotating bool) (*storedConn, *sql.DB, error) {
	pending := st.PendingPassword
	if db, err := s.login(ctx, d, st, pending); err == nil {
		cur, err := s.updateConn(ctx, st.Name, func(cur *storedConn) bool {
			if cur.PendingPassword != pending {
				return false
			}
			cur.rotated(pending, s.now().UTC())
			return true
		})
		if err == nil && (cur.Password != pending || cur.PendingPassword != "") {
			err = errChanged
		}
		if err != nil {
			db.Close()
			return nil, nil, err
		}
		s.log.Info("finished an interrupted root credential rotation", "connection", st.Name)
		return cur, db, nil
	}
	db, err := s.login(ctx, d, st, st.Password)
	if err != nil {
		var de *DBError
		if errors.As(err, &de) {
			return nil, nil, &DBError{Op: "settle root rotation", Msg: "the database accepts neither the stored nor the pending admin password (both are kept): " + de.Msg}
		}
		return nil, nil, err
	}
	if s.mayBeRotating(st, rotating) {
		return st, db, nil
	}
	cur, err := s.updateConn(ctx, st.Name, func(cur *storedConn) bool {
		if cur.PendingPassword != pending {
			return false
		}
		cur.clearPending()
		return true
	})
	if err == nil && (cur.Password != st.Password || cur.PendingPassword != "") {
		err = errChanged
	}
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	s.log.Info("dropped the pending admin password of a failed root credential rotation", "connection", st.Name)
	return cur, db, nil
}

// mayBeRotating reports whether the rotation that wrote st's pending
// password may still be running. rotating means the caller is this
// Service's rotation of the connection.
func (s *Service) mayBeRotating(st *storedConn, rotating bool) bool {
	s.mu.Lock()
	local := s.rotating[st.Name]
	s.mu.Unlock()
	if local && !rotating {
		return true
	}
	if st.PendingBy == s.id {
		return false // written by a rotation of this Service, which has ended
	}
	return st.PendingSince != nil && s.now().Sub(*st.PendingSince) < pendingWindow
}

// updateConn runs fn on the stored connection in one transaction. fn
// reports whether it changed the record; a change is written with the
// next Version. It returns the record as stored.
func (s *Service) updateConn(ctx context.Context, name string, fn func(*storedConn) bool) (*storedConn, error) {
	var out *storedConn
	err := s.store.Update(ctx, func(tx storage.Tx) error {
		raw, err := tx.Get(connPrefix + name)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		cur := &storedConn{}
		if err := json.Unmarshal(raw, cur); err != nil {
			return fmt.Errorf("decode database connection %s: %w", name, err)
		}
		out = cur
		if !fn(cur) {
			return nil
		}
		cur.Version++
		cur.PasswordSet = cur.Password != ""
		return putJSON(tx, connPrefix+name, cur)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (s *Service) dropPool(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.pools[name]; p != nil {
		p.db.Close()
		delete(s.pools, name)
	}
}

// leaseTarget decodes what a lease recorded and finds its connection.
func (s *Service) leaseTarget(ctx context.Context, l *lease.Lease) (leaseData, *storedConn, dialect, error) {
	var data leaseData
	if err := json.Unmarshal(l.Data, &data); err != nil {
		return data, nil, nil, fmt.Errorf("decode lease data: %w", err)
	}
	st, err := s.conn(ctx, data.DB)
	if err != nil {
		return data, nil, nil, fmt.Errorf("database connection %q: %w", data.DB, err)
	}
	d, err := dialectFor(st.Plugin)
	return data, st, d, err
}

// Revoke implements lease.Revoker: it ends the user's sessions and removes
// it. It succeeds if the user is already gone.
func (s *Service) Revoke(ctx context.Context, l *lease.Lease) error {
	data, st, d, err := s.leaseTarget(ctx, l)
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
	data, st, d, err := s.leaseTarget(ctx, l)
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
// that only Coffer knows. It logs in with the stored password, records the
// new one as pending (with a new Version, so a concurrent write or
// rotation fails its version check), changes it on the database over that
// same login, then makes it current. If the change fails or its answer is
// lost, the pending password stays; the next connection or rotation
// settles which one the database holds (see settle) before anything new is
// generated. Rotations of one connection do not overlap: a second one,
// here or on another node, gets ErrInUse. The rotation engine calls this
// for scheduled rotations.
func (s *Service) RotateRoot(ctx context.Context, name string) error {
	s.mu.Lock()
	busy := s.rotating[name]
	s.rotating[name] = true
	s.mu.Unlock()
	if busy {
		return fmt.Errorf("%w: a root rotation of this connection is already running", ErrInUse)
	}
	defer func() {
		s.mu.Lock()
		delete(s.rotating, name)
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
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
	user, err := s.adminUser(d, st)
	if err != nil {
		return err
	}
	var db *sql.DB
	if st.PendingPassword != "" {
		// A new pending password must not replace one the database may hold.
		s.dropPool(name)
		if st, db, err = s.settle(ctx, d, st, true); err != nil {
			return err
		}
		if st.PendingPassword != "" {
			db.Close()
			return fmt.Errorf("%w: a root rotation started on another node less than %s ago may still be running; try again later", ErrInUse, pendingWindow)
		}
	} else if db, err = s.login(ctx, d, st, st.Password); err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // the change goes over the login just checked
	next := newPassword()
	written := false
	_, err = s.updateConn(ctx, name, func(cur *storedConn) bool {
		written = cur.Version == st.Version && cur.PendingPassword == ""
		if written {
			now := s.now().UTC()
			cur.PendingPassword, cur.PendingSince, cur.PendingBy = next, &now, s.id
		}
		return written
	})
	if err != nil {
		return err
	}
	if !written {
		return fmt.Errorf("%w: the connection changed during rotation; try again", ErrInUse)
	}
	err = d.setPassword(ctx, db, user, next)
	if s.afterSetPassword != nil {
		err = s.afterSetPassword(err)
	}
	if err != nil {
		// The database may or may not have taken it: the pending password
		// stays, and the next connection or rotation settles it.
		return dbError("rotate root password", err, next, st.Password)
	}
	// The database holds next now, whatever was written meanwhile; record
	// it even if the caller has given up.
	_, err = s.updateConn(context.WithoutCancel(ctx), name, func(cur *storedConn) bool {
		cur.rotated(next, s.now().UTC())
		return true
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
// rotation is tried again after a backoff that doubles with each failure in
// a row, from 1 minute to 6 hours (RootRotationRetryAt); the pending
// password RotateRoot keeps makes a retry safe whether or not the database
// took the first one. The server runs it from the leader's background jobs.
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
		if st.RootRotationRetryAt != nil && now.Before(*st.RootRotationRetryAt) {
			continue // backing off after a failure
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

// Scheduled root rotation backoff: after n failures in a row the next try
// waits rootRetryMin * 2^(n-1), at most rootRetryMax.
const (
	rootRetryMin = time.Minute
	rootRetryMax = 6 * time.Hour
)

func rootRetryDelay(failures int) time.Duration {
	d := rootRetryMin
	for i := 1; i < failures && d < rootRetryMax; i++ {
		d *= 2
	}
	return min(d, rootRetryMax)
}

// noteRootRotationError records a scheduled rotation's failure on the
// connection and when the next may be tried. The Version is left alone:
// nothing a pool or a concurrent write depends on changes.
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
		now := s.now().UTC()
		retry := now.Add(rootRetryDelay(cur.RootRotationFailures + 1))
		cur.RootRotationError = msg
		cur.RootRotationFailures++
		cur.RootRotationFailedAt, cur.RootRotationRetryAt = &now, &retry
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
